package main

// -overhead-attribution: the metrics code's own share of the CPU, row by
// row. The A/B rounds of -metrics-overhead resolve a row to about ±3 %
// (what two identical sides differ by, -overhead-aa), too coarse for a
// 2 % goal. Here each row's operation runs back to back for a window under
// the CPU profiler, metrics off and then on; the share of samples whose
// stack holds a frame of the metrics code is a binomial proportion, so its
// confidence interval narrows with the samples alone, whatever the
// machine's load. What the profile cannot attribute, the garbage the
// metrics code leaves for the collector, is estimated from the bytes
// allocated per operation with metrics on and off and the collector's
// share of the CPU.

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// metricsFrames are the prefixes of the functions that are the metrics
// code: tachyon's metrics package (the tracers' implementations, the
// stream meter, the series memo), the host's mapping of protocol IDs to
// the bounded label set (it exists for the stream metrics alone) and the
// Prometheus client they update.
var metricsFrames = []string{
	"github.com/tachyon-p2p/tachyon/metrics.",
	"github.com/tachyon-p2p/tachyon.(*protoLabels).",
	"github.com/prometheus/client_golang/",
	"github.com/prometheus/client_model/",
	"github.com/prometheus/common/",
}

// gcFrames are the garbage collector's own work: background marking, the
// marking an allocating goroutine is made to assist with, sweeping.
var gcFrames = []string{
	"runtime.gcBgMarkWorker",
	"runtime.gcAssistAlloc",
	"runtime.bgsweep",
	"runtime.gcMarkTermination",
}

// attribHz is the profiling rate of a window: five times pprof's
// default, so a window of a minute holds tens of thousands of samples.
const attribHz = 500

// window is what one member's row did under the profiler.
type window struct {
	ops        int
	samples    int64 // CPU profile samples, all goroutines
	metrics    int64 // samples with a metrics frame on the stack
	gc         int64 // samples with a collector frame on the stack
	allocBytes uint64
	cpu        time.Duration
	entries    map[string]int64 // samples by the outermost metrics frame: which call costs
}

func (w window) share(n int64) float64 { return float64(n) / float64(w.samples) }
func (w window) bytesPerOp() float64   { return float64(w.allocBytes) / float64(w.ops) }

// attribution is one row's pair of windows.
type attribution struct {
	row     string
	off, on window
}

// estimate is the row's cost in % of the metrics-off CPU: the metrics
// code's own samples plus the collector's extra work for the extra bytes,
// as a point estimate and a 95 % upper bound (the Wilson bound of the
// share; the allocation figures are counts, not samples).
func (a attribution) estimate() (point, upper float64) {
	gc := 0.0
	if a.off.bytesPerOp() > 0 {
		gc = a.off.share(a.off.gc) * max(0, a.on.bytesPerOp()/a.off.bytesPerOp()-1)
	}
	cost := func(s float64) float64 { return 100 * (s/(1-s) + gc) }
	_, hi := wilson(a.on.metrics, a.on.samples)
	return cost(a.on.share(a.on.metrics)), cost(hi)
}

// wilson is the 95 % Wilson score interval of the proportion k of n.
func wilson(k, n int64) (lo, hi float64) {
	if n == 0 {
		return 0, 1
	}
	const z = 1.96
	p, nf := float64(k)/float64(n), float64(n)
	d := 1 + z*z/nf
	c := (p + z*z/(2*nf)) / d
	h := z * math.Sqrt(p*(1-p)/nf+z*z/(4*nf*nf)) / d
	lo, hi = max(0, c-h), min(1, c+h)
	if k == n { // exactly, not 1 less an ulp
		hi = 1
	}
	if k == 0 {
		lo = 0
	}
	return lo, hi
}

// classify counts the samples of a CPU profile: all, those with a frame
// of the metrics code (inlined frames included), those of the collector;
// entries counts the metrics samples by their outermost metrics frame.
func classify(p *profile.Profile, entries map[string]int64) (all, metrics, gc int64) {
	for _, s := range p.Sample {
		n := s.Value[0] // sample count
		all += n
		entry, g := "", false
		// Locations run from the leaf to the root, and a location's lines
		// from the innermost inlined function out: walk both backwards so
		// the first metrics frame met is the outermost.
		for i := len(s.Location) - 1; i >= 0; i-- {
			lines := s.Location[i].Line
			for j := len(lines) - 1; j >= 0; j-- {
				if lines[j].Function == nil {
					continue
				}
				name := lines[j].Function.Name
				if entry == "" && hasAnyPrefix(name, metricsFrames) {
					entry = name
				}
				g = g || hasAnyPrefix(name, gcFrames)
			}
		}
		if entry != "" {
			metrics += n
			entries[entry] += n
		}
		if g {
			gc += n
		}
	}
	return all, metrics, gc
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// profileWindow runs op back to back for at least d under the CPU
// profiler and reports what it cost.
// With keep set, the profile is also written to that file.
func profileWindow(d time.Duration, keep string, op func() error) (window, error) {
	w := window{entries: make(map[string]int64)}
	var buf bytes.Buffer
	runtime.GC() // start each window with the same clean heap
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	// pprof samples at 100 Hz; setting the rate first makes it sample
	// at attribHz (StartCPUProfile then says on stderr that it cannot set
	// its own). Only sample counts are used, so the period the profile
	// claims does not matter.
	runtime.SetCPUProfileRate(attribHz)
	if err := pprof.StartCPUProfile(&buf); err != nil {
		return w, fmt.Errorf("attribution: %w", err)
	}
	c0, t0 := cpuTime(), time.Now()
	var err error
	for time.Since(t0) < d && err == nil {
		if err = op(); err == nil {
			w.ops++
		}
	}
	w.cpu = cpuTime() - c0
	pprof.StopCPUProfile()
	runtime.ReadMemStats(&m1)
	if err != nil {
		return w, err
	}
	w.allocBytes = m1.TotalAlloc - m0.TotalAlloc
	if keep != "" {
		if err := os.WriteFile(keep, buf.Bytes(), 0o644); err != nil {
			return w, fmt.Errorf("attribution: %w", err)
		}
	}
	p, err := profile.Parse(&buf)
	if err != nil {
		return w, fmt.Errorf("attribution: parse profile: %w", err)
	}
	w.samples, w.metrics, w.gc = classify(p, w.entries)
	if w.samples == 0 {
		return w, fmt.Errorf("attribution: no samples in %v", d)
	}
	return w, nil
}

// attribute profiles every row, metrics off then on, d each.
// With profDir set, each window's profile is kept there.
func (g *overheadRig) attribute(ctx context.Context, d time.Duration, profDir string) ([]attribution, error) {
	if err := reconnectClients(ctx, g.servers, g.clients); err != nil {
		return nil, fmt.Errorf("attribution: %w", err)
	}
	var out []attribution
	for _, sec := range overheadSecs {
		for _, kind := range []string{rowFirstReply, rowHandshakes, rowUpload} {
			a := attribution{row: overheadRow(kind, sec)}
			for i, m := range overheadMembers {
				key := serverKey{m, sec}
				srv, dialer, client := g.servers[key], g.dialers[key], g.clients[key]
				var op func() error
				switch kind {
				case rowFirstReply:
					op = func() error {
						_, _, err := firstReplyCPU(ctx, setup{m, m, sec}, srv, dialer)
						return err
					}
				case rowHandshakes:
					op = func() error {
						_, err := measureHandshakes(ctx, m, sec, srv, dialer, 1, time.Nanosecond)
						return err
					}
				case rowUpload:
					size := int64(gateUpTCP)
					if family(sec) == "QUIC" {
						size = gateUpQUIC
					}
					op = func() error {
						_, err := uploadOnce(ctx, client, srv.ref(), size)
						return err
					}
				}
				keep := ""
				if profDir != "" {
					keep = filepath.Join(profDir, fmt.Sprintf("attrib-%s-%s-%s.pprof", rowFile[kind], family(sec), m))
				}
				w, err := profileWindow(d, keep, op)
				if err != nil {
					return nil, fmt.Errorf("%s, %s: %w", a.row, m, err)
				}
				if i == 0 {
					a.off = w
				} else {
					a.on = w
				}
			}
			logf("attribution: %s: metrics %d of %d samples (%.0f per CPU second); by call: %s", a.row, a.on.metrics, a.on.samples,
				float64(a.on.samples)/a.on.cpu.Seconds(), topEntries(a.on.entries, 6))
			out = append(out, a)
		}
	}
	return out, nil
}

// rowFile names a row kind in a file name.
var rowFile = map[string]string{rowFirstReply: "firstreply", rowHandshakes: "handshakes", rowUpload: "upload"}

// topEntries lists the n largest counts of m, largest first.
func topEntries(m map[string]int64, n int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return cmp.Compare(m[b], m[a]) })
	var parts []string
	for _, k := range keys[:min(n, len(keys))] {
		parts = append(parts, fmt.Sprintf("%s %d", strings.TrimPrefix(k, "github.com/tachyon-p2p/tachyon/"), m[k]))
	}
	return strings.Join(parts, ", ")
}

// attributionMarkdown is the table of attribute's result.
func attributionMarkdown(as []attribution, d time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CPU profile windows of %v per row and member (%d Hz, GOMAXPROCS=%d), load average at the end %s; "+
		"metrics share: samples with a metrics frame on the stack, [95 %% Wilson interval]; "+
		"GC share: the collector's samples with metrics off; estimate: share/(1-share) + GC share x extra bytes, "+
		"point [95 %% upper bound]; goal: upper bound under 2 %%\n\n",
		d, attribHz, gateProcs, loadAvg())
	b.WriteString("| row | samples off / on | metrics share off | metrics share on | GC share off | bytes/op off | bytes/op on | estimate | goal |\n" +
		"|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, a := range as {
		lo, hi := wilson(a.on.metrics, a.on.samples)
		point, upper := a.estimate()
		goal := "met"
		if upper >= overheadGoal {
			goal = "not met"
		}
		fmt.Fprintf(&b, "| %s | %d / %d | %.2f %% | %.2f %% [%.2f, %.2f] | %.1f %% | %.0f | %.0f | %+.2f %% [%+.2f] | %s |\n",
			a.row, a.off.samples, a.on.samples, 100*a.off.share(a.off.metrics),
			100*a.on.share(a.on.metrics), 100*lo, 100*hi, 100*a.off.share(a.off.gc),
			a.off.bytesPerOp(), a.on.bytesPerOp(), point, upper, goal)
	}
	return b.String()
}

// metricsAttribution runs the attribution alone and prints its table.
func metricsAttribution(d time.Duration, profDir string) int {
	ctx := context.Background()
	runtime.GOMAXPROCS(gateProcs)
	g, err := newOverheadRig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "p2pbench:", err)
		return 2
	}
	defer g.close()
	// One unprofiled round first: every series a row creates exists
	// before its window, as on a node that has run for a while.
	if _, err := g.round(ctx, 0); err != nil {
		fmt.Fprintln(os.Stderr, "p2pbench:", err)
		return 2
	}
	as, err := g.attribute(ctx, d, profDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "p2pbench:", err)
		return 2
	}
	fmt.Print(attributionMarkdown(as, d))
	return 0
}
