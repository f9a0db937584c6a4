package autonatv1

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/streamtest"
)

// testTimeout bounds every wait of a test.
const testTimeout = 10 * time.Second

// Addresses of the tests (public ones: manet counts the documentation
// ranges as unroutable): the client is seen at clientIP, the server
// listens at serverAddr, and victimIP is a third party.
const (
	clientIP   = "5.5.5.5"
	victimIP   = "6.6.6.6"
	serverAddr = "/ip4/7.7.7.7/tcp/4001"
)

var errDial = errors.New("connection refused")

type dialCall struct {
	p     peer.ID
	addrs []ma.Multiaddr
}

// fakeHost dials nothing: DialBack records its call and answers with the
// first address accepted by ok (all when ok is nil), or errDial. block
// makes DialBack wait for its context instead.
type fakeHost struct {
	noDial func(ma.Multiaddr) bool // CanDial says no to these
	ok     func(ma.Multiaddr) bool
	block  bool

	mu      sync.Mutex
	calls   []dialCall
	started chan struct{} // gets a value when DialBack starts, if not nil
}

func (h *fakeHost) CanDial(a ma.Multiaddr) bool { return h.noDial == nil || !h.noDial(a) }

func (h *fakeHost) DialBack(ctx context.Context, p peer.ID, addrs []ma.Multiaddr) (ma.Multiaddr, error) {
	h.mu.Lock()
	h.calls = append(h.calls, dialCall{p, slices.Clone(addrs)})
	h.mu.Unlock()
	if h.started != nil {
		h.started <- struct{}{}
	}
	if h.block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	for _, a := range addrs {
		if h.ok == nil || h.ok(a) {
			return a, nil
		}
	}
	return nil, errDial
}

func (h *fakeHost) dials() []dialCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.calls)
}

// conn describes the connection a request arrives on.
type conn struct {
	client peer.ID
	remote string // the client's address as the server sees it
	state  network.ConnState
}

// pair returns the client and server ends of a stream over c.
func pair(t testing.TB, c conn) (client, server *streamtest.Stream) {
	t.Helper()
	return streamtest.Pair(streamtest.Config{
		Protocol: ID, A: c.client, B: streamtest.PeerID(t, "server"),
		AAddr: ma.StringCast(c.remote), BAddr: ma.StringCast(serverAddr), State: c.state,
	})
}

// serve runs s.HandleStream(server) in a goroutine; the returned channel
// closes when it returns.
func serve(s *Service, server network.Stream) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.HandleStream(server)
	}()
	return done
}

func wait(t testing.TB, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(testTimeout):
		t.Fatalf("%s did not return within %s", what, testTimeout)
	}
}

// events collects the service's events.
type events struct {
	mu  sync.Mutex
	all []Event
}

func (e *events) add(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, ev)
}

func (e *events) list() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.all)
}

func sameAddrs(a, b []ma.Multiaddr) bool {
	return slices.EqualFunc(a, b, func(x, y ma.Multiaddr) bool { return x.Equal(y) })
}
