package dialrank

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/peer"
)

// The delay constants (see the package comment for the formula).
const (
	// MinGap and MaxGap bound the gap between waves: RFC 8305 section 5's
	// recommended minimum Connection Attempt Delay and its maximum.
	MinGap = 100 * time.Millisecond
	MaxGap = 2 * time.Second
	// MinGapLocal bounds it for addresses on our network: RFC 8305's hard
	// minimum, since a LAN's RTT is well under a millisecond and the
	// handshake's own computation then dominates the estimate.
	MinGapLocal = 10 * time.Millisecond
	// Margin is added to the expected handshake time for what RTTs do not
	// measure: the handshake's signatures and the schedulers at both ends.
	Margin = 15 * time.Millisecond

	// Fallbacks when nothing is known, go-libp2p's constants: the gap
	// after a public address, after a private one, the earliest start of
	// a relay address when direct ones are dialed, and of a WebRTC-direct
	// address after others.
	FallbackGap      = 250 * time.Millisecond
	FallbackGapLocal = 30 * time.Millisecond
	RelayDelay       = 500 * time.Millisecond
	WebRTCDelay      = 1 * time.Second
	// FallbackRTT and FallbackRTTLocal stand in for an unknown RTT when
	// ordering addresses (never for gaps): a typical Internet path, and a
	// LAN with slack.
	FallbackRTT      = 100 * time.Millisecond
	FallbackRTTLocal = 5 * time.Millisecond
)

// Estimate is an RTT estimate: a smoothed RTT and its variation, as TCP
// keeps them (RFC 6298), and which level of the store it came from.
type Estimate struct {
	SRTT, RTTVar time.Duration
	Samples      int
	Source       string // "host", "peer", "prefix", "transport"
}

// Estimator estimates the RTT to a peer at an address.
type Estimator interface {
	Estimate(p peer.ID, a ma.Multiaddr) (Estimate, bool)
}

// expectation is what ranking derives from an estimate for one address.
type expectation struct {
	rtt      time.Duration // the estimate (or fallback) of the RTT
	expect   time.Duration // rounds x RTT: when the handshake should be done
	gap      time.Duration // when to give up waiting for it and start the next wave
	fallback bool          // nothing was known
	why      string
}

// Gap is the delay formula: the time to wait for a dial of a transport
// with rounds round trips before starting the next wave, given e.
//
//	gap = clamp(rounds x SRTT + max(4 x RTTVar, Margin), min, MaxGap)
//
// min is MinGap, or MinGapLocal for an address on our network.
func Gap(rounds int, e Estimate, local bool) time.Duration {
	lo := MinGap
	if local {
		lo = MinGapLocal
	}
	g := time.Duration(rounds)*e.SRTT + max(4*e.RTTVar, Margin)
	return min(max(g, lo), MaxGap)
}

// expect computes c's expectation from k.RTT, or the fallbacks.
func (k *Knowledge) expect(c *cand) expectation {
	rounds := c.in.kind.Rounds()
	local := c.in.scope != public
	var e Estimate
	ok := false
	switch r := k.RTT.(type) {
	case nil:
	case *RTTs:
		e, ok = r.estimate(k.Peer, &c.in)
	default:
		e, ok = r.Estimate(k.Peer, c.addr)
	}
	{
		if ok {
			g := Gap(rounds, e, local)
			return expectation{
				rtt:    e.SRTT,
				expect: time.Duration(rounds) * e.SRTT,
				gap:    g,
				why:    fmt.Sprintf("after %v: %d x %v (%s RTT) + max(4 x %v, %v)", ms(g), rounds, ms(e.SRTT), e.Source, ms(e.RTTVar), Margin),
			}
		}
	}
	if local {
		return expectation{rtt: FallbackRTTLocal, expect: time.Duration(rounds) * FallbackRTTLocal, gap: FallbackGapLocal, fallback: true,
			why: fmt.Sprintf("after %v (RTT unknown, local)", FallbackGapLocal)}
	}
	return expectation{rtt: FallbackRTT, expect: time.Duration(rounds) * FallbackRTT, gap: FallbackGap, fallback: true,
		why: fmt.Sprintf("after %v (RTT unknown)", FallbackGap)}
}

// RTTConfig tunes an RTTs store; zero fields take the defaults.
type RTTConfig struct {
	MaxHosts    int           // (peer, IP) entries, default 4096
	MaxPeers    int           // peer entries, default 1024
	MaxPrefixes int           // /24 and /48 entries, default 4096
	MaxAge      time.Duration // estimates older than this are ignored, default 30 minutes
	Now         func() time.Time
}

// RTTs keeps RTT estimates at four levels, looked up from the most
// specific: the peer at this IP, the peer at any IP, the /24 (IPv4) or /48
// (IPv6) prefix (other peers in the same network, usually behind the same
// path), and the transport and family (what dials like this one cost).
// Each is a smoothed RTT with its variation, as RFC 6298 keeps them for
// TCP's retransmission timer: the question is the same (how long to wait
// for an answer before trying again), and the variation term keeps the gap
// long enough on jittery paths, where a minimum of recent samples would
// start a second dial the path's variance alone would have made
// unnecessary. It is safe for concurrent use; each level is capped.
type RTTs struct {
	cfg    RTTConfig
	mu     sync.Mutex
	hosts  capMap[hostKey]
	peers  capMap[peer.ID]
	prefix capMap[netip.Prefix]
	kinds  map[kindKey]*rttEntry
}

type hostKey struct {
	p  peer.ID
	ip netip.Addr
}

type kindKey struct {
	kind   Transport
	family int
}

type rttEntry struct {
	srtt, rttvar time.Duration
	samples      int
	updated      time.Time
}

// add folds in one sample (RFC 6298 section 2: alpha 1/8, beta 1/4).
func (e *rttEntry) add(rtt time.Duration, now time.Time) {
	if e.samples == 0 {
		e.srtt, e.rttvar = rtt, rtt/2
	} else {
		d := e.srtt - rtt
		if d < 0 {
			d = -d
		}
		e.rttvar = (3*e.rttvar + d) / 4
		e.srtt = (7*e.srtt + rtt) / 8
	}
	e.samples++
	e.updated = now
}

// NewRTTs returns an empty store.
func NewRTTs(cfg *RTTConfig) *RTTs {
	r := &RTTs{}
	if cfg != nil {
		r.cfg = *cfg
	}
	if r.cfg.MaxHosts <= 0 {
		r.cfg.MaxHosts = 4096
	}
	if r.cfg.MaxPeers <= 0 {
		r.cfg.MaxPeers = 1024
	}
	if r.cfg.MaxPrefixes <= 0 {
		r.cfg.MaxPrefixes = 4096
	}
	if r.cfg.MaxAge <= 0 {
		r.cfg.MaxAge = 30 * time.Minute
	}
	if r.cfg.Now == nil {
		r.cfg.Now = time.Now
	}
	r.Reset()
	return r
}

// Reset forgets everything (the node's network changed).
func (r *RTTs) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hosts = newCapMap[hostKey](r.cfg.MaxHosts)
	r.peers = newCapMap[peer.ID](r.cfg.MaxPeers)
	r.prefix = newCapMap[netip.Prefix](r.cfg.MaxPrefixes)
	r.kinds = make(map[kindKey]*rttEntry)
}

// prefixOf is the network an address is grouped in.
func prefixOf(ip netip.Addr) netip.Prefix {
	bits := 48
	if ip.Is4() {
		bits = 24
	}
	p, _ := ip.Prefix(bits)
	return p
}

// AddRTT records a measured round-trip time to p at a (a QUIC
// connection's smoothed RTT, a ping). Addresses without an IP (relays by
// name) are ignored.
func (r *RTTs) AddRTT(p peer.ID, a ma.Multiaddr, rtt time.Duration) {
	in, ok := parse(a)
	if !ok || rtt <= 0 || !in.ip.IsValid() {
		return
	}
	now := r.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hosts.get(hostKey{p, in.ip}, true).add(rtt, now)
	r.peers.get(p, true).add(rtt, now)
	r.prefix.get(prefixOf(in.ip), true).add(rtt, now)
	kk := kindKey{in.kind, in.family()}
	e := r.kinds[kk]
	if e == nil {
		e = &rttEntry{}
		r.kinds[kk] = e
	}
	e.add(rtt, now)
}

// AddHandshake records how long a dial to p at a took to connect: the
// time divided by the transport's handshake rounds is an RTT sample (an
// overestimate by the handshake's computation, which keeps gaps safe).
func (r *RTTs) AddHandshake(p peer.ID, a ma.Multiaddr, took time.Duration) {
	kind, ok := TransportOf(a)
	if !ok {
		return
	}
	r.AddRTT(p, a, took/time.Duration(kind.Rounds()))
}

// Learn records the handshake time of t's winning attempt.
func (r *RTTs) Learn(t *Trace) {
	if w := t.Winner(); w != nil {
		r.AddHandshake(t.Peer, w.Dial.Addr, w.Took())
	}
}

// Estimate implements Estimator: the most specific fresh estimate.
func (r *RTTs) Estimate(p peer.ID, a ma.Multiaddr) (Estimate, bool) {
	in, ok := parse(a)
	if !ok {
		return Estimate{}, false
	}
	return r.estimate(p, &in)
}

// estimate is Estimate for a parsed address (Plan has parsed it already).
func (r *RTTs) estimate(p peer.ID, in *info) (Estimate, bool) {
	if !in.ip.IsValid() {
		return Estimate{}, false
	}
	now := r.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	fresh := func(e *rttEntry, src string) (Estimate, bool) {
		if e == nil || now.Sub(e.updated) > r.cfg.MaxAge {
			return Estimate{}, false
		}
		return Estimate{SRTT: e.srtt, RTTVar: e.rttvar, Samples: e.samples, Source: src}, true
	}
	if e, ok := fresh(r.hosts.get(hostKey{p, in.ip}, false), "host"); ok {
		return e, true
	}
	if e, ok := fresh(r.peers.get(p, false), "peer"); ok {
		return e, true
	}
	if e, ok := fresh(r.prefix.get(prefixOf(in.ip), false), "prefix"); ok {
		return e, true
	}
	return fresh(r.kinds[kindKey{in.kind, in.family()}], "transport")
}

// Len returns the number of entries at the capped levels.
func (r *RTTs) Len() (hosts, peers, prefixes int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hosts.len(), r.peers.len(), r.prefix.len()
}

// capMap holds at most max entries in two generations: when the current
// one is half full it becomes the old one and the old one is dropped, so
// entries not touched for a generation go first, at O(1) per operation
// without a list to maintain.
type capMap[K comparable] struct {
	cur, old map[K]*rttEntry
	half     int
}

func newCapMap[K comparable](limit int) capMap[K] {
	half := max(limit/2, 1)
	return capMap[K]{cur: make(map[K]*rttEntry), old: make(map[K]*rttEntry), half: half}
}

// get returns k's entry; with create, a new one when there is none, and an
// old one moves to the current generation.
func (m *capMap[K]) get(k K, create bool) *rttEntry {
	if e := m.cur[k]; e != nil {
		return e
	}
	e := m.old[k]
	if e == nil && !create {
		return nil
	}
	if !create {
		return e
	}
	if len(m.cur) >= m.half {
		m.old, m.cur = m.cur, make(map[K]*rttEntry, m.half)
	} else {
		delete(m.old, k)
	}
	if e == nil {
		e = &rttEntry{}
	}
	m.cur[k] = e
	return e
}

func (m *capMap[K]) len() int { return len(m.cur) + len(m.old) }
