package main

// -metrics-overhead: what turning metrics on costs tachyon (the goal
// is under 2 % on each row). The same stack runs with metrics off
// (implTachyon) and on (implTachyonMetrics: both ends register their
// collectors, as two nodes with metrics would) in one process, with the
// gate's method (gate.go): single interleaved turns whose order rotates
// every round, GOMAXPROCS=1 so a figure is the CPU work of both ends, new
// upload connections each round, one cost per row and round, and the
// median over the rounds. The rows are not part of -check: a 2 % step is
// inside what the shared machine spreads from round to round.

import (
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
)

const (
	overheadDials   = 4 // first replies per member per round (median taken)
	overheadUploads = 2 // uploads per member per round (best taken)
)

// overheadSecs are the stacks measured: TCP+Noise and QUIC.
var overheadSecs = []string{secNoise, secQUIC}

// overheadMembers are the two variants; the first is the reference.
var overheadMembers = []string{implTachyon, implTachyonMetrics}

// overheadRow names a row: what and over which stack.
func overheadRow(kind, sec string) string {
	if sec == secNoise {
		sec = "TCP+Noise"
	}
	return kind + ", " + sec
}

// overheadFig is one row of one round: the wall-clock figure (ms, 1/s or
// MiB/s) and the process CPU per operation (ms per first reply or
// handshake, s per GiB uploaded), metrics off and on. Under other users'
// load the wall clock mostly measures waiting for a core; the CPU time is
// the work itself, and resolves a few per cent where the wall clock cannot.
type overheadFig struct {
	off, on       float64
	cpuOff, cpuOn float64
	higherBetter  bool // the wall figure is a rate
}

// cost is the wall-clock cost in %: positive when metrics made it slower.
func (f overheadFig) cost() float64 {
	if f.higherBetter {
		return 100 * (f.off/f.on - 1)
	}
	return 100 * (f.on/f.off - 1)
}

// cpuCost is the CPU cost in %: positive when metrics took more CPU.
func (f overheadFig) cpuCost() float64 { return 100 * (f.cpuOn/f.cpuOff - 1) }

// overheadRound is one round's figures by row.
type overheadRound map[string]overheadFig

type overheadRig struct {
	servers map[serverKey]endpoint
	// dialers are running client hosts of each member and stack, which
	// make the first-reply and handshake rows' connections (each dropped
	// at both ends before the next): a node with metrics on creates its
	// collectors once (metrics.New) and each label combination's series
	// at its first use; a fresh host per connection would put that
	// per-process cost on the connection measured.
	dialers map[serverKey]endpoint
	// clients hold the upload connections.
	clients map[serverKey]endpoint
}

func (g *overheadRig) close() {
	for _, c := range g.clients {
		c.close()
	}
	for _, s := range g.servers {
		s.close()
	}
	for _, d := range g.dialers {
		d.close()
	}
}

// newOverheadRig starts a serving host of each member and stack.
func newOverheadRig() (*overheadRig, error) {
	g := &overheadRig{servers: make(map[serverKey]endpoint), dialers: make(map[serverKey]endpoint), clients: make(map[serverKey]endpoint)}
	for _, impl := range overheadMembers {
		for _, sec := range overheadSecs {
			s, err := newHost(impl, sec, true)
			if err != nil {
				g.close()
				return nil, err
			}
			g.servers[serverKey{impl, sec}] = s
			if err := serve(s); err != nil {
				g.close()
				return nil, err
			}
			d, err := newHost(impl, sec, false)
			if err != nil {
				g.close()
				return nil, err
			}
			g.dialers[serverKey{impl, sec}] = d
		}
	}
	return g, nil
}

// round measures every row once, the members taking turns in an order
// that rotates with n.
func (g *overheadRig) round(ctx context.Context, n int) (overheadRound, error) {
	if err := reconnectClients(ctx, g.servers, g.clients); err != nil {
		return nil, fmt.Errorf("overhead: %w", err)
	}
	out := make(overheadRound)
	ms := overheadMembers
	turn := func(i, j int) int { return (i + j + n) % len(ms) }
	for _, sec := range overheadSecs {
		dials := make([][]time.Duration, len(ms))
		dialCPU := make([]time.Duration, len(ms))
		for i := range overheadDials {
			for j := range ms {
				k := turn(i, j)
				d, cpu, err := firstReplyCPU(ctx, setup{ms[k], ms[k], sec}, g.servers[serverKey{ms[k], sec}], g.dialers[serverKey{ms[k], sec}])
				if err != nil {
					return nil, err
				}
				dials[k] = append(dials[k], d)
				dialCPU[k] += cpu
			}
		}
		out[overheadRow(rowFirstReply, sec)] = overheadFig{
			off: ms1(percentile(dials[0], 0.5)), on: ms1(percentile(dials[1], 0.5)),
			cpuOff: ms1(dialCPU[0] / overheadDials), cpuOn: ms1(dialCPU[1] / overheadDials),
		}

		// One batch of 32 back-to-back connections from one dialer each.
		hs := make([]hsResult, len(ms))
		for j := range ms {
			k := turn(0, j)
			r, err := measureHandshakes(ctx, ms[k], sec, g.servers[serverKey{ms[k], sec}], g.dialers[serverKey{ms[k], sec}], 1, time.Nanosecond)
			if err != nil {
				return nil, err
			}
			hs[k] = r
		}
		out[overheadRow(rowHandshakes, sec)] = overheadFig{
			off: hs[0].perSec, on: hs[1].perSec, higherBetter: true,
			cpuOff: ms1(hs[0].cpuPerConn), cpuOn: ms1(hs[1].cpuPerConn),
		}

		size := int64(gateUpTCP)
		if family(sec) == "QUIC" {
			size = gateUpQUIC
		}
		ups := make([]float64, len(ms))
		upCPU := make([]time.Duration, len(ms))
		for i := range overheadUploads {
			for j := range ms {
				k := turn(i, j)
				key := serverKey{ms[k], sec}
				c0 := cpuTime()
				r, err := uploadOnce(ctx, g.clients[key], g.servers[key].ref(), size)
				if err != nil {
					return nil, fmt.Errorf("overhead: upload %v: %w", key, err)
				}
				upCPU[k] += cpuTime() - c0
				ups[k] = max(ups[k], r)
			}
		}
		out[overheadRow(rowUpload, sec)] = overheadFig{
			off: ups[0], on: ups[1], higherBetter: true,
			cpuOff: cpuPerGiB(upCPU[0], overheadUploads*size), cpuOn: cpuPerGiB(upCPU[1], overheadUploads*size),
		}
	}
	return out, nil
}

// metricsOverhead runs warm-up plus rounds rounds and prints the table. It
// returns the exit code: 0, or 2 if it could not measure.
// With profDir set, the whole run is CPU-profiled into
// profDir/overhead.pprof: the share of samples in the metrics code is a
// second estimate of its cost, one the machine's load hardly moves.
func metricsOverhead(rounds int, profDir string) int {
	start := time.Now()
	ctx := context.Background()
	runtime.GOMAXPROCS(gateProcs)
	if profDir != "" {
		f, err := os.Create(filepath.Join(profDir, "overhead.pprof"))
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "p2pbench: profile:", err)
			return 2
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	g, err := newOverheadRig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "p2pbench:", err)
		return 2
	}
	defer g.close()
	var pool []overheadRound
	for i := range gateWarmup + rounds {
		r, err := g.round(ctx, i)
		if err != nil {
			fmt.Fprintln(os.Stderr, "p2pbench:", err)
			return 2
		}
		if i >= gateWarmup {
			pool = append(pool, r)
		}
		if (i+1)%10 == 0 {
			logf("metrics overhead: %d rounds", len(pool))
		}
	}
	fmt.Print(overheadMarkdown(pool, time.Since(start)))
	return 0
}

// Row kinds of the table.
const (
	rowFirstReply = "first reply median (ms; CPU ms)"
	rowHandshakes = "handshakes/s, 1 dialer (CPU ms/conn)"
	rowUpload     = "upload best (MiB/s; CPU s/GiB)"
)

// overheadMarkdown is the table: per row the medians over rounds of the
// off and on figures and of the per-round costs, with the costs'
// interquartile ranges.
func overheadMarkdown(pool []overheadRound, took time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d rounds (after %d dropped), GOMAXPROCS=%d, %v, load average at the end %s; "+
		"costs: medians of the per-round costs, positive = slower (wall) or more CPU with metrics, [95 %% confidence interval of the median]; "+
		"goal: CPU cost under 2 %% at 95 %% confidence\n\n",
		len(pool), gateWarmup, gateProcs, took.Round(time.Second), loadAvg())
	b.WriteString("| row | off | on | wall cost | CPU off | CPU on | CPU cost | goal |\n|---|---:|---:|---:|---:|---:|---:|---|\n")
	if len(pool) == 0 {
		return b.String()
	}
	for _, sec := range overheadSecs {
		for _, kind := range []string{rowFirstReply, rowHandshakes, rowUpload} {
			row := overheadRow(kind, sec)
			var off, on, cost, cpuOff, cpuOn, cpuCost []float64
			for _, r := range pool {
				f := r[row]
				off, on, cost = append(off, f.off), append(on, f.on), append(cost, f.cost())
				cpuOff, cpuOn, cpuCost = append(cpuOff, f.cpuOff), append(cpuOn, f.cpuOn), append(cpuCost, f.cpuCost())
			}
			fmt.Fprintf(&b, "| %s | %.3g | %.3g | %s | %.3g | %.3g | %s | %s |\n",
				row, median(off), median(on), costCell(cost), median(cpuOff), median(cpuOn), costCell(cpuCost), goalCell(cpuCost))
		}
	}
	return b.String()
}

// costCell prints the median of xs and its 95 % confidence interval.
func costCell(xs []float64) string {
	m, lo, hi := medianCI(xs)
	return fmt.Sprintf("%+.1f %% [%+.1f, %+.1f]", m, lo, hi)
}

// medianCI is the median of xs and a distribution-free 95 % confidence
// interval for it: the order statistics n/2 -+ 0.98 sqrt(n) (the normal
// approximation of the binomial), so no assumption about how the shared
// machine spreads the rounds. With fewer than 6 values the interval is the
// whole range.
func medianCI(xs []float64) (m, lo, hi float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	xs = slices.Sorted(slices.Values(xs))
	n := len(xs)
	k := int(math.Floor(float64(n)/2 - 0.98*math.Sqrt(float64(n))))
	k = max(k, 0)
	return median(xs), xs[k], xs[n-1-k]
}

// goalCell says whether cost stays under the 2 % goal at 95 % confidence.
func goalCell(xs []float64) string {
	_, lo, hi := medianCI(xs)
	switch {
	case hi < overheadGoal:
		return "met"
	case lo > overheadGoal:
		return "missed"
	}
	return "unresolved"
}

// overheadGoal is the cost metrics may add, in %.
const overheadGoal = 2.0

// loadAvg is the 1-minute load average, or "?".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}
