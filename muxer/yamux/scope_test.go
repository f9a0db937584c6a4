package yamux

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/limits"
)

// testLimits returns a manager with no limits but those set by f (and no
// address exemptions), and a scope for one inbound connection on it.
func testLimits(t testing.TB, f func(*limits.Config)) (*limits.Manager, network.ConnScope) {
	t.Helper()
	cfg := limits.Config{
		Conns: -1, ConnsInbound: -1, ConnsPerPeer: -1, ConnsPerIP: -1, ConnsPerSubnet4: -1, ConnsPerSubnet6: -1,
		Handshakes: -1, HandshakesPerIP: -1, Streams: -1, StreamsPerConn: -1, StreamsPerProtocol: -1,
		InboundStreamRate: limits.Rate{PerSecond: -1},
		Memory:            -1, MemoryPerPeer: -1, MemoryPerConn: -1, MemoryPerIP: -1,
		NoIPLimits: []netip.Prefix{},
	}
	if f != nil {
		f(&cfg)
	}
	m, err := limits.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	scope, err := m.OpenConn(network.DirInbound, "attacker", ma.StringCast("/ip4/10.1.0.2/tcp/4001"))
	if err != nil {
		t.Fatal(err)
	}
	return m, scope
}

// acceptN accepts n streams, failing the test if they do not all come.
func acceptN(t testing.TB, s *Session, n int) []*Stream {
	t.Helper()
	var sts []*Stream
	for range n {
		st, err := s.Accept()
		if err != nil {
			t.Fatalf("accepting stream %d: %v", len(sts), err)
		}
		sts = append(sts, st)
	}
	return sts
}

// TestScopeMemoryFlood is the attack of issue #12 on one connection: the
// peer opens streams and fills their windows, and nobody reads. Once the
// connection's budget is used, each new stream is reset on its first data
// frame; the session lives on, and the memory comes back as data is read,
// dropped, or the session closes.
func TestScopeMemoryFlood(t *testing.T) {
	leakcheck.Check(t)
	const streams, frame = 12, 64 << 10
	m, scope := testLimits(t, func(c *limits.Config) { c.MemoryPerConn = 1 << 20 })
	a, b := net.Pipe()
	raw := newRawPeer(t, b)
	// No window growth: the test counts bytes exactly.
	s := NewSessionScope(a, false, &Config{MaxStreamWindow: initialWindow}, scope)
	defer s.Close()
	payload := make([]byte, frame)
	for i := range streams {
		id := uint32(2*i + 1)
		raw.write(header{typ: typeWindowUpdate, flags: flagSYN, stream: id}, nil)
		for range initialWindow / frame {
			raw.write(header{typ: typeData, stream: id, length: frame}, payload)
		}
	}
	// 1 MiB holds four full windows; the other streams are reset.
	resets := map[uint32]bool{}
	for len(resets) < streams-4 {
		h, _, _ := raw.next()
		if h.typ == typeWindowUpdate && h.flags == flagRST {
			resets[h.stream] = true
		}
	}
	for i := range 4 {
		if resets[uint32(2*i+1)] {
			t.Fatalf("stream %d reset, though within the budget", 2*i+1)
		}
	}
	if got := m.Stat().Memory; got != 1<<20 {
		t.Fatalf("%d bytes reserved, want 1 MiB", got)
	}
	// Streams reset before they were accepted never reach Accept: a
	// flood of them must not queue up.
	sts := acceptN(t, s, 4)
	for i, st := range sts {
		if st.StreamID() != uint32(2*i+1) {
			t.Fatalf("accepted stream %d as number %d", st.StreamID(), i)
		}
	}
	s.mu.Lock()
	queued := len(s.acceptQ)
	s.mu.Unlock()
	if queued != 0 {
		t.Fatalf("%d reset streams still wait for Accept", queued)
	}
	if s.IsClosed() || s.NumStreams() != 4 {
		t.Fatalf("session closed %v (%v), %d streams", s.IsClosed(), s.Err(), s.NumStreams())
	}
	// Reading gives the memory back, and makes room for a new stream.
	if n, err := io.ReadFull(sts[0], make([]byte, initialWindow)); err != nil {
		t.Fatalf("read %d: %v", n, err)
	}
	if got := m.Stat().Memory; got != 3<<18 {
		t.Fatalf("%d bytes reserved after reading a window, want 768 KiB", got)
	}
	raw.write(header{typ: typeData, flags: flagSYN, stream: 101, length: frame}, payload)
	if st := acceptN(t, s, 1)[0]; st.StreamID() != 101 {
		t.Fatalf("accepted stream %d", st.StreamID())
	} else if _, err := io.ReadFull(st, make([]byte, frame)); err != nil {
		t.Fatal(err)
	}
	// Dropping unread data gives it back too; Close gives back the rest.
	sts[1].Close()
	if got := m.Stat().Memory; got != 1<<19 {
		t.Fatalf("%d bytes reserved after dropping a window, want 512 KiB", got)
	}
	s.Close()
	if st := m.Stat(); st != (limits.Stat{}) {
		t.Fatalf("after Close: %+v", st)
	}
}

// TestScopeLargeFrames: a frame too big for its own budget resets its
// stream before it is read into memory.
func TestScopeLargeFrames(t *testing.T) {
	leakcheck.Check(t)
	m, scope := testLimits(t, func(c *limits.Config) { c.MemoryPerConn = 100 << 10 })
	a, b := net.Pipe()
	raw := newRawPeer(t, b)
	s := NewSessionScope(a, false, nil, scope)
	defer s.Close()
	raw.write(header{typ: typeData, flags: flagSYN, stream: 1, length: 64 << 10}, make([]byte, 64<<10))
	// A 64 KiB + 1 frame needs a 128 KiB buffer: more than is left.
	raw.write(header{typ: typeData, flags: flagSYN, stream: 3, length: 64<<10 + 1}, make([]byte, 64<<10+1))
	// Small frames on a fresh stream fit in what is left.
	raw.write(header{typ: typeData, flags: flagSYN, stream: 5, length: 10}, make([]byte, 10))
	if h, _, _ := raw.next(); h != (header{typ: typeWindowUpdate, flags: flagRST, stream: 3}) {
		t.Fatalf("got %v, want RST for stream 3", h)
	}
	// Stream 3, reset before it was accepted, never reaches Accept.
	sts := acceptN(t, s, 2)
	if sts[0].StreamID() != 1 || sts[1].StreamID() != 5 {
		t.Fatalf("accepted %d and %d, want 1 and 5", sts[0].StreamID(), sts[1].StreamID())
	}
	// Accept may return stream 5 before its SYN frame's data is buffered.
	waitFor(t, func() bool { return sts[1].Buffered() == 10 })
	if got := m.Stat().Memory; got != 64<<10+4<<10 {
		t.Fatalf("%d bytes reserved, want 68 KiB", got)
	}
	if _, err := io.ReadFull(sts[1], make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	raw.write(header{typ: typeData, flags: flagFIN, stream: 1}, nil)
	if _, err := io.ReadAll(sts[0]); err != nil {
		t.Fatal(err)
	}
	if got := m.Stat().Memory; got != 0 {
		t.Fatalf("%d bytes reserved after reading everything", got)
	}
}

// TestScopeStreams: inbound streams beyond the connection's limit get RST,
// outbound ones beyond the node's fail to open, and a stream that ends
// makes room.
func TestScopeStreams(t *testing.T) {
	leakcheck.Check(t)
	m, scope := testLimits(t, func(c *limits.Config) { c.StreamsPerConn, c.Streams = 2, 2 })
	a, b := net.Pipe()
	raw := newRawPeer(t, b)
	s := NewSessionScope(a, false, nil, scope)
	defer s.Close()
	for _, id := range []uint32{1, 3, 5} {
		raw.write(header{typ: typeData, flags: flagSYN, stream: id, length: 4}, []byte("data"))
	}
	if h, _, _ := raw.next(); h != (header{typ: typeWindowUpdate, flags: flagRST, stream: 5}) {
		t.Fatalf("got %v, want RST for stream 5", h)
	}
	_, err := s.Open(ctxT(t))
	var le *limits.LimitError
	if !errors.As(err, &le) || le.Option != "Streams" {
		t.Fatalf("Open beyond the limit: %v", err)
	}
	sts := acceptN(t, s, 2)
	if sts[0].StreamID() != 1 || sts[1].StreamID() != 3 {
		t.Fatalf("accepted %d and %d", sts[0].StreamID(), sts[1].StreamID())
	}
	// The peer resets stream 1: its slot is free.
	raw.write(header{typ: typeWindowUpdate, flags: flagRST, stream: 1}, nil)
	waitFor(t, func() bool { return m.Stat().Streams == 1 })
	st, err := s.Open(ctxT(t))
	if err != nil {
		t.Fatalf("Open after a stream ended: %v", err)
	}
	// A stream closed both ways is gone.
	st.Close()
	raw.write(header{typ: typeWindowUpdate, flags: flagFIN, stream: st.StreamID()}, nil)
	waitFor(t, func() bool { return m.Stat().Streams == 1 })
	s.Close()
	if st := m.Stat(); st != (limits.Stat{}) {
		t.Fatalf("after Close: %+v", st)
	}
}

// TestScopeWindowGrowth: a fast reader's window grows only as far as the
// budget reserves, and the transfer never trips a reset.
func TestScopeWindowGrowth(t *testing.T) {
	leakcheck.Check(t)
	const size = 8 << 20
	for _, budget := range []int64{1 << 20, 3 << 20} {
		t.Run(fmt.Sprint(budget>>20, "MiB"), func(t *testing.T) {
			m, scope := testLimits(t, func(c *limits.Config) { c.MemoryPerConn = budget })
			a, b := tcpPair(t)
			client := NewSession(a, true, nil)
			server := NewSessionScope(b, false, nil, scope)
			defer client.Close()
			defer server.Close()
			errc := make(chan error, 1)
			go func() {
				st, err := client.Open(ctxT(t))
				if err == nil {
					_, err = st.Write(make([]byte, size))
					st.Close()
				}
				errc <- err
			}()
			st, err := server.Accept()
			if err != nil {
				t.Fatal(err)
			}
			n, err := io.Copy(io.Discard, struct{ io.Reader }{st})
			if err != nil || n != size {
				t.Fatalf("read %d bytes: %v", n, err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			st.mu.Lock()
			w := int64(st.recvWindow)
			st.mu.Unlock()
			if w > budget {
				t.Fatalf("window grew to %d, past the %d budget", w, budget)
			}
			st.Close()
			waitFor(t, func() bool { return m.Stat().Memory == 0 })
		})
	}
}

// fakeScope records how a session uses its scope; with a limit, it
// refuses memory beyond it.
type fakeScope struct {
	mu           sync.Mutex
	limit        int64
	closes       int
	opens, dones int
	mem          int64
	late         []string // calls after Close
	negative     bool     // more released than reserved
}

func (f *fakeScope) note(call string) {
	if f.closes > 0 {
		f.late = append(f.late, call)
	}
}

func (f *fakeScope) ReserveMemory(n int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.note("ReserveMemory")
	if f.limit > 0 && f.mem+int64(n) > f.limit {
		return errors.New("fake limit")
	}
	f.mem += int64(n)
	return nil
}

func (f *fakeScope) ReserveMemoryLeaving(n, spare int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.note("ReserveMemoryLeaving")
	if f.limit > 0 && f.mem+int64(n+spare) > f.limit {
		return errors.New("fake limit")
	}
	f.mem += int64(n)
	return nil
}

func (f *fakeScope) ReleaseMemory(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.note("ReleaseMemory")
	f.mem -= int64(n)
	f.negative = f.negative || f.mem < 0
}

func (f *fakeScope) OpenStream(network.Direction) (func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.note("OpenStream")
	f.opens++
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.note("done")
			f.dones++
		})
	}, nil
}

func (f *fakeScope) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closes++
}

// TestScopeClosedOnce: however the session ends, its scope is closed once,
// after every stream was released, and nothing touches it afterwards, not
// even a reader draining data buffered before the end.
func TestScopeClosedOnce(t *testing.T) {
	for _, tt := range []struct {
		name string
		end  func(s *Session, raw *rawPeer, peerConn net.Conn)
	}{
		{"local close", func(s *Session, _ *rawPeer, _ net.Conn) { s.Close(); s.Close() }},
		{"peer hangs up", func(_ *Session, _ *rawPeer, c net.Conn) { c.Close() }},
		{"protocol error", func(_ *Session, raw *rawPeer, _ net.Conn) {
			raw.write(header{typ: typeData, stream: 1, length: 1<<20 + 1}, nil)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			leakcheck.Check(t)
			f := &fakeScope{}
			a, b := net.Pipe()
			raw := newRawPeer(t, b)
			s := NewSessionScope(a, false, &Config{InitialStreamWindow: 1 << 20}, f)
			defer s.Close()
			raw.write(header{typ: typeData, flags: flagSYN, stream: 1, length: 5}, []byte("hello"))
			raw.write(header{typ: typeWindowUpdate, flags: flagSYN, stream: 3}, nil)
			sts := acceptN(t, s, 2)
			if _, err := s.Open(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			tt.end(s, raw, b)
			<-s.Done()
			s.Close()
			got, err := io.ReadAll(sts[0])
			if string(got) != "hello" {
				t.Fatalf("read after the end: %q, %v", got, err)
			}
			sts[1].Reset()
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.closes != 1 || f.opens != 3 || f.dones != 3 || len(f.late) > 0 {
				t.Fatalf("closes %d, opens %d, dones %d, calls after Close %v", f.closes, f.opens, f.dones, f.late)
			}
		})
	}
}

// abuseScope records Abuse calls, and passes them on.
type abuseScope struct {
	network.ConnScope
	mu     sync.Mutex
	abused []error
}

func (a *abuseScope) Abuse(err error) {
	a.mu.Lock()
	a.abused = append(a.abused, err)
	a.mu.Unlock()
	if inner, ok := a.ConnScope.(Abuser); ok {
		inner.Abuse(err)
	}
}

// TestRefusalFlood: a peer that keeps opening streams it is refused is
// closed as abusive once more than MaxRefusedStreams are refused, with
// GoAway(protocol error), and the scope hears of it; refusals up to the
// limit, or with the check off, leave the session open.
func TestRefusalFlood(t *testing.T) {
	for _, tt := range []struct {
		name     string
		cfg      Config
		scope    bool // StreamsPerConn 1 from a limits scope, else MaxIncomingStreams 1
		refusals int
		closed   bool
	}{
		{"MaxIncomingStreams, beyond", Config{MaxIncomingStreams: 1, MaxRefusedStreams: 20}, false, 21, true},
		{"MaxIncomingStreams, up to the limit", Config{MaxIncomingStreams: 1, MaxRefusedStreams: 20}, false, 20, false},
		{"scope, beyond", Config{MaxRefusedStreams: 20}, true, 21, true},
		{"scope, check off", Config{MaxRefusedStreams: -1}, true, 500, false},
		{"default, beyond", Config{MaxIncomingStreams: 1}, false, defaultMaxRefusedStreams + 1, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			leakcheck.Check(t)
			a, b := net.Pipe()
			raw := newRawPeer(t, b)
			var scope *abuseScope
			var m *limits.Manager
			var s *Session
			if tt.scope {
				var sc network.ConnScope
				m, sc = testLimits(t, func(c *limits.Config) { c.StreamsPerConn = 1 })
				scope = &abuseScope{ConnScope: sc}
				s = NewSessionScope(a, false, &tt.cfg, scope)
			} else {
				s = NewSession(a, false, &tt.cfg)
			}
			defer s.Close()
			// One admitted stream, then the refused ones, then a probe
			// that a live session answers with RST.
			var burst []byte
			id := uint32(1)
			for range 1 + tt.refusals {
				burst = appendHeader(burst, header{typ: typeWindowUpdate, flags: flagSYN, stream: id})
				id += 2
			}
			go raw.writeRaw(burst)
			var rsts int
			for {
				h, _, _ := raw.next()
				if h.typ == typeGoAway {
					if !tt.closed {
						t.Fatalf("GoAway after %d RSTs: %v", rsts, s.Err())
					}
					if h.length != GoAwayProtocolError {
						t.Fatalf("GoAway code %d, want protocol error", h.length)
					}
					break
				}
				if h.flags&flagRST != 0 {
					if rsts++; !tt.closed && rsts == tt.refusals {
						break
					}
				}
			}
			if !tt.closed {
				if s.IsClosed() {
					t.Fatalf("session closed: %v", s.Err())
				}
				return
			}
			<-s.Done()
			var ae *AbuseError
			if !errors.As(s.Err(), &ae) || !errors.Is(s.Err(), ErrProtocol) || ae.Refused != tt.refusals {
				t.Fatalf("Err = %v, want an AbuseError after %d refusals", s.Err(), tt.refusals)
			}
			if scope == nil {
				return
			}
			s.Close()
			var le *limits.LimitError
			if !errors.As(ae.Last, &le) || le.Option != "StreamsPerConn" {
				t.Fatalf("the last refusal %v does not name StreamsPerConn", ae.Last)
			}
			scope.mu.Lock()
			n := len(scope.abused)
			scope.mu.Unlock()
			if n != 1 {
				t.Fatalf("scope told of abuse %d times", n)
			}
			// The limits penalise the peer's address.
			if done, err := m.BeginHandshake(netip.MustParseAddr("10.1.0.2")); !errors.As(err, &le) || le.Option != "AbusePenalty" {
				if done != nil {
					done()
				}
				t.Fatalf("handshake from the abuser's address: %v, want a penalty", err)
			}
		})
	}
}

// TestScopeGrowthLeavesBaseWindows: streams that grow their windows leave
// the budget room for the base windows of the others, so many fast streams
// on one connection never trip a reset for data within their windows.
// Writes of 100 KiB make frames that pool buffers round up.
func TestScopeGrowthLeavesBaseWindows(t *testing.T) {
	leakcheck.Check(t)
	const n, per = 64, 2 << 20
	for _, wsize := range []int{64 << 10, 100 << 10} {
		t.Run(fmt.Sprint(wsize>>10, "KiB"), func(t *testing.T) {
			m, scope := testLimits(t, func(c *limits.Config) { c.MemoryPerConn = 32 << 20 })
			a, b := tcpPair(t)
			client := NewSession(a, true, nil)
			server := NewSessionScope(b, false, nil, scope)
			defer client.Close()
			defer server.Close()
			var wg sync.WaitGroup
			errs := make(chan error, 2*n)
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					st, err := client.Open(ctxT(t))
					if err != nil {
						errs <- err
						return
					}
					buf := make([]byte, wsize)
					for left := per; left > 0; left -= len(buf) {
						if _, err := st.Write(buf[:min(left, len(buf))]); err != nil {
							errs <- fmt.Errorf("write: %w", err)
							return
						}
					}
					st.Close()
				}()
			}
			for _, st := range acceptN(t, server, n) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got, err := io.Copy(io.Discard, struct{ io.Reader }{st})
					if err != nil || got != per {
						errs <- fmt.Errorf("stream %d: read %d bytes: %w", st.id, got, err)
					}
					st.Close()
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			waitFor(t, func() bool { return m.Stat().Memory == 0 })
		})
	}
}
