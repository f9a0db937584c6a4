package main

// -metrics-overhead: what turning metrics on costs tachyon (issue 17's goal
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
	"os"
	"runtime"
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

// overheadRound is one round's figures: per row, the off and on values and
// the cost in % (positive: metrics made it slower).
type overheadRound map[string][3]float64

type overheadRig struct {
	servers map[serverKey]endpoint
	clients map[serverKey]endpoint
}

func (g *overheadRig) close() {
	for _, c := range g.clients {
		c.close()
	}
	for _, s := range g.servers {
		s.close()
	}
}

// reconnect gives every member new, identified upload connections.
func (g *overheadRig) reconnect(ctx context.Context) error {
	for k, s := range g.servers {
		if old := g.clients[k]; old != nil {
			old.close()
		}
		c, err := newHost(k.impl, k.sec, false)
		if err != nil {
			delete(g.clients, k)
			return err
		}
		g.clients[k] = c
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = c.connect(cctx, s.ref())
		if err == nil {
			waitIdentified(cctx, c, s)
		}
		cancel()
		if err != nil {
			return fmt.Errorf("overhead: %s/%s: connect: %w", k.impl, k.sec, err)
		}
	}
	return nil
}

// round measures every row once, the members taking turns in an order
// that rotates with n.
func (g *overheadRig) round(ctx context.Context, n int) (overheadRound, error) {
	if err := g.reconnect(ctx); err != nil {
		return nil, err
	}
	out := make(overheadRound)
	ms := overheadMembers
	turn := func(i, j int) int { return (i + j + n) % len(ms) }
	for _, sec := range overheadSecs {
		dials := make([][]time.Duration, len(ms))
		for i := range overheadDials {
			for j := range ms {
				k := turn(i, j)
				d, err := firstReply(ctx, setup{ms[k], ms[k], sec}, g.servers[serverKey{ms[k], sec}])
				if err != nil {
					return nil, err
				}
				dials[k] = append(dials[k], d)
			}
		}
		off, on := float64(percentile(dials[0], 0.5)), float64(percentile(dials[1], 0.5))
		out[overheadRow("first reply median (ms)", sec)] = [3]float64{off / 1e6, on / 1e6, 100 * (on/off - 1)}

		// One batch of 32 back-to-back connections from one dialer each.
		rates := make([]float64, len(ms))
		for j := range ms {
			k := turn(0, j)
			r, err := measureHandshakes(ctx, ms[k], sec, g.servers[serverKey{ms[k], sec}], 1, time.Nanosecond)
			if err != nil {
				return nil, err
			}
			rates[k] = r.perSec
		}
		out[overheadRow("handshakes/s, 1 dialer", sec)] = [3]float64{rates[0], rates[1], 100 * (rates[0]/rates[1] - 1)}

		size := int64(gateUpTCP)
		if family(sec) == "QUIC" {
			size = gateUpQUIC
		}
		ups := make([]float64, len(ms))
		for i := range overheadUploads {
			for j := range ms {
				k := turn(i, j)
				key := serverKey{ms[k], sec}
				r, err := uploadOnce(ctx, g.clients[key], g.servers[key].ref(), size)
				if err != nil {
					return nil, fmt.Errorf("overhead: upload %v: %w", key, err)
				}
				ups[k] = max(ups[k], r)
			}
		}
		out[overheadRow("upload best (MiB/s)", sec)] = [3]float64{ups[0], ups[1], 100 * (ups[0]/ups[1] - 1)}
	}
	return out, nil
}

// metricsOverhead runs warm-up plus rounds rounds and prints the table. It
// returns the exit code: 0, or 2 if it could not measure.
func metricsOverhead(rounds int) int {
	start := time.Now()
	ctx := context.Background()
	runtime.GOMAXPROCS(gateProcs)
	g := &overheadRig{servers: make(map[serverKey]endpoint), clients: make(map[serverKey]endpoint)}
	defer g.close()
	for _, impl := range overheadMembers {
		for _, sec := range overheadSecs {
			s, err := newHost(impl, sec, true)
			if err != nil {
				fmt.Fprintln(os.Stderr, "p2pbench:", err)
				return 2
			}
			g.servers[serverKey{impl, sec}] = s
			if err := serve(s); err != nil {
				fmt.Fprintln(os.Stderr, "p2pbench:", err)
				return 2
			}
		}
	}
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

// overheadMarkdown is the table: per row the medians over rounds of the
// off and on figures and of the per-round cost, with the cost's
// interquartile range.
func overheadMarkdown(pool []overheadRound, took time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d rounds (after %d dropped), GOMAXPROCS=%d, %v; cost: median of the per-round costs, positive = slower with metrics\n\n",
		len(pool), gateWarmup, gateProcs, took.Round(time.Second))
	b.WriteString("| row | metrics off | metrics on | cost | IQR of the cost |\n|---|---:|---:|---:|---:|\n")
	if len(pool) == 0 {
		return b.String()
	}
	var rows []string
	for _, sec := range overheadSecs {
		for _, kind := range []string{"first reply median (ms)", "handshakes/s, 1 dialer", "upload best (MiB/s)"} {
			rows = append(rows, overheadRow(kind, sec))
		}
	}
	for _, row := range rows {
		var off, on, cost []float64
		for _, r := range pool {
			v := r[row]
			off, on, cost = append(off, v[0]), append(on, v[1]), append(cost, v[2])
		}
		slices.Sort(cost)
		n := len(cost)
		fmt.Fprintf(&b, "| %s | %.3g | %.3g | %+.1f %% | %.1f to %+.1f %% |\n",
			row, median(off), median(on), median(cost), cost[n/4], cost[3*n/4])
	}
	return b.String()
}
