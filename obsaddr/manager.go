// Package obsaddr keeps the addresses peers say they see us at (identify's
// observedAddr) and turns those enough of them agree on into candidate
// addresses for our listeners.
//
// An observation is one connection's report: "the peer at Observer sees your
// Local socket as Observed". Reports are grouped three ways:
//
//   - by local socket (IP and TCP/UDP port: the thin waist a NAT maps), so
//     what QUIC peers report for UDP port 4001 also serves the WebTransport and
//     WebRTC-direct listeners on that port;
//   - by outside endpoint (the observed IP and port);
//   - by observer group: the observer's /24 (IPv4) or /48 (IPv6) by
//     default. A group is one witness however many peers or connections it
//     has.
//
// An outside endpoint is activated while at least ActivationThreshold groups
// report it (at most 4 per local socket, the most supported). Activation
// only makes an address a candidate: the reachability checker (AutoNAT v2)
// decides whether to advertise it.
//
// Lifetime: a report expires TTL after it was last made. With UntilClosed,
// a report lives while its connection is open and expires TTL after
// ConnClosed, so long-lived connections keep an address active without the
// peer repeating itself (identify runs once per connection).
//
// Memory: a group holds at most 2 outside endpoints per local socket (a real
// observer sees one, two while a mapping changes), each report tracks at most
// 8 connections, a local socket at most MaxPerListener reports (default 128)
// and the manager at most MaxTotal (default 1024). A report with its 8
// connections takes about 1.4 KiB: 1.5 MiB at the default caps.
// Past a cap the report whose endpoint the fewest groups support goes first,
// the oldest of those first. So a flood of lies from many networks, each
// claiming its own endpoint, only displaces other lone claims.
//
// What an attacker can do: with ActivationThreshold networks that agree, it
// activates a false endpoint (AutoNAT then finds it unreachable and it is
// never advertised). With more agreeing networks than the honest endpoint
// has groups, 4 false endpoints outrank it in Addrs, and with 64 networks
// (MaxPerListener at 2 endpoints each) it can also evict the honest reports.
// IPv4 /24s cost real address space; IPv6 /48s are cheap (a /32 allocation
// holds 65536), so an attacker with its own IPv6 allocation can do this to
// our IPv6 sockets. Each report still costs a handshake and identify, which
// the resource manager limits per IP and subnet.
//
// The Manager has no goroutine: expiry happens on each call.
package obsaddr

import (
	"cmp"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
)

const (
	// DefaultActivationThreshold is how many observer groups must agree, as
	// in go-libp2p.
	DefaultActivationThreshold = 4
	// DefaultTTL is how long a report counts, go-libp2p's OwnObservedAddrTTL.
	DefaultTTL = 30 * time.Minute
	// DefaultMaxPerListener caps the reports kept per local socket.
	DefaultMaxPerListener = 128
	// DefaultMaxTotal caps the reports kept in all.
	DefaultMaxTotal = 1024

	// maxEndpointsPerGroup bounds what one group claims for one local socket.
	maxEndpointsPerGroup = 2
	// maxConnsPerReport bounds the connections tracked behind one report;
	// the group counts once however many there are.
	maxConnsPerReport = 8
	// maxActivePerSocket bounds the endpoints activated for one local socket,
	// most supported first: an outside address change needs two, a
	// multi-homed NAT a few more, and each is a dial-back for AutoNAT.
	maxActivePerSocket = 4
	// dependentMinEndpoints is how many distinct outside endpoints, none
	// activated and none reported by half the groups or more, mark a mapping
	// endpoint-dependent. An endpoint-dependent NAT gives each destination
	// its own port, so every port has a single witness: requiring several
	// witnesses per port would never fire. Two endpoints can be a remapping
	// or one liar; three, from three groups with no majority, is what a
	// symmetric NAT shows after three peers (the AutoNAT testbed has three
	// servers), and faking it takes three networks.
	dependentMinEndpoints = 3
)

// Why Record ignored an observation. Record returns them as they are, not
// wrapped with the observation's addresses: it runs for every identified
// connection, and formatting multiaddrs per refusal showed in a listener's
// profile. The caller holds the observation if it wants to log it.
var (
	ErrRelayed      = errors.New("obsaddr: observation ignored: relayed connection")
	ErrLocalAddr    = errors.New("obsaddr: observation ignored: local address is not IP and TCP/UDP port")
	ErrObserved     = errors.New("obsaddr: observation ignored: observed address is not IP and TCP/UDP port")
	ErrNotUsable    = errors.New("obsaddr: observation ignored: observed address is loopback, unspecified, multicast, NAT64 or port 0")
	ErrMismatch     = errors.New("obsaddr: observation ignored: observed address has another IP family or transport than the local one")
	ErrObserver     = errors.New("obsaddr: observation ignored: observer address has no IP")
	ErrNotListening = errors.New("obsaddr: observation ignored: local port is not a listening port")
	ErrConnClosed   = errors.New("obsaddr: observation ignored: its connection already closed")
	ErrFull         = errors.New("obsaddr: observation ignored: caps reached and the observation is the least supported")
)

// Config tunes a Manager; the zero value takes the defaults.
type Config struct {
	// ActivationThreshold is how many observer groups must report an
	// outside endpoint for it to be activated (default 4).
	ActivationThreshold int
	// TTL is how long a report counts after it was made, or after its
	// connection closed with UntilClosed (default 30 min).
	TTL time.Duration
	// UntilClosed keeps a report while its connection is open. The caller
	// must then call ConnClosed for every connection it recorded; a missed
	// one is held until the caps push it out.
	UntilClosed bool
	// ListenAddrs returns our listen addresses (resolved ports, wildcard
	// IPs allowed). Reports from connections whose local port is none of
	// theirs are ignored: an outbound connection from an ephemeral port
	// says nothing about our listeners. Nil skips the check.
	ListenAddrs func() []ma.Multiaddr
	// MaxPerListener and MaxTotal cap the reports kept (defaults 128, 1024).
	MaxPerListener, MaxTotal int
	// GroupBits4 and GroupBits6 are the prefix lengths that make observers
	// one group (defaults 24 and 48: one organisation usually holds at least
	// that much). A testbed whose servers share a /24 sets GroupBits4 to 32;
	// go-libp2p groups by IPv4 address and IPv6 /56.
	GroupBits4, GroupBits6 int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Observation is what one connection's identify told us.
type Observation struct {
	Local    ma.Multiaddr // the connection's local address: ours
	Observed ma.Multiaddr // what the peer says it sees for Local
	Observer ma.Multiaddr // the connection's remote address
	Peer     peer.ID
	ConnID   uint64
	Dir      network.Direction
}

// Manager keeps observations and derives activated addresses. It is safe
// for concurrent use.
type Manager struct {
	cfg Config

	mu      sync.Mutex
	reports map[reportKey]*report
	conns   map[uint64]*connRef
	perSock map[sock]int
	// groups counts the groups behind each endpoint: reports are per
	// group, so that is its number of reports.
	groups map[endpointKey]int
	// nextExpiry is no later than the earliest deadline; expiry scans
	// nothing before it.
	nextExpiry time.Time
}

// reportKey: one group's claim about one local socket.
type reportKey struct {
	local   sock
	outside netip.AddrPort
	group   netip.Prefix
}

type report struct {
	key         reportKey
	peer        peer.ID // last reporter
	dir         network.Direction
	first, last time.Time
	conns       map[uint64]*connRef
}

type connRef struct {
	id     uint64
	r      *report
	last   time.Time
	closed time.Time // zero while open
}

type endpointKey struct {
	local   sock
	outside netip.AddrPort
}

// New returns a Manager with cfg's zero fields defaulted.
func New(cfg Config) *Manager {
	if cfg.ActivationThreshold <= 0 {
		cfg.ActivationThreshold = DefaultActivationThreshold
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.MaxPerListener <= 0 {
		cfg.MaxPerListener = DefaultMaxPerListener
	}
	if cfg.MaxTotal <= 0 {
		cfg.MaxTotal = DefaultMaxTotal
	}
	if cfg.GroupBits4 <= 0 || cfg.GroupBits4 > 32 {
		cfg.GroupBits4 = 24
	}
	if cfg.GroupBits6 <= 0 || cfg.GroupBits6 > 128 {
		cfg.GroupBits6 = 48
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Manager{
		cfg:     cfg,
		reports: make(map[reportKey]*report),
		conns:   make(map[uint64]*connRef),
		perSock: make(map[sock]int),
		groups:  make(map[endpointKey]int),
	}
}

// Record takes one observation. A connection holds one report: a new
// observed address on the same connection replaces its previous one. The
// error, one of the Err values, says why an observation was ignored;
// nothing changes then, except with ErrFull, where the connection's previous
// report is withdrawn all the same.
func (m *Manager) Record(o Observation) error {
	k, err := m.check(o)
	if err != nil {
		return err
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.Now()
	m.expire(now)

	if c, ok := m.conns[o.ConnID]; ok {
		if !c.closed.IsZero() {
			return ErrConnClosed
		}
		if c.r.key == k {
			m.touch(c.r, c, o, now)
			return nil
		}
		m.dropConn(c)
	}

	r := m.reports[k]
	if r == nil {
		m.capGroup(k)
		// last is set before capping so that the new report is the
		// newest of its rank.
		r = &report{key: k, first: now, last: now, conns: make(map[uint64]*connRef)}
		m.reports[k] = r
		m.perSock[k.local]++
		m.groups[endpointOf(r)]++
		m.capAll(k.local)
		if m.reports[k] != r {
			return ErrFull
		}
	}
	c := &connRef{id: o.ConnID, r: r}
	if len(r.conns) >= maxConnsPerReport {
		m.dropConn(m.leastConn(r))
	}
	r.conns[c.id] = c
	m.conns[c.id] = c
	m.touch(r, c, o, now)
	return nil
}

// check validates o against the rules in the package comment, outside the
// lock (ListenAddrs is the caller's code).
func (m *Manager) check(o Observation) (reportKey, error) {
	if hasCircuit(o.Local) || hasCircuit(o.Observed) || hasCircuit(o.Observer) {
		return reportKey{}, ErrRelayed
	}
	local, lt, _, ok := thinWaist(o.Local)
	if !ok {
		return reportKey{}, ErrLocalAddr
	}
	out, ot, _, ok := thinWaist(o.Observed)
	if !ok {
		return reportKey{}, ErrObserved
	}
	if !usable(out.ip) || out.port == 0 {
		return reportKey{}, ErrNotUsable
	}
	if !sameFamily(local.ip, out.ip) || local.udp != out.udp || lt != ot {
		return reportKey{}, ErrMismatch
	}
	g, ok := observerGroup(o.Observer, m.cfg.GroupBits4, m.cfg.GroupBits6)
	if !ok {
		return reportKey{}, ErrObserver
	}
	if m.cfg.ListenAddrs != nil && !listening(m.cfg.ListenAddrs(), local) {
		return reportKey{}, ErrNotListening
	}
	return reportKey{local: local, outside: netip.AddrPortFrom(out.ip, out.port), group: g}, nil
}

func listening(listen []ma.Multiaddr, local sock) bool {
	for _, l := range listen {
		if hasCircuit(l) {
			continue
		}
		if s, _, _, ok := thinWaist(l); ok && s.port != 0 && s.listens(local) {
			return true
		}
	}
	return false
}

func (m *Manager) touch(r *report, c *connRef, o Observation, now time.Time) {
	r.last, r.peer, r.dir = now, o.Peer, o.Dir
	c.last = now
	m.noteDeadline(now.Add(m.cfg.TTL))
}

func (m *Manager) noteDeadline(d time.Time) {
	if m.nextExpiry.IsZero() || d.Before(m.nextExpiry) {
		m.nextExpiry = d
	}
}

// ConnClosed tells that a connection closed. With UntilClosed its report's
// TTL starts now; a later Record for the same ID is ignored while the
// report lives.
func (m *Manager) ConnClosed(connID uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.Now()
	m.expire(now)
	c, ok := m.conns[connID]
	if !ok || !c.closed.IsZero() {
		return
	}
	c.closed = now
	if m.cfg.UntilClosed {
		m.noteDeadline(now.Add(m.cfg.TTL))
	}
}

// NextExpiry is the earliest time a report may lapse (zero: none will
// until something is recorded or closed). The Manager has no timer: a caller
// that wants to see an address go when its reports lapse calls Addrs then.
// It may be earlier than the next real change, never later.
func (m *Manager) NextExpiry() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expire(m.cfg.Now())
	return m.nextExpiry
}

// deadline is when c stops counting; held means an open connection keeps it.
func (m *Manager) deadline(c *connRef) (d time.Time, held bool) {
	if !m.cfg.UntilClosed {
		return c.last.Add(m.cfg.TTL), false
	}
	if c.closed.IsZero() {
		return time.Time{}, true
	}
	return c.closed.Add(m.cfg.TTL), false
}

// reportDeadline is the latest of its connections' deadlines.
func (m *Manager) reportDeadline(r *report) (d time.Time, held bool) {
	for _, c := range r.conns {
		cd, h := m.deadline(c)
		if h {
			return time.Time{}, true
		}
		if cd.After(d) {
			d = cd
		}
	}
	return d, false
}

// expire drops the connections whose deadline has come, and the reports
// left without any.
func (m *Manager) expire(now time.Time) {
	if m.nextExpiry.IsZero() || now.Before(m.nextExpiry) {
		return
	}
	m.nextExpiry = time.Time{}
	for _, c := range m.conns {
		d, held := m.deadline(c)
		switch {
		case held:
		case !now.Before(d):
			m.dropConn(c)
		default:
			m.noteDeadline(d)
		}
	}
}

// dropConn removes c, and its report if c was its last connection.
func (m *Manager) dropConn(c *connRef) {
	delete(m.conns, c.id)
	delete(c.r.conns, c.id)
	if len(c.r.conns) == 0 {
		m.dropReport(c.r)
	}
}

func (m *Manager) dropReport(r *report) {
	for _, c := range r.conns {
		delete(m.conns, c.id)
	}
	delete(m.reports, r.key)
	if m.perSock[r.key.local]--; m.perSock[r.key.local] <= 0 {
		delete(m.perSock, r.key.local)
	}
	if e := endpointOf(r); m.groups[e] <= 1 {
		delete(m.groups, e)
	} else {
		m.groups[e]--
	}
}

// leastConn is the connection of r that would lapse first: closed ones
// before those an open connection holds, the oldest of those.
func (m *Manager) leastConn(r *report) *connRef {
	var least *connRef
	var leastD time.Time
	var leastHeld bool
	for _, c := range r.conns {
		d, held := m.deadline(c)
		if least == nil || !held && (leastHeld || d.Before(leastD)) ||
			held && leastHeld && c.last.Before(least.last) {
			least, leastD, leastHeld = c, d, held
		}
	}
	return least
}

// capGroup makes room for one more endpoint of k's group on k's socket by
// dropping the group's stalest claims.
func (m *Manager) capGroup(k reportKey) {
	var mine []*report
	for _, r := range m.reports {
		if r.key.local == k.local && r.key.group == k.group {
			mine = append(mine, r)
		}
	}
	slices.SortFunc(mine, func(a, b *report) int { return a.last.Compare(b.last) })
	for i := 0; len(mine)-i >= maxEndpointsPerGroup; i++ {
		m.dropReport(mine[i])
	}
}

// capAll enforces MaxPerListener on local and MaxTotal, evicting the least
// supported report, oldest first.
func (m *Manager) capAll(local sock) {
	for m.perSock[local] > m.cfg.MaxPerListener {
		m.evict(func(r *report) bool { return r.key.local == local })
	}
	for len(m.reports) > m.cfg.MaxTotal {
		m.evict(func(*report) bool { return true })
	}
}

func (m *Manager) evict(in func(*report) bool) {
	support := m.groups
	var worst *report
	for _, r := range m.reports {
		if !in(r) {
			continue
		}
		if worst == nil {
			worst = r
			continue
		}
		sr, sw := support[endpointOf(r)], support[endpointOf(worst)]
		if sr < sw || sr == sw && r.last.Before(worst.last) {
			worst = r
		}
	}
	if worst != nil {
		m.dropReport(worst)
	}
}

func endpointOf(r *report) endpointKey { return endpointKey{r.key.local, r.key.outside} }

// active returns, per local socket, its activated outside endpoints, most
// supported first.
func (m *Manager) active() map[sock][]netip.AddrPort {
	type cand struct {
		out    netip.AddrPort
		groups int
	}
	bySock := make(map[sock][]cand)
	for e, n := range m.groups {
		if n >= m.cfg.ActivationThreshold {
			bySock[e.local] = append(bySock[e.local], cand{e.outside, n})
		}
	}
	// With UntilClosed, an endpoint that only closed connections still
	// vouch for gives way to one an open connection reports for the same
	// socket: the NAT moved (new outside address, new mapping), and the old
	// endpoint lives on only for its TTL.
	var live map[endpointKey]bool
	if m.cfg.UntilClosed {
		live = make(map[endpointKey]bool)
		for k, r := range m.reports {
			for _, c := range r.conns {
				if c.closed.IsZero() {
					live[endpointKey{k.local, k.outside}] = true
					break
				}
			}
		}
	}
	res := make(map[sock][]netip.AddrPort, len(bySock))
	for s, cs := range bySock {
		if live != nil && slices.ContainsFunc(cs, func(c cand) bool { return live[endpointKey{s, c.out}] }) {
			cs = slices.DeleteFunc(cs, func(c cand) bool { return !live[endpointKey{s, c.out}] })
		}
		slices.SortFunc(cs, func(a, b cand) int {
			if c := cmp.Compare(b.groups, a.groups); c != 0 {
				return c
			}
			return a.out.Compare(b.out)
		})
		cs = cs[:min(len(cs), maxActivePerSocket)]
		for _, c := range cs {
			res[s] = append(res[s], c.out)
		}
	}
	return res
}

// anyActive reports whether an endpoint has enough groups behind it to be
// activated. m.mu is held.
func (m *Manager) anyActive() bool {
	for _, n := range m.groups {
		if n >= m.cfg.ActivationThreshold {
			return true
		}
	}
	return false
}

// Addrs maps the activated outside endpoints onto listen: for each listener
// (wildcard IPs allowed), each activated endpoint of a local socket on its
// port (and IP unless a wildcard) gives the endpoint's IP and port followed
// by the listener's components after the port: /quic-v1/webtransport/
// certhash/..., /webrtc-direct/..., /ws. Relayed or non-IP listeners give
// nothing. The result may hold a listen address itself (no NAT); it has no
// duplicates and is in listener order.
func (m *Manager) Addrs(listen []ma.Multiaddr) []ma.Multiaddr {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expire(m.cfg.Now())
	if !m.anyActive() {
		// The common answer, and every identify asks: active's frame,
		// with its maps on the stack, would grow the caller's stack.
		return nil
	}
	act := m.active()
	if len(act) == 0 {
		return nil
	}
	locals := make([]sock, 0, len(act))
	for s := range act {
		locals = append(locals, s)
	}
	slices.SortFunc(locals, compareSock)

	var out []ma.Multiaddr
	seen := make(map[string]bool)
	for _, l := range listen {
		if hasCircuit(l) {
			continue
		}
		ls, _, rest, ok := thinWaist(l)
		if !ok || ls.port == 0 {
			continue
		}
		for _, s := range locals {
			if !ls.listens(s) {
				continue
			}
			for _, o := range act[s] {
				a := sock{udp: s.udp, ip: o.Addr(), port: o.Port()}.multiaddr()
				a = append(a, rest...)
				if k := string(a.Bytes()); !seen[k] {
					seen[k] = true
					out = append(out, a)
				}
			}
		}
	}
	return out
}

func compareSock(a, b sock) int {
	if a.udp != b.udp {
		if a.udp {
			return 1
		}
		return -1
	}
	if c := a.ip.Compare(b.ip); c != 0 {
		return c
	}
	return cmp.Compare(a.port, b.port)
}

// ListenerStatus is what was seen for one local socket.
type ListenerStatus struct {
	Local  ma.Multiaddr // /ipX/<ip>/tcp|udp/<port>
	Groups int          // distinct observer groups over all its endpoints
	// EndpointDependent: at least 3 distinct outside endpoints, none
	// activated and none reported by half the groups or more: the NAT gives
	// each destination its own mapping (symmetric), so hole punching from
	// this socket needs prediction and its observed addresses are useless
	// to advertise.
	EndpointDependent bool
	Endpoints         []EndpointStatus // most supported first
}

// EndpointStatus is one outside endpoint reported for a local socket.
type EndpointStatus struct {
	Addr   ma.Multiaddr // /ipX/<ip>/tcp|udp/<port>
	Groups int
	Active bool
	// Expires is when the last report of it lapses; zero while an open
	// connection holds one (UntilClosed).
	Expires   time.Time
	Observers []ObserverStatus // newest first
}

// ObserverStatus is one observer group's report.
type ObserverStatus struct {
	Group       netip.Prefix
	Peer        peer.ID // the last peer of the group that reported it
	Dir         network.Direction
	Conns       int // connections behind the report, closed ones included
	First, Last time.Time
	Expires     time.Time // zero while held by an open connection
}

// Status returns everything kept, per local socket in a stable order.
func (m *Manager) Status() []ListenerStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expire(m.cfg.Now())
	act := m.active()

	byEndpoint := make(map[endpointKey][]*report)
	for _, r := range m.reports {
		byEndpoint[endpointOf(r)] = append(byEndpoint[endpointOf(r)], r)
	}
	bySock := make(map[sock]*ListenerStatus)
	groups := make(map[sock]map[netip.Prefix]bool)
	for e, rs := range byEndpoint {
		ls := bySock[e.local]
		if ls == nil {
			ls = &ListenerStatus{Local: e.local.multiaddr()}
			bySock[e.local] = ls
			groups[e.local] = make(map[netip.Prefix]bool)
		}
		es := EndpointStatus{
			Addr:   sock{udp: e.local.udp, ip: e.outside.Addr(), port: e.outside.Port()}.multiaddr(),
			Groups: len(rs),
			Active: slices.Contains(act[e.local], e.outside),
		}
		held := false
		for _, r := range rs {
			groups[e.local][r.key.group] = true
			d, h := m.reportDeadline(r)
			held = held || h
			if d.After(es.Expires) {
				es.Expires = d
			}
			es.Observers = append(es.Observers, ObserverStatus{
				Group: r.key.group, Peer: r.peer, Dir: r.dir, Conns: len(r.conns),
				First: r.first, Last: r.last, Expires: d,
			})
		}
		if held {
			es.Expires = time.Time{}
		}
		slices.SortFunc(es.Observers, func(a, b ObserverStatus) int {
			if c := b.Last.Compare(a.Last); c != 0 {
				return c
			}
			return a.Group.Addr().Compare(b.Group.Addr())
		})
		ls.Endpoints = append(ls.Endpoints, es)
	}

	locals := make([]sock, 0, len(bySock))
	for s := range bySock {
		locals = append(locals, s)
	}
	slices.SortFunc(locals, compareSock)
	out := make([]ListenerStatus, 0, len(locals))
	for _, s := range locals {
		ls := bySock[s]
		ls.Groups = len(groups[s])
		slices.SortFunc(ls.Endpoints, func(a, b EndpointStatus) int {
			if c := cmp.Compare(b.Groups, a.Groups); c != 0 {
				return c
			}
			return a.Addr.Compare(b.Addr)
		})
		ls.EndpointDependent = len(act[s]) == 0 && len(ls.Endpoints) >= dependentMinEndpoints &&
			2*ls.Endpoints[0].Groups < ls.Groups
		out = append(out, *ls)
	}
	return out
}
