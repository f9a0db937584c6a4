package dialrank

// Ranking rules, in the order Plan applies them (each has a table test in
// rank_test.go, named after it):
//
//  1. Undialable: an address with no IP (unresolved name, unix socket, unspecified IP) or that CanDial refuses is skipped, with its reason.
//  2. Duplicate: an address listed twice is dialed once.
//  3. Relay: relay addresses are skipped when a direct connection to the peer exists.
//  4. Loopback: loopback addresses are dialed only when the peer has nothing else, or the caller allows them.
//  5. Private: private addresses (RFC 1918, CGNAT, ULA, link-local) are dialed only inside Knowledge.LocalPrefixes, for a peer on our network, or for a peer with no public address (then they are all it has: a routed private network, a VPN).
//  6. SameSocket: of /tcp/P/tls, /tcp/P/noise and /tcp/P on one IP only the first the caller can dial is kept, in that order: they reach one socket.
//  7. BlackHole: addresses of a blocked class are skipped; of a class with a probe due, the best one is dialed at once, beside the schedule.
//  8. Order: healthy direct addresses, then direct ones in back-off, then relays, then relays in back-off (back-off ranks last, never skips).
//  9. Expected: within a group, by expected connect time (handshake rounds x the host's best RTT estimate): QUIC (1 round) before TCP (2-3) on the same host.
//  10. Tiers: equal expected times go QUIC, TCP /tls, /noise, plain, WebTransport, WebSocket, WebRTC-direct, others; then the family we listen in (Knowledge.ListenFamilies), else IPv6; then the lower port.
//  11. Families: within a group, IPv6 and IPv4 alternate as RFC 8305 section 4 says, starting with the family of the best address.
//  12. Waves: the first address, then the second (RFC 8305: one per family), then the third, then the rest of its group, then each next group; each wave starts one gap after the one before, the largest of its members' gaps (Gap).
//     From the third address on, addresses that share a path (IP, UDP or TCP, port) with an earlier one (WebTransport after QUIC on its port) wait one more wave: they share its fate.
//  13. Floors: relays start their waves after the last direct dial and no earlier than RelayDelay; a WebRTC-direct address of unknown RTT that is not first waits for WebRTCDelay (alone: the next wave keeps its time).
//     Relay addresses go by the transport to the relay (QUIC first, as for direct ones), and a second address through the same relay waits MaxGap more: it reaches the same relay, so it is for when the first fails.
//  14. NoDelay: every delay is zero (simultaneous connect, tests).

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/peer"
)

// Dial is one address to dial, Delay after the dial started.
type Dial struct {
	Addr      ma.Multiaddr
	Delay     time.Duration // from the start of the dial
	Why       string        // why here and then, for traces: "quic first", "tcp after quic on the same host"
	Transport Transport
	Class     Class         // black-hole class, for BlackHoles.Learn
	Expect    time.Duration // expected connect time (rounds x RTT estimate)
	Probe     bool          // a black-hole probe: dial it, report its outcome
}

// Reason says why an address was skipped.
type Reason uint8

const (
	Dialed         Reason = iota // not skipped
	BlackHoled                   // its class is a black hole; no probe due
	NotOurNetwork                // a private address of a network we are not on
	LoopbackAddr                 // loopback, and the peer has other addresses
	RelayNotNeeded               // a relay address, and a direct connection exists
	SameSocket                   // another form of the same TCP socket is dialed
	DuplicateAddr                // listed twice
	NoTransport                  // CanDial refused it
	NoIP                         // no IP to dial: an unresolved name, a unix socket, an unspecified IP
)

var reasonNames = [...]string{
	Dialed:         "dialed",
	BlackHoled:     "black hole",
	NotOurNetwork:  "private address of another network",
	LoopbackAddr:   "loopback",
	RelayNotNeeded: "relay not needed",
	SameSocket:     "same socket",
	DuplicateAddr:  "duplicate",
	NoTransport:    "no transport",
	NoIP:           "no IP address",
}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "reason?"
}

// Skip is an address Plan left out, with why.
type Skip struct {
	Addr   ma.Multiaddr
	Reason Reason
	Detail string // for the reader: which class, which socket, which check
}

// Ranking is Plan's answer: what to dial when, and what not and why.
type Ranking struct {
	Dials      []Dial // by Delay, then rank
	Skipped    []Skip
	Unfiltered bool // copied from Knowledge: BlackHoles.Learn takes only answers from it
}

// Knowledge is what the node knows when it dials a peer. The zero value
// (with Peer set) ranks by transport and family alone, with go-libp2p's
// fixed delays.
type Knowledge struct {
	Peer peer.ID
	Now  time.Time // compared with Backoff's expiries; needed with Backoff
	// RTT estimates the round-trip time to an address; nil uses the
	// fallback constants. *RTTs implements it.
	RTT Estimator
	// BlackHoles are the verdicts for this dial (BlackHoles.Admit).
	BlackHoles BlackHoleView
	// Unfiltered ignores BlackHoles: AutoNAT dial-backs and hole punches
	// must dial what they are told to.
	Unfiltered bool
	// Backoff returns when an address's back-off after recent failures
	// ends (zero or before Now: none). Such addresses are ranked after
	// the healthy ones, not skipped: a back-off is a guess from the past,
	// a peer that came back is reached through it, and when healthier
	// addresses connect first it costs nothing since its turn never comes.
	Backoff func(ma.Multiaddr) time.Time
	// DirectConn says a direct connection to the peer exists: relay
	// addresses are skipped.
	DirectConn bool
	// LocalPrefixes are the networks we are on (our interfaces' prefixes):
	// a private address inside one is dialed.
	LocalPrefixes []netip.Prefix
	// SameNetwork says the peer is on our network (it shares our public
	// address, or the caller knows): all its private addresses are dialed.
	SameNetwork bool
	// AllowLoopback dials loopback addresses even when the peer has
	// others (the peer runs on this machine).
	AllowLoopback bool
	// CanDial reports whether a transport dials an address; nil: all.
	CanDial func(ma.Multiaddr) bool
	// NoDelay starts every dial at once.
	NoDelay bool
	// ListenFamilies says which IP families we listen in (index 4 and
	// 6). When we listen in one only, its addresses go first among
	// equals (rule 10): only a connection in that family lets peers
	// observe our address in it (identify), which our reachability
	// checks and hole punching need; a node that listens on IPv4 and
	// talks to everyone over IPv6 never learns that its IPv4 address
	// changed.
	ListenFamilies [7]bool
}

// familyRank orders families for rule 10: the one we listen in alone
// first, else IPv6.
func (k *Knowledge) familyRank(in *info) int {
	v4, v6 := k.ListenFamilies[4], k.ListenFamilies[6]
	switch f := in.family(); {
	case v4 != v6 && k.ListenFamilies[f]:
		return 0
	case v4 != v6:
		return 1
	case f == 6:
		return 0
	}
	return 1
}

// Rank returns the addresses to dial, in order, with their delays (see the
// rules at the top of this file); Plan also says what it skipped.
func Rank(addrs []ma.Multiaddr, k Knowledge) []Dial {
	return Plan(addrs, k).Dials
}

// cand is an address Plan still considers.
type cand struct {
	addr    ma.Multiaddr
	in      info
	index   int
	group   int // 0 healthy direct, 1 direct in back-off, 2 relay, 3 relay in back-off
	backoff time.Time
	est     expectation
	order   time.Duration // expected connect time at the host's best RTT estimate, for rule 9
	shared  string        // the address that dials the same path earlier (rule 12)
}

// Plan ranks addrs (the rules at the top of this file).
func Plan(addrs []ma.Multiaddr, k Knowledge) Ranking {
	r := Ranking{Unfiltered: k.Unfiltered}
	skip := func(a ma.Multiaddr, why Reason, format string, args ...any) {
		r.Skipped = append(r.Skipped, Skip{Addr: a, Reason: why, Detail: fmt.Sprintf(format, args...)})
	}
	cands := make([]cand, 0, len(addrs))
	seen := make(map[string]bool, len(addrs))
	directs, loopbacks, publics := 0, 0, 0
	// Rules 1 and 2.
	for i, a := range addrs {
		in, ok := parse(a)
		if ok && in.kind != Relay {
			// Over everything the peer advertises, dialable or not: a
			// peer with other addresses runs on another machine.
			directs++
			switch in.scope {
			case loopback:
				loopbacks++
			case public:
				publics++
			}
		}
		switch {
		case !ok:
			skip(a, NoIP, "no IP address to dial (names are resolved before ranking)")
			continue
		case k.CanDial != nil && !k.CanDial(a):
			skip(a, NoTransport, "no transport dials %s addresses", in.kind)
			continue
		case seen[string(a.Bytes())]:
			skip(a, DuplicateAddr, "listed twice")
			continue
		}
		seen[string(a.Bytes())] = true
		cands = append(cands, cand{addr: a, in: in, index: i})
	}
	loopbackOnly := loopbacks == directs
	// Rules 3, 4, 5.
	kept := cands[:0]
	for _, c := range cands {
		switch {
		case c.in.kind == Relay && k.DirectConn:
			skip(c.addr, RelayNotNeeded, "a direct connection to the peer exists")
		case c.in.scope == loopback && !loopbackOnly && !k.AllowLoopback:
			skip(c.addr, LoopbackAddr, "loopback, and the peer has other addresses")
		case c.in.scope == private && publics > 0 && !k.SameNetwork && !k.local(c.in.ip):
			skip(c.addr, NotOurNetwork, "private address outside our networks; the peer has public ones and is not on our network")
		default:
			kept = append(kept, c)
		}
	}
	cands = kept
	// Rule 6: the first form in preference order wins the socket.
	best := make(map[string]int)
	for i, c := range cands {
		if c.in.sock == "" {
			continue
		}
		if j, ok := best[c.in.sock]; !ok || c.in.kind.tier() < cands[j].in.kind.tier() {
			best[c.in.sock] = i
		}
	}
	kept = cands[:0]
	for i, c := range cands {
		if j, ok := best[c.in.sock]; ok && j != i {
			skip(c.addr, SameSocket, "same socket as %s", cands[j].addr)
			continue
		}
		kept = append(kept, c)
	}
	cands = kept
	// One RTT per host for ordering, its best estimate: estimates at the
	// transport level differ by transport, and must not put TCP before
	// QUIC on one host.
	hostRTT := make(map[netip.Addr]time.Duration, len(cands))
	for i := range cands {
		c := &cands[i]
		c.est = k.expect(c)
		if r, ok := hostRTT[c.in.ip]; !ok || c.est.rtt < r {
			hostRTT[c.in.ip] = c.est.rtt
		}
	}
	for i := range cands {
		c := &cands[i]
		c.order = time.Duration(c.in.kind.Rounds()) * hostRTT[c.in.ip]
		if k.Backoff != nil {
			if until := k.Backoff(c.addr); until.After(k.Now) {
				c.backoff = until
				c.group = 1
			}
		}
		if c.in.kind == Relay {
			c.group += 2
		}
	}
	// Rules 8, 9, 10.
	slices.SortFunc(cands, func(a, b cand) int {
		return cmp.Or(
			cmp.Compare(a.group, b.group),
			cmp.Compare(a.order, b.order),
			cmp.Compare(a.in.kind.tier(), b.in.kind.tier()),
			cmp.Compare(a.in.via.tier(), b.in.via.tier()),
			cmp.Compare(k.familyRank(&a.in), k.familyRank(&b.in)),
			cmp.Compare(a.in.port, b.in.port),
			cmp.Compare(a.index, b.index),
		)
	})
	// Rule 7, on the sorted list so that a probe is its class's best.
	var probes []Dial
	if !k.Unfiltered {
		var probed [numClasses]bool
		kept = cands[:0]
		for _, c := range cands {
			cl := c.in.class()
			switch k.BlackHoles.Of(cl) {
			case Blocked:
				skip(c.addr, BlackHoled, "%s is a black hole: skipped until the next probe", cl)
				continue
			case Probe:
				if probed[cl] {
					skip(c.addr, BlackHoled, "%s is a black hole: one probe per dial", cl)
				} else {
					probed[cl] = true
					probes = append(probes, Dial{Addr: c.addr, Transport: c.in.kind, Class: cl, Expect: c.est.expect, Probe: true,
						Why: fmt.Sprintf("black-hole probe for %s, beside the schedule", cl)})
				}
				continue
			}
			kept = append(kept, c)
		}
		cands = kept
	}
	cands = shareLast(interleave(cands))
	r.Dials = schedule(cands, probes, k.NoDelay)
	return r
}

// local reports whether ip is in one of our networks.
func (k *Knowledge) local(ip netip.Addr) bool {
	for _, p := range k.LocalPrefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// interleave applies rule 11 to each group of the sorted list: RFC 8305
// section 4 with a First Address Family Count of 1.
func interleave(cands []cand) []cand {
	out := make([]cand, 0, len(cands))
	for start := 0; start < len(cands); {
		end := start
		for end < len(cands) && cands[end].group == cands[start].group {
			end++
		}
		g := cands[start:end]
		first := g[0].in.family()
		var same, other []cand
		for _, c := range g {
			if c.in.family() == first {
				same = append(same, c)
			} else {
				other = append(other, c)
			}
		}
		for len(same) > 0 || len(other) > 0 {
			if len(same) > 0 {
				out = append(out, same[0])
				same = same[1:]
			}
			if len(other) > 0 {
				out = append(out, other[0])
				other = other[1:]
			}
		}
		start = end
	}
	return out
}

// path is what addresses sharing a fate share: the IP, UDP or TCP, and
// the port.
func (i *info) path() string {
	if i.kind == Relay || !i.ip.IsValid() {
		return ""
	}
	proto := "tcp"
	if i.kind.udp() {
		proto = "udp"
	}
	return fmt.Sprintf("%s/%s/%d", i.ip, proto, i.port)
}

// shareLast applies the second half of rule 12: within each group, from
// the third address on, those whose path an earlier address dials move
// after the others (stable).
func shareLast(cands []cand) []cand {
	tried := make(map[string]ma.Multiaddr, len(cands))
	for start := 0; start < len(cands); {
		end := start
		for end < len(cands) && cands[end].group == cands[start].group {
			end++
		}
		var fresh, shared []cand
		for j := start; j < end; j++ {
			c := cands[j]
			p := c.in.path()
			if prev, ok := tried[p]; ok && p != "" && j-start >= 2 {
				c.shared = prev.String()
				shared = append(shared, c)
				continue
			}
			if p != "" {
				if _, ok := tried[p]; !ok {
					tried[p] = c.addr
				}
			}
			fresh = append(fresh, c)
		}
		copy(cands[start:], fresh)
		copy(cands[start+len(fresh):], shared)
		start = end
	}
	return cands
}

// schedule applies rules 12 to 14 and writes each dial's reason.
func schedule(cands []cand, probes []Dial, noDelay bool) []Dial {
	split := len(cands)
	for i := range cands {
		if cands[i].group >= 2 {
			split = i
			break
		}
	}
	// Relays come last: not before RelayDelay when there are direct
	// addresses, nor before the last of them (a relay costs the relay's
	// resources and gives a limited connection: every direct address
	// gets its turn first).
	dials := track(cands[:split], 0, noDelay)
	var offset time.Duration
	if split > 0 {
		offset = RelayDelay
		for _, d := range dials {
			offset = max(offset, d.Delay)
		}
	}
	dials = slices.Insert(dials, min(1, len(dials)), probes...)
	// One attempt per relay at a time: a second address of a relay is a
	// spare, after the other relays and MaxGap after the first.
	rc := cands[split:]
	first := map[string]int{}
	var lead, spare []cand
	for _, c := range rc {
		if _, ok := first[c.in.relay]; ok && c.in.relay != "" {
			spare = append(spare, c)
			continue
		}
		first[c.in.relay] = len(lead)
		lead = append(lead, c)
	}
	rc = append(lead, spare...)
	relays := track(rc, offset, noDelay)
	for i := len(lead); i < len(rc) && !noDelay; i++ {
		j := first[rc[i].in.relay]
		if at := relays[j].Delay + MaxGap; relays[i].Delay < at {
			relays[i].Delay = at
			relays[i].Why += fmt.Sprintf("; through the same relay as %s: not before %v, unless it fails", relays[j].Addr, at)
		}
	}
	dials = append(dials, relays...)
	slices.SortStableFunc(dials, func(a, b Dial) int { return cmp.Compare(a.Delay, b.Delay) })
	return dials
}

// track schedules one run of waves starting at offset.
func track(cands []cand, offset time.Duration, noDelay bool) []Dial {
	dials := make([]Dial, 0, len(cands))
	at, gap := offset, time.Duration(0) // start of the current wave, its gap
	wave := 0
	for i := range cands {
		c := &cands[i]
		if i > 0 && (wave < 3 || c.group != cands[i-1].group || (c.shared != "") != (cands[i-1].shared != "")) {
			at += gap
			wave++
			gap = 0
		}
		delay := at
		floor := ""
		if offset > 0 && i == 0 {
			floor = fmt.Sprintf(", at %v: after the direct addresses and not before %v", offset, RelayDelay)
		}
		if c.in.kind == WebRTCDirect && i > 0 && c.est.fallback && delay < WebRTCDelay {
			// Only this dial waits: the next wave keeps its time.
			delay, floor = WebRTCDelay, fmt.Sprintf(", not before %v (webrtc-direct, RTT unknown)", WebRTCDelay)
		}
		if noDelay {
			delay = 0
		}
		gap = max(gap, c.est.gap)
		dials = append(dials, Dial{Addr: c.addr, Delay: delay, Transport: c.in.kind, Class: c.in.class(), Expect: c.est.expect,
			Why: why(cands, i, wave) + floor + "; next wave " + c.est.why})
	}
	return dials
}

// why says why cands[i] comes where it does.
func why(cands []cand, i, wave int) string {
	c := &cands[i]
	var pos string
	switch {
	case c.group == 1 || c.group == 3:
		pos = fmt.Sprintf("%s in back-off until %s: after healthy addresses", c.in.kind, c.backoff.Format(time.TimeOnly))
	case c.in.kind == Relay:
		pos = "relay last"
	case i == 0:
		pos = fmt.Sprintf("%s first", c.in.kind)
	case c.shared != "":
		pos = fmt.Sprintf("%s after %s on the same path", c.in.kind, c.shared)
	default:
		pos = fmt.Sprintf("%s/ip%d", c.in.kind, c.in.family())
		for _, p := range cands[:i] {
			if p.in.ip == c.in.ip && p.in.kind != c.in.kind {
				pos = fmt.Sprintf("%s after %s on the same host", c.in.kind, p.in.kind)
				break
			}
		}
		if prev := &cands[i-1]; prev.in.family() != c.in.family() && prev.group == c.group {
			pos += fmt.Sprintf(", ip%d after ip%d (happy eyeballs)", c.in.family(), prev.in.family())
		}
	}
	return fmt.Sprintf("%s, wave %d", pos, wave+1)
}
