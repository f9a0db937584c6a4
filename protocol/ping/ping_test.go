package ping

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// fakeStream is a network.Stream over a net.Conn that records how it ended.
// Methods ping has no business calling are left to the nil embedded
// interface, so calling them panics.
type fakeStream struct {
	network.Stream
	c      net.Conn
	remote peer.ID

	mu            sync.Mutex
	closed, reset bool
}

func (f *fakeStream) Read(p []byte) (int, error)         { return f.c.Read(p) }
func (f *fakeStream) Write(p []byte) (int, error)        { return f.c.Write(p) }
func (f *fakeStream) SetDeadline(t time.Time) error      { return f.c.SetDeadline(t) }
func (f *fakeStream) SetReadDeadline(t time.Time) error  { return f.c.SetReadDeadline(t) }
func (f *fakeStream) SetWriteDeadline(t time.Time) error { return f.c.SetWriteDeadline(t) }
func (f *fakeStream) CloseRead() error                   { return nil }
func (f *fakeStream) RemotePeer() peer.ID                { return f.remote }

func (f *fakeStream) CloseWrite() error {
	if cw, ok := f.c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

func (f *fakeStream) Close() error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	return f.c.Close()
}

func (f *fakeStream) Reset() error {
	f.mu.Lock()
	f.reset = true
	f.mu.Unlock()
	return f.c.Close()
}

// ended reports how the stream was ended: "close", "reset" or "".
func (f *fakeStream) ended() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.reset:
		return "reset"
	case f.closed:
		return "close"
	}
	return ""
}

// pipe returns two streams over net.Pipe with a safety deadline.
func pipe(t *testing.T) (*fakeStream, *fakeStream) {
	a, b := net.Pipe()
	return streams(t, a, b)
}

// tcpPair returns two streams over loopback TCP, which can half-close.
func tcpPair(t *testing.T) (*fakeStream, *fakeStream) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-acc
	if b == nil {
		t.Fatal("accept failed")
	}
	return streams(t, a, b)
}

func streams(t *testing.T, a, b net.Conn) (*fakeStream, *fakeStream) {
	dl := time.Now().Add(5 * time.Second)
	a.SetDeadline(dl)
	b.SetDeadline(dl)
	t.Cleanup(func() { a.Close(); b.Close() })
	return &fakeStream{c: a}, &fakeStream{c: b}
}

// serveWith runs Handle on s and returns a channel closed when it returns.
func serveWith(s *fakeStream) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		Handle(s)
	}()
	return done
}

// responder runs f as a misbehaving listener on s.
func responder(s *fakeStream, f func(payload []byte) []byte) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, Size)
		if _, err := io.ReadFull(s, buf); err != nil {
			return
		}
		s.Write(f(buf))
		s.Close()
	}()
	return done
}

func wait(t *testing.T, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("timed out")
	}
}

func TestHandleEcho(t *testing.T) {
	for _, n := range []int{0, 1, 5} {
		leakcheck.Check(t)
		client, server := pipe(t)
		done := serveWith(server)
		for i := range n {
			rtt, err := Once(t.Context(), client)
			if err != nil || rtt <= 0 {
				t.Fatalf("ping %d: rtt %v, %v", i, rtt, err)
			}
		}
		client.c.Close() // net.Pipe cannot half-close: EOF for the handler
		wait(t, done)
		if e := server.ended(); e != "close" {
			t.Fatalf("%d pings: handler ended the stream with %q, want close", n, e)
		}
	}
}

// TestHandleHalfClose follows the spec's ending: the dialer half-closes
// after its last ping, the listener finishes the echo and closes.
func TestHandleHalfClose(t *testing.T) {
	leakcheck.Check(t)
	client, server := tcpPair(t)
	done := serveWith(server)
	payload := bytes.Repeat([]byte{0xab}, 2*Size)
	if _, err := client.Write(payload); err != nil {
		t.Fatal(err)
	}
	if err := client.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(client)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("read %d bytes, %v; want the two echoes then EOF", len(got), err)
	}
	wait(t, done)
	if e := server.ended(); e != "close" {
		t.Fatalf("handler ended the stream with %q, want close", e)
	}
}

func TestHandleBadEnd(t *testing.T) {
	for _, tc := range []struct {
		name string
		send int
	}{
		{"partial ping", 10},
		{"ping and a half", Size + Size/2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			client, server := tcpPair(t)
			done := serveWith(server)
			client.Write(make([]byte, tc.send))
			client.CloseWrite()
			wait(t, done)
			if e := server.ended(); e != "reset" {
				t.Fatalf("handler ended the stream with %q, want reset", e)
			}
		})
	}
}

// TestIdleTimeout: a listener must not reset a ping stream sooner than
// go-libp2p's listener would (60 s); the spec sets no limit.
func TestIdleTimeout(t *testing.T) {
	if IdleTimeout < 60*time.Second {
		t.Fatalf("IdleTimeout = %v, want at least 60s", IdleTimeout)
	}
}

// TestListenerLimit: a Listener serves at most MaxInbound streams per
// peer; one more resets the oldest, and other peers are not affected.
func TestListenerLimit(t *testing.T) {
	leakcheck.Check(t)
	var l Listener
	type served struct {
		client, server *fakeStream
		done           <-chan struct{}
	}
	open := func(p peer.ID) served {
		client, server := pipe(t)
		server.remote = p
		done := make(chan struct{})
		go func() {
			defer close(done)
			l.Handle(server)
		}()
		// One answered ping: the handler is registered and serving.
		if _, err := Once(t.Context(), client); err != nil {
			t.Fatalf("ping to a new stream from %s: %v", p, err)
		}
		return served{client, server, done}
	}
	var a []served
	for range MaxInbound {
		a = append(a, open("a"))
	}
	b := open("b")
	a = append(a, open("a"))

	wait(t, a[0].done)
	if e := a[0].server.ended(); e != "reset" {
		t.Fatalf("oldest stream ended with %q, want reset", e)
	}
	for i, s := range append(a[1:], b) {
		if _, err := Once(t.Context(), s.client); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
	}
	for _, s := range append(a[1:], b) {
		s.client.c.Close()
		wait(t, s.done)
		if e := s.server.ended(); e != "close" {
			t.Fatalf("stream ended with %q, want close", e)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.peers) != 0 {
		t.Fatalf("listener still tracks %d peers", len(l.peers))
	}
}

func TestServeIdle(t *testing.T) {
	leakcheck.Check(t)
	_, server := pipe(t)
	start := time.Now()
	err := serve(server, 50*time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("serve on an idle stream = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("idle timeout took %v", d)
	}
}

func TestOnceBadResponder(t *testing.T) {
	for _, tc := range []struct {
		name string
		echo func([]byte) []byte
		is   error
	}{
		{"flipped byte", func(b []byte) []byte { b[7] ^= 1; return b }, ErrMismatch},
		{"no echo", func([]byte) []byte { return nil }, io.EOF},
		{"short echo", func(b []byte) []byte { return b[:10] }, io.ErrUnexpectedEOF},
		{"good echo", func(b []byte) []byte { return b }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			client, server := pipe(t)
			done := responder(server, tc.echo)
			_, err := Once(t.Context(), client)
			if tc.is == nil && err != nil || tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("Once = %v, want %v", err, tc.is)
			}
			wait(t, done)
		})
	}
}

func TestOnceContext(t *testing.T) {
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		is   error
	}{
		{"cancel", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(50*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}, context.DeadlineExceeded},
		{"already canceled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			client, server := pipe(t)
			// A listener that reads pings and never answers.
			go io.Copy(io.Discard, server)
			ctx, cancel := tc.ctx()
			defer cancel()
			start := time.Now()
			if _, err := Once(ctx, client); !errors.Is(err, tc.is) {
				t.Fatalf("Once = %v, want %v", err, tc.is)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("Once took %v to notice", d)
			}
		})
	}
}

// TestOnceLeavesNoDeadline: a ping whose ctx later expires leaves no
// deadline behind.
func TestOnceLeavesNoDeadline(t *testing.T) {
	leakcheck.Check(t)
	client, server := pipe(t)
	done := serveWith(server)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := Once(ctx, client); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	if _, err := Once(t.Context(), client); err != nil {
		t.Fatalf("second ping after the first ctx expired: %v", err)
	}
	client.c.Close()
	wait(t, done)
}

func collect(t *testing.T, ch <-chan Result) []Result {
	t.Helper()
	var rs []Result
	timeout := time.After(5 * time.Second)
	for {
		select {
		case r, ok := <-ch:
			if !ok {
				return rs
			}
			rs = append(rs, r)
		case <-timeout:
			t.Fatal("Run did not finish")
		}
	}
}

func TestRun(t *testing.T) {
	leakcheck.Check(t)
	client, server := pipe(t)
	done := serveWith(server)
	rs := collect(t, Run(t.Context(), client, 3, time.Millisecond))
	if len(rs) != 3 {
		t.Fatalf("%d results, want 3", len(rs))
	}
	for i, r := range rs {
		if r.Err != nil || r.RTT <= 0 {
			t.Errorf("ping %d: %+v", i, r)
		}
	}
	wait(t, done)
	if client.ended() != "close" || server.ended() != "close" {
		t.Fatalf("streams ended with %q (client), %q (server); want close", client.ended(), server.ended())
	}
}

func TestRunCancel(t *testing.T) {
	leakcheck.Check(t)
	client, server := pipe(t)
	done := serveWith(server)
	ctx, cancel := context.WithCancel(t.Context())
	ch := Run(ctx, client, 0, 5*time.Millisecond)
	for range 2 {
		if r := <-ch; r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	cancel() // stop reading: the goroutine must still exit
	wait(t, done)
	collect(t, ch)
	if e := client.ended(); e == "" {
		t.Fatal("Run did not end the stream")
	}
}

func TestRunFailure(t *testing.T) {
	leakcheck.Check(t)
	client, server := pipe(t)
	done := responder(server, func(b []byte) []byte { b[0] ^= 0xff; return b })
	rs := collect(t, Run(t.Context(), client, 3, 0))
	if len(rs) != 1 || !errors.Is(rs[0].Err, ErrMismatch) {
		t.Fatalf("results %+v, want one ErrMismatch", rs)
	}
	wait(t, done)
	if e := client.ended(); e != "reset" {
		t.Fatalf("Run ended the stream with %q, want reset", e)
	}
}

// script is a Stream reading fixed input.
type script struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (s *script) Read(p []byte) (int, error)  { return s.in.Read(p) }
func (s *script) Write(p []byte) (int, error) { return s.out.Write(p) }
func (s *script) SetDeadline(time.Time) error { return nil }

// FuzzServe: whatever the dialer sends, the handler echoes every whole ping
// and fails exactly when the input ends mid-ping.
func FuzzServe(f *testing.F) {
	f.Add(make([]byte, Size))
	f.Add(bytes.Repeat([]byte{1}, 3*Size))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		s := &script{in: bytes.NewReader(b)}
		err := serve(s, time.Second)
		whole := len(b) / Size * Size
		if !bytes.Equal(s.out.Bytes(), b[:whole]) {
			t.Fatalf("echoed %d bytes, want %d", s.out.Len(), whole)
		}
		if (err != nil) != (whole != len(b)) {
			t.Fatalf("serve = %v for %d bytes", err, len(b))
		}
	})
}
