package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"
)

// gateTolerance is how much worse than the baseline a ratio may get.
const gateTolerance = 0.15

// defaultGateReps short runs make one batch of -check; gateBatches is the
// most batches a check takes (and what -write-baseline takes).
const (
	defaultGateReps = 4
	gateBatches     = 3
)

// gateRatio is one ratio the regression gate watches.
type gateRatio struct {
	Ratio        float64 `json:"ratio"`
	HigherBetter bool    `json:"higher_is_better"`
}

type baselineFile struct {
	Note   string               `json:"note"`
	Date   string               `json:"date"`
	Reps   int                  `json:"reps"`
	Ratios map[string]gateRatio `json:"ratios"`
}

// ratios are the figures the gate compares: tachyon over go-libp2p and
// over the HTTP baseline of the same transport family, never absolute
// times, so that a slower or busier machine moves both sides alike.
// First replies count by their median, uploads by their best run: load
// from other users only ever slows a run down.
func (r *results) ratios() map[string]gateRatio {
	out := make(map[string]gateRatio)
	dial := func(su setup) float64 { return float64(percentile(r.dials[su], 0.5)) }
	up := func(k serverKey) float64 { return slices.Max(append([]float64{0}, r.uploads[k]...)) }
	add := func(name string, a, b float64, higher bool) {
		if a > 0 && b > 0 {
			out[name] = gateRatio{a / b, higher}
		}
	}
	for _, sec := range upSecs {
		t := setup{implTachyon, implTachyon, sec}
		add("first reply median: tachyon/go-libp2p "+sec, dial(t), dial(setup{implGo, implGo, sec}), false)
		add("upload best: tachyon/go-libp2p "+sec, up(serverKey{implTachyon, sec}), up(serverKey{implGo, sec}), true)
		for _, kind := range httpKinds {
			if httpFamily(kind) != family(sec) {
				continue
			}
			add("first reply median: tachyon "+sec+"/"+kind, dial(t), dial(setup{kind, kind, httpSec}), false)
			add("upload best: tachyon "+sec+"/"+kind, up(serverKey{implTachyon, sec}), up(serverKey{kind, httpSec}), true)
		}
	}
	return out
}

// gate measures the ratios in batches of reps short runs, pooling every
// sample, and either writes them as the baseline (writePath; gateBatches
// batches) or compares them with the baseline at checkPath. A check that
// fails measures another batch, up to gateBatches: a real regression stays,
// a busy moment on the shared machine is outvoted. It returns the exit code.
func gate(checkPath, writePath string, reps int) int {
	start := time.Now()
	var base baselineFile
	if checkPath != "" {
		b, err := os.ReadFile(checkPath)
		if err == nil {
			err = json.Unmarshal(b, &base)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "p2pbench: baseline:", err)
			return 2
		}
	}
	pool := &results{dials: make(map[setup][]time.Duration), uploads: make(map[serverKey][]float64)}
	runs := 0
	batch := func() error {
		for range reps {
			runs++
			logf("gate: short run %d", runs)
			res, err := run(context.Background(), gateParams, "")
			if err != nil {
				return err
			}
			for k, v := range res.dials {
				pool.dials[k] = append(pool.dials[k], v...)
			}
			for k, v := range res.uploads {
				pool.uploads[k] = append(pool.uploads[k], v...)
			}
		}
		return nil
	}

	if writePath != "" {
		for range gateBatches {
			if err := batch(); err != nil {
				fmt.Fprintln(os.Stderr, "p2pbench:", err)
				return 2
			}
		}
		cur := pool.ratios()
		bf := baselineFile{
			Note:   "p2pbench -write-baseline: ratios of first-reply medians and of best uploads, pooled over short runs; -check fails when one worsens by more than 15 %",
			Date:   time.Now().UTC().Format("2006-01-02 15:04 UTC"),
			Reps:   runs,
			Ratios: cur,
		}
		b, _ := json.MarshalIndent(bf, "", "  ")
		if err := os.WriteFile(writePath, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "p2pbench:", err)
			return 2
		}
		for _, k := range slices.Sorted(maps.Keys(cur)) {
			fmt.Printf("%-50s %.3f\n", k, cur[k].Ratio)
		}
		fmt.Printf("baseline from %d short runs written to %s in %v\n", runs, writePath, time.Since(start).Round(time.Second))
		return 0
	}

	var failed []string
	for attempt := range gateBatches {
		if err := batch(); err != nil {
			fmt.Fprintln(os.Stderr, "p2pbench:", err)
			return 2
		}
		failed = compare(base, pool.ratios(), attempt == gateBatches-1)
		if len(failed) == 0 {
			break
		}
		if attempt < gateBatches-1 {
			logf("gate: %d ratios worse than the baseline (%s); measuring another batch", len(failed), strings.Join(failed, "; "))
		}
	}
	if len(failed) == 0 {
		compare(base, pool.ratios(), true)
	}
	fmt.Printf("p2pbench -check: %d of %d ratios worse than the baseline by more than %.0f %% after %d short runs (%v)\n",
		len(failed), len(base.Ratios), 100*gateTolerance, runs, time.Since(start).Round(time.Second))
	if len(failed) > 0 {
		fmt.Printf("p2pbench -check: FAILED: %s\n", strings.Join(failed, "; "))
		return 1
	}
	return 0
}

// compare returns the names of the ratios in cur that are worse than in
// base by more than gateTolerance (or missing), printing every ratio if
// verbose.
func compare(base baselineFile, cur map[string]gateRatio, verbose bool) []string {
	var failed []string
	for _, k := range slices.Sorted(maps.Keys(base.Ratios)) {
		b := base.Ratios[k]
		c, ok := cur[k]
		if !ok {
			failed = append(failed, k+" (not measured)")
			if verbose {
				fmt.Printf("FAIL %-50s not measured\n", k)
			}
			continue
		}
		// worse is the relative change in the bad direction.
		worse := c.Ratio/b.Ratio - 1
		if b.HigherBetter {
			worse = b.Ratio/c.Ratio - 1
		}
		status := "ok  "
		if worse > gateTolerance {
			status = "FAIL"
			failed = append(failed, fmt.Sprintf("%s %+.0f %%", k, 100*worse))
		}
		if verbose {
			fmt.Printf("%s %-50s baseline %.3f now %.3f (%+.0f %% worse)\n", status, k, b.Ratio, c.Ratio, 100*worse)
		}
	}
	return failed
}
