package swarm

import (
	"net"
	"net/netip"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/dialrank"
)

// What the swarm remembers between dials for ranking them: per-address
// back-off after failures, and our networks' prefixes. RTT estimates and
// black-hole verdicts live in dialrank's stores (Config.RTTs,
// Config.BlackHoles).

const (
	// backoffBase is the first back-off of an address that failed; each
	// failure in a row doubles it, up to backoffMax. A back-off only ranks
	// the address last (dialrank rule 8), it never keeps it from being
	// dialed, so it can be generous.
	backoffBase = 5 * time.Second
	backoffMax  = 5 * time.Minute
	// maxBackoffs bounds the table: a node dialing many peers must not
	// grow it without end. Expired entries go first, then arbitrary ones.
	maxBackoffs = 4096
	// prefixesTTL is how long our interfaces' prefixes are cached.
	prefixesTTL = 30 * time.Second
)

type backoffKey struct {
	p    peer.ID
	addr string // the address's bytes
}

type backoffEntry struct {
	until    time.Time
	failures int
}

// backoffs is the per-address back-off table.
type backoffs struct {
	mu sync.Mutex
	m  map[backoffKey]backoffEntry
}

// until returns when a's back-off for p ends (zero: none).
func (b *backoffs) until(p peer.ID, a ma.Multiaddr) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.m[backoffKey{p, string(a.Bytes())}].until
}

// learn updates the table from a finished dial: an address that connected
// or was overtaken by another is cleared of nothing (overtaken says
// nothing), one that answered with a connection is forgiven, one that
// failed backs off longer.
func (b *backoffs) learn(t *dialrank.Trace) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = make(map[backoffKey]backoffEntry)
	}
	for i := range t.Attempts {
		a := &t.Attempts[i]
		k := backoffKey{t.Peer, string(a.Dial.Addr.Bytes())}
		switch a.Outcome {
		case dialrank.Connected:
			delete(b.m, k)
		case dialrank.Refused, dialrank.Unreachable, dialrank.Timeout, dialrank.PeerMismatch, dialrank.Failed:
			e := b.m[k]
			e.failures++
			d := backoffBase << min(e.failures-1, 16)
			e.until = a.End.Add(min(d, backoffMax))
			if len(b.m) >= maxBackoffs {
				b.pruneLocked(a.End)
			}
			b.m[k] = e
		}
	}
}

// pruneLocked drops expired entries, and half the table if none expired.
func (b *backoffs) pruneLocked(now time.Time) {
	for k, e := range b.m {
		if e.until.Before(now) {
			delete(b.m, k)
		}
	}
	for k := range b.m {
		if len(b.m) < maxBackoffs/2 {
			break
		}
		delete(b.m, k)
	}
}

// prefixes caches our interfaces' prefixes, so that a private address of
// a peer on one of our networks is dialed (dialrank rule 5).
type prefixes struct {
	mu      sync.Mutex
	at      time.Time
	cached  []netip.Prefix
	resolve func() []netip.Prefix // Config.LocalPrefixes, or the interfaces
}

func (c *prefixes) get(now time.Time) []netip.Prefix {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at.IsZero() || now.Sub(c.at) > prefixesTTL {
		c.cached, c.at = c.resolve(), now
	}
	return c.cached
}

// machinePrefixes is shared by the swarms of a process: they are in the
// same network namespace, and a new host's first dial should not pay a
// netlink dump of the interfaces (tens of microseconds, a sixth of a
// loopback connection's setup) that another host made a moment ago.
var machinePrefixes = &prefixes{resolve: interfacePrefixes}

// interfacePrefixes returns the prefixes of this machine's (this network
// namespace's) interfaces.
func interfacePrefixes() []netip.Prefix {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	out := make([]netip.Prefix, 0, len(addrs))
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		ones, bits := n.Mask.Size()
		if ip.Is4In6() && bits == 128 {
			ones -= 96
		}
		out = append(out, netip.PrefixFrom(ip.Unmap(), ones).Masked())
	}
	return out
}
