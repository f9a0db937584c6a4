package network

import (
	"context"
	"errors"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/peer"
)

// ErrLimitedConn is returned by NewStream when the only connection to a peer
// is limited (a relayed connection with data and time limits) and the
// caller did not allow limited connections, and by an inbound stream
// negotiation for a protocol that did not opt in to them.
var ErrLimitedConn = errors.New("the only connection to the peer is limited (relayed); allow it with network.WithAllowLimitedConn, or connect directly")

type allowLimitedKey struct{}

// WithAllowLimitedConn returns a context in which NewStream may use a
// limited connection. reason names the caller, for logs and errors.
func WithAllowLimitedConn(ctx context.Context, reason string) context.Context {
	return context.WithValue(ctx, allowLimitedKey{}, reason)
}

// AllowLimitedConn reports whether ctx came from WithAllowLimitedConn.
func AllowLimitedConn(ctx context.Context) bool {
	return ctx.Value(allowLimitedKey{}) != nil
}

type forceDirectKey struct{}

// WithForceDirectDial returns a context in which a dial ignores existing
// limited connections and dials the peer's direct (non-relay) addresses,
// as hole punching must.
func WithForceDirectDial(ctx context.Context, reason string) context.Context {
	return context.WithValue(ctx, forceDirectKey{}, reason)
}

// ForceDirectDial reports whether ctx came from WithForceDirectDial.
func ForceDirectDial(ctx context.Context) bool {
	return ctx.Value(forceDirectKey{}) != nil
}

type noDialKey struct{}

// WithNoDial returns a context in which NewStream uses only an existing
// connection and fails rather than dial (a relay opening a STOP stream to a
// peer that holds a reservation over its connection).
func WithNoDial(ctx context.Context, reason string) context.Context {
	return context.WithValue(ctx, noDialKey{}, reason)
}

// NoDial reports whether ctx came from WithNoDial.
func NoDial(ctx context.Context) bool {
	return ctx.Value(noDialKey{}) != nil
}

type simOpenKey struct{}

// WithSimultaneousConnect returns a context for a hole-punching dial where
// both peers dial each other at once (TCP simultaneous open): both sockets
// look outbound, so the roles come from the hole-punch protocol instead.
// isClient says whether this side acts as the client of the upgrade
// (multistream-select initiator, security initiator, muxer client); the
// other side acts as the server and verifies the dialed peer just the same.
func WithSimultaneousConnect(ctx context.Context, isClient bool) context.Context {
	return context.WithValue(ctx, simOpenKey{}, isClient)
}

// SimultaneousConnect reports whether ctx came from WithSimultaneousConnect,
// and with which role.
func SimultaneousConnect(ctx context.Context) (isClient, ok bool) {
	isClient, ok = ctx.Value(simOpenKey{}).(bool)
	return isClient, ok
}

// HolePuncher is a Transport that can open a direct connection through NATs
// in the role of the peer that does not dial (the DCUtR initiator on QUIC):
// it sends packets to raddr from its listening socket, so that the peer's
// dial gets through both NATs, and returns the connection peer p makes to
// it. It fails when ctx ends first.
type HolePuncher interface {
	HolePunch(ctx context.Context, raddr ma.Multiaddr, p peer.ID) (TransportConn, error)
}

// Reachability is whether a node can be dialed from the Internet.
type Reachability int

const (
	// ReachabilityUnknown: not determined (yet).
	ReachabilityUnknown Reachability = iota
	// ReachabilityPublic: others can dial at least one of its addresses.
	ReachabilityPublic
	// ReachabilityPrivate: behind a NAT or firewall; reachable through
	// relays only.
	ReachabilityPrivate
)

func (r Reachability) String() string {
	switch r {
	case ReachabilityPublic:
		return "public"
	case ReachabilityPrivate:
		return "private"
	}
	return "unknown"
}
