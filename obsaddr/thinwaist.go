package obsaddr

import (
	"encoding/binary"
	"net/netip"

	ma "github.com/multiformats/go-multiaddr"
)

// sock is an IP, a TCP or UDP port: the part of an address a NAT maps, and
// the "thin waist" every libp2p transport on that port shares.
type sock struct {
	udp  bool
	ip   netip.Addr // as the multiaddr holds it: /ip4 is 4-byte, /ip6 16-byte
	port uint16
}

// thinWaist splits a into its socket, the code of the component right after
// a UDP port (quic-v1, webrtc-direct, ...; 0 for TCP, whose WebSocket and
// security layers ride on the same TCP mapping), and the components after
// the port. ok is false unless a starts with /ip4 or /ip6 then /tcp or /udp.
func thinWaist(a ma.Multiaddr) (s sock, transport int, rest ma.Multiaddr, ok bool) {
	if len(a) < 2 {
		return sock{}, 0, nil, false
	}
	ip, ok := ipOf(&a[0])
	if !ok {
		return sock{}, 0, nil, false
	}
	switch a[1].Code() {
	case ma.P_TCP:
	case ma.P_UDP:
		s.udp = true
		if len(a) > 2 {
			transport = a[2].Code()
		}
	default:
		return sock{}, 0, nil, false
	}
	raw := a[1].RawValue()
	if len(raw) != 2 {
		return sock{}, 0, nil, false
	}
	s.ip, s.port = ip, binary.BigEndian.Uint16(raw)
	return s, transport, a[2:], true
}

// ipOf is the IP of an /ip4 or /ip6 component.
func ipOf(c *ma.Component) (netip.Addr, bool) {
	switch c.Code() {
	case ma.P_IP4, ma.P_IP6:
	default:
		return netip.Addr{}, false
	}
	ip, ok := netip.AddrFromSlice(c.RawValue())
	if !ok || ip.Is4() != (c.Code() == ma.P_IP4) {
		return netip.Addr{}, false
	}
	return ip, true
}

// observerGroup is the network an observer sits in: its /bits4 for IPv4
// (IPv4-mapped IPv6 included), its /bits6 for IPv6.
func observerGroup(remote ma.Multiaddr, bits4, bits6 int) (netip.Prefix, bool) {
	if len(remote) == 0 {
		return netip.Prefix{}, false
	}
	ip, ok := ipOf(&remote[0])
	if !ok {
		return netip.Prefix{}, false
	}
	ip = ip.Unmap()
	bits := bits6
	if ip.Is4() {
		bits = bits4
	}
	p, err := ip.Prefix(bits)
	return p, err == nil
}

// sameFamily reports whether a and b are both IPv4 or both IPv6 in
// multiaddr terms (/ip6/::ffff:a.b.c.d is IPv6 there).
func sameFamily(a, b netip.Addr) bool { return a.Is4() == b.Is4() }

// usable reports whether ip can be an outside address a NAT gives us.
func usable(ip netip.Addr) bool {
	u := ip.Unmap()
	return !u.IsLoopback() && !u.IsUnspecified() && !u.IsMulticast() && !nat64.Contains(ip)
}

// nat64 is the well-known NAT64 prefix (RFC 6052): an IPv6-only peer behind
// NAT64 sees us at an address that only exists inside its network.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// listens reports whether a connection on local could be on listener l: the
// same protocol, family and port, and the same IP unless either side is
// unspecified (a wildcard listener; a UDP socket that cannot tell which of
// its addresses a packet came to).
func (l sock) listens(local sock) bool {
	return l.udp == local.udp && l.port == local.port && sameFamily(l.ip, local.ip) &&
		(l.ip.IsUnspecified() || local.ip.IsUnspecified() || l.ip == local.ip)
}

// multiaddr is s as /ipX/<ip>/tcp|udp/<port>.
func (s sock) multiaddr() ma.Multiaddr {
	b := make([]byte, 0, 24)
	if s.ip.Is4() {
		b = binary.AppendUvarint(b, ma.P_IP4)
	} else {
		b = binary.AppendUvarint(b, ma.P_IP6)
	}
	b = append(b, s.ip.AsSlice()...)
	if s.udp {
		b = binary.AppendUvarint(b, ma.P_UDP)
	} else {
		b = binary.AppendUvarint(b, ma.P_TCP)
	}
	b = binary.BigEndian.AppendUint16(b, s.port)
	a, err := ma.NewMultiaddrBytes(b)
	if err != nil {
		// Unreachable: every sock comes from a parsed address.
		return nil
	}
	return a
}

func hasCircuit(a ma.Multiaddr) bool {
	for _, c := range a {
		if c.Code() == ma.P_CIRCUIT {
			return true
		}
	}
	return false
}
