// Package gater is a connection gater of allow and deny lists, of peers and
// of IP subnets, changeable while the host runs.
//
// The rules, first match wins:
//  1. an allowed peer is allowed, whatever its address (on connections
//     this host dials: an inbound connection from a denied subnet is
//     refused before its handshake, when its peer is not known yet);
//  2. a denied peer is refused;
//  3. an address in an allowed subnet is allowed (so "deny 0.0.0.0/0,
//     allow 10.0.0.0/8" admits only 10/8);
//  4. an address in a denied subnet is refused;
//  5. anything else is allowed.
//
// Addresses without an IP (a /dns name before resolution, a relayed
// address) are judged by their peer alone.
package gater

import (
	"net/netip"
	"sync"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
)

// List is an allow/deny list gater. The zero value allows everything; use
// its methods to add rules. It is safe for concurrent use.
type List struct {
	mu           sync.RWMutex
	allowPeers   map[peer.ID]struct{}
	denyPeers    map[peer.ID]struct{}
	allowSubnets []netip.Prefix
	denySubnets  []netip.Prefix
}

var _ network.ConnectionGater = (*List)(nil)

// AllowPeer admits p whatever its address, and undoes DenyPeer(p).
func (l *List) AllowPeer(p peer.ID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.denyPeers, p)
	if l.allowPeers == nil {
		l.allowPeers = make(map[peer.ID]struct{})
	}
	l.allowPeers[p] = struct{}{}
}

// DenyPeer refuses p, and undoes AllowPeer(p).
func (l *List) DenyPeer(p peer.ID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.allowPeers, p)
	if l.denyPeers == nil {
		l.denyPeers = make(map[peer.ID]struct{})
	}
	l.denyPeers[p] = struct{}{}
}

// ForgetPeer removes p from both lists.
func (l *List) ForgetPeer(p peer.ID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.allowPeers, p)
	delete(l.denyPeers, p)
}

// AllowSubnet admits addresses in s (see the rules in the package doc).
func (l *List) AllowSubnet(s netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.allowSubnets = addPrefix(l.allowSubnets, s)
}

// DenySubnet refuses addresses in s unless an allowed subnet holds them.
// A single address is the subnet of its full length (/32, /128).
func (l *List) DenySubnet(s netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.denySubnets = addPrefix(l.denySubnets, s)
}

// ForgetSubnet removes s from both lists.
func (l *List) ForgetSubnet(s netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s = s.Masked()
	l.allowSubnets = removePrefix(l.allowSubnets, s)
	l.denySubnets = removePrefix(l.denySubnets, s)
}

func addPrefix(list []netip.Prefix, s netip.Prefix) []netip.Prefix {
	s = s.Masked()
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

func removePrefix(list []netip.Prefix, s netip.Prefix) []netip.Prefix {
	out := list[:0]
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

// AllowsIP judges an address alone (rules 3-5). The host asks it before any
// handshake work is spent on an inbound connection.
func (l *List) AllowsIP(ip netip.Addr) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.ipAllowed(ip.Unmap())
}

func (l *List) ipAllowed(ip netip.Addr) bool {
	for _, s := range l.allowSubnets {
		if s.Contains(ip) {
			return true
		}
	}
	for _, s := range l.denySubnets {
		if s.Contains(ip) {
			return false
		}
	}
	return true
}

// allows applies the rules to a peer (may be empty: unknown) and an
// address (may be nil).
func (l *List) allows(p peer.ID, addr ma.Multiaddr) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if p != "" {
		if _, ok := l.allowPeers[p]; ok {
			return true
		}
		if _, ok := l.denyPeers[p]; ok {
			return false
		}
	}
	if addr == nil {
		return true
	}
	ip, err := manet.ToIP(addr)
	if err != nil {
		return true // no IP in it: judged by peer only
	}
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return true
	}
	return l.ipAllowed(a.Unmap())
}

// InterceptPeerDial implements network.ConnectionGater.
func (l *List) InterceptPeerDial(p peer.ID) bool { return l.allows(p, nil) }

// InterceptAddrDial implements network.ConnectionGater.
func (l *List) InterceptAddrDial(p peer.ID, addr ma.Multiaddr) bool { return l.allows(p, addr) }

// InterceptAccept implements network.ConnectionGater: the address alone
// decides, as the peer of an inbound connection is not known before its
// handshake.
func (l *List) InterceptAccept(_, remote ma.Multiaddr) bool { return l.allows("", remote) }

// InterceptSecured implements network.ConnectionGater.
func (l *List) InterceptSecured(_ network.Direction, p peer.ID, _, remote ma.Multiaddr) bool {
	return l.allows(p, remote)
}
