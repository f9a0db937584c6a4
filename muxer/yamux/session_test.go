package yamux

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	return a, r.c
}

// sessionPair returns a client and a server session over loopback TCP (or
// net.Pipe when pipe is set), closed when the test ends.
func sessionPair(t testing.TB, pipe bool, cc, sc *Config) (*Session, *Session) {
	t.Helper()
	var a, b net.Conn
	if pipe {
		a, b = net.Pipe()
	} else {
		a, b = tcpPair(t)
	}
	client := NewSession(a, true, cc)
	server := NewSession(b, false, sc)
	t.Cleanup(func() {
		client.Close()
		server.Close()
	})
	return client, server
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestOpenAcceptEcho(t *testing.T) {
	for _, tt := range []struct {
		name       string
		pipe       bool
		serverOpen bool
	}{
		{"client opens tcp", false, false},
		{"server opens tcp", false, true},
		{"client opens pipe", true, false},
		{"server opens pipe", true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			leakcheck.Check(t)
			c, s := sessionPair(t, tt.pipe, nil, nil)
			opener, acceptor := c, s
			if tt.serverOpen {
				opener, acceptor = s, c
			}
			errc := make(chan error, 1)
			go func() {
				st, err := acceptor.Accept()
				if err != nil {
					errc <- err
					return
				}
				_, err = io.Copy(st, st)
				if err == nil {
					err = st.Close()
				}
				errc <- err
			}()
			st, err := opener.Open(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			if got := st.StreamID() % 2; (got == 1) == tt.serverOpen {
				t.Fatalf("stream ID %d has the wrong parity", st.StreamID())
			}
			msg := []byte("hello yamux")
			if _, err := st.Write(msg); err != nil {
				t.Fatal(err)
			}
			if err := st.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(st)
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("echo = %q, %v", got, err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool { return opener.NumStreams() == 0 && acceptor.NumStreams() == 0 })
		})
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestConcurrentStreams(t *testing.T) {
	leakcheck.Check(t)
	const streams, size = 100, 1 << 20
	c, s := sessionPair(t, false, nil, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 2*streams)
	wg.Go(func() {
		for range streams {
			st, err := s.Accept()
			if err != nil {
				errs <- err
				return
			}
			wg.Go(func() {
				// Reply with the checksum of what arrived.
				h := sha256.New()
				if _, err := io.Copy(h, st); err != nil {
					errs <- err
					return
				}
				if _, err := st.Write(h.Sum(nil)); err != nil {
					errs <- err
				}
				st.Close()
			})
		}
	})
	for range streams {
		wg.Go(func() {
			st, err := c.Open(ctxT(t))
			if err != nil {
				errs <- err
				return
			}
			data := make([]byte, size)
			rand.Read(data)
			want := sha256.Sum256(data)
			if _, err := st.Write(data); err != nil {
				errs <- err
				return
			}
			st.CloseWrite()
			got, err := io.ReadAll(st)
			if err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(got, want[:]) {
				errs <- errors.New("checksum mismatch")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestHalfClose(t *testing.T) {
	leakcheck.Check(t)
	c, s := sessionPair(t, true, nil, nil)
	st, err := c.Open(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write([]byte("request")); err != nil {
		t.Fatal(err)
	}
	if err := st.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write([]byte("x")); !errors.Is(err, ErrStreamClosed) {
		t.Fatalf("write after CloseWrite: %v", err)
	}
	rs, err := s.Accept()
	if err != nil {
		t.Fatal(err)
	}
	req, err := io.ReadAll(rs)
	if err != nil || string(req) != "request" {
		t.Fatalf("request = %q, %v", req, err)
	}
	// The side that received FIN can still write.
	if _, err := rs.Write([]byte("response")); err != nil {
		t.Fatal(err)
	}
	rs.CloseWrite()
	resp, err := io.ReadAll(st)
	if err != nil || string(resp) != "response" {
		t.Fatalf("response = %q, %v", resp, err)
	}
	waitFor(t, func() bool { return c.NumStreams() == 0 && s.NumStreams() == 0 })
}

func TestReset(t *testing.T) {
	for _, tt := range []struct {
		name         string
		openerResets bool
	}{{"opener resets", true}, {"acceptor resets", false}} {
		t.Run(tt.name, func(t *testing.T) {
			leakcheck.Check(t)
			c, s := sessionPair(t, false, nil, nil)
			a, err := c.Open(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			a.Write([]byte("x"))
			b, err := s.Accept()
			if err != nil {
				t.Fatal(err)
			}
			resetter, other := a, b
			if !tt.openerResets {
				resetter, other = b, a
			}
			readErr := make(chan error, 1)
			go func() {
				_, err := io.Copy(io.Discard, other)
				readErr <- err
			}()
			if err := resetter.Reset(); err != nil {
				t.Fatal(err)
			}
			if err := <-readErr; !errors.Is(err, network.ErrReset) {
				t.Fatalf("peer read: %v, want ErrReset", err)
			}
			if _, err := other.Write([]byte("y")); !errors.Is(err, network.ErrReset) {
				t.Fatalf("peer write: %v, want ErrReset", err)
			}
			if _, err := resetter.Read(make([]byte, 1)); !errors.Is(err, network.ErrReset) {
				t.Fatalf("own read: %v, want ErrReset", err)
			}
			waitFor(t, func() bool { return c.NumStreams() == 0 && s.NumStreams() == 0 })
		})
	}
}

func TestDeadlines(t *testing.T) {
	leakcheck.Check(t)
	c, s := sessionPair(t, true, nil, nil)
	st, err := c.Open(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	// Read deadline with nothing to read.
	st.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := st.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v, want deadline exceeded", err)
	}
	var ne net.Error
	if _, err := st.Read(make([]byte, 1)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read error %v is not a timeout net.Error", err)
	}
	// Clearing the deadline makes reads work again.
	st.SetReadDeadline(time.Time{})
	rs, err := s.Accept()
	if err != nil {
		t.Fatal(err)
	}
	rs.Write([]byte("z"))
	if _, err := io.ReadFull(st, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	// A write blocked on the peer's exhausted window (it does not read) is
	// unblocked by a deadline set while it waits. The deadline is set only
	// once the whole window has arrived, so a slow machine cannot make the
	// write time out before it sent anything.
	type result struct {
		n   int
		err error
	}
	wres := make(chan result, 1)
	go func() {
		n, err := st.Write(make([]byte, 2*initialWindow))
		wres <- result{n, err}
	}()
	waitFor(t, func() bool { return rs.Buffered() == initialWindow })
	st.SetWriteDeadline(time.Now())
	if r := <-wres; !errors.Is(r.err, os.ErrDeadlineExceeded) || r.n != initialWindow {
		t.Fatalf("write = %d, %v; want %d, deadline exceeded", r.n, r.err, initialWindow)
	}
	// A deadline set while a read is pending unblocks it.
	errc := make(chan error, 1)
	go func() {
		_, err := rs.Read(make([]byte, 1))
		for err == nil {
			_, err = rs.Read(make([]byte, 1<<20))
		}
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	rs.SetDeadline(time.Now().Add(10 * time.Millisecond))
	if err := <-errc; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("pending read: %v", err)
	}
}

func TestCloseUnblocks(t *testing.T) {
	leakcheck.Check(t)
	c, s := sessionPair(t, false, nil, &Config{MaxIncomingStreams: 10})
	st, err := c.Open(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	st2, err := c.Open(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	st2.Write(make([]byte, initialWindow)) // exhaust the window
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	wg.Go(func() { _, err := st.Read(make([]byte, 1)); errs <- err })
	wg.Go(func() { _, err := st2.Write([]byte("more")); errs <- err })
	wg.Go(func() { _, err := c.Accept(); errs <- err })
	time.Sleep(50 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err == nil {
			t.Fatal("a blocked call returned nil after Close")
		}
	}
	if !c.IsClosed() {
		t.Fatal("IsClosed = false after Close")
	}
	if _, err := c.Open(ctxT(t)); err == nil {
		t.Fatal("Open after Close succeeded")
	}
	// The peer sees GoAway and then the connection ending.
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("server session still open after client Close")
	}
}

func TestRemoteGoAway(t *testing.T) {
	leakcheck.Check(t)
	c, s := sessionPair(t, true, nil, nil)
	s.Close()
	<-c.Done()
	if _, err := c.Open(ctxT(t)); err == nil {
		t.Fatal("Open after the peer went away succeeded")
	}
	if _, err := c.Accept(); err == nil {
		t.Fatal("Accept after the peer went away succeeded")
	}
}

func TestPingAndKeepAlive(t *testing.T) {
	leakcheck.Check(t)
	// A pong still missing at the next tick closes the session, so the
	// interval is the time a pong has: long enough for a busy -race run.
	const interval = 200 * time.Millisecond
	cfg := &Config{KeepAliveInterval: interval}
	c, s := sessionPair(t, true, cfg, cfg)
	rtt, err := c.Ping(ctxT(t))
	if err != nil || rtt <= 0 {
		t.Fatalf("Ping = %v, %v", rtt, err)
	}
	time.Sleep(5 * interval) // several keepalive rounds, all answered
	if c.IsClosed() || s.IsClosed() {
		t.Fatalf("session closed by answered keepalives: %v / %v", c.Err(), s.Err())
	}
}

func TestKeepAliveTimeout(t *testing.T) {
	leakcheck.Check(t)
	a, b := net.Pipe()
	defer b.Close()
	s := NewSession(a, false, &Config{KeepAliveInterval: 20 * time.Millisecond})
	defer s.Close()
	pings := make(chan struct{}, 16)
	go func() {
		// A peer that reads but never answers pings.
		r := bufio.NewReader(b)
		var hb [headerSize]byte
		for {
			if _, err := io.ReadFull(r, hb[:]); err != nil {
				return
			}
			if h, _ := parseHeader(hb[:]); h.typ == typePing {
				select {
				case pings <- struct{}{}:
				default:
				}
			}
		}
	}()
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("session survived unanswered keepalives")
	}
	if !errors.Is(s.Err(), ErrKeepAliveTimeout) {
		t.Fatalf("Err = %v, want ErrKeepAliveTimeout", s.Err())
	}
	if len(pings) < 2 {
		t.Fatalf("saw %d pings, want the RTT ping and a keepalive", len(pings))
	}
}

// TestIdleCost checks the goal for idle sessions: at most 2 goroutines and
// 8 KiB of heap each.
func TestIdleCost(t *testing.T) {
	leakcheck.Check(t)
	const n = 100
	conns := make([]net.Conn, 0, 2*n)
	for range n {
		a, b := net.Pipe()
		conns = append(conns, a, b)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	heapInUse()
	before := heapInUse()
	g0 := runtime.NumGoroutine()
	sessions := make([]*Session, 0, 2*n)
	for i, c := range conns {
		sessions = append(sessions, NewSession(c, i%2 == 0, nil))
	}
	// Nothing to write: the first pings wait for a first write, so the
	// sessions are idle at once.
	time.Sleep(20 * time.Millisecond)
	perSession := (int64(heapInUse()) - int64(before)) / int64(len(sessions))
	goroutines := runtime.NumGoroutine() - g0
	for _, s := range sessions {
		s.Close()
	}
	t.Logf("idle session: %d goroutines per session, %d bytes heap", goroutines/len(sessions), perSession)
	if goroutines > 2*len(sessions) {
		t.Errorf("%d goroutines for %d idle sessions, want at most 2 each", goroutines, len(sessions))
	}
	if perSession > 8<<10 {
		t.Errorf("idle session uses %d bytes of heap, want at most 8 KiB", perSession)
	}
}

func TestBacklog(t *testing.T) {
	leakcheck.Check(t)
	a, b := net.Pipe()
	raw := newRawPeer(t, b)
	c := NewSession(a, true, &Config{MaxAckBacklog: 2})
	defer c.Close()
	for range 2 {
		if _, err := c.Open(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := c.Open(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third Open = %v, want to block until the context ends", err)
	}
	// Acknowledging stream 1 lets one more stream open.
	raw.write(header{typ: typeWindowUpdate, flags: flagACK, stream: 1}, nil)
	st, err := c.Open(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.StreamID() != 5 {
		t.Fatalf("third stream ID %d, want 5", st.StreamID())
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestLargeTransfer streams 32 MiB one way at full speed, which exercises
// window accounting while frames are in flight and window auto-tuning.
func TestLargeTransfer(t *testing.T) {
	leakcheck.Check(t)
	c, s := sessionPair(t, false, nil, nil)
	const size = 32 << 20
	data := make([]byte, size)
	rand.Read(data)
	want := sha256.Sum256(data)
	type result struct {
		sum    []byte
		window uint32
		err    error
	}
	res := make(chan result, 1)
	go func() {
		st, err := s.Accept()
		if err != nil {
			res <- result{err: err}
			return
		}
		h := sha256.New()
		_, err = io.Copy(h, st)
		st.mu.Lock()
		w := st.recvWindow
		st.mu.Unlock()
		res <- result{h.Sum(nil), w, err}
	}()
	st, err := c.Open(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(data); err != nil {
		t.Fatal(err)
	}
	st.CloseWrite()
	r := <-res
	if r.err != nil || !bytes.Equal(r.sum, want[:]) {
		t.Fatalf("transfer: %v, checksum match %v", r.err, bytes.Equal(r.sum, want[:]))
	}
	if r.window <= initialWindow {
		t.Errorf("receive window stayed at %d: auto-tuning did not grow it", r.window)
	}
	t.Logf("receive window grew to %d", r.window)
}

// TestKeepAliveQuietWhileHeard: a session that hears from its peer within
// each interval sends no keepalive pings; once the peer falls silent it
// pings again.
func TestKeepAliveQuietWhileHeard(t *testing.T) {
	leakcheck.Check(t)
	const interval = 100 * time.Millisecond
	s, write, pings := sessionWithPingingPeer(t, interval)
	for pings.Load() == 0 { // the RTT ping at the start
		runtime.Gosched()
	}
	time.Sleep(interval / 2)
	start := pings.Load()
	// Chatter: a frame every interval/10 for 10 intervals (pinging at
	// every tick would be 10 pings). net.Pipe's write returns when the
	// session has read the frame, so the gaps between writes are the
	// gaps the session heard.
	allowed := 2 // one tick may have seen the quiet start, one the end
	last := time.Now()
	for range 100 {
		write(header{typ: typePing, flags: flagACK, length: 999}) // answers nothing: ignored
		if gap := time.Since(last); gap >= interval {
			// A busy machine stretched a sleep past an interval: a
			// tick in it rightly pinged.
			allowed += int(gap/interval) + 1
		}
		last = time.Now()
		time.Sleep(interval / 10)
	}
	if n := pings.Load() - start; n > int32(allowed) {
		t.Fatalf("%d keepalive pings while the peer was heard every %v (%d allowed for the gaps seen)", n, interval/10, allowed)
	}
	quiet := pings.Load()
	deadline := time.Now().Add(5 * time.Second)
	for pings.Load() == quiet {
		if time.Now().After(deadline) {
			t.Fatal("no keepalive ping after the peer fell silent")
		}
		time.Sleep(time.Millisecond)
	}
	if s.IsClosed() {
		t.Fatalf("session closed: %v", s.Err())
	}
}

// TestBacklogFlushesSYNs: streams opened and never written keep their SYNs
// queued (see Open); an Open that must wait for acknowledgements sends
// them, or it would wait for ever.
func TestBacklogFlushesSYNs(t *testing.T) {
	leakcheck.Check(t)
	c, s := sessionPair(t, true, &Config{MaxAckBacklog: 2}, nil)
	go func() {
		for {
			if _, err := s.Accept(); err != nil {
				return
			}
		}
	}()
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := c.Open(ctx)
		cancel()
		if err != nil {
			t.Fatalf("Open %d: %v", i+1, err)
		}
	}
}
