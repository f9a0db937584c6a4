package yamux

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// TestHandleInbound: streams opened before HandleInbound and after it reach
// accept, acknowledged; one reset in its SYN's burst does not; Accept fails
// meanwhile; ended runs once, after the peer hung up, and may Close.
func TestHandleInbound(t *testing.T) {
	leakcheck.Check(t)
	a, b := net.Pipe()
	raw := newRawPeer(t, b)
	s := NewSession(a, false, nil)
	defer s.Close()

	raw.write(header{typ: typeData, flags: flagSYN, stream: 1, length: 3}, []byte("abc"))
	for s.NumStreams() == 0 { // wait until the reader queued it
		runtime.Gosched()
	}
	accepted := make(chan network.MuxedStream, 8)
	endedCh := make(chan error) // closed by ended: a second call panics
	var endErr error
	var afterEnd atomic.Bool
	accept := func(ms network.MuxedStream) {
		if afterEnd.Load() {
			t.Error("accept called after ended")
		}
		accepted <- ms
	}
	ended := func(err error) {
		afterEnd.Store(true)
		endErr = err
		s.Close() // must not wait for the reader that runs this
		close(endedCh)
	}
	if !s.HandleInbound(accept, ended) {
		t.Fatal("HandleInbound = false on a live session")
	}
	if s.HandleInbound(accept, ended) {
		t.Fatal("second HandleInbound = true")
	}
	st1 := <-accepted
	if id := st1.(*Stream).StreamID(); id != 1 {
		t.Fatalf("first stream handed over: %d, want 1", id)
	}
	// The ACK waits for the stream's first frame.
	if _, err := st1.Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	if h, _, _ := raw.next(); h != (header{typ: typeWindowUpdate, flags: flagACK, stream: 1}) {
		t.Fatalf("frame sent %v, want the ACK of stream 1", h)
	}
	if h, _, p := raw.next(); h.typ != typeData || h.stream != 1 || string(p) != "ok" {
		t.Fatalf("frame sent %v %q, want stream 1's data", h, p)
	}
	if _, err := s.Accept(); !errors.Is(err, errHandedOver) {
		t.Fatalf("Accept after HandleInbound = %v, want errHandedOver", err)
	}
	s.mu.Lock()
	made := s.acceptCh != nil
	s.mu.Unlock()
	if made {
		t.Fatal("a session whose streams are handed over made the channel Accept waits on")
	}

	// Stream 3 ends in its SYN's burst; stream 5 is live.
	var burst []byte
	burst = appendHeader(burst, header{typ: typeData, flags: flagSYN | flagRST, stream: 3, length: 1})
	burst = append(burst, 'x')
	burst = appendHeader(burst, header{typ: typeData, flags: flagSYN | flagFIN, stream: 5, length: 2})
	burst = append(burst, "hi"...)
	if err := raw.writeRaw(burst); err != nil {
		t.Fatal(err)
	}
	st5 := <-accepted
	if id := st5.(*Stream).StreamID(); id != 5 {
		t.Fatalf("second stream handed over: %d, want 5 (3 was reset)", id)
	}
	if got, err := io.ReadAll(st5); err != nil || string(got) != "hi" {
		t.Fatalf("stream 5 read %q, %v", got, err)
	}
	st5.Close()
	if h, _, _ := raw.next(); h != (header{typ: typeWindowUpdate, flags: flagACK, stream: 5}) {
		t.Fatalf("frame sent %v, want the ACK of stream 5 only", h)
	}
	if h, _, _ := raw.next(); h.stream != 5 || h.flags&flagFIN == 0 {
		t.Fatalf("frame sent %v, want stream 5's FIN", h)
	}
	raw.write(header{typ: typeData, flags: flagFIN, stream: 1}, nil)
	if got, err := io.ReadAll(st1); err != nil || string(got) != "abc" {
		t.Fatalf("stream 1 read %q, %v", got, err)
	}

	b.Close() // the peer hangs up
	<-endedCh
	if endErr == nil || !errors.Is(endErr, s.Err()) {
		t.Fatalf("ended with %v, session error %v", endErr, s.Err())
	}
	if len(accepted) != 0 {
		t.Fatalf("%d more streams handed over", len(accepted))
	}
	if s.HandleInbound(accept, ended) {
		t.Fatal("HandleInbound = true on an ended session")
	}
}

// TestHandleInboundEndedSession: a session whose reader is done refuses
// HandleInbound, so that the caller falls back on AcceptStream, which fails.
func TestHandleInboundEndedSession(t *testing.T) {
	leakcheck.Check(t)
	a, b := net.Pipe()
	s := NewSession(a, false, nil)
	b.Close()
	<-s.Done()
	s.Close() // waits for the reader
	if s.HandleInbound(func(network.MuxedStream) { t.Error("accept called") }, func(error) { t.Error("ended called") }) {
		t.Fatal("HandleInbound = true after the reader ended")
	}
	if _, err := s.AcceptStream(); err == nil {
		t.Fatal("AcceptStream on an ended session succeeded")
	}
}

// TestHandOverReadFlushesACK: a handler that only reads sends the ACK of
// its stream before it waits for data.
func TestHandOverReadFlushesACK(t *testing.T) {
	leakcheck.Check(t)
	a, b := net.Pipe()
	raw := newRawPeer(t, b)
	s := NewSession(a, false, nil)
	defer s.Close()
	accepted := make(chan network.MuxedStream, 1)
	s.HandleInbound(func(ms network.MuxedStream) { accepted <- ms }, func(error) {})
	raw.write(header{typ: typeWindowUpdate, flags: flagSYN, stream: 1}, nil)
	st := <-accepted
	got := make(chan string, 1)
	go func() {
		buf := make([]byte, 8)
		n, _ := st.Read(buf)
		got <- string(buf[:n])
	}()
	if h, _, _ := raw.next(); h != (header{typ: typeWindowUpdate, flags: flagACK, stream: 1}) {
		t.Fatalf("frame sent %v, want the ACK of stream 1", h)
	}
	raw.write(header{typ: typeData, stream: 1, length: 2}, []byte("hi"))
	if g := <-got; g != "hi" {
		t.Fatalf("read %q", g)
	}
}

// writeLog records the writes made on a connection.
type writeLog struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (w *writeLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.writes = append(w.writes, append([]byte(nil), p...))
	w.mu.Unlock()
	return w.Conn.Write(p)
}

// TestHandOverACKRidesReply: a handler that reads a request that is there
// already and answers sends ACK and answer in one write.
func TestHandOverACKRidesReply(t *testing.T) {
	leakcheck.Check(t)
	a, b := net.Pipe()
	raw := newRawPeer(t, b)
	wl := &writeLog{Conn: a}
	s := NewSession(wl, false, nil)
	defer s.Close()
	accepted := make(chan network.MuxedStream, 1)
	s.HandleInbound(func(ms network.MuxedStream) { accepted <- ms }, func(error) {})
	raw.write(header{typ: typeData, flags: flagSYN, stream: 1, length: 4}, []byte("ping"))
	st := <-accepted
	buf := make([]byte, 4)
	if _, err := io.ReadFull(st, buf); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	raw.next()
	raw.next()
	wl.mu.Lock()
	defer wl.mu.Unlock()
	// The session's first ping joins its first write too.
	want := appendHeader(nil, header{typ: typePing, flags: flagSYN, length: 1})
	want = appendHeader(want, header{typ: typeWindowUpdate, flags: flagACK, stream: 1})
	want = appendHeader(want, header{typ: typeData, stream: 1, length: 4})
	want = append(want, "pong"...)
	if len(wl.writes) != 1 || !bytes.Equal(wl.writes[0], want) {
		t.Fatalf("writes %x, want one: %x", wl.writes, want)
	}
}

// TestHandOverBound: at most maxOut streams are out at once; the others
// wait, and one the peer resets while waiting is never handed over; each
// release hands the next waiting stream over on the releasing goroutine,
// once per stream however often it is released.
func TestHandOverBound(t *testing.T) {
	leakcheck.Check(t)
	a, b := net.Pipe()
	raw := newRawPeer(t, b)
	s := NewSession(a, false, nil)
	defer s.Close()
	var mu sync.Mutex
	var handed []*Stream
	s.HandleInbound(func(ms network.MuxedStream) {
		mu.Lock()
		handed = append(handed, ms.(*Stream))
		mu.Unlock()
	}, func(error) {})
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(handed)
	}

	const extra = 20
	id := func(i int) uint32 { return uint32(2*i + 1) }
	var burst []byte
	for i := 0; i < maxOut+extra; i++ {
		burst = appendHeader(burst, header{typ: typeWindowUpdate, flags: flagSYN, stream: id(i)})
	}
	if err := raw.writeRaw(burst); err != nil {
		t.Fatal(err)
	}
	for s.NumStreams() < maxOut+extra || count() < maxOut {
		runtime.Gosched()
	}
	if n := count(); n != maxOut {
		t.Fatalf("%d streams handed over, want %d", n, maxOut)
	}
	if _, err := s.Accept(); !errors.Is(err, errHandedOver) {
		t.Fatalf("Accept with streams waiting = %v, want errHandedOver", err)
	}
	// The peer resets the first 5 waiting streams.
	burst = burst[:0]
	for i := maxOut; i < maxOut+5; i++ {
		burst = appendHeader(burst, header{typ: typeWindowUpdate, flags: flagRST, stream: id(i)})
	}
	if err := raw.writeRaw(burst); err != nil {
		t.Fatal(err)
	}
	for s.NumStreams() > maxOut+extra-5 {
		runtime.Gosched()
	}

	mu.Lock()
	first, second := handed[0], handed[1]
	mu.Unlock()
	s.ReleaseInbound(first)
	s.ReleaseInbound(first) // ignored
	if n := count(); n != maxOut+1 {
		t.Fatalf("%d streams handed over after one release, want %d", n, maxOut+1)
	}
	mu.Lock()
	if got := handed[maxOut].StreamID(); got != id(maxOut+5) {
		t.Errorf("stream handed over after the release: %d, want %d (the oldest not reset)", got, id(maxOut+5))
	}
	mu.Unlock()
	s.ReleaseInbound(second)
	for i := 0; i < maxOut+extra; i++ { // everything, twice for some
		mu.Lock()
		st := handed[i%len(handed)]
		mu.Unlock()
		s.ReleaseInbound(st)
	}
	if n := count(); n != maxOut+extra-5 {
		t.Fatalf("%d streams handed over in all, want %d", n, maxOut+extra-5)
	}
	seen := map[uint32]bool{}
	for _, st := range handed {
		if seen[st.StreamID()] {
			t.Fatalf("stream %d handed over twice", st.StreamID())
		}
		seen[st.StreamID()] = true
	}
	for i := maxOut; i < maxOut+5; i++ {
		if seen[id(i)] {
			t.Errorf("stream %d was reset while waiting and handed over", id(i))
		}
	}
	for _, st := range handed {
		s.ReleaseInbound(st)
	}
	s.mu.Lock()
	out := s.out
	s.mu.Unlock()
	if out != 0 {
		t.Fatalf("%d streams out after all were released", out)
	}
}

// TestHandOverBeforeWaiting: a new stream is handed over before the reader
// waits for more, here for the rest of another frame's payload.
func TestHandOverBeforeWaiting(t *testing.T) {
	leakcheck.Check(t)
	a, b := net.Pipe()
	raw := newRawPeer(t, b)
	s := NewSession(a, false, nil)
	defer s.Close()
	accepted := make(chan network.MuxedStream, 2)
	s.HandleInbound(func(ms network.MuxedStream) { accepted <- ms }, func(error) {})
	// The raw peer's pong to the session's first ping must not land inside
	// the frame split below.
	pingsAnswered(t, s)
	var burst []byte
	burst = appendHeader(burst, header{typ: typeWindowUpdate, flags: flagSYN, stream: 1})
	burst = appendHeader(burst, header{typ: typeData, flags: flagSYN, stream: 3, length: 100})
	burst = append(burst, make([]byte, 10)...) // 90 bytes of stream 3 still to come
	if err := raw.writeRaw(burst); err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-accepted:
		if id := st.(*Stream).StreamID(); id != 1 {
			t.Fatalf("stream %d handed over, want 1", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stream 1 not handed over while the reader waits for stream 3's payload")
	}
	if err := raw.writeRaw(make([]byte, 90)); err != nil {
		t.Fatal(err)
	}
	if st := <-accepted; st.(*Stream).StreamID() != 3 {
		t.Fatalf("stream %d handed over, want 3", st.(*Stream).StreamID())
	}
}

// pingsAnswered makes s send its first ping (with one of its own) and waits
// until the peer answered every ping: nothing from the peer is on its way.
func pingsAnswered(t *testing.T, s *Session) {
	t.Helper()
	if _, err := s.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.pings) == 0
	})
}

// TestFirstPingJoinsFirstWrite: a new session writes nothing by itself; its
// first ping leaves with its first write, and the round trip it measures is
// timed from then, not from the session's start.
func TestFirstPingJoinsFirstWrite(t *testing.T) {
	leakcheck.Check(t)
	a, b := net.Pipe()
	raw := newRawPeer(t, b)
	wl := &writeLog{Conn: a}
	c := NewSession(wl, true, nil)
	defer c.Close()
	const idle = 300 * time.Millisecond
	time.Sleep(idle)
	wl.mu.Lock()
	n := len(wl.writes)
	wl.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d writes from a session nobody used", n)
	}
	st, err := c.Open(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	raw.next() // the SYN
	raw.next() // the data
	waitFor(t, func() bool { return c.rtt.Load() != 0 })
	want := appendHeader(nil, header{typ: typePing, flags: flagSYN, length: 1})
	want = appendHeader(want, header{typ: typeWindowUpdate, flags: flagSYN, stream: 1})
	want = appendHeader(want, header{typ: typeData, stream: 1, length: 2})
	want = append(want, "hi"...)
	wl.mu.Lock()
	if len(wl.writes) != 1 || !bytes.Equal(wl.writes[0], want) {
		t.Errorf("writes %x, want one: %x", wl.writes, want)
	}
	wl.mu.Unlock()
	if rtt := time.Duration(c.rtt.Load()); rtt >= idle {
		t.Errorf("first round trip %v: timed from the session's start, not from when the ping left", rtt)
	}
}

// TestCloseUnusedSendsGoAwayOnly: a session closed before its first write
// drops its first ping, whose answer would reach a closed connection.
func TestCloseUnusedSendsGoAwayOnly(t *testing.T) {
	leakcheck.Check(t)
	a, b := net.Pipe()
	newRawPeer(t, b)
	wl := &writeLog{Conn: a}
	c := NewSession(wl, true, nil)
	c.Close()
	want := appendHeader(nil, header{typ: typeGoAway, length: GoAwayNormal})
	wl.mu.Lock()
	defer wl.mu.Unlock()
	if len(wl.writes) != 1 || !bytes.Equal(wl.writes[0], want) {
		t.Fatalf("writes %x, want one: %x", wl.writes, want)
	}
}
