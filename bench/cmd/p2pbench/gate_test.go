package main

import (
	"encoding/json"
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

// TestBaselinePerMachine: a machine with a baseline of its own is held to
// it; any other to the worst of all machines', which writing a machine's
// baseline keeps up to date without losing the others'.
func TestBaselinePerMachine(t *testing.T) {
	const up, dial = "upload best: x", "first reply median: x"
	old := baselineFile{Ratios: map[string]gateRatio{up: {0.5, true}, dial: {1.0, false}}}
	fast := map[string]gateRatio{up: {0.8, true}, dial: {1.2, false}}
	bf := old.withMachine("fast", fast, "d1", 120)
	slow := map[string]gateRatio{up: {0.4, true}, dial: {0.9, false}}
	bf = bf.withMachine("slow", slow, "d2", 120)

	raw, err := json.Marshal(bf)
	if err != nil {
		t.Fatal(err)
	}
	var back baselineFile
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id       string
		up, dial float64
	}{
		{"fast", 0.8, 1.2},
		{"slow", 0.4, 0.9},
		{"other", 0.4, 1.2}, // the worst of old, fast and slow, each ratio its own way
	} {
		r, which := back.ratiosFor(tc.id)
		if r[up].Ratio != tc.up || r[dial].Ratio != tc.dial {
			t.Errorf("%s (%s): upload %v, first reply %v; want %v, %v", tc.id, which, r[up].Ratio, r[dial].Ratio, tc.up, tc.dial)
		}
	}
	// Held to its own figure, the fast machine fails a 20 % drop that the
	// worst-of-all figure lets through.
	drop := []map[string]float64{{up: 0.64, dial: 1.2}}
	own, _ := back.ratiosFor("fast")
	if f := compare(baselineFile{Ratios: own}, drop, false); len(f) != 1 {
		t.Errorf("own baseline: %v", f)
	}
	if f := compare(baselineFile{Ratios: back.Ratios}, drop, false); len(f) != 0 {
		t.Errorf("default baseline: %v", f)
	}
	if id := machineID(); id == "" || id != machineID() {
		t.Errorf("machineID %q is not stable", id)
	}

	// Written again on another day: the machine's entry widens to the
	// worse of both days, never narrows.
	again := back.withMachine("fast", map[string]gateRatio{up: {0.9, true}, dial: {1.3, false}}, "d3", 120)
	if r, _ := again.ratiosFor("fast"); r[up].Ratio != 0.8 || r[dial].Ratio != 1.3 {
		t.Errorf("fast written again: upload %v, first reply %v; want 0.8, 1.3", r[up].Ratio, r[dial].Ratio)
	}
	if r, _ := again.ratiosFor("other"); r[dial].Ratio != 1.3 {
		t.Errorf("default first reply %v after fast widened, want 1.3", r[dial].Ratio)
	}
	// A ratio no longer measured leaves the defaults (an unlisted machine
	// would fail on it as not measured); a new one enters them.
	renamed := again.withMachine("slow", map[string]gateRatio{up: {0.4, true}, "first reply median: y": {1.0, false}}, "d4", 120)
	if _, ok := renamed.Ratios[dial]; ok {
		t.Error("a ratio no longer measured stayed in the defaults")
	}
	if _, ok := renamed.Ratios["first reply median: y"]; !ok {
		t.Error("a new ratio is missing from the defaults")
	}
}
