// Package transporttest is the conformance suite the QUIC and WebTransport
// transports share: connection setup both ways, streams in both
// directions, parallel bulk echo, resets, clean close, and a goroutine check
// that also covers quic-go's goroutines (internal/leakcheck only watches
// this module's).
package transporttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
)

// Peer is one side of a test: a transport and its identity.
type Peer struct {
	T  network.Transport
	ID peer.ID
}

// CheckQUICGoroutines fails the test if goroutines of quic-go or
// webtransport-go started during the test are still running 5 s after it
// ends. Call it right after leakcheck.Check.
func CheckQUICGoroutines(t testing.TB) {
	t.Helper()
	before := map[string]bool{}
	for _, g := range stacks() {
		before[goID(g)] = true
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			var left []string
			for _, g := range stacks() {
				if !before[goID(g)] && strings.Contains(g, "github.com/quic-go/") && !strings.Contains(g, "testing.tRunner") {
					left = append(left, g)
				}
			}
			if len(left) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d quic-go goroutines left behind:\n\n%s", len(left), strings.Join(left, "\n\n"))
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func stacks() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Split(strings.TrimSpace(string(buf[:n])), "\n\n")
		}
		buf = make([]byte, 2*len(buf))
	}
}

func goID(g string) string {
	if i := strings.Index(g, " ["); i > 0 {
		return g[:i]
	}
	return g
}

// Listen listens on laddr and registers the listener's close as cleanup.
func Listen(t testing.TB, tr network.Transport, laddr string) network.Listener {
	t.Helper()
	l, err := tr.Listen(ma.StringCast(laddr))
	if err != nil {
		t.Fatalf("listen on %s: %v", laddr, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// Connect dials from d to the first address of l and accepts the
// connection; both are closed at cleanup.
func Connect(t testing.TB, d Peer, l network.Listener, lid peer.ID) (dialed, accepted network.TransportConn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type res struct {
		c   network.TransportConn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := l.Accept()
		ch <- res{c, err}
	}()
	dc, err := d.T.Dial(ctx, l.Multiaddrs()[0], lid)
	if err != nil {
		t.Fatalf("dial %s: %v", l.Multiaddrs()[0], err)
	}
	t.Cleanup(func() { dc.Close() })
	r := <-ch
	if r.err != nil {
		t.Fatalf("accept: %v", r.err)
	}
	t.Cleanup(func() { r.c.Close() })
	return dc, r.c
}

// ServeEcho accepts streams on c and echoes each one until EOF, then
// closes it. It returns when c closes; the caller waits on the WaitGroup.
func ServeEcho(c network.TransportConn, wg *sync.WaitGroup) {
	wg.Go(func() {
		for {
			s, err := c.AcceptStream()
			if err != nil {
				return
			}
			wg.Go(func() {
				if _, err := io.Copy(s, s); err != nil {
					s.Reset()
					return
				}
				s.Close()
			})
		}
	})
}

// Echo writes n random bytes on a new stream of c while reading them back,
// and checks that they come back intact.
func Echo(ctx context.Context, c network.TransportConn, n int) error {
	s, err := c.OpenStream(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		s.SetDeadline(dl)
	}
	data := make([]byte, n)
	rand.Read(data)
	errc := make(chan error, 1)
	go func() {
		if _, err := s.Write(data); err != nil {
			errc <- fmt.Errorf("write: %w", err)
			return
		}
		errc <- s.CloseWrite()
	}()
	got, err := io.ReadAll(s)
	if werr := <-errc; werr != nil {
		return werr
	}
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if !bytes.Equal(got, data) {
		return fmt.Errorf("echo mismatch: sent %d bytes, got %d", len(data), len(got))
	}
	return nil
}

// RunBasic checks one connection: the dialer's streams are echoed by the
// listener and the listener's by the dialer, the peer IDs and directions
// are right, 10 MiB are echoed on 8 concurrent streams, and closing one
// side ends the other's AcceptStream.
func RunBasic(t *testing.T, dialer Peer, dc, ac network.TransportConn, listenerID peer.ID) {
	if dc.RemotePeer() != listenerID || ac.RemotePeer() != dialer.ID {
		t.Fatalf("peer IDs: dialer sees %s (want %s), listener sees %s (want %s)", dc.RemotePeer(), listenerID, ac.RemotePeer(), dialer.ID)
	}
	if dc.Direction() != network.DirOutbound || ac.Direction() != network.DirInbound {
		t.Fatalf("directions %v/%v", dc.Direction(), ac.Direction())
	}
	if dc.RemotePublicKey() == nil || ac.RemotePublicKey() == nil {
		t.Fatal("missing remote public key")
	}
	var wg sync.WaitGroup
	ServeEcho(ac, &wg)
	ServeEcho(dc, &wg)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := Echo(ctx, dc, 1000); err != nil {
		t.Fatalf("dialer->listener echo: %v", err)
	}
	if err := Echo(ctx, ac, 1000); err != nil {
		t.Fatalf("listener->dialer echo: %v", err)
	}

	const streams, total = 8, 10 << 20
	start := time.Now()
	errs := make(chan error, streams)
	for range streams {
		go func() { errs <- Echo(ctx, dc, total/streams) }()
	}
	for range streams {
		if err := <-errs; err != nil {
			t.Fatalf("parallel echo: %v", err)
		}
	}
	el := time.Since(start)
	t.Logf("echoed %d MiB on %d streams in %v (%.0f MiB/s each way)", total>>20, streams, el, float64(total>>20)/el.Seconds())

	if err := dc.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if !dc.IsClosed() {
		t.Fatal("IsClosed is false after Close")
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the listener side did not notice the close")
	}
	// AcceptStream may fail a moment before the connection marks itself
	// closed; it must get there soon after.
	for deadline := time.Now().Add(5 * time.Second); !ac.IsClosed(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("accepted side not closed after the peer closed")
		}
	}
}

// RunReset checks a reset in the middle of a transfer: the reader that
// resets makes the writer fail with network.ErrReset, and a writer that
// resets makes the reader fail with network.ErrReset.
func RunReset(t *testing.T, dc, ac network.TransportConn) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// The reader resets while the writer is writing.
	s, err := dc.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	as, err := ac.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(as, buf); err != nil {
		t.Fatal(err)
	}
	as.Reset()
	s.SetWriteDeadline(time.Now().Add(10 * time.Second))
	chunk := make([]byte, 64<<10)
	for {
		if _, err = s.Write(chunk); err != nil {
			break
		}
	}
	if !errors.Is(err, network.ErrReset) {
		t.Fatalf("write after the peer's reset: %v, want ErrReset", err)
	}
	if _, err := s.Read(buf); !errors.Is(err, network.ErrReset) {
		t.Fatalf("read after the peer's reset: %v, want ErrReset", err)
	}

	// The writer resets mid-transfer.
	s2, err := ac.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Write(make([]byte, 100<<10)); err != nil {
		t.Fatal(err)
	}
	ds, err := dc.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(ds, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	s2.Reset()
	ds.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.Copy(io.Discard, ds)
	if !errors.Is(err, network.ErrReset) {
		t.Fatalf("read after the writer's reset: %v, want ErrReset", err)
	}
	if _, err := s2.Write([]byte("x")); err == nil {
		t.Fatal("write after own reset succeeded")
	}

	// CloseRead: the writer eventually fails with ErrReset; the other
	// direction keeps working.
	s3, err := dc.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s3.Write([]byte("ping"))
	as3, err := ac.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(as3, buf[:4])
	as3.CloseRead()
	if _, err := as3.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	as3.CloseWrite()
	got, err := io.ReadAll(s3)
	if err != nil || string(got) != "pong" {
		t.Fatalf("read after peer CloseRead: %q, %v", got, err)
	}
	s3.SetWriteDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, err = s3.Write(chunk); err != nil {
			break
		}
	}
	if !errors.Is(err, network.ErrReset) {
		t.Fatalf("write after the peer's CloseRead: %v, want ErrReset", err)
	}
	s3.Close()
}

// RunDeadline checks that a read deadline fires with a timeout error. It
// consumes the stream it opens on ac's side.
func RunDeadline(t *testing.T, dc, ac network.TransportConn) {
	s, err := dc.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		s.Reset()
		if as, err := ac.AcceptStream(); err == nil {
			as.Reset()
		}
	}()
	s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	_, err = s.Read(make([]byte, 1))
	var ne interface{ Timeout() bool }
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past deadline: %v, want a timeout", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("deadline fired after %v", el)
	}
}

// HandshakeTimer is swarm.HandshakeTimer, which this package cannot
// import.
type HandshakeTimer interface {
	HandshakeDuration() time.Duration
}

// RunHandshakeDuration connects d to l and checks what the two ends
// report as their handshake's duration: the accepted end a duration above
// 0 and no longer than the wall time around dial and accept, the dialed
// end 0 (its dial attempt is what times it).
func RunHandshakeDuration(t *testing.T, d Peer, l network.Listener, lid peer.ID) {
	t.Helper()
	begin := time.Now()
	dc, ac := Connect(t, d, l, lid)
	wall := time.Since(begin)
	for _, c := range []struct {
		end  string
		conn network.TransportConn
		out  bool
	}{{"accepted", ac, false}, {"dialed", dc, true}} {
		ht, ok := c.conn.(HandshakeTimer)
		if !ok {
			t.Errorf("the %s %T has no HandshakeDuration", c.end, c.conn)
			continue
		}
		took := ht.HandshakeDuration()
		switch {
		case c.out && took != 0:
			t.Errorf("the dialed connection's HandshakeDuration = %v, want 0", took)
		case !c.out && (took <= 0 || took > wall):
			t.Errorf("the accepted connection's HandshakeDuration = %v, want above 0 and at most the wall time %v", took, wall)
		}
	}
}
