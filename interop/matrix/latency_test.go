package main

import (
	"math"
	"regexp"
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		in                  []float64
		min, q1, median, q3 float64
	}{
		{[]float64{5}, 5, 5, 5, 5},
		{[]float64{3, 1, 2}, 1, 1.5, 2, 2.5},
		{[]float64{7, 1, 2, 3, 4, 5, 6}, 1, 2.5, 4, 5.5},
		{[]float64{10, 10, 10, 10}, 10, 10, 10, 10},
	} {
		s := summarize(tc.in)
		if s.N != len(tc.in) || s.Min != tc.min || s.Q1 != tc.q1 || s.Median != tc.median || s.Q3 != tc.q3 {
			t.Errorf("%v: %+v", tc.in, s)
		}
	}
	if s := summarize(nil); s.N != 0 {
		t.Errorf("empty: %+v", s)
	}
}

func TestCompare(t *testing.T) {
	for _, tc := range []struct {
		name         string
		tachyon, gol []float64
		want         string
		margin       float64
	}{
		{"clearly slower", []float64{30, 31, 29, 32, 30, 31, 30}, []float64{20, 21, 19, 20, 22, 20, 21}, "slower", 1},
		{"clearly faster", []float64{10, 11, 10, 12, 10, 11, 10}, []float64{20, 21, 19, 20, 22, 20, 21}, "faster", 1},
		{"equal", []float64{20, 20, 20, 20, 20, 20, 20}, []float64{20, 20, 20, 20, 20, 20, 20}, "same", 1},
		// One stall per side (the 78 ms vs 28 ms kind) moves neither median.
		{"one stall", []float64{21, 78, 20, 22, 21, 20, 21}, []float64{28, 21, 20, 22, 20, 21, 20}, "same", 1.5},
		// Medians 10 ms apart, but each side spreads over 40 ms.
		{"noise", []float64{20, 60, 25, 45, 30, 50, 35}, []float64{10, 50, 15, 35, 20, 40, 25}, "same", 20},
		// Steady, but half a millisecond is below what the clocks resolve.
		{"below the floor", []float64{1.5, 1.5, 1.5}, []float64{1, 1, 1}, "same", 1},
		{"too few tachyon samples", []float64{30, 31}, []float64{20, 21, 19}, "incomplete", 0},
		{"no go samples", []float64{30, 31, 29}, nil, "incomplete", 0},
	} {
		got, diff, margin := compare(tc.tachyon, tc.gol)
		if got != tc.want || math.Abs(margin-tc.margin) > 1e-9 {
			t.Errorf("%s: %s (diff %.2f, margin %.2f), want %s with margin %.2f", tc.name, got, diff, margin, tc.want, tc.margin)
		}
	}
}

func TestJudgeSeat(t *testing.T) {
	ks, err := parseKnown(strings.NewReader("js-3 tachyon ws/noise/yamux the listener's first reply waits for X\n"))
	if err != nil {
		t.Fatal(err)
	}
	slow := []float64{30, 31, 29, 32, 30}
	fast := []float64{20, 21, 19, 20, 22}
	for _, tc := range []struct {
		name, variant, role string
		tachyon, gol        []float64
		want                string
	}{
		{"slower, not listed", "tcp/noise/yamux", roleListens, slow, fast, "slower"},
		{"slower, listed", "ws/noise/yamux", roleListens, slow, fast, "known-slower"},
		{"listed, no longer slower", "ws/noise/yamux", roleListens, fast, fast, "unexpected-not-slower"},
		{"listed seat is the other role", "ws/noise/yamux", roleDials, slow, fast, "slower"},
		{"faster", "tcp/noise/yamux", roleDials, fast, slow, "ok"},
		{"same", "tcp/noise/yamux", roleDials, fast, fast, "ok"},
		{"incomplete", "tcp/noise/yamux", roleDials, slow[:1], fast, "incomplete"},
	} {
		s := seat{Variant: tc.variant, Peer: "js-3", Role: tc.role, Tachyon: tc.tachyon, Go: tc.gol}
		judgeSeat(&s, ks)
		if s.Status != tc.want {
			t.Errorf("%s: %s (%s), want %s", tc.name, s.Status, s.Reason, tc.want)
		}
		if s.failed() != (tc.want == "slower" || tc.want == "unexpected-not-slower" || tc.want == "incomplete") {
			t.Errorf("%s: failed() = %v for %s", tc.name, s.failed(), s.Status)
		}
	}
	na := seat{Variant: "quic-v1", Peer: "js-3", Role: roleDials, Status: "n/a", Reason: "no QUIC"}
	judgeSeat(&na, ks)
	if na.Status != "n/a" || na.failed() {
		t.Errorf("n/a seat judged: %+v", na)
	}
}

func TestLatencySeats(t *testing.T) {
	e := &env{repo: t.TempDir(), cache: t.TempDir()}
	var impls []*impl
	for _, n := range []string{"tachyon", "go-v0.51.0", "go-v0.45.0", "js-3"} {
		im, err := e.impl(n)
		if err != nil {
			t.Fatal(err)
		}
		impls = append(impls, im)
	}
	ks, err := parseKnown(strings.NewReader("tachyon* go-v0.4[0-5].0 webtransport draft\n"))
	if err != nil {
		t.Fatal(err)
	}
	seats, err := latencySeats(impls, ks, regexp.MustCompile(""))
	if err != nil {
		t.Fatal(err)
	}
	// 7 variants x 2 peers x 2 roles.
	if len(seats) != 28 {
		t.Fatalf("%d seats", len(seats))
	}
	status := map[string]string{}
	for _, s := range seats {
		status[s.key()] = s.Status
	}
	for key, want := range map[string]string{
		"tcp/noise/yamux go-v0.45.0 dials": "",
		"quic-v1 js-3 listens":             "n/a", // js has no QUIC
		"tcp/tls/yamux js-3 dials":         "n/a", // js offers Noise only
		"webtransport go-v0.45.0 dials":    "n/a", // a known incompatibility
		"webtransport go-v0.45.0 listens":  "",
		"webrtc-direct js-3 listens":       "",
	} {
		if got, ok := status[key]; !ok || got != want {
			t.Errorf("%s: status %q (present %v), want %q", key, got, ok, want)
		}
	}
	// A seat's two cells differ only in tachyon's place.
	tc, gc := seats[1].cells()
	if seats[1].Role != roleListens || tc.Dialer != seats[1].Peer || tc.Listener != "tachyon" || gc.Listener != latencyRef {
		t.Errorf("listens seat cells: %+v %+v", tc, gc)
	}
	if _, err := latencySeats(impls[1:], ks, regexp.MustCompile("")); err == nil {
		t.Error("no tachyon: no error")
	}
	only, _ := latencySeats(impls, ks, regexp.MustCompile("^quic-v1 go-v0.45.0$"))
	if len(only) != 2 {
		t.Errorf("-only: %d seats", len(only))
	}
}

func TestLatencyMarkdownAndMerge(t *testing.T) {
	ks, _ := parseKnown(strings.NewReader("js-3 tachyon ws/noise/yamux accepted: why\n"))
	r := latencyResults{Set: "slice", Date: "today", Go: "go1.26", Repeat: 5, Load: []string{"1.0 1.0 1.0", "2.0 1.5 1.0"}}
	r.Seats = []seat{
		{Variant: "tcp/noise/yamux", Peer: "js-3", Role: roleDials, Tachyon: []float64{30, 31, 29}, Go: []float64{20, 21, 19}},
		{Variant: "tcp/noise/yamux", Peer: "js-3", Role: roleListens, Tachyon: []float64{10, 11, 10}, Go: []float64{20, 21, 19},
			Failures: []string{"js-3 → tachyon round 2: dialer exit 1: boom"}},
		{Variant: "ws/noise/yamux", Peer: "js-3", Role: roleListens, Tachyon: []float64{30, 31, 29}, Go: []float64{20, 21, 19}},
		{Variant: "quic-v1", Peer: "js-3", Role: roleDials, Status: "n/a", Reason: "js-3: js-libp2p has no QUIC transport"},
		{Variant: "quic-v1", Peer: "js-3", Role: roleListens, Status: "n/a", Reason: "js-3: js-libp2p has no QUIC transport"},
	}
	for i := range r.Seats {
		judgeSeat(&r.Seats[i], ks)
	}
	md := r.markdown()
	for _, want := range []string{
		"5 rounds, load average 1.0 1.0 1.0 → 2.0 1.5 1.0",
		"Of 3 seats compared, tachyon's median is lower in 1 and higher in 2; beyond the noise margin it is slower in 2 and faster in 1.",
		"| tcp/noise/yamux | js-3 | **30.0** (29.0) ▲ | **20.0** (19.0) | **10.0** (10.0) ▼ (1 failed[1]) | **20.0** (19.0) |",
		"| ws/noise/yamux | js-3 |  |  | **30.0** (29.0) ▲ known[2] | **20.0** (19.0) |",
		"| quic-v1 | js-3 | –[3] | –[3] | –[3] | –[3] |",
		"1. js-3 → tachyon round 2: dialer exit 1: boom", "2. accepted: why", "3. js-3: js-libp2p has no QUIC transport",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}

	part := latencyResults{Set: "slice", Load: []string{"3.0 3.0 3.0"}, Seats: []seat{
		{Variant: "tcp/noise/yamux", Peer: "js-3", Role: roleDials, Tachyon: []float64{20, 20, 20}, Go: []float64{20, 20, 20}},
		{Variant: "webrtc-direct", Peer: "js-3", Role: roleDials, Tachyon: []float64{1, 1, 1}, Go: []float64{1, 1, 1}},
	}}
	m := mergeLatency(r, part)
	if len(m.Seats) != 6 || m.Seats[0].Tachyon[0] != 20 || m.Date != "today" || len(m.Load) != 3 {
		t.Errorf("merged: %d seats, first %v, date %q, load %v", len(m.Seats), m.Seats[0].Tachyon, m.Date, m.Load)
	}
}
