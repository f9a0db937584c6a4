package tachyon

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/protocol/ping"
)

// Ping measures count round trips to p (dialing if needed), waiting
// interval between them. Each ping may take up to timeout, counted once it
// has the stream to itself. each, if not nil, is called with every measured
// round trip.
//
// The spec (ping/ping.md) allows one outbound ping stream per peer, and
// listeners that keep only the newest streams (rust, ping.Listener) reset
// older ones. So concurrent Pings to p share one stream, taking turns for
// each round trip; a ping that fails resets it, and the next one opens a
// new stream. The last Ping to finish closes it.
func (h *Host) Ping(ctx context.Context, p peer.ID, count int, interval, timeout time.Duration, each func(seq int, rtt time.Duration)) error {
	ps := h.pings.acquire(p)
	defer h.pings.release(p, ps)
	for i := 0; i < count; i++ {
		if i > 0 && interval > 0 {
			select {
			case <-time.After(interval):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		rtt, err := ps.ping(ctx, h, p, timeout)
		if err != nil {
			return fmt.Errorf("tachyon: ping %d to %s: %w", i+1, p, err)
		}
		if each != nil {
			each(i+1, rtt)
		}
	}
	return nil
}

// pingTable holds the outbound ping stream of each peer that a Ping is
// running for. An entry goes when its last Ping returns.
type pingTable struct {
	mu sync.Mutex
	m  map[peer.ID]*pingStream
}

type pingStream struct {
	users int // Pings using the entry; guarded by pingTable.mu
	// turn holds a token while no Ping is using s. A turn covers one write
	// and its echo, so each measured round trip is that ping's alone.
	turn chan struct{}
	s    network.Stream // nil until opened and after a failure; the turn holder's
}

func (t *pingTable) acquire(p peer.ID) *pingStream {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = make(map[peer.ID]*pingStream)
	}
	ps := t.m[p]
	if ps == nil {
		ps = &pingStream{turn: make(chan struct{}, 1)}
		ps.turn <- struct{}{}
		t.m[p] = ps
	}
	ps.users++
	return ps
}

// release ends one Ping's use of ps and closes the stream after the last
// one. Every user has given its turn back by then, so the last one owns
// ps.s.
func (t *pingTable) release(p peer.ID, ps *pingStream) {
	t.mu.Lock()
	ps.users--
	last := ps.users == 0
	if last {
		delete(t.m, p)
	}
	t.mu.Unlock()
	if last && ps.s != nil {
		ps.s.Close()
	}
}

// ping waits for the turn, opens the stream if there is none, and sends one
// ping.
func (ps *pingStream) ping(ctx context.Context, h *Host, p peer.ID, timeout time.Duration) (time.Duration, error) {
	select {
	case <-ps.turn:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { ps.turn <- struct{}{} }()
	if ps.s == nil {
		s, err := h.NewStream(network.WithAllowLimitedConn(ctx, "ping"), p, ping.ID)
		if err != nil {
			return 0, err
		}
		ps.s = s
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	rtt, err := ping.OnceTraced(pctx, ps.s, h.cfg.metrics.Ping())
	cancel()
	if c := ps.s.Conn(); err == nil && h.rtts != nil && !c.ConnState().Limited {
		// The dialer paces its attempts by the RTTs it knows.
		h.rtts.AddRTT(p, c.RemoteMultiaddr(), rtt)
	}
	if err != nil {
		// Broken, or out of step with the listener after an interrupted
		// ping.
		ps.s.Reset()
		ps.s = nil
	}
	return rtt, err
}
