package main

import (
	"context"
	"strings"
	"testing"
	"time"
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
