package tachyon

import (
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// ifaceTTL is how long a listing of the machine's interface addresses is
// reused: an address added to or removed from an interface shows in the
// host's addresses within it.
const ifaceTTL = time.Second

// ifaceCache holds the machine's interface addresses, which expand an
// unspecified listen address (0.0.0.0, ::). Listing them is a netlink dump
// (about 45 µs and 90 allocations here), and identify reads our addresses
// on every connection: a node listening on all interfaces with every
// transport (ten such addresses) paid that ten times per connection.
type ifaceCache struct {
	list func() ([]ma.Multiaddr, error) // manet.InterfaceMultiaddrs; tests replace it
	now  func() time.Time

	mu    sync.Mutex
	at    time.Time // when addrs was listed; zero: never
	addrs []ma.Multiaddr
	err   error
}

func newIfaceCache() *ifaceCache {
	return &ifaceCache{list: manet.InterfaceMultiaddrs, now: time.Now}
}

// get returns the interface addresses, listed at most ifaceTTL ago. The
// slice is shared: callers do not modify it.
func (c *ifaceCache) get() ([]ma.Multiaddr, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.at.IsZero() || now.Sub(c.at) >= ifaceTTL || now.Before(c.at) {
		c.addrs, c.err = c.list()
		c.at = now
	}
	return c.addrs, c.err
}

// expandListen turns the swarm's listen addresses raw into the addresses
// the host listens on: an unspecified IP is replaced by each interface
// address of its family (IPv6 link-local ones left out); circuit listen
// addresses are left out.
func (c *ifaceCache) expandListen(raw []ma.Multiaddr) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range raw {
		if isCircuitListen(a) {
			continue
		}
		ip := a[0]
		if (ip.Code() == ma.P_IP4 || ip.Code() == ma.P_IP6) && manet.IsIPUnspecified(ma.Multiaddr{ip}) {
			ifaddrs, err := c.get()
			if err != nil {
				continue
			}
			for _, ia := range ifaddrs {
				if ia[0].Code() == ip.Code() && !manet.IsIP6LinkLocal(ia) {
					out = append(out, ia.Encapsulate(a[1:]))
				}
			}
			continue
		}
		out = append(out, a)
	}
	return out
}
