package webrtc

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/internal/varint"
)

func pair(t *testing.T) (client, server network.TransportConn) {
	a, _ := newTransport(t)
	b, bID := newTransport(t)
	l := listen(t, b, "/ip4/127.0.0.1/udp/0/webrtc-direct")
	return connect(t, a, l, bID)
}

// echoServer echoes every stream of c until it closes.
func echoServer(c network.TransportConn) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			s, err := c.AcceptStream()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := io.Copy(s, s); err != nil {
					s.Reset()
					return
				}
				s.Close()
			}()
		}
	}()
	return &wg
}

func TestConcurrentStreamsEcho(t *testing.T) {
	leakcheck.Check(t)
	c, s := pair(t)
	wg := echoServer(s)
	defer wg.Wait()
	defer s.Close()
	// 10 MiB in all over 8 concurrent streams, echoed: enough to fill the
	// send and receive queues many times over, and bounded in time under
	// -race on a busy 2-core machine.
	const streams, size = 8, 10 << 20 / 8
	data := make([]byte, size)
	rand.Read(data)
	errs := make(chan error, streams)
	start := time.Now()
	for i := 0; i < streams; i++ {
		go func() {
			st, err := c.OpenStream(context.Background())
			if err != nil {
				errs <- err
				return
			}
			st.SetDeadline(time.Now().Add(120 * time.Second))
			werr := make(chan error, 1)
			go func() {
				_, err := st.Write(data)
				if err == nil {
					err = st.CloseWrite()
				}
				werr <- err
			}()
			got, err := io.ReadAll(st)
			if err == nil {
				err = <-werr
			}
			if err == nil && !bytes.Equal(got, data) {
				err = errors.New("echo mismatch")
			}
			st.Close()
			errs <- err
		}()
	}
	for i := 0; i < streams; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d streams x %d MiB echoed in %v", streams, size>>20, time.Since(start))
}

func TestResetMidTransfer(t *testing.T) {
	leakcheck.Check(t)
	c, s := pair(t)
	got := make(chan error, 1)
	go func() {
		st, err := s.AcceptStream()
		if err != nil {
			got <- err
			return
		}
		_, err = io.Copy(io.Discard, st)
		got <- err
	}()
	st, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	st.Reset()
	if err := <-got; !errors.Is(err, network.ErrReset) {
		t.Fatalf("reader got %v, want ErrReset", err)
	}
	if _, err := st.Write([]byte("x")); !errors.Is(err, network.ErrReset) {
		t.Fatalf("write after reset: %v", err)
	}
	if _, err := st.Read(make([]byte, 1)); !errors.Is(err, network.ErrReset) {
		t.Fatalf("read after reset: %v", err)
	}
}

func TestCloseReadStopsSender(t *testing.T) {
	leakcheck.Check(t)
	c, s := pair(t)
	accepted := make(chan network.MuxedStream, 1)
	go func() {
		st, _ := s.AcceptStream()
		accepted <- st
	}()
	st, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte("a"))
	peerSt := <-accepted
	buf := make([]byte, 1)
	if _, err := io.ReadFull(peerSt, buf); err != nil {
		t.Fatal(err)
	}
	peerSt.CloseRead()
	st.SetWriteDeadline(time.Now().Add(5 * time.Second))
	var werr error
	for werr == nil {
		_, werr = st.Write(make([]byte, 1024))
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(werr, errStopSending) {
		t.Fatalf("write after STOP_SENDING: %v", werr)
	}
	if _, err := peerSt.Read(buf); !errors.Is(err, errReadClosed) {
		t.Fatalf("read after CloseRead: %v", err)
	}
	st.Close()
	peerSt.Close()
}

func TestDeadlines(t *testing.T) {
	leakcheck.Check(t)
	c, _ := pair(t)
	st, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Reset()
	st.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	if _, err := st.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("deadline fired after %v", d)
	}
	// A deadline in the past fails at once; clearing it lets reads block again.
	st.SetWriteDeadline(time.Now().Add(-time.Second))
	if _, err := st.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write: %v", err)
	}
}

func TestCleanCloseEOFBothWays(t *testing.T) {
	leakcheck.Check(t)
	c, s := pair(t)
	accepted := make(chan network.MuxedStream, 1)
	go func() {
		st, _ := s.AcceptStream()
		accepted <- st
	}()
	st, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte("ping"))
	st.CloseWrite()
	peerSt := <-accepted
	b, err := io.ReadAll(peerSt)
	if err != nil || string(b) != "ping" {
		t.Fatalf("got %q %v", b, err)
	}
	peerSt.Write([]byte("pong"))
	peerSt.Close()
	b, err = io.ReadAll(st)
	if err != nil || string(b) != "pong" {
		t.Fatalf("got %q %v", b, err)
	}
	st.Close()
	// Both FIN_ACKs arrive, so both readers finish well before finAckTimeout.
	for _, x := range []network.MuxedStream{st, peerSt} {
		xs := x.(*stream)
		deadline := time.Now().Add(finAckTimeout / 2)
		for {
			xs.mu.Lock()
			closed := xs.closed
			xs.mu.Unlock()
			if closed {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("stream not closed after FIN/FIN_ACK exchange")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if _, err := c.OpenStream(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if !c.IsClosed() {
		t.Fatal("not closed")
	}
	if _, err := c.AcceptStream(); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("accept after close: %v", err)
	}
	// The peer notices.
	deadline := time.Now().Add(10 * time.Second)
	for !s.IsClosed() {
		if time.Now().After(deadline) {
			t.Fatal("peer did not notice the close")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestOversizedMessageResets(t *testing.T) {
	leakcheck.Check(t)
	c, s := pair(t)
	got := make(chan error, 1)
	go func() {
		st, err := s.AcceptStream()
		if err != nil {
			got <- err
			return
		}
		_, err = io.ReadAll(st)
		got <- err
	}()
	st, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// A frame announcing 20000 bytes, sent in two legal SCTP messages.
	frame := varint.Append(nil, 20000)
	frame = append(frame, make([]byte, 20000)...)
	raw := st.(*stream).rwc
	raw.Write(frame[:10000])
	raw.Write(frame[10000:])
	err = <-got
	if !errors.Is(err, network.ErrReset) || !errors.Is(err, errOversized) {
		t.Fatalf("receiver got %v", err)
	}
	st.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := st.Read(make([]byte, 1)); !errors.Is(err, network.ErrReset) {
		t.Fatalf("sender got %v, want the peer's reset", err)
	}
}

func TestThroughputOneStream(t *testing.T) {
	leakcheck.Check(t)
	c, s := pair(t)
	const size = 64 << 20
	done := make(chan int64, 1)
	go func() {
		st, err := s.AcceptStream()
		if err != nil {
			done <- -1
			return
		}
		n, _ := io.Copy(io.Discard, st)
		st.Close()
		done <- n
	}()
	st, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256<<10)
	start := time.Now()
	for sent := 0; sent < size; sent += len(buf) {
		if _, err := st.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	st.CloseWrite()
	n := <-done
	d := time.Since(start)
	if n != size {
		t.Fatalf("received %d of %d", n, size)
	}
	t.Logf("one stream: %d MiB in %v = %.1f MiB/s", size>>20, d, float64(size)/d.Seconds()/(1<<20))
	st.Close()
}

var _ = ma.StringCast

// BenchmarkOneStream sends 256 KiB per op over one stream, from the dialer
// (dial) and from the listener (listen), for profiling.
func BenchmarkOneStream(b *testing.B) {
	for _, dir := range []string{"dial", "listen"} {
		b.Run(dir, func(b *testing.B) {
			a, _ := newTransport(b)
			srv, srvID := newTransport(b)
			l := listen(b, srv, "/ip4/127.0.0.1/udp/0/webrtc-direct")
			c, s := connect(b, a, l, srvID)
			if dir == "listen" {
				c, s = s, c
			}
			benchOneStream(b, c, s)
		})
	}
}

func benchOneStream(b *testing.B, c, s network.TransportConn) {
	done := make(chan int64, 1)
	go func() {
		st, err := s.AcceptStream()
		if err != nil {
			done <- -1
			return
		}
		n, _ := io.Copy(io.Discard, st)
		st.Close()
		done <- n
	}()
	st, err := c.OpenStream(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 256<<10)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for range b.N {
		if _, err := st.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	st.CloseWrite()
	if n := <-done; n != int64(b.N*len(buf)) {
		b.Fatalf("received %d of %d", n, b.N*len(buf))
	}
	b.StopTimer()
	st.Close()
}

// BenchmarkStreams8 sends 256 KiB per op spread over 8 concurrent streams
// of one connection, dialer to listener.
func BenchmarkStreams8(b *testing.B) {
	a, _ := newTransport(b)
	srv, srvID := newTransport(b)
	l := listen(b, srv, "/ip4/127.0.0.1/udp/0/webrtc-direct")
	c, s := connect(b, a, l, srvID)
	const streams = 8
	received := make(chan int64, streams)
	go func() {
		for range streams {
			st, err := s.AcceptStream()
			if err != nil {
				received <- -1
				continue
			}
			go func() {
				n, _ := io.Copy(io.Discard, st)
				st.Close()
				received <- n
			}()
		}
	}()
	buf := make([]byte, 256<<10)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := c.OpenStream(context.Background())
			if err != nil {
				errs <- err
				return
			}
			defer st.Close()
			for j := i; j < b.N; j += streams {
				if _, err := st.Write(buf); err != nil {
					errs <- err
					return
				}
			}
			st.CloseWrite()
		}()
	}
	wg.Wait()
	var total int64
	for range streams {
		total += <-received
	}
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	if total != int64(b.N*len(buf)) {
		b.Fatalf("received %d of %d", total, b.N*len(buf))
	}
}

// TestPeerResetEndsItsSendingOnly: RESET_STREAM ends the sender's sending
// part only (webrtc/README.md): our reads fail with ErrReset, our writes go
// on and arrive, and the channel closes once our FIN is acknowledged.
func TestPeerResetEndsItsSendingOnly(t *testing.T) {
	leakcheck.Check(t)
	c, s := pair(t)
	accepted := make(chan network.MuxedStream, 1)
	go func() {
		st, err := s.AcceptStream()
		if err == nil {
			accepted <- st
		}
	}()
	st, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := st.Write([]byte("before")); err != nil {
		t.Fatal(err)
	}
	var rs network.MuxedStream
	select {
	case rs = <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("no stream accepted")
	}
	defer rs.Close()
	rs.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(rs, make([]byte, len("before"))); err != nil {
		t.Fatal(err)
	}
	// The peer resets its sending part and nothing else: its reading part
	// stays open.
	rs.(*stream).sendControl(flagReset)

	if _, err := st.Read(make([]byte, 1)); !errors.Is(err, network.ErrReset) {
		t.Fatalf("read after the peer's RESET_STREAM: %v, want ErrReset", err)
	}
	if _, err := st.Write([]byte("after")); err != nil {
		t.Fatalf("write after the peer's RESET_STREAM: %v", err)
	}
	if err := st.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(rs); err != nil || string(got) != "after" {
		t.Fatalf("peer read %q, %v; want \"after\" then EOF", got, err)
	}
	// Both halves are done once the FIN_ACK arrives: the channel closes
	// well before finAckTimeout.
	xs := st.(*stream)
	deadline := time.Now().Add(finAckTimeout / 2)
	for {
		xs.mu.Lock()
		closed := xs.closed
		xs.mu.Unlock()
		if closed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("channel still open after FIN_ACK following the peer's RESET_STREAM")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
