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
