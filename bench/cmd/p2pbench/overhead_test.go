package main

import (
	"context"
	"maps"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
)

// TestMetricsOverheadRound runs one round of -metrics-overhead and checks
// that every row got figures, so the mode does not break unseen.
func TestMetricsOverheadRound(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	g, err := newOverheadRig()
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	r, err := g.round(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(r) != 3*len(overheadSecs) {
		t.Errorf("%d rows, want %d: %v", len(r), 3*len(overheadSecs), r)
	}
	for row, v := range r {
		if v.off <= 0 || v.on <= 0 || v.cpuOff <= 0 || v.cpuOn <= 0 {
			t.Errorf("%s: %+v: want positive figures", row, v)
		}
	}
	md := overheadMarkdown([]overheadRound{r}, time.Second)
	for row := range r {
		if !strings.Contains(md, "| "+row+" |") {
			t.Errorf("table lacks row %q:\n%s", row, md)
		}
	}
}

// TestMedianCI: the interval widens with the spread and narrows with the
// number of rounds, and the goal column follows it.
func TestMedianCI(t *testing.T) {
	seq := func(n int, f func(i int) float64) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	tests := []struct {
		name   string
		xs     []float64
		lo, hi float64 // bounds the interval must lie within
		goal   string
	}{
		{"tight around 0.5", seq(100, func(i int) float64 { return 0.5 + float64(i%11-5)*0.1 }), 0, 1, "met"},
		{"wide around 0.5", seq(100, func(i int) float64 { return 0.5 + float64(i%11-5)*2 }), -4, 5, "unresolved"},
		{"clearly over", seq(100, func(i int) float64 { return 5 + float64(i%11-5)*0.5 }), 3, 7, "missed"},
		{"few values", []float64{1, 2, 3}, 1, 3, "unresolved"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, lo, hi := medianCI(tc.xs)
			if !(lo <= m && m <= hi) || lo < tc.lo || hi > tc.hi {
				t.Errorf("median %v, interval [%v, %v]; want inside [%v, %v]", m, lo, hi, tc.lo, tc.hi)
			}
			if g := goalCell(tc.xs); g != tc.goal {
				t.Errorf("goal %q, want %q", g, tc.goal)
			}
		})
	}
}

// TestClassify: a sample counts as metrics when any frame, inlined ones
// included, is the metrics code, and is booked under the outermost one.
func TestClassify(t *testing.T) {
	fn := func(name string) *profile.Function { return &profile.Function{Name: name} }
	loc := func(names ...string) *profile.Location { // innermost first, as pprof stores inlined lines
		l := &profile.Location{}
		for _, n := range names {
			l.Line = append(l.Line, profile.Line{Function: fn(n)})
		}
		return l
	}
	p := &profile.Profile{Sample: []*profile.Sample{
		// leaf first: counter.Inc called by connMetrics.ConnOpened called by the swarm
		{Value: []int64{3, 0}, Location: []*profile.Location{
			loc("github.com/prometheus/client_golang/prometheus.(*counter).Inc"),
			loc("github.com/tachyon-p2p/tachyon/metrics.(*connMetrics).ConnOpened"),
			loc("github.com/tachyon-p2p/tachyon/swarm.(*Swarm).addConn"),
		}},
		// the metrics frame inlined into the swarm's location
		{Value: []int64{2, 0}, Location: []*profile.Location{
			loc("sync/atomic.(*Int64).Add", "github.com/tachyon-p2p/tachyon/metrics.(*protoMeter).AddBytes", "github.com/tachyon-p2p/tachyon/swarm.(*Stream).Write"),
		}},
		{Value: []int64{1, 0}, Location: []*profile.Location{
			loc("github.com/tachyon-p2p/tachyon.(*protoLabels).StreamOpened"),
		}},
		{Value: []int64{4, 0}, Location: []*profile.Location{loc("runtime.scanobject"), loc("runtime.gcBgMarkWorker")}},
		// not metrics: a package whose name merely starts alike
		{Value: []int64{10, 0}, Location: []*profile.Location{loc("github.com/tachyon-p2p/tachyon/metricsx.F"), loc("crypto/aes.encrypt")}},
	}}
	entries := make(map[string]int64)
	all, m, gc := classify(p, entries)
	if all != 20 || m != 6 || gc != 4 {
		t.Errorf("classify = %d samples, %d metrics, %d gc; want 20, 6, 4", all, m, gc)
	}
	want := map[string]int64{
		"github.com/tachyon-p2p/tachyon/metrics.(*connMetrics).ConnOpened": 3,
		"github.com/tachyon-p2p/tachyon/metrics.(*protoMeter).AddBytes":    2,
		"github.com/tachyon-p2p/tachyon.(*protoLabels).StreamOpened":       1,
	}
	if !maps.Equal(entries, want) {
		t.Errorf("entries = %v, want %v", entries, want)
	}
}

// TestWilsonAndEstimate: the interval holds the share, narrows with the
// samples, and the estimate adds the collector's work for extra bytes.
func TestWilsonAndEstimate(t *testing.T) {
	for _, c := range []struct{ k, n int64 }{{0, 100}, {10, 1000}, {100, 10000}, {500, 500}} {
		lo, hi := wilson(c.k, c.n)
		p := float64(c.k) / float64(c.n)
		if lo > p || hi < p || lo < 0 || hi > 1 {
			t.Errorf("wilson(%d, %d) = [%v, %v] does not hold %v", c.k, c.n, lo, hi, p)
		}
	}
	_, hiSmall := wilson(10, 1000)
	_, hiLarge := wilson(100, 10000)
	if hiLarge >= hiSmall {
		t.Errorf("upper bound %v with 10x the samples, %v before: want narrower", hiLarge, hiSmall)
	}
	a := attribution{
		off: window{ops: 100, samples: 10000, gc: 1000, allocBytes: 100 * 1000},
		on:  window{ops: 100, samples: 10000, metrics: 100, allocBytes: 100 * 1100},
	}
	point, upper := a.estimate()
	// 1 % of the samples: 1/99 of the rest; 10 % GC x 10 % more bytes: 1 %
	if want := 100 * (0.01/0.99 + 0.1*0.1); math.Abs(point-want) > 1e-9 {
		t.Errorf("estimate %v, want %v", point, want)
	}
	if upper <= point {
		t.Errorf("upper bound %v not above the point %v", upper, point)
	}
}
