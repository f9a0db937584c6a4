package holepunch

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/streamtest"
	"github.com/tachyon-p2p/tachyon/mss"
)

// testTimeout bounds every wait of a test.
const testTimeout = 10 * time.Second

// streamPair returns the two ends of a stream that pa opened to pb over a
// relayed connection (limited or not) that pb dialed, as B opens DCUtR
// streams on the relayed connection A dialed: pa's end is inbound, pb's
// outbound. aSees and bSees are the remote addresses each end sees.
func streamPair(delay time.Duration, pa, pb peer.ID, aSees, bSees ma.Multiaddr, limited bool) (a, b *streamtest.Stream) {
	return streamtest.Pair(streamtest.Config{
		Protocol: ID, Delay: delay, A: pa, B: pb, AAddr: bSees, BAddr: aSees,
		State: network.ConnState{Transport: "relay", Limited: limited}, ADir: network.DirInbound,
	})
}

func newID(t testing.TB, name string) peer.ID { return streamtest.PeerID(t, name) }

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
	opened   []*streamtest.Stream

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

func (h *fakeHost) openedStreams() []*streamtest.Stream {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*streamtest.Stream(nil), h.opened...)
}

// connTo is a direct connection to p at the first of addrs.
func connTo(p peer.ID, addrs []ma.Multiaddr) network.Conn {
	a, _ := streamtest.Pair(streamtest.Config{B: p, BAddr: addrs[0], State: network.ConnState{Transport: "tcp"}})
	return a.FakeConn()
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
