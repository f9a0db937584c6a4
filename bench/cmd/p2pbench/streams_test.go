package main

import (
	"context"
	"slices"
	"testing"
	"time"
)

func TestParseCounts(t *testing.T) {
	got, err := parseCounts("16, 64,1")
	if err != nil || !slices.Equal(got, []int{16, 64, 1}) {
		t.Errorf("parseCounts(\"16, 64,1\") = %v, %v; want [16 64 1]", got, err)
	}
	for _, bad := range []string{"", "0", "-3", "16,", "x", "16,abc"} {
		if got, err := parseCounts(bad); err == nil {
			t.Errorf("parseCounts(%q) = %v, want an error", bad, got)
		}
	}
}

func TestParseStacks(t *testing.T) {
	got, err := parseStacks("QUIC,Noise", upSecs)
	if err != nil || !slices.Equal(got, []string{secQUIC, secNoise}) {
		t.Errorf("parseStacks = %v, %v; want [QUIC Noise]", got, err)
	}
	for _, bad := range []string{"", "noise", "Noise,WebRTC-direct"} {
		if got, err := parseStacks(bad, upSecs); err == nil {
			t.Errorf("parseStacks(%q) = %v, want an error", bad, got)
		}
	}
}

// TestStOrder checks that each implementation goes first in half of a
// row's rounds and that neighbouring rows start differently.
func TestStOrder(t *testing.T) {
	for i := range 4 {
		first := map[string]int{}
		for r := range 4 {
			first[stOrder(r, i)[0]]++
			if stOrder(r, i)[0] == stOrder(r, i+1)[0] {
				t.Errorf("rows %d and %d of round %d start with the same implementation", i, i+1, r)
			}
		}
		if first[implTachyon] != 2 || first[implGo] != 2 {
			t.Errorf("row %d: first in 4 rounds %v, want 2 each", i, first)
		}
	}
}

// TestStRounds runs a tiny -streams measurement and checks that every row
// of both implementations has one result per round.
func TestStRounds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rows := []stRow{{secNoise, 2}, {secNoise, 4}}
	got, err := stRounds(ctx, rows, 2, 1<<20, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		for _, impl := range impls {
			rs := got[stKey{impl, row}]
			if len(rs) != 2 {
				t.Fatalf("%s %v: %d results, want 2", impl, row, len(rs))
			}
			for _, r := range rs {
				if r.mibps <= 0 {
					t.Errorf("%s %v: rate %v", impl, row, r.mibps)
				}
			}
		}
	}
}
