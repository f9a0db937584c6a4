package webrtc

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

var _ network.ResourceManager = (*testManager)(nil)

var errRefused = errors.New("test manager: refused")

// testManager is a network.ResourceManager with a per-IP cap on
// handshakes, optional refusal of connections, and per-connection caps on
// streams and memory. It records what it was asked.
type testManager struct {
	perIP       int  // handshakes at once per IP; 0: no cap
	refuseConns bool // OpenConn fails
	streams     int  // per connection; 0: no cap
	memory      int  // per connection; 0: no cap

	mu         sync.Mutex
	handshakes map[netip.Addr]int // in progress
	begun      map[netip.Addr]int // admitted in all
	refused    map[netip.Addr]int
	scopes     []*testScope
}

func newTestManager() *testManager {
	return &testManager{handshakes: map[netip.Addr]int{}, begun: map[netip.Addr]int{}, refused: map[netip.Addr]int{}}
}

func (m *testManager) BeginHandshake(ip netip.Addr) (func(), error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.perIP > 0 && m.handshakes[ip] >= m.perIP {
		m.refused[ip]++
		return nil, fmt.Errorf("%w: %d handshakes from %s", errRefused, m.perIP, ip)
	}
	m.handshakes[ip]++
	m.begun[ip]++
	var once sync.Once
	return func() {
		once.Do(func() {
			m.mu.Lock()
			m.handshakes[ip]--
			m.mu.Unlock()
		})
	}, nil
}

func (m *testManager) OpenConn(dir network.Direction, p peer.ID, raddr ma.Multiaddr) (network.ConnScope, error) {
	if p == "" || raddr == nil {
		return nil, fmt.Errorf("OpenConn(%v, %q, %v) before authentication", dir, p, raddr)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.refuseConns {
		return nil, errRefused
	}
	s := &testScope{m: m, dir: dir}
	m.scopes = append(m.scopes, s)
	return s, nil
}

func (m *testManager) OpenProtocolStream(network.Direction, peer.ID, protocol.ID) (func(), error) {
	return func() {}, nil
}

// state reports the handshakes from ip in progress, admitted and refused.
func (m *testManager) state(ip netip.Addr) (inProgress, begun, refused int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.handshakes[ip], m.begun[ip], m.refused[ip]
}

func (m *testManager) allScopes() []*testScope {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*testScope(nil), m.scopes...)
}

type testScope struct {
	m   *testManager
	dir network.Direction

	mu                  sync.Mutex
	mem, streams        int
	maxMem              int
	closes              int
	badRelease, badDone int // releases below zero, done called twice
}

func (s *testScope) ReserveMemory(n int) error { return s.ReserveMemoryLeaving(n, 0) }

func (s *testScope) ReserveMemoryLeaving(n, spare int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m.memory > 0 && s.mem+n+spare > s.m.memory {
		return fmt.Errorf("%w: memory %d+%d leaving %d over %d", errRefused, s.mem, n, spare, s.m.memory)
	}
	s.mem += n
	s.maxMem = max(s.maxMem, s.mem)
	return nil
}

func (s *testScope) ReleaseMemory(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mem -= n
	if s.mem < 0 {
		s.badRelease++
	}
}

func (s *testScope) OpenStream(network.Direction) (func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m.streams > 0 && s.streams >= s.m.streams {
		return nil, fmt.Errorf("%w: %d streams", errRefused, s.m.streams)
	}
	s.streams++
	var once bool
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if once {
			s.badDone++
			return
		}
		once = true
		s.streams--
	}, nil
}

func (s *testScope) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closes++
}

// snapshot returns the scope's counters.
func (s *testScope) snapshot() (mem, streams, closes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mem, s.streams, s.closes
}

// check fails t if the scope was misused.
func (s *testScope) check(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.badRelease > 0 || s.badDone > 0 {
		t.Errorf("%v scope: %d releases below zero, %d stream dones called twice", s.dir, s.badRelease, s.badDone)
	}
}

func newManagedTransport(t testing.TB, m *testManager, cfg Config) (*Transport, peer.ID) {
	t.Helper()
	key, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := GenerateCertificate()
	if err != nil {
		t.Fatal(err)
	}
	if m != nil {
		cfg.Resources = m
	}
	tr, err := New(key, cert, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr, tr.local
}

// waitUntil polls cond until it holds; the bound only keeps a broken
// build from hanging.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestResourcesHandshakeFloodPerIP: half-open attempts from one address
// beyond the manager's per-IP cap are dropped without a peer connection,
// while a dialer from another address connects; each admitted handshake
// is done once, when it times out.
func TestResourcesHandshakeFloodPerIP(t *testing.T) {
	leakcheck.Check(t)
	m := newTestManager()
	m.perIP = 2
	// MaxInFlight would drop the honest dialer too: the manager decides.
	lt, lID := newManagedTransport(t, m, Config{MaxInFlight: 1, HandshakeTimeout: 2 * time.Second})
	dt, _ := newTransport(t)
	ln := listen(t, lt, "/ip4/127.0.0.1/udp/0/webrtc-direct")
	l := ln.(*listener)

	flooder := netip.MustParseAddr("127.0.0.2")
	const attempts = 10
	for i := range attempts {
		// One socket per attempt: the mux routes a known source address to
		// its first attempt.
		c, err := net.DialUDP("udp4", &net.UDPAddr{IP: flooder.AsSlice()}, l.mux.local)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(halfOpenRequest(t, i)); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	waitUntil(t, "every attempt to reach the manager", func() bool {
		_, begun, refused := m.state(flooder)
		return begun+refused == attempts
	})
	if inProgress, begun, refused := m.state(flooder); inProgress != 2 || begun != 2 || refused != attempts-2 {
		t.Fatalf("flooder: %d handshakes in progress, %d admitted, %d refused; want 2, 2, %d", inProgress, begun, refused, attempts-2)
	}
	if _, ufrags, _ := listenerState(l); ufrags > 3 {
		t.Fatalf("the mux tracks %d ufrags: refused attempts were kept", ufrags)
	}

	// Another address is not held up by the flood, nor by MaxInFlight.
	c, s := connect(t, dt, ln, lID)
	echoOnce(t, c, s)
	honest := netip.MustParseAddr("127.0.0.1")
	if inProgress, begun, refused := m.state(honest); inProgress != 0 || begun != 1 || refused != 0 {
		t.Fatalf("honest dialer: %d handshakes in progress, %d admitted, %d refused; want 0, 1, 0", inProgress, begun, refused)
	}
	// The half-open ones end with their handshake timeout.
	waitUntil(t, "the flooder's handshakes to time out", func() bool {
		inProgress, _, _ := m.state(flooder)
		return inProgress == 0
	})
}

// TestResourcesRefusedConn: a connection either side's manager refuses is
// closed on both sides, with no scope left open and no goroutine behind.
func TestResourcesRefusedConn(t *testing.T) {
	for _, tc := range []struct {
		name             string
		dialer, listener bool // whose manager refuses
	}{
		{"dialer refuses", true, false},
		{"listener refuses", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			dm, lm := newTestManager(), newTestManager()
			dm.refuseConns, lm.refuseConns = tc.dialer, tc.listener
			dt, _ := newManagedTransport(t, dm, Config{})
			lt, lID := newManagedTransport(t, lm, Config{HandshakeTimeout: 5 * time.Second})
			ln := listen(t, lt, "/ip4/127.0.0.1/udp/0/webrtc-direct")

			accepted := make(chan network.TransportConn, 1)
			go func() {
				c, err := ln.Accept()
				if err == nil {
					accepted <- c
				}
				close(accepted)
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := dt.Dial(ctx, ln.Multiaddrs()[0], lID)
			if tc.dialer {
				if !errors.Is(err, errRefused) {
					t.Fatalf("dial: %v, want the manager's refusal", err)
				}
				// The listener accepted; it learns of the close.
				s := <-accepted
				if _, err := s.AcceptStream(); !errors.Is(err, ErrConnClosed) {
					t.Fatalf("listener's AcceptStream: %v", err)
				}
				s.Close()
			} else if err == nil {
				// Noise ended on the listener's side first (its message 3
				// is the last); it then refused and closed, which the
				// dialer sees. If the close overtook message 3, the dial
				// failed instead.
				if _, err := c.AcceptStream(); !errors.Is(err, ErrConnClosed) {
					t.Fatalf("dialer's AcceptStream: %v", err)
				}
				c.Close()
			}
			ln.Close()
			if _, ok := <-accepted; ok && tc.listener {
				t.Fatal("the listener accepted a refused connection")
			}
			for _, s := range append(dm.allScopes(), lm.allScopes()...) {
				if _, _, closes := s.snapshot(); closes != 1 {
					t.Errorf("%v scope closed %d times", s.dir, closes)
				}
			}
		})
	}
}

// TestResourcesScopeLifecycle: both ends of a connection get a scope; the
// streams and the memory of unread data are accounted in it and returned;
// each scope is closed exactly once when the connection ends, whichever
// side closes it and however often.
func TestResourcesScopeLifecycle(t *testing.T) {
	leakcheck.Check(t)
	dm, lm := newTestManager(), newTestManager()
	dt, _ := newManagedTransport(t, dm, Config{})
	lt, lID := newManagedTransport(t, lm, Config{})
	ln := listen(t, lt, "/ip4/127.0.0.1/udp/0/webrtc-direct")
	c, s := connect(t, dt, ln, lID)
	ds, ls := dm.allScopes(), lm.allScopes()
	if len(ds) != 1 || ds[0].dir != network.DirOutbound || len(ls) != 1 || ls[0].dir != network.DirInbound {
		t.Fatalf("scopes: dialer %d, listener %d", len(ds), len(ls))
	}
	if _, begun, _ := lm.state(netip.MustParseAddr("127.0.0.1")); begun != 1 {
		t.Fatalf("%d handshakes begun", begun)
	}

	// The listener holds 256 KiB unread on a stream: reserved, then
	// returned as it is read.
	const n = 256 << 10
	st, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	if err := st.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	rs, err := s.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the data to be buffered", func() bool { mem, _, _ := ls[0].snapshot(); return mem == n })
	if _, streams, _ := ls[0].snapshot(); streams != 1 {
		t.Fatalf("listener scope: %d streams, want 1", streams)
	}
	if _, streams, _ := ds[0].snapshot(); streams != 1 {
		t.Fatalf("dialer scope: %d streams, want 1", streams)
	}
	got, err := io.ReadAll(rs)
	if err != nil || len(got) != n {
		t.Fatalf("read %d bytes: %v", len(got), err)
	}
	if mem, _, _ := ls[0].snapshot(); mem != 0 {
		t.Fatalf("%d bytes still reserved after the read", mem)
	}
	rs.Close()
	st.Close()
	waitUntil(t, "the streams to end", func() bool {
		_, a, _ := ds[0].snapshot()
		_, b, _ := ls[0].snapshot()
		return a == 0 && b == 0
	})

	// Data left unread when the connection ends is returned with the scope.
	st, err = s.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the dialer to buffer", func() bool { mem, _, _ := ds[0].snapshot(); return mem == 1000 })

	c.Close()
	c.Close()
	if _, _, closes := ds[0].snapshot(); closes != 1 {
		t.Fatalf("dialer scope closed %d times", closes)
	}
	waitUntil(t, "the listener to notice", func() bool { _, _, closes := ls[0].snapshot(); return closes > 0 })
	s.Close()
	for _, sc := range []*testScope{ds[0], ls[0]} {
		sc.check(t)
		if _, _, closes := sc.snapshot(); closes != 1 {
			t.Errorf("%v scope closed %d times", sc.dir, closes)
		}
	}
}

// TestResourcesStreamRefused: a stream the peer's scope refuses is reset;
// one the own scope refuses fails to open; a stream whose unread data
// exceeds the memory the scope grants is reset, and the connection goes on.
func TestResourcesStreamRefused(t *testing.T) {
	leakcheck.Check(t)
	dm, lm := newTestManager(), newTestManager()
	lm.streams = 1
	lm.memory = 64 << 10
	dt, _ := newManagedTransport(t, dm, Config{})
	lt, lID := newManagedTransport(t, lm, Config{})
	ln := listen(t, lt, "/ip4/127.0.0.1/udp/0/webrtc-direct")
	c, s := connect(t, dt, ln, lID)
	ls := lm.allScopes()[0]

	// The first stream is admitted; nobody reads it, and what it sends
	// beyond 64 KiB is refused: the listener resets it.
	first, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Write(make([]byte, 1<<20)); !errors.Is(err, network.ErrReset) {
		t.Fatalf("writing past the peer's memory: %v, want ErrReset", err)
	}
	rs, err := s.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rs.Read(make([]byte, 1)); !errors.Is(err, network.ErrReset) || !errors.Is(err, errRefused) {
		t.Fatalf("reading the refused data: %v", err)
	}
	waitUntil(t, "the reset stream's memory and slot", func() bool { mem, streams, _ := ls.snapshot(); return mem == 0 && streams == 0 })

	// Hold the listener's one stream; the next inbound one is reset.
	held, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := held.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	hs, err := s.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	extra, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := extra.Read(make([]byte, 1)); !errors.Is(err, network.ErrReset) {
		t.Fatalf("stream over the peer's cap: %v, want ErrReset", err)
	}
	// The listener's own stream is refused too.
	if _, err := s.OpenStream(context.Background()); !errors.Is(err, errRefused) {
		t.Fatalf("opening over the own cap: %v", err)
	}
	hs.Close()
	held.Close()
	extra.Close()
	first.Close()
	waitUntil(t, "the held stream to end", func() bool { _, streams, _ := ls.snapshot(); return streams == 0 })
	echoOnce(t, c, s)
	c.Close()
	s.Close()
	ls.check(t)
	dm.allScopes()[0].check(t)
}

// BenchmarkOneStreamManaged is BenchmarkOneStream/dial with a resource
// manager on both sides: every message's memory is reserved and released.
func BenchmarkOneStreamManaged(b *testing.B) {
	dt, _ := newManagedTransport(b, newTestManager(), Config{})
	lt, lID := newManagedTransport(b, newTestManager(), Config{})
	l := listen(b, lt, "/ip4/127.0.0.1/udp/0/webrtc-direct")
	c, s := connect(b, dt, l, lID)
	benchOneStream(b, c, s)
}
