package dialrank

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/peer"
)

// Class is a black-hole class: a protocol and an address family, because
// that is what networks block (UDP everywhere, IPv6 as a whole, UDP over
// IPv6 only). "UDP is black-holed" means UDP4 and UDP6 both are; "IPv6 is
// black-holed" means UDP6 and TCP6 both are. Only public addresses have a
// class: a private or loopback address says nothing about our upstream.
type Class uint8

const (
	NoClass Class = iota // relay, private or loopback: never filtered
	UDP4
	UDP6
	TCP4
	TCP6
	numClasses
)

var classNames = [...]string{NoClass: "none", UDP4: "udp/ip4", UDP6: "udp/ip6", TCP4: "tcp/ip4", TCP6: "tcp/ip6"}

func (c Class) String() string {
	if c < numClasses {
		return classNames[c]
	}
	return "class?"
}

// Verdict is what the detector says of a class for one dial.
type Verdict uint8

const (
	Open    Verdict = iota // dial it
	Blocked                // skip it: its dials vanish
	Probe                  // blocked, but this dial may try one address of it
)

func (v Verdict) String() string {
	switch v {
	case Open:
		return "open"
	case Blocked:
		return "blocked"
	case Probe:
		return "probe"
	}
	return "verdict?"
}

// BlackHoleView is the verdict for each class, for one dial (the zero
// value: all open). BlackHoles.Admit makes one.
type BlackHoleView [numClasses]Verdict

// Of returns the verdict for c.
func (v BlackHoleView) Of(c Class) Verdict {
	if c >= numClasses || c == NoClass {
		return Open
	}
	return v[c]
}

func (v BlackHoleView) String() string {
	var parts []string
	for c := UDP4; c < numClasses; c++ {
		if v[c] != Open {
			parts = append(parts, c.String()+" "+v[c].String())
		}
	}
	if len(parts) == 0 {
		return "all open"
	}
	return strings.Join(parts, ", ")
}

// BlackHoleConfig tunes the detector; zero fields take the defaults.
type BlackHoleConfig struct {
	// Strikes is how many dials in a row must show a class silent while
	// the same peer answered on another class before the class is
	// blocked (default 5).
	Strikes int
	// Peers is how many distinct peers those strikes must come from
	// (default 3), so that one peer with a broken IPv6 setup cannot block
	// IPv6 for everyone.
	Peers int
	// ProbeEvery lets one dial in ProbeEvery that wants a blocked class
	// try it (default 16).
	ProbeEvery int
	// ProbeInterval lets a dial probe a blocked class once this long has
	// passed since the last probe, however few dials wanted it
	// (default 1 minute).
	ProbeInterval time.Duration
	// Now is the clock (default time.Now); tests pass a fake one.
	Now func() time.Time
}

// BlackHoles learns which classes of addresses are black holes (packets
// vanish: a firewall dropping UDP, an IPv6 route that goes nowhere) from
// the outcomes of dials, and tells each dial which classes to skip. It is
// safe for concurrent use.
//
// Evidence: a dial's attempts in class C give a strike to C when all of
// them went unanswered (timeout, no route, or overtaken after twice their
// expected time) while the same dial reached the peer directly through
// another class. A peer that is simply offline therefore proves nothing,
// which is what lets the detector act on a handful of strikes instead of
// go-libp2p's 100 dials: Strikes (5) strikes in a row from Peers (3)
// distinct peers block C. Any answer in C (a connection, a refusal, a
// peer ID mismatch: something came back) clears its strikes and unblocks
// it.
//
// While C is blocked, Admit lets one dial in ProbeEvery (16) that wants C,
// or the first after ProbeInterval (1 min), probe it with one address; an
// answer reopens C, silence keeps it blocked. So a false block costs at
// most 16 dials or a minute of preferring other paths, and a real one
// costs one wasted dial in 16 instead of a timeout per dial.
//
// Unfiltered dials (AutoNAT dial-backs, hole punches) ignore the verdicts
// and report only answers: their successes are good evidence that a
// class works, but their failures are expected (the address under test
// may be unreachable, the punch may miss) and would poison the count.
type BlackHoles struct {
	cfg BlackHoleConfig
	mu  sync.Mutex
	cls [numClasses]classState
}

type classState struct {
	blocked     bool
	strikes     int
	peers       []peer.ID // distinct peers among the current strikes, up to cfg.Peers
	since       time.Time // blocked since
	wanted      int       // dials that wanted the class since the last probe
	lastProbe   time.Time
	skipped     int // dials that skipped the class while blocked, for String
	probes      int
	transitions int
}

// NewBlackHoles returns a detector with every class open.
func NewBlackHoles(cfg *BlackHoleConfig) *BlackHoles {
	b := &BlackHoles{}
	if cfg != nil {
		b.cfg = *cfg
	}
	if b.cfg.Strikes <= 0 {
		b.cfg.Strikes = 5
	}
	if b.cfg.Peers <= 0 {
		b.cfg.Peers = 3
	}
	if b.cfg.ProbeEvery <= 0 {
		b.cfg.ProbeEvery = 16
	}
	if b.cfg.ProbeInterval <= 0 {
		b.cfg.ProbeInterval = time.Minute
	}
	if b.cfg.Now == nil {
		b.cfg.Now = time.Now
	}
	return b
}

// Admit returns the verdicts for a dial to addrs, to put in
// Knowledge.BlackHoles. It counts the dial against each blocked class
// among addrs' public addresses and hands out that class's probe when one
// is due; classes addrs do not use are left alone, so a probe is never
// given to a dial that cannot use it.
func (b *BlackHoles) Admit(addrs []ma.Multiaddr) BlackHoleView {
	var want [numClasses]bool
	for _, a := range addrs {
		if in, ok := parse(a); ok {
			want[in.class()] = true
		}
	}
	now := b.cfg.Now()
	var v BlackHoleView
	b.mu.Lock()
	defer b.mu.Unlock()
	for c := UDP4; c < numClasses; c++ {
		s := &b.cls[c]
		if !s.blocked || !want[c] {
			continue
		}
		s.wanted++
		if s.wanted >= b.cfg.ProbeEvery || now.Sub(s.lastProbe) >= b.cfg.ProbeInterval {
			s.wanted = 0
			s.lastProbe = now
			s.probes++
			v[c] = Probe
			continue
		}
		s.skipped++
		v[c] = Blocked
	}
	return v
}

// View returns the current state without counting a dial: Blocked for
// each blocked class, never Probe. For display and for callers that must
// not hand out probes.
func (b *BlackHoles) View() BlackHoleView {
	var v BlackHoleView
	b.mu.Lock()
	defer b.mu.Unlock()
	for c := UDP4; c < numClasses; c++ {
		if b.cls[c].blocked {
			v[c] = Blocked
		}
	}
	return v
}

// Learn takes the outcomes of a finished dial (see the type's comment).
func (b *BlackHoles) Learn(t *Trace) {
	if t == nil {
		return
	}
	var reached, silent [numClasses]bool
	reachedAny := false
	for i := range t.Attempts {
		at := &t.Attempts[i]
		c := at.Dial.Class
		switch {
		case at.Outcome.answered():
			if at.Dial.Transport != Relay {
				reachedAny = true
			}
			reached[c] = true
		case at.silent():
			silent[c] = true
		}
	}
	now := b.cfg.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	for c := UDP4; c < numClasses; c++ {
		s := &b.cls[c]
		switch {
		case reached[c]:
			if s.blocked {
				s.transitions++
			}
			*s = classState{skipped: s.skipped, probes: s.probes, transitions: s.transitions}
		case silent[c] && reachedAny && !t.Ranking.Unfiltered:
			s.strikes++
			if !slices.Contains(s.peers, t.Peer) && len(s.peers) < b.cfg.Peers {
				s.peers = append(s.peers, t.Peer)
			}
			if !s.blocked && s.strikes >= b.cfg.Strikes && len(s.peers) >= b.cfg.Peers {
				s.blocked = true
				s.since = now
				s.wanted = 0
				s.lastProbe = now
				s.transitions++
			}
		}
	}
}

// String describes each class that is blocked or has strikes.
func (b *BlackHoles) String() string {
	now := b.cfg.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	var parts []string
	for c := UDP4; c < numClasses; c++ {
		s := &b.cls[c]
		switch {
		case s.blocked:
			parts = append(parts, fmt.Sprintf("%s blocked for %v (%d dials skipped it, %d probes)",
				c, now.Sub(s.since).Round(time.Second), s.skipped, s.probes))
		case s.strikes > 0:
			parts = append(parts, fmt.Sprintf("%s open, %d strikes from %d peers", c, s.strikes, len(s.peers)))
		}
	}
	if len(parts) == 0 {
		return "no black holes"
	}
	return strings.Join(parts, "; ")
}
