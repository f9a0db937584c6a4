package main

// -handshakes: only the handshake-rate rows of the extras table, in
// interleaved rounds with medians, so they can be measured in a couple of
// minutes; -hs-phases splits tachyon's and go-libp2p's single-dialer
// connection into its phases, and -hs-trace writes a runtime trace of it.

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	"time"
)

var (
	hsRoundsF = flag.Int("hs-rounds", 5, "rounds of -handshakes (the rows take turns in each; medians are reported)")
	hsPer     = flag.Duration("hs-time", 500*time.Millisecond, "timed handshakes per row and round of -handshakes")
	hsStacks  = flag.String("hs-stacks", strings.Join(upSecs, ","), "comma-separated `stacks` of -handshakes")
	hsConcF   = flag.String("hs-dialers", "1,16", "comma-separated dialer counts of -handshakes")
	hsPhases  = flag.Bool("hs-phases", false, "with -handshakes: instead of the rates, time the phases of single-dialer connections (connect, stream, echo, identify at each end)")
	hsProf    = flag.String("hs-cpuprofile", "", "with -handshakes: write a CPU profile of the rounds into `file`")
	hsTrace   = flag.String("hs-trace", "", "with -handshakes: write a runtime trace into `file` (each row a trace task, each connection a region)")
)

// handshakesMain runs -handshakes and returns the exit code.
func handshakesMain() int {
	ctx := context.Background()
	secs := strings.Split(*hsStacks, ",")
	var concs []int
	for _, f := range strings.Split(*hsConcF, ",") {
		var n int
		if _, err := fmt.Sscan(f, &n); err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "p2pbench: -hs-dialers: bad count %q\n", f)
			return 2
		}
		concs = append(concs, n)
	}
	servers := make(map[serverKey]endpoint)
	defer func() {
		for _, s := range servers {
			s.close()
		}
	}()
	for _, impl := range impls {
		for _, sec := range secs {
			if !slices.Contains(upSecs, sec) {
				fmt.Fprintf(os.Stderr, "p2pbench: -hs-stacks: unknown stack %q\n", sec)
				return 2
			}
			s, err := newHost(impl, sec, true)
			if err != nil {
				fmt.Fprintln(os.Stderr, "p2pbench:", err)
				return 1
			}
			servers[serverKey{impl, sec}] = s
			if err := serve(s); err != nil {
				fmt.Fprintln(os.Stderr, "p2pbench:", err)
				return 1
			}
		}
	}
	var err error
	if *hsPhases {
		err = handshakePhases(ctx, servers, secs, *hsTrace)
	} else {
		err = handshakeRounds(ctx, servers, secs, concs, *hsTrace)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "p2pbench:", err)
		return 1
	}
	return 0
}

// handshakeRounds measures every row *hsRoundsF times, the rows and both
// implementations taking turns, and prints the medians.
func handshakeRounds(ctx context.Context, servers map[serverKey]endpoint, secs []string, concs []int, traceFile string) error {
	load0 := loadAvg()
	if traceFile != "" {
		stop, err := startTrace(traceFile)
		if err != nil {
			return err
		}
		defer stop()
	}
	if *hsProf != "" {
		f, err := os.Create(*hsProf)
		if err != nil {
			return fmt.Errorf("profile file: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("starting the CPU profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	var rows []hsRow
	for _, conc := range concs {
		for _, sec := range secs {
			rows = append(rows, hsRow{sec, conc})
		}
	}
	got, err := hsRounds(ctx, servers, rows, *hsRoundsF, *hsPer, func(r int) {
		logf("handshakes: round %d of %d done, load %s", r+1, *hsRoundsF, loadAvg())
	})
	if err != nil {
		return err
	}
	med := func(k hsKey, f func(hsResult) float64) float64 { return medianBy(got[k], f) }
	rate := func(x hsResult) float64 { return x.perSec }
	cpuMs := func(x hsResult) float64 { return ms1(x.cpuPerConn) }
	busy := func(x hsResult) float64 { return x.cpu.Seconds() / x.wall.Seconds() }
	fmt.Printf("Handshake rate: medians of %d rounds of %v per row, rows interleaved; load average %s at the start, %s at the end.\n\n", *hsRoundsF, *hsPer, load0, loadAvg())
	fmt.Printf("| dialers | stack | tachyon (/s) | go-libp2p (/s) | ratio | CPU ms/conn tachyon | go-libp2p | CPU s per wall s tachyon | go-libp2p |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, row := range rows {
		t, g := hsKey{implTachyon, row.sec, row.conc}, hsKey{implGo, row.sec, row.conc}
		fmt.Printf("| %d | %s | %.0f | %.0f | %s | %.2f | %.2f | %.2f | %.2f |\n", row.conc, row.sec,
			med(t, rate), med(g, rate), ratio(med(t, rate), med(g, rate)),
			med(t, cpuMs), med(g, cpuMs), med(t, busy), med(g, busy))
	}
	fmt.Printf("\nEvery round's ratio (tachyon / go-libp2p handshakes/s):\n\n")
	for _, row := range rows {
		t, g := got[hsKey{implTachyon, row.sec, row.conc}], got[hsKey{implGo, row.sec, row.conc}]
		var parts []string
		for i := range min(len(t), len(g)) {
			parts = append(parts, ratio(t[i].perSec, g[i].perSec))
		}
		fmt.Printf("- %d dialer(s), %s: %s\n", row.conc, row.sec, strings.Join(parts, ", "))
	}
	return nil
}

// hsPhaseNames are the phases of one connection, in order.
var hsPhaseNames = []string{"connect", "new stream", "echo", "client identified", "server identified", "close"}

// handshakePhases makes single-dialer connections like measureHandshakes
// (fresh client hosts built beforehand) and prints the median and 90th
// percentile of each phase per implementation and stack, with traceFile
// set under a runtime trace (each connection a trace task, each phase a
// region).
func handshakePhases(ctx context.Context, servers map[serverKey]endpoint, secs []string, traceFile string) error {
	const n = 200
	if traceFile != "" {
		stop, err := startTrace(traceFile)
		if err != nil {
			return err
		}
		defer stop()
	}
	fmt.Printf("Phases of %d single-dialer connections per stack, load %s: median / p90 in µs.\n\n", n, loadAvg())
	fmt.Printf("| impl | stack | %s | total | CPU s per wall s |\n|---|---|%s---:|---:|\n", strings.Join(hsPhaseNames, " | "), strings.Repeat("---:|", len(hsPhaseNames)))
	for _, sec := range secs {
		for _, impl := range impls {
			srv := servers[serverKey{impl, sec}]
			hosts := make([]endpoint, n)
			for i := range hosts {
				h, err := newHost(impl, sec, false)
				if err != nil {
					for _, h := range hosts[:i] {
						h.close()
					}
					return err
				}
				hosts[i] = h
			}
			phases := make([][]time.Duration, len(hsPhaseNames)+1)
			var wall, cpu time.Duration
			for _, c := range hosts {
				c0, t0 := cpuTime(), time.Now()
				ds, err := phasedHandshake(ctx, impl+"/"+sec, c, srv)
				wall += time.Since(t0)
				cpu += cpuTime() - c0
				if err != nil {
					return fmt.Errorf("phases %s/%s: %w", impl, sec, err)
				}
				var total time.Duration
				for i, d := range ds {
					phases[i] = append(phases[i], d)
					total += d
				}
				phases[len(hsPhaseNames)] = append(phases[len(hsPhaseNames)], total)
			}
			for _, h := range hosts {
				h.close()
			}
			var cells []string
			for _, ds := range phases {
				slices.Sort(ds)
				cells = append(cells, fmt.Sprintf("%.0f / %.0f", us(percentile(ds, 0.5)), us(percentile(ds, 0.9))))
			}
			fmt.Printf("| %s | %s | %s | %.2f |\n", impl, sec, strings.Join(cells, " | "), cpu.Seconds()/wall.Seconds())
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// startTrace starts a runtime trace into file; stop ends it.
func startTrace(file string) (stop func(), err error) {
	f, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("trace file: %w", err)
	}
	if err := trace.Start(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting the trace: %w", err)
	}
	return func() { trace.Stop(); f.Close() }, nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// phasedHandshake is handshake with a timestamp after each phase, plus the
// client's close until the server has dropped the connection too.
func phasedHandshake(ctx context.Context, name string, c, srv endpoint) ([]time.Duration, error) {
	server := srv.ref()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ctx, task := trace.NewTask(ctx, "handshake "+name)
	defer task.End()
	out := make([]time.Duration, 0, len(hsPhaseNames))
	t := time.Now()
	var reg *trace.Region
	next := func(i int) {
		if reg != nil {
			reg.End()
		}
		now := time.Now()
		if i > 0 {
			out = append(out, now.Sub(t))
		}
		t = now
		if i < len(hsPhaseNames) {
			reg = trace.StartRegion(ctx, hsPhaseNames[i])
		}
	}
	next(0)
	if err := c.connect(ctx, server); err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	next(1)
	s, err := c.newStream(ctx, server, echoProto)
	if err != nil {
		return nil, fmt.Errorf("new stream: %w", err)
	}
	next(2)
	b := []byte{42}
	if _, err := s.Write(b); err != nil {
		return nil, fmt.Errorf("write: %w", err)
	}
	if _, err := io.ReadFull(s, b); err != nil {
		return nil, fmt.Errorf("read reply: %w", err)
	}
	s.Close()
	next(3)
	if err := c.waitIdentified(ctx, server); err != nil {
		return nil, fmt.Errorf("client identify: %w", err)
	}
	next(4)
	if err := srv.waitIdentified(ctx, c.ref()); err != nil {
		return nil, fmt.Errorf("server identify: %w", err)
	}
	next(5)
	if err := hangUp(ctx, c, srv); err != nil {
		return nil, err
	}
	next(6)
	return out, nil
}
