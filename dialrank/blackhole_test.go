package dialrank

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/streamtest"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time           { return c.t }
func (c *fakeClock) add(d time.Duration)      { c.t = c.t.Add(d) }
func newClock() *fakeClock                    { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }
func attempt(a string, o Outcome) attemptSpec { return attemptSpec{a, o, 0} }

type attemptSpec struct {
	addr string
	o    Outcome
	took time.Duration
}

// trace builds a finished dial to p with the given attempts.
func trace(t *testing.T, p peer.ID, unfiltered bool, specs ...attemptSpec) *Trace {
	t.Helper()
	base := time.Unix(1_700_000_000, 0)
	tr := NewTrace(p, Ranking{Unfiltered: unfiltered}, base)
	for _, s := range specs {
		a := mas(t, s.addr)[0]
		in, _ := parse(a)
		d := Dial{Addr: a, Transport: in.kind, Class: in.class(), Expect: time.Duration(in.kind.Rounds()) * 40 * time.Millisecond}
		i := tr.Started(d, base)
		tr.FinishedAs(i, base.Add(s.took), s.o, nil)
	}
	return tr
}

func peers(t *testing.T, n int) []peer.ID {
	out := make([]peer.ID, n)
	for i := range out {
		out[i] = streamtest.PeerID(t, fmt.Sprint("bh", i))
	}
	return out
}

// strike is a dial where udp/ip6 was silent and tcp/ip4 connected.
func strike(t *testing.T, p peer.ID) *Trace {
	return trace(t, p, false, attempt(q6, Timeout), attempt(t4s, Connected))
}

func TestBlackHoleEnters(t *testing.T) {
	ps := peers(t, 3)
	cases := []struct {
		name    string
		traces  func() []*Trace
		blocked bool
	}{
		{"5 strikes from 3 peers", func() []*Trace {
			return []*Trace{strike(t, ps[0]), strike(t, ps[1]), strike(t, ps[2]), strike(t, ps[0]), strike(t, ps[1])}
		}, true},
		{"4 strikes", func() []*Trace {
			return []*Trace{strike(t, ps[0]), strike(t, ps[1]), strike(t, ps[2]), strike(t, ps[0])}
		}, false},
		{"10 strikes from 2 peers", func() []*Trace {
			var trs []*Trace
			for i := range 10 {
				trs = append(trs, strike(t, ps[i%2]))
			}
			return trs
		}, false},
		{"an answer in between clears the strikes", func() []*Trace {
			return []*Trace{strike(t, ps[0]), strike(t, ps[1]), strike(t, ps[2]),
				trace(t, ps[0], false, attempt(q6, Refused)),
				strike(t, ps[0]), strike(t, ps[1])}
		}, false},
		{"an offline peer is no evidence", func() []*Trace {
			var trs []*Trace
			for i := range 10 {
				trs = append(trs, trace(t, ps[i%3], false, attempt(q6, Timeout), attempt(t4s, Timeout)))
			}
			return trs
		}, false},
		{"unfiltered failures are no evidence", func() []*Trace {
			var trs []*Trace
			for i := range 10 {
				trs = append(trs, trace(t, ps[i%3], true, attempt(q6, Timeout), attempt(t4s, Connected)))
			}
			return trs
		}, false},
		{"overtaken late is silence", func() []*Trace {
			var trs []*Trace
			for i := range 5 {
				trs = append(trs, trace(t, ps[i%3], false, attemptSpec{q6, Overtaken, 300 * time.Millisecond}, attempt(t4s, Connected)))
			}
			return trs
		}, true},
		{"overtaken early is not", func() []*Trace {
			var trs []*Trace
			for i := range 10 {
				trs = append(trs, trace(t, ps[i%3], false, attemptSpec{q6, Overtaken, 50 * time.Millisecond}, attempt(t4s, Connected)))
			}
			return trs
		}, false},
		{"no route is silence", func() []*Trace {
			var trs []*Trace
			for i := range 5 {
				trs = append(trs, trace(t, ps[i%3], false, attempt(q6, Unreachable), attempt(q4, Connected)))
			}
			return trs
		}, true},
		{"private addresses have no class", func() []*Trace {
			var trs []*Trace
			for i := range 10 {
				trs = append(trs, trace(t, ps[i%3], false, attempt("/ip6/fd00::1/udp/1/quic-v1", Timeout), attempt(t4s, Connected)))
			}
			return trs
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBlackHoles(nil)
			for _, tr := range tc.traces() {
				b.Learn(tr)
			}
			if got := b.View()[UDP6] == Blocked; got != tc.blocked {
				t.Errorf("udp/ip6 blocked = %v, want %v (%s)", got, tc.blocked, b)
			}
			for _, c := range []Class{UDP4, TCP4, TCP6} {
				if b.View()[c] != Open {
					t.Errorf("%s is %s", c, b.View()[c])
				}
			}
		})
	}
}

func TestBlackHoleProbes(t *testing.T) {
	clk := newClock()
	b := NewBlackHoles(&BlackHoleConfig{Now: clk.now, ProbeEvery: 4, ProbeInterval: time.Minute})
	ps := peers(t, 3)
	for i := range 5 {
		b.Learn(strike(t, ps[i%3]))
	}
	udp6 := mas(t, q6, t4s)
	tcpOnly := mas(t, t4s)
	// Every 4th dial that wants udp/ip6 probes; dials that do not want it
	// neither count nor get a probe.
	var got []Verdict
	for range 9 {
		got = append(got, b.Admit(udp6)[UDP6])
		if v := b.Admit(tcpOnly); v != (BlackHoleView{}) {
			t.Fatalf("a tcp-only dial got %s", v)
		}
	}
	want := []Verdict{Blocked, Blocked, Blocked, Probe, Blocked, Blocked, Blocked, Probe, Blocked}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("verdicts %v, want %v", got, want)
	}
	// After ProbeInterval, the next dial probes however few came before.
	clk.add(time.Minute)
	if v := b.Admit(udp6)[UDP6]; v != Probe {
		t.Errorf("after the interval: %s, want probe", v)
	}
	// A silent probe keeps the block.
	b.Learn(trace(t, ps[0], false, attempt(q6, Timeout), attempt(t4s, Connected)))
	if b.View()[UDP6] != Blocked {
		t.Errorf("silent probe unblocked: %s", b)
	}
	if !strings.Contains(b.String(), "udp/ip6 blocked for 1m0s") {
		t.Errorf("String: %s", b)
	}
	// An answered probe reopens.
	b.Learn(trace(t, ps[0], false, attempt(q6, Connected)))
	if v := b.Admit(udp6); v != (BlackHoleView{}) {
		t.Errorf("after an answered probe: %s", v)
	}
	if b.String() != "no black holes" {
		t.Errorf("String: %s", b)
	}
}

func TestBlackHoleUnfilteredSuccessReopens(t *testing.T) {
	b := NewBlackHoles(nil)
	ps := peers(t, 3)
	for i := range 5 {
		b.Learn(strike(t, ps[i%3]))
	}
	if b.View()[UDP6] != Blocked {
		t.Fatalf("not blocked: %s", b)
	}
	// A hole punch over udp/ip6 that connects proves the class works.
	b.Learn(trace(t, ps[0], true, attempt(q6, Connected)))
	if b.View()[UDP6] != Open {
		t.Errorf("unfiltered success did not reopen: %s", b)
	}
}

func TestBlackHoleViewString(t *testing.T) {
	var v BlackHoleView
	if v.String() != "all open" {
		t.Errorf("%s", v)
	}
	v[UDP4], v[TCP6] = Blocked, Probe
	if v.String() != "udp/ip4 blocked, tcp/ip6 probe" {
		t.Errorf("%s", v)
	}
	if v.Of(NoClass) != Open || v.Of(Class(200)) != Open {
		t.Error("NoClass or an unknown class is not open")
	}
}
