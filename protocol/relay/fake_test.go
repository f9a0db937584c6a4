package relay

import (
	"context"
	"fmt"
	"sync"
	"testing"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/streamtest"
)

// fakeStream is one end of an in-memory stream.
type fakeStream = streamtest.Stream

// streamPair returns two connected streams: a is at peer pa and sees
// remote pb at address addrB; b the other way round.
func streamPair(proto protocol.ID, pa, pb peer.ID, addrA, addrB ma.Multiaddr) (a, b *fakeStream) {
	return streamtest.Pair(streamtest.Config{Protocol: proto, A: pa, B: pb, AAddr: addrA, BAddr: addrB})
}

// node is a test identity.
type node struct {
	id   peer.ID
	key  crypto.PrivKey
	addr ma.Multiaddr
}

func newNode(t testing.TB, name, addr string) node {
	t.Helper()
	key := streamtest.Key(t, name)
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return node{id: id, key: key, addr: ma.StringCast(addr)}
}

// stopHandler is a target's answer to a STOP stream the relay opened; it
// owns the stream.
type stopHandler func(st *fakeStream)

// fakeHost is the relay's host: it hands out in-memory STOP streams to the
// targets registered with target, and runs everything it starts under wg.
type fakeHost struct {
	node
	addrs []ma.Multiaddr

	mu      sync.Mutex
	targets map[peer.ID]node
	stop    map[peer.ID]stopHandler
	openErr map[peer.ID]error
	noDial  bool // every NewStream ctx carried WithNoDial
	opened  []*fakeStream

	wg sync.WaitGroup
}

func newFakeHost(t testing.TB) *fakeHost {
	t.Helper()
	r := newNode(t, "relay", "/ip4/198.51.100.1/tcp/4001")
	other := newNode(t, "someone else", "/ip4/198.51.100.9/tcp/1")
	return &fakeHost{
		node: r,
		addrs: []ma.Multiaddr{
			ma.StringCast("/ip4/198.51.100.1/tcp/4001"),
			ma.StringCast("/ip4/198.51.100.1/udp/4001/quic-v1/p2p/" + r.id.String()),
			ma.StringCast("/ip4/203.0.113.5/tcp/4001/p2p/" + other.id.String()),
			ma.StringCast("/ip4/203.0.113.7/tcp/4001/p2p/" + r.id.String() + "/p2p-circuit"),
		},
		targets: map[peer.ID]node{},
		stop:    map[peer.ID]stopHandler{},
		openErr: map[peer.ID]error{},
		noDial:  true,
	}
}

func (h *fakeHost) ID() peer.ID                { return h.id }
func (h *fakeHost) PrivateKey() crypto.PrivKey { return h.key }
func (h *fakeHost) Addrs() []ma.Multiaddr      { return h.addrs }

func (h *fakeHost) NewStream(ctx context.Context, p peer.ID, protos ...protocol.ID) (network.Stream, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !network.NoDial(ctx) {
		h.noDial = false
	}
	if err := h.openErr[p]; err != nil {
		return nil, err
	}
	handler, ok := h.stop[p]
	if !ok || len(protos) != 1 {
		return nil, fmt.Errorf("fake host: no connection to %s", p)
	}
	target := h.targets[p]
	relaySide, targetSide := streamPair(protos[0], h.id, p, h.addrs[0], target.addr)
	h.opened = append(h.opened, relaySide)
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		handler(targetSide)
	}()
	return relaySide, nil
}

// setTarget makes NewStream to n run handler on the target's end.
func (h *fakeHost) setTarget(n node, handler stopHandler) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.targets[n.id] = n
	h.stop[n.id] = handler
}

// openedStreams returns the STOP streams opened so far.
func (h *fakeHost) openedStreams() []*fakeStream {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*fakeStream(nil), h.opened...)
}
