// Package resolve expands the DNS components of multiaddrs into IP
// addresses before they are dialed:
//
//	/dns4/<name>     A records only         → /ip4/<a>
//	/dns6/<name>     AAAA records only      → /ip6/<aaaa>
//	/dns/<name>      both                   → /ip4/<a>, /ip6/<aaaa>
//	/dnsaddr/<name>  TXT records at _dnsaddr.<name> of the form
//	                 "dnsaddr=<multiaddr>", each resolved in turn
//
// For /dns, /dns4 and /dns6 the rest of the address is kept:
// /dns4/example.com/tcp/4001/p2p/Qm… becomes /ip4/1.2.3.4/tcp/4001/p2p/Qm….
// A name that TLS needs survives the lookup as an /sni component: /tls is
// followed by /sni/<name> and /wss becomes /tls/sni/<name>/ws, so
// /dns4/example.com/tcp/443/wss becomes
// /ip4/1.2.3.4/tcp/443/tls/sni/example.com/ws.
//
// For /dnsaddr whatever follows the name filters the records: only those
// ending in it are kept, so /dnsaddr/bootstrap.libp2p.io/p2p/Qm… yields the
// addresses of peer Qm… alone. Records may name further /dnsaddr (or /dns*)
// addresses; they are resolved recursively, within Resolver's limits on
// depth, lookups and results (see the Max fields).
//
// The multiaddrs are github.com/multiformats/go-multiaddr values, with the
// protocols of https://github.com/multiformats/multiaddr (protocols.csv and
// protocols/DNSADDR.md) and libp2p's addressing spec.
package resolve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	ma "github.com/multiformats/go-multiaddr"
)

// Defaults for the zero fields of a Resolver.
const (
	// DefaultMaxDepth bounds chains of /dnsaddr records pointing at further
	// /dnsaddr names. The public bootstrap list uses two levels; go-libp2p
	// stops at 4 and js-libp2p at 32.
	DefaultMaxDepth = 8
	// DefaultMaxAddrs bounds the addresses one Resolve returns (as go-libp2p).
	DefaultMaxAddrs = 100
	// DefaultMaxLookups bounds the DNS queries one Resolve makes, whatever
	// the shape of the records (wide fan-outs, loops).
	DefaultMaxLookups = 128
)

var (
	// ErrNoAddresses is returned when the names exist but yield no
	// address: no records of the asked family, or no dnsaddr record that
	// matches.
	ErrNoAddresses = errors.New("no matching addresses")
	// ErrTooDeep is returned for /dnsaddr records nested deeper than MaxDepth.
	ErrTooDeep = errors.New("dnsaddr records nested too deep")
	// ErrTooManyLookups is returned when a Resolve would need more than
	// MaxLookups queries.
	ErrTooManyLookups = errors.New("too many DNS lookups")
)

// Backend looks up names. *net.Resolver satisfies it.
//
// A Backend that also has LookupNetIP(ctx, network, host string)
// ([]netip.Addr, error), as *net.Resolver does, is asked with network "ip4"
// for /dns4 and "ip6" for /dns6, which saves the query of the other family.
type Backend interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

type netIPBackend interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Resolver resolves the DNS components of multiaddrs. The zero value (and a
// nil *Resolver) uses net.DefaultResolver and the default limits. It is safe
// for concurrent use.
type Resolver struct {
	// Backend does the lookups; nil means net.DefaultResolver.
	Backend Backend
	// MaxDepth bounds how many /dnsaddr lookups may be chained, the first
	// included. Zero means DefaultMaxDepth.
	MaxDepth int
	// MaxAddrs bounds the results of one Resolve; lookups stop once it is
	// reached. Zero means DefaultMaxAddrs.
	MaxAddrs int
	// MaxLookups bounds the DNS queries of one Resolve. Zero means
	// DefaultMaxLookups.
	MaxLookups int
}

// NeedsResolve reports whether a has a DNS component (/dns, /dns4, /dns6 or
// /dnsaddr).
func NeedsResolve(a ma.Multiaddr) bool { return dnsIndex(a) >= 0 }

func dnsIndex(a ma.Multiaddr) int {
	for i := range a {
		switch a[i].Code() {
		case ma.P_DNS, ma.P_DNS4, ma.P_DNS6, ma.P_DNSADDR:
			return i
		}
	}
	return -1
}

// Resolve expands the DNS components of a, recursively for /dnsaddr, into
// addresses without any: in record order, deduplicated, at most MaxAddrs.
// An address without DNS components comes back unchanged, as the only
// element. Branches that fail (a name not found, a chain too deep) are
// skipped as long as another yields an address; when none does, the error
// names a and wraps every failure (ErrNoAddresses if nothing failed). When
// ctx ends first, the error wraps ctx.Err().
func (r *Resolver) Resolve(ctx context.Context, a ma.Multiaddr) ([]ma.Multiaddr, error) {
	if !NeedsResolve(a) {
		return []ma.Multiaddr{a}, nil
	}
	st := &state{
		top:        a,
		backend:    net.DefaultResolver,
		maxDepth:   DefaultMaxDepth,
		maxAddrs:   DefaultMaxAddrs,
		maxLookups: DefaultMaxLookups,
		seen:       make(map[string]bool),
	}
	if r != nil {
		if r.Backend != nil {
			st.backend = r.Backend
		}
		if r.MaxDepth > 0 {
			st.maxDepth = r.MaxDepth
		}
		if r.MaxAddrs > 0 {
			st.maxAddrs = r.MaxAddrs
		}
		if r.MaxLookups > 0 {
			st.maxLookups = r.MaxLookups
		}
	}
	st.expand(ctx, a, 0)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("resolve %s: %w", a, err)
	}
	if len(st.out) > 0 {
		return st.out, nil
	}
	if st.exhausted {
		err := fmt.Errorf("%w (more than %d)", ErrTooManyLookups, st.maxLookups)
		st.errs = append([]error{err}, st.errs...)
	}
	switch len(st.errs) {
	case 0:
		return nil, fmt.Errorf("resolve %s: %w", a, ErrNoAddresses)
	case 1:
		return nil, fmt.Errorf("resolve %s: %w", a, st.errs[0])
	}
	return nil, fmt.Errorf("resolve %s: %w", a, errList(st.errs))
}

// state is one Resolve call.
type state struct {
	top        ma.Multiaddr
	backend    Backend
	maxDepth   int
	maxAddrs   int
	maxLookups int

	lookups   int
	exhausted bool // a lookup was refused: MaxLookups reached
	seen      map[string]bool
	out       []ma.Multiaddr
	errs      []error
}

func (st *state) done(ctx context.Context) bool {
	return len(st.out) >= st.maxAddrs || st.exhausted || ctx.Err() != nil
}

// maxErrs bounds the failures a Resolve keeps for its error.
const maxErrs = 16

// fail records why a, one of the addresses met while resolving, gave nothing.
func (st *state) fail(a ma.Multiaddr, err error) {
	if !a.Equal(st.top) {
		err = fmt.Errorf("%s: %w", a, err)
	}
	if errors.Is(err, ErrTooManyLookups) {
		return // reported once, first, by Resolve
	}
	if len(st.errs) < maxErrs {
		st.errs = append(st.errs, err)
	}
}

// expand resolves the first DNS component of a and recurses on the results;
// depth is the number of /dnsaddr lookups that led to a.
func (st *state) expand(ctx context.Context, a ma.Multiaddr, depth int) {
	if st.done(ctx) {
		return
	}
	i := dnsIndex(a)
	if i < 0 {
		k := string(a.Bytes())
		if !st.seen[k] {
			st.seen[k] = true
			st.out = append(st.out, a)
		}
		return
	}
	pre, c, post := a[:i], &a[i], a[i+1:]
	name := c.Value()
	if c.Code() == ma.P_DNSADDR {
		if depth >= st.maxDepth {
			st.fail(a, fmt.Errorf("%w (more than %d)", ErrTooDeep, st.maxDepth))
			return
		}
		txts, err := st.lookupTXT(ctx, "_dnsaddr."+name)
		if err != nil {
			st.fail(a, err)
			return
		}
		done := make(map[string]bool, len(txts))
		for _, txt := range txts {
			if done[txt] {
				continue
			}
			done[txt] = true
			m, err := parseTXT(txt)
			if err != nil || !hasSuffix(m, post) {
				continue // not a dnsaddr record, or for another peer
			}
			st.expand(ctx, join(pre, m), depth+1)
			if st.done(ctx) {
				return
			}
		}
		return
	}
	ips, err := st.lookupIP(ctx, c.Code(), name)
	if err != nil {
		st.fail(a, err)
		return
	}
	post = keepName(name, post)
	for _, ip := range ips {
		st.expand(ctx, join(pre, ip, post), depth)
		if st.done(ctx) {
			return
		}
	}
}

func (st *state) count() error {
	if st.lookups >= st.maxLookups {
		st.exhausted = true
		return ErrTooManyLookups
	}
	st.lookups++
	return nil
}

func (st *state) lookupTXT(ctx context.Context, name string) ([]string, error) {
	if err := st.count(); err != nil {
		return nil, err
	}
	return st.backend.LookupTXT(ctx, name)
}

// lookupIP returns the addresses of name for a /dns (code P_DNS), /dns4 or
// /dns6 component, as /ip4, /ip6 or /ip6zone/…/ip6 multiaddrs, in the
// backend's order.
func (st *state) lookupIP(ctx context.Context, code int, name string) ([]ma.Multiaddr, error) {
	if err := st.count(); err != nil {
		return nil, err
	}
	var ips []netip.Addr
	if b, ok := st.backend.(netIPBackend); ok {
		network := "ip"
		switch code {
		case ma.P_DNS4:
			network = "ip4"
		case ma.P_DNS6:
			network = "ip6"
		}
		var err error
		if ips, err = b.LookupNetIP(ctx, network, name); err != nil {
			return nil, err
		}
	} else {
		addrs, err := st.backend.LookupIPAddr(ctx, name)
		if err != nil {
			return nil, err
		}
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok {
				if ip.Is6() && !ip.Is4In6() {
					ip = ip.WithZone(a.Zone)
				}
				ips = append(ips, ip)
			}
		}
	}
	var out []ma.Multiaddr
	for _, ip := range ips {
		// An IPv4-mapped IPv6 address is taken as IPv4, as the Go resolver
		// returns A records in that form.
		ip = ip.Unmap()
		if (ip.Is4() && code == ma.P_DNS6) || (ip.Is6() && code == ma.P_DNS4) || !ip.IsValid() {
			continue
		}
		if m := ipAddr(ip); m != nil {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		return nil, ErrNoAddresses
	}
	return out, nil
}

// ipAddr returns /ip4/<ip>, /ip6/<ip> or, for a zoned IPv6 address,
// /ip6zone/<zone>/ip6/<ip>.
func ipAddr(ip netip.Addr) ma.Multiaddr {
	if ip.Is4() {
		c, err := ma.NewComponent("ip4", ip.String())
		if err != nil {
			return nil
		}
		return c.Multiaddr()
	}
	c, err := ma.NewComponent("ip6", ip.WithZone("").String())
	if err != nil {
		return nil
	}
	if ip.Zone() == "" {
		return c.Multiaddr()
	}
	z, err := ma.NewComponent("ip6zone", ip.Zone())
	if err != nil {
		return nil
	}
	return ma.Multiaddr{*z, *c}
}

const txtPrefix = "dnsaddr="

var errNotDNSAddr = errors.New("resolve: TXT record does not start with " + txtPrefix)

// parseTXT parses a TXT record "dnsaddr=<multiaddr>".
func parseTXT(txt string) (ma.Multiaddr, error) {
	s, ok := strings.CutPrefix(txt, txtPrefix)
	if !ok {
		return nil, errNotDNSAddr
	}
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		return nil, fmt.Errorf("resolve: TXT record %q: %w", txt, err)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("resolve: TXT record %q has an empty multiaddr", txt)
	}
	return m, nil
}

// hasSuffix reports whether a ends with the components of suffix.
func hasSuffix(a, suffix ma.Multiaddr) bool {
	if len(suffix) > len(a) {
		return false
	}
	return a[len(a)-len(suffix):].Equal(suffix)
}

// join concatenates multiaddrs into a new one.
func join(parts ...ma.Multiaddr) ma.Multiaddr {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make(ma.Multiaddr, 0, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// keepName returns post, the components after the /dns* name, with the
// name recorded for TLS: the first /tls or /wss of this hop (before any
// /p2p-circuit or further host) gets /sni/<name> unless it has one.
func keepName(name string, post ma.Multiaddr) ma.Multiaddr {
	name = strings.TrimSuffix(name, ".")
	if name == "" {
		return post
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return post // an IP literal is no server name
	}
	for i := range post {
		switch post[i].Code() {
		case ma.P_TLS:
			if i+1 < len(post) && post[i+1].Code() == ma.P_SNI {
				return post
			}
			sni, err := ma.NewComponent("sni", name)
			if err != nil {
				return post
			}
			return join(post[:i+1], sni.Multiaddr(), post[i+1:])
		case ma.P_WSS:
			tls, _ := ma.NewComponent("tls", "")
			sni, err := ma.NewComponent("sni", name)
			ws, _ := ma.NewComponent("ws", "")
			if err != nil || tls == nil || ws == nil {
				return post
			}
			return join(post[:i], ma.Multiaddr{*tls, *sni, *ws}, post[i+1:])
		case ma.P_CIRCUIT, ma.P_IP4, ma.P_IP6, ma.P_IP6ZONE,
			ma.P_DNS, ma.P_DNS4, ma.P_DNS6, ma.P_DNSADDR:
			return post
		}
	}
	return post
}

// errList is several failures, printed on one line.
type errList []error

func (e errList) Error() string {
	var b strings.Builder
	for i, err := range e {
		if i > 0 {
			b.WriteString("; ")
		}
		if i == 8 {
			fmt.Fprintf(&b, "and %d more", len(e)-i)
			break
		}
		b.WriteString(err.Error())
	}
	return b.String()
}

func (e errList) Unwrap() []error { return e }
