package dialrank

import (
	"errors"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/streamtest"
)

// The scenarios (issue 16), at the ranking level: a plan is run in
// virtual time by simulate, the way the swarm is to run it, against a
// model of the network, and the test checks which addresses were dialed
// when.

// simulate runs r as the swarm should: dial i starts at its Delay, or at
// once when every started dial has failed (the rest of the schedule moves
// up by the time saved); the first connection wins and the others are
// overtaken. net says how each attempt would end and after how long.
func simulate(p peer.ID, r Ranking, net func(Dial) (Outcome, time.Duration), base time.Time) *Trace {
	tr := NewTrace(p, r, base)
	type pend struct {
		idx int
		end time.Duration
		o   Outcome
	}
	var pending []pend
	var now, shift time.Duration
	next := 0
	for {
		startAt := time.Duration(1 << 62)
		if next < len(r.Dials) {
			startAt = r.Dials[next].Delay - shift
			if len(pending) == 0 && startAt > now {
				shift += startAt - now
				startAt = now
			}
		}
		ei := -1
		for j := range pending {
			if ei < 0 || pending[j].end < pending[ei].end {
				ei = j
			}
		}
		if next < len(r.Dials) && (ei < 0 || startAt <= pending[ei].end) {
			now = startAt
			d := r.Dials[next]
			next++
			o, took := net(d)
			pending = append(pending, pend{tr.Started(d, base.Add(now)), now + took, o})
			continue
		}
		if ei < 0 {
			tr.Done(base.Add(now), errors.New("all addresses failed"))
			return tr
		}
		pe := pending[ei]
		pending = slices.Delete(pending, ei, ei+1)
		now = pe.end
		if pe.o == Connected {
			tr.FinishedAs(pe.idx, base.Add(now), Connected, nil)
			tr.Done(base.Add(now), nil)
			return tr
		}
		tr.FinishedAs(pe.idx, base.Add(now), pe.o, errFor(pe.o))
	}
}

func errFor(o Outcome) error {
	switch o {
	case Refused:
		return syscall.ECONNREFUSED
	case Timeout:
		return fmt.Errorf("dial: %w", errTimeout)
	}
	return errors.New(o.String())
}

var errTimeout = errors.New("i/o timeout")

// testNet models the testbed: RTTs by IP (default 40 ms), silent
// addresses, refusals.
type testNet struct {
	rtt     map[string]time.Duration
	silent  func(in info) bool
	refused func(in info) bool
}

const dialTimeout = 5 * time.Second

func (n testNet) dial(d Dial) (Outcome, time.Duration) {
	in, _ := parse(d.Addr)
	rtt := 40 * time.Millisecond
	if r, ok := n.rtt[in.ip.String()]; ok {
		rtt = r
	}
	switch {
	case n.silent != nil && n.silent(in):
		return Timeout, dialTimeout
	case n.refused != nil && n.refused(in):
		return Refused, rtt
	}
	return Connected, time.Duration(d.Transport.Rounds()) * rtt
}

// listener is a tachyon listener's advertised addresses: TCP (plain,
// /tls, /noise), QUIC, WebTransport and WebRTC-direct on each IP given.
func listener(ips ...string) []string {
	var out []string
	for _, ip := range ips {
		h := "/ip4/" + ip
		if !isV4(ip) {
			h = "/ip6/" + ip
		}
		out = append(out, h+"/tcp/4001", h+"/tcp/4001/tls", h+"/tcp/4001/noise", h+"/udp/4001/quic-v1",
			h+"/udp/4001/quic-v1/webtransport"+certhash, h+"/udp/4002/webrtc-direct"+certhash)
	}
	return out
}

func isV4(ip string) bool {
	for _, c := range ip {
		if c == ':' {
			return false
		}
	}
	return true
}

// node is a dialer that learns: its RTTs and black holes persist across
// dials, on a fake clock.
type node struct {
	now  time.Time
	rtts *RTTs
	bh   *BlackHoles
}

func newNode() *node {
	n := &node{now: time.Unix(1_700_000_000, 0)}
	clock := func() time.Time { return n.now }
	n.rtts = NewRTTs(&RTTConfig{Now: clock})
	n.bh = NewBlackHoles(&BlackHoleConfig{Now: clock})
	return n
}

func (n *node) dial(p peer.ID, addrs []ma.Multiaddr, net testNet, k Knowledge) *Trace {
	k.Peer, k.Now = p, n.now
	if n.rtts != nil {
		k.RTT = n.rtts
	}
	k.BlackHoles = n.bh.Admit(addrs)
	tr := simulate(p, Plan(addrs, k), net.dial, n.now)
	n.rtts.Learn(tr)
	n.bh.Learn(tr)
	n.now = n.now.Add(time.Second)
	return tr
}

// connectTime and started summarise a trace.
func connectTime(tr *Trace) time.Duration {
	if w := tr.Winner(); w != nil {
		return w.End.Sub(tr.Begin)
	}
	return -1
}

func fresh(t *testing.T, addrs []string, net testNet, k Knowledge) *Trace {
	t.Helper()
	p := streamtest.PeerID(t, "listener")
	k.Peer = p
	return simulate(p, Plan(mas(t, addrs...), k), net.dial, time.Unix(1_700_000_000, 0))
}

func check(t *testing.T, tr *Trace, wantTime time.Duration, wantDials int) {
	t.Helper()
	if got := connectTime(tr); got != wantTime || len(tr.Attempts) != wantDials {
		t.Errorf("connected after %v with %d dials, want %v with %d\n%s", got, len(tr.Attempts), wantTime, wantDials, tr)
	}
}

const (
	v4 = "1.2.3.4"
	v6 = "2001:db8::1"
)

func TestScenario1EverythingWorks(t *testing.T) {
	tr := fresh(t, listener(v4, v6), testNet{}, Knowledge{})
	check(t, tr, 40*time.Millisecond, 1)
	if d := tr.Ranking.Dials; d[1].Delay <= d[0].Expect || d[1].Delay <= 40*time.Millisecond {
		t.Errorf("second dial at %v, before the first (expected %v) could connect", d[1].Delay, d[0].Expect)
	}
	// A node that learned RTTs: still exactly one dial, with a shorter
	// gap behind it.
	n := newNode()
	for i := range 5 {
		tr = n.dial(streamtest.PeerID(t, fmt.Sprint("p", i)), mas(t, listener(v4, v6)...), testNet{}, Knowledge{})
		check(t, tr, 40*time.Millisecond, 1)
	}
	if d := tr.Ranking.Dials; d[1].Delay <= d[0].Expect || d[1].Delay >= FallbackGap {
		t.Errorf("learned: second dial at %v, first expected %v\n%s", d[1].Delay, d[0].Expect, tr)
	}
}

// learnPeers dials fresh peers (each on its own IPs, in the same
// prefixes) until count dials were made, and returns the traces.
func learnPeers(t *testing.T, n *node, count int, net testNet) []*Trace {
	var trs []*Trace
	for i := range count {
		addrs := mas(t, listener(fmt.Sprintf("1.2.3.%d", 10+i), fmt.Sprintf("2001:db8::%x", 16+i))...)
		trs = append(trs, n.dial(streamtest.PeerID(t, fmt.Sprint("peer", i)), addrs, net, Knowledge{}))
	}
	return trs
}

// intoHole counts attempts into the black hole that were not probes.
func intoHole(tr *Trace, hole func(in info) bool) (dials, probes int) {
	for _, a := range tr.Attempts {
		in, _ := parse(a.Dial.Addr)
		if hole(in) {
			if a.Dial.Probe {
				probes++
			} else {
				dials++
			}
		}
	}
	return dials, probes
}

func TestScenario2IPv6BlackHoled(t *testing.T) {
	hole := func(in info) bool { return in.ip.Is6() }
	net := testNet{silent: hole}
	// Fresh: ip6 first, ip4 one fallback gap later.
	check(t, fresh(t, listener(v4, v6), net, Knowledge{}), FallbackGap+40*time.Millisecond, 2)
	// Learning.
	n := newNode()
	trs := learnPeers(t, n, 40, net)
	assertLearned(t, trs, hole, 40*time.Millisecond)
}

func TestScenario3UDPBlackHoled(t *testing.T) {
	hole := func(in info) bool { return in.kind.udp() }
	net := testNet{silent: hole}
	// Fresh: quic on ip6, quic on ip4, then tcp/tls on ip6, which
	// connects before tcp/tls on ip4's turn (webtransport shares QUIC's
	// path and waits a wave; webrtc-direct waits 1 s).
	check(t, fresh(t, listener(v4, v6), net, Knowledge{}), 2*FallbackGap+80*time.Millisecond, 3)
	n := newNode()
	trs := learnPeers(t, n, 40, net)
	assertLearned(t, trs, hole, 80*time.Millisecond)
	if !n.bh.View().blocked(UDP4) || !n.bh.View().blocked(UDP6) {
		t.Errorf("udp not blocked: %s", n.bh)
	}
}

func (v BlackHoleView) blocked(c Class) bool { return v[c] == Blocked }

// assertLearned checks the learning curve: within the first 8 dials the
// node stops dialing into the hole (but for probes, at most one in 16
// dials per class), and from then on connects in best.
func assertLearned(t *testing.T, trs []*Trace, hole func(info) bool, best time.Duration) {
	t.Helper()
	learnedAt := -1
	for i, tr := range trs {
		if d, _ := intoHole(tr, hole); d > 0 {
			learnedAt = -1
		} else if learnedAt < 0 {
			learnedAt = i
		}
	}
	if learnedAt < 0 || learnedAt > 8 {
		t.Fatalf("still dialing into the hole after %d dials (learned at %d)\n%s", len(trs), learnedAt, trs[len(trs)-1])
	}
	t.Logf("no dial into the hole from dial %d on", learnedAt)
	probes := 0
	for i, tr := range trs[learnedAt:] {
		_, p := intoHole(tr, hole)
		probes += p
		if got := connectTime(tr); got != best {
			t.Errorf("dial %d after learning: connected after %v, want %v\n%s", i, got, best, tr)
		}
	}
	t.Logf("%d probes in %d dials", probes, len(trs[learnedAt:]))
	if max := 2 * (len(trs[learnedAt:])/16 + 1); probes > max {
		t.Errorf("%d probes in %d dials, want at most %d", probes, len(trs[learnedAt:]), max)
	}
}

func TestScenario4FastQUICSlowTCP(t *testing.T) {
	// QUIC on one address at 20 ms, TCP on another at 200 ms.
	quicIP, tcpIP := "1.2.3.4", "5.6.7.8"
	addrs := []string{"/ip4/" + tcpIP + "/tcp/4001", "/ip4/" + tcpIP + "/tcp/4001/tls", "/ip4/" + quicIP + "/udp/4001/quic-v1"}
	net := testNet{rtt: map[string]time.Duration{quicIP: 20 * time.Millisecond, tcpIP: 200 * time.Millisecond}}
	check(t, fresh(t, addrs, net, Knowledge{}), 20*time.Millisecond, 1)
	// Reversed (slow QUIC, fast TCP): fresh dialers try QUIC first; a
	// node that measured both goes to TCP first.
	rev := testNet{rtt: map[string]time.Duration{quicIP: 200 * time.Millisecond, tcpIP: 20 * time.Millisecond}}
	check(t, fresh(t, addrs, rev, Knowledge{}), 200*time.Millisecond, 1)
	n := newNode()
	p := streamtest.PeerID(t, "listener")
	n.rtts.AddRTT(p, mas(t, addrs[0])[0], 20*time.Millisecond)
	n.rtts.AddRTT(p, mas(t, addrs[2])[0], 200*time.Millisecond)
	check(t, n.dial(p, mas(t, addrs...), rev, Knowledge{}), 40*time.Millisecond, 1)
}

func TestScenario5DeadAddressesFirst(t *testing.T) {
	var addrs []string
	for i := range 10 {
		addrs = append(addrs, fmt.Sprintf("/ip4/9.9.9.%d/tcp/4001/tls", i+1))
	}
	live := "/ip4/" + v4 + "/tcp/4001/tls"
	addrs = append(addrs, live)
	dead := func(in info) bool { return in.ip.String() != v4 }
	net := testNet{silent: dead}
	// Fresh: three waves of one, then the rest race.
	check(t, fresh(t, addrs, net, Knowledge{}), 3*FallbackGap+80*time.Millisecond, 11)
	// Once the dead ones are in back-off, the live one goes first.
	now := time.Unix(1_700_000_000, 0)
	backoff := func(a ma.Multiaddr) time.Time {
		if in, _ := parse(a); dead(in) {
			return now.Add(time.Minute)
		}
		return time.Time{}
	}
	check(t, fresh(t, addrs, net, Knowledge{Now: now, Backoff: backoff}), 80*time.Millisecond, 1)
}

func TestScenario6TCPRefusedQUICAnswers(t *testing.T) {
	refused := func(in info) bool { return !in.kind.udp() }
	net := testNet{refused: refused}
	check(t, fresh(t, listener(v4, v6), net, Knowledge{}), 40*time.Millisecond, 1)
	// Without QUIC, tcp/tls goes first; its refusal starts the next dial
	// (webtransport) at once instead of after the gap.
	noQUIC := func(a ma.Multiaddr) bool { k, _ := TransportOf(a); return k != QUIC }
	tr := fresh(t, listener(v4), net, Knowledge{CanDial: noQUIC})
	check(t, tr, 40*time.Millisecond+120*time.Millisecond, 2)
	// A refusal is an answer: it never counts toward a black hole.
	n := newNode()
	for i := range 10 {
		n.dial(streamtest.PeerID(t, fmt.Sprint("p", i)), mas(t, listener(fmt.Sprintf("1.2.3.%d", i+10))...), net, Knowledge{CanDial: noQUIC})
	}
	if v := n.bh.View(); v != (BlackHoleView{}) {
		t.Errorf("refusals made a black hole: %s", n.bh)
	}
}

func TestScenario7RelayOnly(t *testing.T) {
	check(t, fresh(t, []string{rly}, testNet{}, Knowledge{}), 160*time.Millisecond, 1)
	// Direct addresses all dead: the relay starts with the last direct
	// one (quic 0, tcp/tls 250 ms, webtransport 500 ms), or at RelayDelay
	// when that is later.
	dead := func(in info) bool { return in.kind != Relay }
	noWebRTC := func(a ma.Multiaddr) bool { k, _ := TransportOf(a); return k != WebRTCDirect }
	tr := fresh(t, append(listener(v4), rly), testNet{silent: dead}, Knowledge{CanDial: noWebRTC})
	check(t, tr, 2*FallbackGap+160*time.Millisecond, 4)
	tr = fresh(t, []string{q4, rly}, testNet{silent: dead}, Knowledge{})
	check(t, tr, RelayDelay+160*time.Millisecond, 2)
}
