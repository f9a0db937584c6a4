package main

// -streams: only the parallel-stream rows (parallelUpload, as in the
// extras table) for each stack and stream count, in interleaved rounds with
// medians, so they can be re-measured in a few minutes after a muxer
// change; -st-profile keeps a CPU profile of each row's first round.

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

var (
	stRoundsF = flag.Int("st-rounds", 5, "rounds of -streams (the rows take turns in each; medians are reported)")
	stSize    = flag.Int64("st-size", 512<<20, "bytes per upload of -streams, split evenly over the streams")
	stStacks  = flag.String("st-stacks", strings.Join(upSecs, ","), "comma-separated `stacks` of -streams")
	stCounts  = flag.String("st-counts", "16,64", "comma-separated stream counts of -streams")
	stProf    = flag.String("st-profile", "", "with -streams: write a CPU profile of each row's first timed round into `dir`")
)

// stRow is one row of -streams: a stack and a number of streams.
type stRow struct {
	sec string
	n   int
}

// stKey is one implementation's side of a stRow.
type stKey struct {
	impl string
	row  stRow
}

// stResult is one parallel upload.
type stResult struct {
	mibps     float64
	cpuPerGiB float64 // process CPU, both ends together
}

// parseCounts reads a comma-separated list of positive stream counts.
func parseCounts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad count %q: want a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// parseStacks reads a comma-separated list of stacks, each one of known.
func parseStacks(s string, known []string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(known, f) {
			return nil, fmt.Errorf("unknown stack %q, want one of %s", f, strings.Join(known, ", "))
		}
		out = append(out, f)
	}
	return out, nil
}

// streamsMain runs -streams and returns the exit code.
func streamsMain() int {
	secs, err := parseStacks(*stStacks, upSecs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "p2pbench: -st-stacks:", err)
		return 2
	}
	counts, err := parseCounts(*stCounts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "p2pbench: -st-counts:", err)
		return 2
	}
	if *stProf != "" {
		if err := os.MkdirAll(*stProf, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "p2pbench: -st-profile:", err)
			return 1
		}
	}
	var rows []stRow
	for _, n := range counts {
		for _, sec := range secs {
			rows = append(rows, stRow{sec, n})
		}
	}
	load0 := loadAvg()
	got, err := stRounds(context.Background(), rows, *stRoundsF, *stSize, *stProf, func(r int) {
		logf("streams: round %d of %d done, load %s", r+1, *stRoundsF, loadAvg())
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "p2pbench:", err)
		return 1
	}
	med := func(k stKey, f func(stResult) float64) float64 { return medianBy(got[k], f) }
	rateOf := func(x stResult) float64 { return x.mibps }
	cpuOf := func(x stResult) float64 { return x.cpuPerGiB }
	fmt.Printf("Parallel streams on one connection: %d MiB split over the streams, medians of %d rounds, rows interleaved; load average %s at the start, %s at the end.\n\n", *stSize/mib, *stRoundsF, load0, loadAvg())
	fmt.Printf("| streams | stack | tachyon (MiB/s) | go-libp2p (MiB/s) | ratio | CPU s/GiB tachyon | go-libp2p |\n|---:|---|---:|---:|---:|---:|---:|\n")
	for _, row := range rows {
		t, g := stKey{implTachyon, row}, stKey{implGo, row}
		fmt.Printf("| %d | %s | %.0f | %.0f | %s | %.2f | %.2f |\n", row.n, row.sec,
			med(t, rateOf), med(g, rateOf), ratio(med(t, rateOf), med(g, rateOf)), med(t, cpuOf), med(g, cpuOf))
	}
	fmt.Printf("\nEvery round's ratio (tachyon / go-libp2p MiB/s):\n\n")
	for _, row := range rows {
		t, g := got[stKey{implTachyon, row}], got[stKey{implGo, row}]
		var parts []string
		for i := range min(len(t), len(g)) {
			parts = append(parts, ratio(t[i].mibps, g[i].mibps))
		}
		fmt.Printf("- %d streams, %s: %s\n", row.n, row.sec, strings.Join(parts, ", "))
	}
	return 0
}

// stOrder is the order of the implementations in row i of round r: it
// alternates from row to row and, for a row, from round to round.
func stOrder(r, i int) []string {
	order := slices.Clone(impls)
	if (r+i)%2 != 0 {
		slices.Reverse(order)
	}
	return order
}

// stRounds measures every row of both implementations once per round,
// after a warm-up round (size/4) that is dropped. One server and one
// connected client per implementation and stack serve every round, as the
// single-stream uploads' connection does in a full run. Which
// implementation goes first alternates, so neither always follows the
// other's garbage. With profDir set, each row's first timed round runs
// under the CPU profiler (profDir/streams-IMPL-STACK-N.pprof).
func stRounds(ctx context.Context, rows []stRow, rounds int, size int64, profDir string, done func(round int)) (map[stKey][]stResult, error) {
	eps := make(map[serverKey][2]endpoint) // server, client
	defer func() {
		for _, e := range eps {
			e[1].close()
			e[0].close()
		}
	}()
	for _, row := range rows {
		for _, impl := range impls {
			k := serverKey{impl, row.sec}
			if _, ok := eps[k]; ok {
				continue
			}
			srv, err := newHost(impl, row.sec, true)
			if err != nil {
				return nil, err
			}
			if err := serve(srv); err != nil {
				srv.close()
				return nil, err
			}
			c, err := newHost(impl, row.sec, false)
			if err != nil {
				srv.close()
				return nil, err
			}
			eps[k] = [2]endpoint{srv, c}
			if err := c.connect(ctx, srv.ref()); err != nil {
				return nil, fmt.Errorf("streams %s/%s: connect: %w", impl, row.sec, err)
			}
		}
	}
	got := make(map[stKey][]stResult)
	for r := -1; r < rounds; r++ {
		for i, row := range rows {
			for _, impl := range stOrder(r, i) {
				e := eps[serverKey{impl, row.sec}]
				sz := size
				if r < 0 {
					sz = size / 4
				}
				dir := ""
				if r == 0 {
					dir = profDir
				}
				var res stResult
				err := profiled(dir, fmt.Sprintf("streams-%s-%s-%d", impl, row.sec, row.n), func() error {
					c0 := cpuTime()
					rate, err := parallelUpload(ctx, e[1], e[0].ref(), sz, row.n)
					if err != nil {
						return fmt.Errorf("streams %s/%s x%d: %w", impl, row.sec, row.n, err)
					}
					res = stResult{rate, cpuPerGiB(cpuTime()-c0, sz)}
					return nil
				})
				if err != nil {
					return nil, err
				}
				if r >= 0 {
					k := stKey{impl, row}
					got[k] = append(got[k], res)
				}
				time.Sleep(50 * time.Millisecond) // let the closed streams wind down
			}
		}
		if r >= 0 && done != nil {
			done(r)
		}
	}
	return got, nil
}
