package tachyon

import (
	"net/netip"
	"slices"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/tachyon-p2p/tachyon/swarm"
)

// PublicPrefixes declares addresses in prefixes public, beside what
// manet.IsPublicAddr says: for testbeds and private deployments whose
// "Internet" is private address space. Such addresses are advertised to
// every peer (once confirmed), sent and dialed in hole punches, and tested
// by AutoNAT servers. Off by default.
func PublicPrefixes(prefixes ...netip.Prefix) Option {
	return func(c *config) error {
		c.publicPrefixes = append(c.publicPrefixes, prefixes...)
		return nil
	}
}

// scope is how far an address reaches.
type scope int

const (
	scopeLoopback scope = iota // this machine
	scopeLAN                   // private, link-local and unique-local ranges
	scopePublic                // everything else: the Internet
)

// scopeOf says how far a reaches; a relayed address reaches as far as its
// relay's. A name (/dns...) is taken as public.
func scopeOf(a ma.Multiaddr, public []netip.Prefix) scope {
	if len(a) == 0 {
		return scopePublic
	}
	var ip netip.Addr
	switch a[0].Code() {
	case ma.P_IP4, ma.P_IP6, ma.P_IP6ZONE:
		if x, err := manet.ToIP(a); err == nil {
			ip, _ = netip.AddrFromSlice(x)
			ip = ip.Unmap()
		}
	default:
		return scopePublic
	}
	switch {
	case !ip.IsValid():
		return scopePublic
	case slices.ContainsFunc(public, func(p netip.Prefix) bool { return p.Contains(ip) }):
		// Declared public: that wins, even over loopback (tests).
		return scopePublic
	case ip.IsLoopback():
		return scopeLoopback
	case ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() || !manet.IsPublicAddr(a):
		return scopeLAN
	}
	return scopePublic
}

// advertise picks, from all our addresses (named security forms and relay
// addresses included), those to tell a peer that we see at remote (nil: a
// peer anywhere, as in what the network at large is told):
//
//   - an address is told only to peers it can reach: loopback ones to peers
//     over loopback, private ones to peers over loopback or a private
//     network, public ones to all; a relayed address reaches as far as its
//     relay's;
//   - a public address, or the named form of one, is told only when
//     confirmed says so (nil: all are); relay addresses need no
//     confirmation: the relay vouches for them.
func advertise(all []ma.Multiaddr, remote ma.Multiaddr, public []netip.Prefix, confirmed func(ma.Multiaddr) bool) []ma.Multiaddr {
	peerScope := scopePublic
	if remote != nil {
		peerScope = scopeOf(remote, public)
	}
	var out []ma.Multiaddr
	for _, a := range all {
		s := scopeOf(a, public)
		switch {
		case s < peerScope:
			continue
		case s == scopePublic && confirmed != nil && !swarm.IsRelayAddr(a) && !confirmed(withoutNamedSecurity(a)):
			continue
		}
		out = append(out, a)
	}
	return out
}

// withoutNamedSecurity turns /tcp/P/tls and /tcp/P/noise into /tcp/P.
func withoutNamedSecurity(a ma.Multiaddr) ma.Multiaddr {
	if n := len(a); n >= 3 && a[n-2].Code() == ma.P_TCP && (a[n-1].Code() == ma.P_TLS || a[n-1].Code() == ma.P_NOISE) {
		return a[:n-1]
	}
	return a
}

// advertisedTo is what identify tells a peer that we see at remote.
func (h *Host) advertisedTo(remote ma.Multiaddr) []ma.Multiaddr {
	return advertise(h.Addrs(), remote, h.cfg.publicPrefixes, h.confirmedFunc())
}

// AdvertisedAddrs are the addresses the host tells peers anywhere (identify,
// identify push, the signed peer record): its public addresses that were
// confirmed reachable, their named security forms, and its relay
// addresses. Peers on its LAN, or on the same machine, are also told its
// private or loopback addresses.
func (h *Host) AdvertisedAddrs() []ma.Multiaddr { return h.advertisedTo(nil) }
