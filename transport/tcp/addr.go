package tcp

import (
	"net"
	"net/netip"
	"sync"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// maxIPComponents bounds ipComponents; past it the cache starts over.
const maxIPComponents = 1024

// ipComponents caches the /ip4 and /ip6 components of the addresses of
// connections. manet.FromNetAddr formats the IP as text and parses it back
// (about 2 µs and 24 allocations per address, three addresses per
// connection); the IPs a node sees are few (its own, its peers'), so only
// the /tcp component is built per connection.
var ipComponents struct {
	sync.Mutex
	m map[netip.Addr]ma.Component
}

// FromTCPAddr is manet.FromNetAddr for the address of a TCP socket, built
// without formatting the IP (any other address goes to manet).
func FromTCPAddr(a net.Addr) (ma.Multiaddr, error) {
	ta, ok := a.(*net.TCPAddr)
	if !ok || ta.Zone != "" || ta.Port < 0 || ta.Port > 0xffff {
		return manet.FromNetAddr(a)
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return manet.FromNetAddr(a)
	}
	ip = ip.Unmap()
	ipc, err := ipComponent(ip)
	if err != nil {
		return nil, err
	}
	var port ma.Component
	if err := port.UnmarshalBinary([]byte{ma.P_TCP, byte(ta.Port >> 8), byte(ta.Port)}); err != nil {
		return nil, err
	}
	return ma.Multiaddr{ipc, port}, nil
}

func ipComponent(ip netip.Addr) (ma.Component, error) {
	ipComponents.Lock()
	defer ipComponents.Unlock()
	if c, ok := ipComponents.m[ip]; ok {
		return c, nil
	}
	b := make([]byte, 0, 1+16)
	if ip.Is4() {
		b = append(b, ma.P_IP4)
	} else {
		b = append(b, ma.P_IP6)
	}
	b = append(b, ip.AsSlice()...)
	var c ma.Component
	if err := c.UnmarshalBinary(b); err != nil {
		return ma.Component{}, err
	}
	if ipComponents.m == nil || len(ipComponents.m) >= maxIPComponents {
		ipComponents.m = make(map[netip.Addr]ma.Component)
	}
	ipComponents.m[ip] = c
	return c, nil
}
