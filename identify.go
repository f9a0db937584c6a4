package tachyon

import (
	"context"
	"fmt"
	"slices"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/event"
	"github.com/tachyon-p2p/tachyon/peerstore"
	"github.com/tachyon-p2p/tachyon/protocol/identify"
	"github.com/tachyon-p2p/tachyon/swarm"
)

const identifyTimeout = 30 * time.Second

// identifyConn asks the peer of c who it is and records the answer.
func (h *Host) identifyConn(c *swarm.Conn, call *identifyCall) {
	defer h.wg.Done()
	ctx, cancel := context.WithTimeout(h.ctx, identifyTimeout)
	defer cancel()
	call.result, call.err = h.runIdentify(ctx, c)
	if call.err != nil {
		h.log.Debug("identify failed", "peer", c.RemotePeer(), "err", call.err)
		h.mu.Lock()
		if h.identified[c.RemotePeer()] == call {
			delete(h.identified, c.RemotePeer())
		}
		h.mu.Unlock()
		h.bus.Emit(event.EvtPeerIdentificationFailed{Peer: c.RemotePeer(), Err: call.err})
	} else {
		h.log.Debug("identified", "peer", c.RemotePeer(), "agent", call.result.Message.AgentVersion)
		h.record(call.result)
		h.recordObserved(c, call.result.Message.ObservedAddr)
		h.peerIdentifiedAutoNAT(c.RemotePeer())
		if h.bus.Wants(event.EvtPeerIdentified{}) {
			h.bus.Emit(h.identifiedEvent(call.result))
		}
	}
	close(call.done)
}

func (h *Host) runIdentify(ctx context.Context, c *swarm.Conn) (*identify.Result, error) {
	s, err := c.NewStream(ctx)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	// Negotiated lazily: Identify half-closes before it reads, so the
	// proposal and the FIN leave in one frame, and the answer comes with
	// the peer's message. A peer without identify answers "na", which
	// Identify's read reports.
	return h.ids.Identify(ctx, newLazyStream(s, identify.ID))
}

// identifiedEvent reports r as the peerstore kept it (within its caps on
// protocols and agent strings), after h.record.
func (h *Host) identifiedEvent(r *identify.Result) event.EvtPeerIdentified {
	m := r.Message
	agent, protoVer := h.ps.Agent(r.Peer)
	e := event.EvtPeerIdentified{
		Peer:            r.Peer,
		AgentVersion:    agent,
		ProtocolVersion: protoVer,
		Protocols:       h.ps.Protocols(r.Peer),
		ListenAddrs:     slices.Clone(m.ListenAddrs),
		ObservedAddr:    m.ObservedAddr,
	}
	if rec := r.Record(); rec != nil {
		e.ListenAddrs, e.SignedRecord = slices.Clone(rec.Addrs), true
	}
	return e
}

// diffProtocols returns what is in now and not in before, and the reverse.
func diffProtocols(before, now []protocol.ID) (added, removed []protocol.ID) {
	for _, p := range now {
		if !slices.Contains(before, p) {
			added = append(added, p)
		}
	}
	for _, p := range before {
		if !slices.Contains(now, p) {
			removed = append(removed, p)
		}
	}
	return added, removed
}

// record stores what identify told us about a peer.
func (h *Host) record(r *identify.Result) {
	if r == nil || r.Message == nil {
		return
	}
	m := r.Message
	// Connected: they live while a connection does, then 15 minutes. A
	// signed record is authoritative over the unsigned list; it is checked
	// when the peer's addresses are first read (most never are), unless it
	// is larger than a record of a few dozen addresses: the peerstore may
	// hold it for 15 minutes after the peer left.
	if signed := r.Signed(); signed != nil && len(m.SignedPeerRecord) <= maxHeldRecord {
		h.ps.AddSignedAddrs(r.Peer, func() ([]ma.Multiaddr, bool) {
			if rec := signed.Open(); rec != nil {
				return rec.Addrs, true
			}
			return nil, false
		}, m.ListenAddrs, peerstore.ConnectedAddrTTL)
	} else {
		addrs := m.ListenAddrs
		if rec := r.Record(); rec != nil {
			addrs = rec.Addrs
		}
		h.ps.AddAddrs(r.Peer, addrs, peerstore.ConnectedAddrTTL)
	}
	h.ps.SetProtocols(r.Peer, m.Protocols)
	h.ps.SetAgent(r.Peer, m.AgentVersion, m.ProtocolVersion)
}

// maxHeldRecord is the largest signed peer record whose check waits until
// the peer's addresses are read (see record); a node's record is a few
// hundred bytes.
const maxHeldRecord = 2 << 10

// IdentifyWait waits until identify finished with p, connecting first if
// needed, and returns what p said about itself: r.Message holds its agent
// and protocol versions, protocols, listen addresses and our address as p
// sees it; r.Record() is its signed peer record, if it sent a valid one. The
// same is stored in the peerstore (Protocols, Addrs, Agent) and reported as
// event.EvtPeerIdentified. When it returns without error, p has registered
// the connection on its side too (see Connect).
func (h *Host) IdentifyWait(ctx context.Context, p peer.ID) (*identify.Result, error) {
	if _, err := h.swarm.DialPeer(ctx, p); err != nil {
		return nil, err
	}
	h.mu.RLock()
	call := h.identified[p]
	h.mu.RUnlock()
	if call == nil {
		return nil, fmt.Errorf("tachyon: identify with %s: not running (connection closed?)", p)
	}
	select {
	case <-call.done:
		return call.result, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// handlePush takes an identify push from a peer.
func (h *Host) handlePush(s network.Stream) {
	s.SetReadDeadline(time.Now().Add(identifyTimeout))
	r, err := h.ids.HandlePush(s)
	if err != nil {
		s.Reset()
		return
	}
	s.Close()
	if r == nil || r.Message == nil {
		return
	}
	before := h.ps.Protocols(r.Peer)
	h.record(r)
	if added, removed := diffProtocols(before, h.ps.Protocols(r.Peer)); len(added)+len(removed) > 0 {
		h.bus.Emit(event.EvtPeerProtocolsUpdated{Peer: r.Peer, Added: added, Removed: removed})
		h.peerIdentifiedAutoNAT(r.Peer)
	}
	h.recordObserved(s.Conn(), r.Message.ObservedAddr)
}

// schedulePush asks the push loop to tell connected peers about a change in
// our protocols.
func (h *Host) schedulePush() {
	select {
	case h.pushNow <- struct{}{}:
	default:
	}
}

// pushLoop sends identify pushes, coalescing changes that come in bursts
// (as during start-up).
func (h *Host) pushLoop() {
	defer h.wg.Done()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-h.pushNow:
		}
		select {
		case <-h.ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
		for _, p := range h.swarm.Peers() {
			if _, ok := h.ps.SupportsProtocol(p, identify.PushID); !ok {
				continue
			}
			h.pushTo(p)
		}
	}
}

func (h *Host) pushTo(p peer.ID) {
	// Pushes go to connected peers only: a peer that left since the list
	// was made is not dialed again for it.
	ctx, cancel := context.WithTimeout(network.WithNoDial(network.WithAllowLimitedConn(h.ctx, "identify push"), "identify push"), 5*time.Second)
	defer cancel()
	s, err := h.NewStream(ctx, p, identify.PushID)
	if err != nil {
		return
	}
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	if err := h.ids.Push(ctx, s); err != nil {
		s.Reset()
		return
	}
	s.Close()
}
