package testbed

import (
	"encoding/binary"
	"net/netip"
)

// drops reports whether the Ethernet frame f matches the black hole.
func (b Blackhole) drops(f []byte) bool {
	if len(f) < 14 {
		return false
	}
	ip := f[14:]
	var proto byte
	var src, dst netip.Addr
	switch binary.BigEndian.Uint16(f[12:]) {
	case 0x0800:
		if len(ip) < 20 {
			return false
		}
		proto = ip[9]
		src, dst = netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
	case 0x86dd:
		if len(ip) < 40 {
			return false
		}
		proto = ip[6]
		// Neighbour discovery passes, so the black hole looks like a
		// silent path, not an unreachable neighbour.
		if proto == 58 && len(ip) > 40 && ip[40] >= 133 && ip[40] <= 137 {
			return false
		}
		if b.IPv6 {
			return true
		}
		src, dst = netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
	default:
		return false // ARP and the rest
	}
	if b.UDP && proto == 17 {
		return true
	}
	for _, a := range b.Addrs {
		if a.Unmap() == src || a.Unmap() == dst {
			return true
		}
	}
	return false
}
