// Package event is the host's event bus: typed events, any number of
// subscribers, each with a bounded buffer.
//
// Emitting never blocks. A subscriber whose buffer is full misses the event:
// the event is dropped for that subscriber alone and counted (see
// Subscription.Dropped and Bus.Dropped), so a slow subscriber can never
// stall the swarm, identify, or other subscribers. Size buffers for the
// bursts you expect and drain them promptly.
//
// Events are plain values. Subscribe to the ones you want by type:
//
//	sub := event.Subscribe[event.EvtPeerIdentified](h.EventBus(), 16)
//	defer sub.Close()
//	for e := range sub.Out() {
//		fmt.Println(e.Peer, e.AgentVersion)
//	}
package event

import (
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
)

// EvtPeerConnectedness is emitted when the host gets its first connection
// to a peer (Connected true) and when it loses its last one (false). For
// one peer the events alternate, starting with Connected true.
type EvtPeerConnectedness struct {
	Peer      peer.ID
	Connected bool
}

// ConnInfo describes a connection in EvtConnOpened and EvtConnClosed.
type ConnInfo struct {
	// ID is unique among the host's connections; the opened and closed
	// events of one connection carry the same ID.
	ID         uint64
	Peer       peer.ID
	LocalAddr  ma.Multiaddr
	RemoteAddr ma.Multiaddr
	Direction  network.Direction
	// State names the transport, security protocol and muxer.
	State  network.ConnState
	Opened time.Time
}

// EvtConnOpened is emitted when a connection finished its upgrade and was
// added to the host's connections.
type EvtConnOpened struct{ Conn ConnInfo }

// EvtConnClosed is emitted when a connection was removed from the host's
// connections, after EvtConnOpened for the same connection.
type EvtConnClosed struct{ Conn ConnInfo }

// EvtPeerIdentified is emitted when identify finished with a peer, on its
// first connection. The peerstore holds the same information by then.
type EvtPeerIdentified struct {
	Peer            peer.ID
	AgentVersion    string
	ProtocolVersion string
	Protocols       []protocol.ID
	// ListenAddrs are the addresses the peer listens on; from its signed
	// peer record when it sent one (SignedRecord true).
	ListenAddrs  []ma.Multiaddr
	SignedRecord bool
	// ObservedAddr is our address as the peer sees it, if it said.
	ObservedAddr ma.Multiaddr
}

// EvtPeerIdentificationFailed is emitted when identify with a peer failed.
type EvtPeerIdentificationFailed struct {
	Peer peer.ID
	Err  error
}

// EvtPeerProtocolsUpdated is emitted when a peer we had identified tells us
// (by identify push) that its protocols changed.
type EvtPeerProtocolsUpdated struct {
	Peer    peer.ID
	Added   []protocol.ID
	Removed []protocol.ID
}

// EvtLocalAddrsUpdated is emitted when the host's listen addresses changed.
type EvtLocalAddrsUpdated struct {
	Current []ma.Multiaddr
	Added   []ma.Multiaddr
	Removed []ma.Multiaddr
}

// EvtLocalProtocolsUpdated is emitted when the host started or stopped
// serving protocols (SetStreamHandler, RemoveStreamHandler).
type EvtLocalProtocolsUpdated struct {
	Added   []protocol.ID
	Removed []protocol.ID
}

// EvtAdvertisedAddrsUpdated is emitted when the addresses the host tells
// peers anywhere changed (Host.AdvertisedAddrs): an address confirmed or
// refuted, a relay address gained or lost.
type EvtAdvertisedAddrsUpdated struct {
	Current []ma.Multiaddr
}

// EvtAddrReachability reports that the verdict on one of the host's
// addresses changed: "unknown", "public" (AutoNAT servers dialed it) or
// "private" (they could not).
type EvtAddrReachability struct {
	Addr     ma.Multiaddr
	From, To string
	// Servers are the AutoNAT servers whose answers decided it.
	Servers []peer.ID
}

// EvtHolePunch reports one attempt to replace a relayed connection with a
// direct one (DCUtR, or the plain dial before it).
type EvtHolePunch struct {
	Peer peer.ID
	// Side is "initiator" (we accepted the relayed connection and led the
	// exchange) or "responder".
	Side string
	// Attempt counts from 1; 0 is the connection reversal, a plain dial of
	// the peer's public addresses.
	Attempt int
	// Addrs are the peer's addresses dialed.
	Addrs []ma.Multiaddr
	// RTT is the round trip measured over the relay (initiator only).
	RTT time.Duration
	// Took is from the start of the attempt to its end.
	Took    time.Duration
	Success bool
	// Transport and Remote describe the direct connection on success.
	Transport string
	Remote    ma.Multiaddr
	// Reason says why an attempt failed; Err is the error behind it.
	Reason string
	Err    error
}
