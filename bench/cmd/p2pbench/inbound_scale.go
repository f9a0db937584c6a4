package main

// The staircase of -inbound: one listener, connections added in steps
// (say 0, 1000, 2500, 5000, 7500, 10 000), RSS and heap sampled at each,
// and the machinery that lets 10 000 run on one machine: cheap client
// hosts, enough client processes, a check of the open-file limit and a
// watch on free memory that stops the run before the machine runs out.

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p"
	gconnmgr "github.com/libp2p/go-libp2p/core/connmgr"
	gnetwork "github.com/libp2p/go-libp2p/core/network"
)

// inboundPerClient is how many connections one client process holds at
// most when -inbound-clients is left to pick: a go-libp2p host costs the
// client some 200 KiB before it connects, so 2500 keep a process near
// 1 GiB.
const inboundPerClient = 2500

// inboundSample is the listener at one step of the staircase, after a
// collection: absolute figures, not per connection.
type inboundSample struct {
	conns      int
	rss        float64 // VmRSS bytes
	heap       float64 // HeapInuse bytes
	stack      float64 // StackInuse bytes
	goroutines float64
}

// parseSteps reads -inbound-steps: ascending connection counts, the last
// of which is the run's total. An empty list is the two steps 0 and n; a
// missing 0 is added in front, since every figure is relative to it.
func parseSteps(s string, n int) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		if n <= 0 {
			return nil, fmt.Errorf("inbound steps: no connections")
		}
		return []int{0, n}, nil
	}
	steps := []int{0}
	for f := range strings.SplitSeq(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("inbound steps %q: %w", s, err)
		}
		if v < 0 {
			return nil, fmt.Errorf("inbound steps %q: negative count %d", s, v)
		}
		if v == 0 {
			continue
		}
		if v <= steps[len(steps)-1] {
			return nil, fmt.Errorf("inbound steps %q: %d does not ascend", s, v)
		}
		steps = append(steps, v)
	}
	if len(steps) < 2 {
		return nil, fmt.Errorf("inbound steps %q: no connections", s)
	}
	if n > 0 && steps[len(steps)-1] != n {
		return nil, fmt.Errorf("inbound steps %q end at %d, not at -inbound %d", s, steps[len(steps)-1], n)
	}
	return steps, nil
}

// clientShare is client i's part of total connections spread over k
// client processes: the first total%k hold one more.
func clientShare(total, k, i int) int {
	s := total / k
	if i < total%k {
		s++
	}
	return s
}

// inboundClientCount is the number of client processes: asked, or one
// per inboundPerClient connections and at least 4.
func inboundClientCount(asked, n int) int {
	if asked > 0 {
		return asked
	}
	return max(4, (n+inboundPerClient-1)/inboundPerClient)
}

// newInboundClient builds one client host: go-libp2p v0.51 with TCP, the
// one security protocol and yamux, or QUIC, and nothing it does not need
// to dial and identify: no listen address, no resource accounting, no
// connection manager, no relay, no metrics, no observed-address
// discovery, and reachability fixed as private so that AutoNAT never
// probes (the tachyon listener serves AutoNAT, go-libp2p's does not; a
// probe would be work on one side only). What the listener sees of it is
// the same as before: the handshake and identify.
func newInboundClient(sec string) (*goHost, error) {
	stack := goStack(sec)
	if stack == nil {
		return nil, fmt.Errorf("inbound client: unknown stack %q", sec)
	}
	h, err := libp2p.New(append(stack,
		libp2p.NoListenAddrs,
		libp2p.ResourceManager(&gnetwork.NullResourceManager{}),
		libp2p.ConnectionManager(gconnmgr.NullConnMgr{}),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.DisableIdentifyAddressDiscovery(),
		libp2p.ForceReachabilityPrivate(),
	)...)
	if err != nil {
		return nil, fmt.Errorf("inbound client host (%s): %w", sec, err)
	}
	return &goHost{h}, nil
}

// checkNoFile fails early when a listener could not hold n sockets: the
// children inherit this process's hard limit and lift their soft one to
// it.
func checkNoFile(n int) error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return fmt.Errorf("open-file limit: %w", err)
	}
	if need := uint64(n) + 256; l.Max < need {
		return fmt.Errorf("open-file hard limit %d is below the %d a listener of %d connections needs (raise it: ulimit -Hn)", l.Max, need, n)
	}
	return nil
}

// parseMemAvailable reads MemAvailable, in bytes, from /proc/meminfo's
// text.
func parseMemAvailable(meminfo string) (uint64, error) {
	for line := range strings.Lines(meminfo) {
		v, ok := strings.CutPrefix(line, "MemAvailable:")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("meminfo: MemAvailable line %q", strings.TrimSpace(line))
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("meminfo: MemAvailable: %w", err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("meminfo: no MemAvailable")
}

func memAvailable() (uint64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	return parseMemAvailable(string(b))
}

// watchMemory cancels the returned context, which kills every child
// started with it, once the machine's available memory falls below
// floor bytes: other work shares the machine, which has no swap, and
// the OOM killer would pick a process of its own choosing. stop ends
// the watch; cause tells why the context ended, if it did so.
func watchMemory(ctx context.Context, floor uint64) (wctx context.Context, stop func()) {
	wctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-wctx.Done():
				return
			case <-t.C:
			}
			avail, err := memAvailable()
			if err == nil && avail < floor {
				cancel(fmt.Errorf("inbound: the machine's available memory fell to %d MiB, below the floor of %d MiB (-inbound-min-free); stopped", avail>>20, floor>>20))
				return
			}
		}
	}()
	return wctx, func() {
		close(done)
		<-finished
		cancel(nil)
	}
}

// medianSteps is the median of each step's figures over rounds; a round
// that failed part-way has fewer steps, and its first ones still count.
func medianSteps(rounds [][]inboundSample) []inboundSample {
	var out []inboundSample
	for i := 0; ; i++ {
		var at []inboundSample
		for _, r := range rounds {
			if i < len(r) {
				at = append(at, r[i])
			}
		}
		if len(at) == 0 {
			return out
		}
		med := func(f func(inboundSample) float64) float64 { return medianBy(at, f) }
		out = append(out, inboundSample{
			conns:      at[0].conns,
			rss:        med(func(s inboundSample) float64 { return s.rss }),
			heap:       med(func(s inboundSample) float64 { return s.heap }),
			stack:      med(func(s inboundSample) float64 { return s.stack }),
			goroutines: med(func(s inboundSample) float64 { return s.goroutines }),
		})
	}
}

// splitFailed separates the rounds that measured everything from those
// that stopped early.
func splitFailed(rs []inboundResult) (ok, failed []inboundResult) {
	for _, r := range rs {
		if r.failed != "" {
			failed = append(failed, r)
		} else {
			ok = append(ok, r)
		}
	}
	return ok, failed
}

// stepsMarkdown is two tables of the staircase, the listener's RSS and
// its heap in MiB at each connection count, rows per stack and listener,
// with tachyon / go-libp2p of the connections' share (the figure minus
// the one at 0) at the last step. A listener that failed part-way has
// "–" for the steps it did not reach and its share up to its last one.
func stepsMarkdown(stacks []string, out map[inboundKey][]inboundResult) string {
	var steps []int
	for _, rs := range out {
		for _, st := range medianSteps(stepsOf(rs)) {
			if !slices.Contains(steps, st.conns) {
				steps = append(steps, st.conns)
			}
		}
	}
	slices.Sort(steps)
	if len(steps) < 2 {
		return ""
	}
	var b strings.Builder
	for _, m := range []struct {
		name string
		f    func(inboundSample) float64
	}{
		{"RSS", func(s inboundSample) float64 { return s.rss }},
		{"Heap in use", func(s inboundSample) float64 { return s.heap }},
	} {
		fmt.Fprintf(&b, "\n%s of the listener, MiB, by connection count (median of the rounds):\n\n| stack | listener |", m.name)
		for _, n := range steps {
			fmt.Fprintf(&b, " %d |", n)
		}
		b.WriteString(" KiB per conn |\n|---|---|" + strings.Repeat("---:|", len(steps)+1) + "\n")
		for _, sec := range stacks {
			var per [2]float64
			both := true
			for i, impl := range impls {
				rs := out[inboundKey{impl, sec}]
				ss := medianSteps(stepsOf(rs))
				if len(ss) < 2 {
					both = false
					continue
				}
				fmt.Fprintf(&b, "| %s | %s |", sec, impl)
				at := make(map[int]float64)
				for _, s := range ss {
					at[s.conns] = m.f(s)
				}
				for _, n := range steps {
					if v, ok := at[n]; ok {
						fmt.Fprintf(&b, " %.1f |", v/(1<<20))
					} else {
						b.WriteString(" – |")
					}
				}
				first, last := ss[0], ss[len(ss)-1]
				per[i] = (m.f(last) - m.f(first)) / float64(last.conns-first.conns)
				if last.conns != steps[len(steps)-1] {
					both = false
					fmt.Fprintf(&b, " %.1f (to %d) |\n", per[i]/1024, last.conns)
					continue
				}
				fmt.Fprintf(&b, " %.1f |\n", per[i]/1024)
			}
			if both {
				fmt.Fprintf(&b, "| %s | tachyon / go-libp2p |%s %s |\n", sec, strings.Repeat(" |", len(steps)), ratio(per[0], per[1]))
			}
		}
	}
	return b.String()
}

func stepsOf(rs []inboundResult) [][]inboundSample {
	out := make([][]inboundSample, len(rs))
	for i, r := range rs {
		out[i] = r.steps
	}
	return out
}

// chartPanels turns the staircase into one chart panel per stack, RSS in
// MiB against connections, a line per listener.
func chartPanels(stacks []string, out map[inboundKey][]inboundResult) []linePanel {
	var panels []linePanel
	for _, sec := range stacks {
		p := linePanel{title: sec}
		for _, impl := range impls {
			rs := out[inboundKey{impl, sec}]
			if len(rs) == 0 {
				continue
			}
			s := lineSeries{impl: impl}
			for _, st := range medianSteps(stepsOf(rs)) {
				s.xs = append(s.xs, float64(st.conns))
				s.ys = append(s.ys, st.rss/(1<<20))
			}
			p.series = append(p.series, s)
		}
		if len(p.series) > 0 {
			panels = append(panels, p)
		}
	}
	return slices.Clip(panels)
}
