package quic

import (
	"fmt"
	"net"
	"net/netip"

	ma "github.com/multiformats/go-multiaddr"
)

// ParseAddr splits /ip4|ip6/<ip>/udp/<port>/quic-v1 followed by any further
// components (WebTransport passes /webtransport/certhash/…) into the UDP
// address and the rest. It fails on anything else, including draft-29
// /quic, DNS names and IPv6 zones.
func ParseAddr(addr ma.Multiaddr) (netip.AddrPort, ma.Multiaddr, error) {
	if len(addr) < 3 {
		return netip.AddrPort{}, nil, fmt.Errorf("quic: %q is not an /ip/…/udp/…/quic-v1 address", addr)
	}
	var ip netip.Addr
	switch addr[0].Code() {
	case ma.P_IP4, ma.P_IP6:
		var ok bool
		ip, ok = netip.AddrFromSlice(addr[0].RawValue())
		if !ok {
			return netip.AddrPort{}, nil, fmt.Errorf("quic: bad IP in %q", addr)
		}
		if addr[0].Code() == ma.P_IP4 {
			ip = ip.Unmap()
		}
	default:
		return netip.AddrPort{}, nil, fmt.Errorf("quic: %q does not start with /ip4 or /ip6", addr)
	}
	if addr[1].Code() != ma.P_UDP {
		return netip.AddrPort{}, nil, fmt.Errorf("quic: %q has no /udp after the IP", addr)
	}
	raw := addr[1].RawValue()
	if len(raw) != 2 {
		return netip.AddrPort{}, nil, fmt.Errorf("quic: bad UDP port in %q", addr)
	}
	port := uint16(raw[0])<<8 | uint16(raw[1])
	if addr[2].Code() != ma.P_QUIC_V1 {
		return netip.AddrPort{}, nil, fmt.Errorf("quic: %q is not QUIC v1 (only /quic-v1 is supported)", addr)
	}
	return netip.AddrPortFrom(ip, port), addr[3:], nil
}

// FormatAddr returns /ip4|ip6/<ip>/udp/<port>/quic-v1.
func FormatAddr(a netip.AddrPort) ma.Multiaddr {
	ip := a.Addr().Unmap()
	var c *ma.Component
	if ip.Is4() {
		c, _ = ma.NewComponent("ip4", ip.String())
	} else {
		c, _ = ma.NewComponent("ip6", ip.WithZone("").String())
	}
	u, _ := ma.NewComponent("udp", fmt.Sprint(a.Port()))
	q, _ := ma.NewComponent("quic-v1", "")
	return ma.Multiaddr{*c, *u, *q}
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if u, ok := a.(*net.UDPAddr); ok {
		ap := u.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}
