package main

import (
	"strings"
	"testing"
)

// TestCompare checks the direction of "worse" for both kinds of ratio and
// that the median over rounds, not one bad round, decides.
func TestCompare(t *testing.T) {
	base := baselineFile{Ratios: map[string]gateRatio{
		"first reply median: x": {1.0, false},
		"upload best: x":        {1.0, true},
	}}
	rounds := func(dial, up []float64) []map[string]float64 {
		var out []map[string]float64
		for i := range dial {
			out = append(out, map[string]float64{"first reply median: x": dial[i], "upload best: x": up[i]})
		}
		return out
	}
	if f := compare(base, rounds([]float64{1.1, 1.0, 3.0}, []float64{0.95, 1.0, 0.2}), false); len(f) != 0 {
		t.Errorf("one bad round failed the gate: %v", f)
	}
	f := compare(base, rounds([]float64{1.2, 1.2, 1.2}, []float64{0.8, 0.8, 0.8}), false)
	if len(f) != 2 || !strings.HasPrefix(f[0], "first reply") || !strings.HasPrefix(f[1], "upload") {
		t.Errorf("a 20 %% regression in both passed: %v", f)
	}
	if f := compare(base, rounds([]float64{0.5}, []float64{2}), false); len(f) != 0 {
		t.Errorf("an improvement failed the gate: %v", f)
	}
}
