package holepunch

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/mss"
)

// testTimeout bounds every wait of a test.
const testTimeout = 10 * time.Second

// chunk is written data in flight: readable from at on. An eof chunk is a
// half-close, delayed like data so that it never overtakes it.
type chunk struct {
	b   []byte
	at  time.Time
	eof bool
}

// pipe is the shared state of an in-memory stream pair with a one-way
// delay: a write returns at once and its bytes become readable delay later,
// as over a relay. Every change closes wake, so that waiters look again.
type pipe struct {
	delay time.Duration

	mu     sync.Mutex
	wake   chan struct{}
	in     [2][]chunk // in[i] was written by end i, for end 1-i
	closed [2]bool    // end i closed its write side
	reset  bool
	dl     [2]time.Time // read and write deadline of end i
	writes [2][]time.Time
	ended  [2]string // how end i ended: "close", "reset" or ""
}

func (p *pipe) changedLocked() {
	close(p.wake)
	p.wake = make(chan struct{})
}

// fakeConn is the connection a fake stream belongs to, or the direct one a
// fake dial returns. Methods the service has no business calling are left
// to the nil embedded interface.
type fakeConn struct {
	network.Conn
	local, remote peer.ID
	raddr         ma.Multiaddr
	state         network.ConnState
	inbound       bool // A's side of a relayed connection is outbound unless set
}

func (c *fakeConn) RemoteMultiaddr() ma.Multiaddr { return c.raddr }
func (c *fakeConn) RemotePeer() peer.ID           { return c.remote }
func (c *fakeConn) LocalPeer() peer.ID            { return c.local }
func (c *fakeConn) ConnState() network.ConnState  { return c.state }
func (c *fakeConn) Direction() network.Direction {
	if c.inbound {
		return network.DirInbound
	}
	return network.DirOutbound
}
func (c *fakeConn) String() string                 { return fmt.Sprintf("conn to %s", c.raddr) }
func (c *fakeConn) Close() error                   { return nil }
func (c *fakeConn) IsClosed() bool                 { return false }
func (c *fakeConn) LocalMultiaddr() ma.Multiaddr   { return nil }
func (c *fakeConn) Opened() time.Time              { return time.Time{} }
func (c *fakeConn) NumStreams() int                { return 0 }
func (c *fakeConn) ID() uint64                     { return 1 }
func (c *fakeConn) RemotePublicKey() crypto.PubKey { return nil }

// fakeStream is one end of a pipe.
type fakeStream struct {
	network.Stream
	p    *pipe
	i    int
	conn *fakeConn
}

// streamPair returns two connected streams over a connection between pa
// and pb with the given remote addresses (each as its side sees it).
func streamPair(delay time.Duration, pa, pb peer.ID, aSees, bSees ma.Multiaddr, limited bool) (a, b *fakeStream) {
	p := &pipe{delay: delay, wake: make(chan struct{})}
	st := network.ConnState{Transport: "relay", Limited: limited}
	a = &fakeStream{p: p, i: 0, conn: &fakeConn{local: pa, remote: pb, raddr: aSees, state: st}}
	b = &fakeStream{p: p, i: 1, conn: &fakeConn{local: pb, remote: pa, raddr: bSees, state: st}}
	return a, b
}

func (s *fakeStream) Protocol() protocol.ID         { return ID }
func (s *fakeStream) LocalPeer() peer.ID            { return s.conn.local }
func (s *fakeStream) RemotePeer() peer.ID           { return s.conn.remote }
func (s *fakeStream) RemoteMultiaddr() ma.Multiaddr { return s.conn.raddr }
func (s *fakeStream) Conn() network.Conn            { return s.conn }

func (s *fakeStream) Read(b []byte) (int, error) {
	p := s.p
	p.mu.Lock()
	defer p.mu.Unlock()
	q := &p.in[1-s.i]
	for {
		now := time.Now()
		if p.reset {
			return 0, network.ErrReset
		}
		dl := p.dl[s.i]
		if !dl.IsZero() && !now.Before(dl) {
			return 0, os.ErrDeadlineExceeded
		}
		wakeAt := dl
		if len(*q) > 0 {
			c := &(*q)[0]
			if !now.Before(c.at) {
				if c.eof {
					return 0, io.EOF
				}
				n := copy(b, c.b)
				if c.b = c.b[n:]; len(c.b) == 0 {
					*q = (*q)[1:]
				}
				return n, nil
			}
			if wakeAt.IsZero() || c.at.Before(wakeAt) {
				wakeAt = c.at
			}
		}
		w := p.wake
		p.mu.Unlock()
		var timeout <-chan time.Time
		var t *time.Timer
		if !wakeAt.IsZero() {
			t = time.NewTimer(time.Until(wakeAt))
			timeout = t.C
		}
		select {
		case <-w:
		case <-timeout:
		}
		if t != nil {
			t.Stop()
		}
		p.mu.Lock()
	}
}

func (s *fakeStream) Write(b []byte) (int, error) {
	p := s.p
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.reset:
		return 0, network.ErrReset
	case p.closed[s.i]:
		return 0, errors.New("fake stream: write after close")
	case !p.dl[s.i].IsZero() && !time.Now().Before(p.dl[s.i]):
		return 0, os.ErrDeadlineExceeded
	}
	now := time.Now()
	p.writes[s.i] = append(p.writes[s.i], now)
	p.in[s.i] = append(p.in[s.i], chunk{b: append([]byte(nil), b...), at: now.Add(p.delay)})
	p.changedLocked()
	return len(b), nil
}

func (s *fakeStream) closeWriteLocked() {
	p := s.p
	if !p.closed[s.i] {
		p.closed[s.i] = true
		p.in[s.i] = append(p.in[s.i], chunk{at: time.Now().Add(p.delay), eof: true})
	}
	p.changedLocked()
}

func (s *fakeStream) CloseWrite() error {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	if s.p.reset {
		return network.ErrReset
	}
	s.closeWriteLocked()
	return nil
}

func (s *fakeStream) CloseRead() error { return nil }

func (s *fakeStream) Close() error {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	if s.p.ended[s.i] == "" {
		s.p.ended[s.i] = "close"
	}
	s.closeWriteLocked()
	return nil
}

func (s *fakeStream) Reset() error {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	if s.p.ended[s.i] == "" {
		s.p.ended[s.i] = "reset"
	}
	s.p.reset = true
	s.p.changedLocked()
	return nil
}

func (s *fakeStream) SetDeadline(t time.Time) error {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	s.p.dl[s.i] = t
	s.p.changedLocked()
	return nil
}

func (s *fakeStream) SetReadDeadline(t time.Time) error  { return s.SetDeadline(t) }
func (s *fakeStream) SetWriteDeadline(t time.Time) error { return s.SetDeadline(t) }

// ending reports how this end was ended by its owner: "close", "reset" or "".
func (s *fakeStream) ending() string {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	return s.p.ended[s.i]
}

// lastWrite is when this end last wrote.
func (s *fakeStream) lastWrite() time.Time {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	w := s.p.writes[s.i]
	if len(w) == 0 {
		return time.Time{}
	}
	return w[len(w)-1]
}

// waitEnded waits until this end is closed or reset by its owner.
func (s *fakeStream) waitEnded(t testing.TB) string {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		if e := s.ending(); e != "" {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream of %s not ended within %s", s.conn.local, testTimeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func newID(t testing.TB, name string) peer.ID {
	t.Helper()
	seed := sha256.Sum256([]byte(name))
	key, err := crypto.Ed25519KeyFromSeed(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// dialCall is one DialDirect as the fake host saw it.
type dialCall struct {
	at       time.Time
	addrs    []ma.Multiaddr
	simOpen  bool // ctx from network.WithSimultaneousConnect
	isClient bool
	force    bool // ctx from network.WithForceDirectDial
	deadline time.Duration
}

// dialFunc answers the n-th (from 0) DialDirect of a host.
type dialFunc func(ctx context.Context, n int, addrs []ma.Multiaddr) (network.Conn, error)

// fakeHost is one peer's host. NewStream to the other fake host opens a
// delayed stream pair over a relayed, limited connection and runs the other
// service's HandleStream on its end; everything it starts runs under wg.
type fakeHost struct {
	id    peer.ID
	delay time.Duration

	mu        sync.Mutex
	own       []ma.Multiaddr
	peerAddrs []ma.Multiaddr
	direct    network.Conn
	dial      dialFunc
	streamErr error
	// refuse: the stream opens (optimistic negotiation) and its first Read
	// says the peer does not speak DCUtR.
	refuse   bool
	other    *fakeHost
	otherSvc *Service
	dials    []dialCall
	opened   []*fakeStream

	wg *sync.WaitGroup
}

func (h *fakeHost) NewStream(ctx context.Context, p peer.ID, protos ...protocol.ID) (network.Stream, error) {
	if !network.AllowLimitedConn(ctx) {
		return nil, network.ErrLimitedConn
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.streamErr != nil {
		return nil, h.streamErr
	}
	if h.other == nil || p != h.other.id || len(protos) != 1 || protos[0] != ID {
		return nil, fmt.Errorf("fake host: no connection to %s for %v", p, protos)
	}
	relay := ma.StringCast("/ip4/198.51.100.1/tcp/4001/p2p/" + relayID.String() + "/p2p-circuit")
	ours, theirs := streamPair(h.delay, h.id, p, relay, relay, true)
	h.opened = append(h.opened, ours)
	if h.refuse {
		theirs.Reset()
		return refusedStream{ours}, nil
	}
	svc := h.otherSvc
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		svc.HandleStream(theirs)
	}()
	return ours, nil
}

// refusedStream is a lazily negotiated stream whose proposal the peer
// refused: the refusal shows at the first Read.
type refusedStream struct{ network.Stream }

func (refusedStream) Write(b []byte) (int, error) { return len(b), nil }

func (refusedStream) Read([]byte) (int, error) {
	return 0, fmt.Errorf("fake host: %w", &mss.NotSupportedError{Protocols: []protocol.ID{ID}})
}

func (h *fakeHost) DialDirect(ctx context.Context, p peer.ID, addrs []ma.Multiaddr) (network.Conn, error) {
	c := dialCall{at: time.Now(), addrs: addrs, force: network.ForceDirectDial(ctx)}
	c.isClient, c.simOpen = network.SimultaneousConnect(ctx)
	if dl, ok := ctx.Deadline(); ok {
		c.deadline = time.Until(dl)
	}
	h.mu.Lock()
	n := len(h.dials)
	h.dials = append(h.dials, c)
	dial := h.dial
	h.mu.Unlock()
	if dial == nil {
		return nil, errors.New("fake host: no route")
	}
	return dial(ctx, n, addrs)
}

func (h *fakeHost) DirectConn(peer.ID) network.Conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.direct
}

func (h *fakeHost) PeerAddrs(peer.ID) []ma.Multiaddr {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.peerAddrs
}

func (h *fakeHost) OwnAddrs() []ma.Multiaddr {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.own
}

func (h *fakeHost) dialCalls() []dialCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]dialCall(nil), h.dials...)
}

func (h *fakeHost) openedStreams() []*fakeStream {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*fakeStream(nil), h.opened...)
}

// connTo is a direct connection to p at the first of addrs.
func connTo(p peer.ID, addrs []ma.Multiaddr) network.Conn {
	return &fakeConn{remote: p, raddr: addrs[0], state: network.ConnState{Transport: "tcp"}}
}

// dialOK connects at once.
func dialOK(p peer.ID) dialFunc {
	return func(_ context.Context, _ int, addrs []ma.Multiaddr) (network.Conn, error) {
		return connTo(p, addrs), nil
	}
}

// dialHang waits for ctx to end, as a dial into a black hole does.
func dialHang(ctx context.Context, _ int, _ []ma.Multiaddr) (network.Conn, error) {
	<-ctx.Done()
	return nil, fmt.Errorf("fake dial: %w", ctx.Err())
}

// events collects a service's events.
type events struct {
	mu  sync.Mutex
	all []Event
	ch  chan Event
}

func newEvents() *events { return &events{ch: make(chan Event, 100)} }

func (e *events) add(ev Event) {
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
	e.ch <- ev
}

func (e *events) list() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Event(nil), e.all...)
}

// next waits for the next event.
func (e *events) next(t testing.TB) Event {
	t.Helper()
	select {
	case ev := <-e.ch:
		return ev
	case <-time.After(testTimeout):
		t.Fatal("no event")
		return Event{}
	}
}

// pair is A (dialed through the relay, answers) and B (accepted the relayed
// connection, initiates), each with a fake host and a service.
type pair struct {
	a, b     *fakeHost
	sa, sb   *Service
	evA, evB *events
	aID, bID peer.ID
	aAddrs   []ma.Multiaddr
	bAddrs   []ma.Multiaddr
	wg       sync.WaitGroup
}

var relayID peer.ID

func init() {
	seed := sha256.Sum256([]byte("relay"))
	key, _ := crypto.Ed25519KeyFromSeed(seed[:])
	relayID, _ = peer.IDFromPrivateKey(key)
}

// newPair returns A and B with public addresses, a one-way delay between
// them, and dials that fail; tune the hosts before calling DirectConnect.
// The test's cleanup waits for the HandleStream calls. Call
// leakcheck.Check first.
func newPair(t testing.TB, delay time.Duration, cfgA, cfgB Config) *pair {
	t.Helper()
	ps := &pair{evA: newEvents(), evB: newEvents(), aID: newID(t, "A"), bID: newID(t, "B")}
	ps.aAddrs = addrs("/ip4/1.2.3.4/tcp/4001", "/ip4/1.2.3.4/udp/4001/quic-v1")
	ps.bAddrs = addrs("/ip4/5.6.7.8/tcp/4001")
	ps.a = &fakeHost{id: ps.aID, delay: delay, own: ps.aAddrs, wg: &ps.wg}
	ps.b = &fakeHost{id: ps.bID, delay: delay, own: ps.bAddrs, wg: &ps.wg}
	cfgA.OnEvent, cfgB.OnEvent = ps.evA.add, ps.evB.add
	ps.sa, ps.sb = New(ps.a, cfgA), New(ps.b, cfgB)
	ps.b.other, ps.b.otherSvc = ps.a, ps.sa
	ps.a.other, ps.a.otherSvc = ps.b, ps.sb
	t.Cleanup(ps.wg.Wait)
	return ps
}

// directConnect runs B's DirectConnect to A, bounded by testTimeout.
func (ps *pair) directConnect(t testing.TB) (network.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	return ps.sb.DirectConnect(ctx, ps.aID)
}
