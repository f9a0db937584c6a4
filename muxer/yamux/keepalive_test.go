package yamux

import (
	"bufio"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// tickerGoroutines counts the goroutines running the keepalive ticker.
func tickerGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "yamux.(*ticker).run(")
}

// TestKeepAliveOneTicker: many sessions keep alive from one goroutine
// (not one timer goroutine per tick), every keepalive is answered so none
// closes, and the goroutine ends once the last session closes.
func TestKeepAliveOneTicker(t *testing.T) {
	leakcheck.Check(t)
	// A pong has an interval to come back: long enough for a busy -race
	// run. TCP, so that crossing writes never wait on each other.
	cfg := &Config{KeepAliveInterval: 150 * time.Millisecond}
	var all []*Session
	for range 40 {
		c, s := sessionPair(t, false, cfg, cfg)
		all = append(all, c, s)
	}
	deadline := time.Now().Add(750 * time.Millisecond) // about 5 ticks each
	for time.Now().Before(deadline) {
		if n := tickerGoroutines(); n != 1 {
			t.Fatalf("%d ticker goroutines for %d sessions, want 1", n, len(all))
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, s := range all {
		if s.IsClosed() {
			t.Fatalf("a session closed while its keepalives were answered: %v", s.Err())
		}
	}
	for _, s := range all {
		s.Close()
	}
	for end := time.Now().Add(5 * time.Second); tickerGoroutines() != 0; {
		if time.Now().After(end) {
			t.Fatal("the ticker goroutine outlived every session")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestKeepAliveNeverEarly: a tick may run late (to share a wake-up) but
// never early, since it asks whether the peer was heard within a whole
// interval. An unused session's first write is the first keepalive tick's
// ping (with the RTT ping that waited for a write): not before the
// interval, and not much after.
func TestKeepAliveNeverEarly(t *testing.T) {
	leakcheck.Check(t)
	const interval = 150 * time.Millisecond
	// Other sessions keep the ticker busy with ticks of their own.
	busy := &Config{KeepAliveInterval: 25 * time.Millisecond}
	for range 5 {
		sessionPair(t, false, busy, busy)
	}
	a, b := net.Pipe()
	defer b.Close()
	start := time.Now()
	s := NewSession(a, false, &Config{KeepAliveInterval: interval})
	defer s.Close()
	got := make(chan time.Duration, 1)
	go func() {
		var hb [headerSize]byte
		if _, err := io.ReadFull(bufio.NewReader(b), hb[:]); err == nil {
			got <- time.Since(start)
		}
	}()
	select {
	case d := <-got:
		if d < interval {
			t.Fatalf("first keepalive write %v after the start, before the interval %v", d, interval)
		}
		if max := interval + tickSlack(interval) + 2*time.Second; d > max {
			t.Fatalf("first keepalive write %v after the start, want about %v", d, interval)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no keepalive ping from an unused session")
	}
}

// A peer that pings at about our own interval (go-yamux measures its RTT
// every 30 s) keeps the session from pinging: its pings arrive as late as
// our ticks fire, so a window of exactly one interval would miss one now
// and then.
func TestKeepAliveQuietWhilePeerPings(t *testing.T) {
	leakcheck.Check(t)
	const interval = 100 * time.Millisecond
	s, write, pings := sessionWithPingingPeer(t, interval)
	// The peer pings every 1.1 intervals, 40 times. net.Pipe's write
	// returns when the session has read the frame.
	allowed := 1 // the RTT ping at the start
	last := time.Now()
	for i := range 40 {
		write(header{typ: typePing, flags: flagSYN, length: uint32(1000 + i)})
		// A busy machine stretched the gap past the window: a tick in it
		// rightly pinged.
		if gap := time.Since(last); gap > interval+interval/8 {
			allowed += int(gap/interval) + 1
		}
		last = time.Now()
		time.Sleep(interval + interval/10)
	}
	if n := pings.Load(); n > int32(allowed) {
		t.Fatalf("%d pings while the peer pinged every %v (%d allowed for the gaps seen)", n, interval+interval/10, allowed)
	}
	if s.IsClosed() {
		t.Fatalf("session closed: %v", s.Err())
	}
}

// sessionWithPingingPeer is an accepting session with the given keepalive
// interval over net.Pipe (whose writes return once the session has read
// them) to a pingingPeer; both close when the test ends.
func sessionWithPingingPeer(t *testing.T, interval time.Duration) (s *Session, write func(header), pings *atomic.Int32) {
	a, b := net.Pipe()
	s = NewSession(a, false, &Config{KeepAliveInterval: interval})
	t.Cleanup(func() {
		s.Close()
		b.Close()
	})
	write, pings = pingingPeer(b)
	return s, write, pings
}

// pingingPeer plays a raw yamux peer on c: it counts the session's pings
// and answers each, and write sends frames of the test's.
func pingingPeer(c net.Conn) (write func(header), pings *atomic.Int32) {
	var wmu sync.Mutex
	write = func(h header) {
		wmu.Lock()
		defer wmu.Unlock()
		c.Write(appendHeader(nil, h))
	}
	pings = new(atomic.Int32)
	go func() {
		r := bufio.NewReader(c)
		var hb [headerSize]byte
		for {
			if _, err := io.ReadFull(r, hb[:]); err != nil {
				return
			}
			if h, _ := parseHeader(hb[:]); h.typ == typePing && h.flags&flagSYN != 0 {
				pings.Add(1)
				go write(header{typ: typePing, flags: flagACK, length: h.length})
			}
		}
	}()
	return write, pings
}
