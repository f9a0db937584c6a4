// Package adversary is the attack suite: a victim node (tachyon, then
// go-libp2p v0.51 under the same attack for comparison) in its own network
// namespace, an attacker in others, and a legitimate peer in a third that
// pings the victim and makes new connections while the attack runs. For
// each attack it records the victim's RSS, fds, threads (from /proc) and,
// when the victim serves /debug/stats (--debug-addr), goroutines, live heap
// and peerstore size; the legit peer's ping p99 and how many of its new
// connections succeeded. It asserts the goals of issue "Reliability under
// attack" against tachyon and prints a table next to go-libp2p's figures.
//
// It needs root (network namespaces); TACHYON_SKIP_NETNS=1 skips it
// elsewhere. CI runs each attack for a few seconds:
//
//	go test -p 1 -count=1 ./test/adversary -v
//
// TACHYON_ADVERSARY_SOAK=1 runs each for 10 minutes (make soak);
// TACHYON_ADVERSARY_IMPLS=tachyon leaves go-libp2p out;
// TACHYON_ADVERSARY_TABLE=FILE writes the markdown table to FILE.
package adversary

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/testbed"
)

// The goals, from the issue.
const (
	maxRSSDelta   = 64 << 20              // peak RSS above baseline, default limits
	goMargin      = 16 << 20              // tachyon's peak Δ may exceed go-libp2p's by this (GC timing noise)
	recoverWithin = 10 * time.Second      // fds, goroutines, live heap back to baseline
	maxPingP99    = 50 * time.Millisecond // legit peer's pings during the attack
	// busyPingMargin: tachyon's p99 bound as a multiple of go-libp2p's when
	// go-libp2p misses maxPingP99 too (see check).
	busyPingMargin = 1.5
	maxBusyPingP99 = 3 * maxPingP99
	// A legit dial (process start to echoed byte; 0.2-0.6 s unattacked
	// on this machine) slower than this has not "succeeded" in any useful
	// sense: it sat behind the attacker's connections.
	maxDial        = 3 * time.Second
	soakFor        = 10 * time.Minute       // each attack under make soak
	settle         = 500 * time.Millisecond // after start-up, before the baseline
	fdSlack        = 2                      // fds above baseline that still count as recovered
	goroutineSlack = 10
	heapSlack      = 4 << 20
)

// attack is one row of the table.
type attack struct {
	name      string
	transport string        // "tcp", "quic" or "webrtc": the victim's listener under attack, and the legit peer's
	ci        time.Duration // the attack's length in CI
	run       func(ctx context.Context, e *env) string
}

// attacks builds the table for an environment whose many-address sources
// are known only once the network exists.
func attacks(subnet, many []src, one src, soak bool) []attack {
	churnN := 10000
	if soak {
		churnN = 0 // for the whole 10 minutes
	}
	return []attack{
		{"slowloris: TCP, silent (2000 conns)", "tcp", 4 * time.Second, slowlorisTCP},
		{"slowloris: half a multistream header (1000)", "tcp", 4 * time.Second, slowlorisMSS},
		{"slowloris: mid-Noise, after message 2 (1000)", "tcp", 4 * time.Second, slowlorisNoise},
		{"slowloris: mid-TLS, partial ClientHello (1000)", "tcp", 4 * time.Second, slowlorisTLS},
		{"malformed and oversized input, every layer", "tcp", 5 * time.Second, malformed},
		{"yamux: data beyond the stream window", "tcp", 4 * time.Second, windowViolation},
		{"yamux: SYN flood", "tcp", 4 * time.Second, synFlood},
		{"yamux: open+RST flood", "tcp", 4 * time.Second, rstFlood},
		{"yamux: ping flood, pongs never read", "tcp", 4 * time.Second, pingFlood},
		{"stream fill: 1000 streams x 256 KiB unread", "tcp", 5 * time.Second, streamFill},
		{"identify bloat (60 KiB), new peer IDs", "tcp", 4 * time.Second, identifyBloat},
		{"conn flood: one IP, one peer ID (1000)", "tcp", 5 * time.Second, connFlood([]src{one}, 1000, true)},
		{fmt.Sprintf("conn flood: one /24, %d IPs (1000)", len(subnet)), "tcp", 5 * time.Second, connFlood(subnet, 1000, false)},
		{fmt.Sprintf("conn flood: %d IPs in %d /24s (1000)", len(many), len(many)/manyPerHost), "tcp", 5 * time.Second, connFlood(many, 1000, false)},
		{"churn: 10 000 connections opened and closed", "tcp", 60 * time.Second, churn(churnN)},
		{"QUIC: Initial flood, handshakes abandoned", "quic", 4 * time.Second, quicInitialFlood},
		{"QUIC: 500 held connections, one IP", "quic", 5 * time.Second, quicHeld},
		{"WebRTC-direct: half-open flood (STUN, new ufrags)", "webrtc", 4 * time.Second, webrtcFlood},
	}
}

const (
	subnetSize  = 200 // addresses of the attacker host's /24
	manyHosts   = 4   // attacker hosts for the many-IPs flood
	manyPerHost = 64
)

// result is one victim under one attack.
type result struct {
	err                     error // the run itself failed (set-up)
	base, peak, after       stats
	recovered               time.Duration // -1: not within recoverWithin
	p99                     time.Duration
	pings, lost             int
	dials, dialsOK          int
	slowestDial             time.Duration
	dialErrs, pingErrs      []string
	panicked, died, unclean bool
	note                    string
}

func TestAttacks(t *testing.T) {
	soak := os.Getenv("TACHYON_ADVERSARY_SOAK") == "1"
	impls := []string{"go-libp2p", "tachyon"} // go first: tachyon's RSS is held to go-libp2p's
	if s := os.Getenv("TACHYON_ADVERSARY_IMPLS"); s != "" {
		impls = impls[:0]
		for _, i := range strings.Split(s, ",") {
			if i == "go" {
				i = "go-libp2p"
			}
			impls = append(impls, i)
		}
	}
	n := testbed.ForTest(t)
	ctx := context.Background()
	b := build(t, ctx)
	if !b.tachyonDebug {
		t.Logf("tachyon node has no --debug-addr: goroutines, live heap and peerstore size of the tachyon victim are not measured (only /proc: RSS, fds, threads)")
	}

	vh, err := n.AddHost("victim", testbed.LinkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	lh, err := n.AddHost("legit", testbed.LinkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ah, err := n.AddHost("attacker", testbed.LinkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	one := src{ah, ah.IPv4()}
	subnet, err := addAddrs(ah, subnetSize)
	if err != nil {
		t.Fatal(err)
	}
	var many []src
	for i := range manyHosts {
		h, err := n.AddHost(fmt.Sprintf("swarm%d", i), testbed.LinkConfig{})
		if err != nil {
			t.Fatal(err)
		}
		s, err := addAddrs(h, manyPerHost)
		if err != nil {
			t.Fatal(err)
		}
		many = append(many, s...)
	}

	table := attacks(subnet, many, one, soak)
	results := make([]map[string]*result, len(table))
	for i, a := range table {
		results[i] = map[string]*result{}
		dur := a.ci
		if soak {
			dur = soakFor
		}
		t.Run(a.name, func(t *testing.T) {
			for _, impl := range impls {
				r := runOne(t, b, impl, vh, lh, a, &env{one: one, subnet: subnet, many: many}, dur)
				results[i][impl] = r
				t.Logf("%s: %s", impl, r.summary())
			}
			if r := results[i]["tachyon"]; r != nil {
				check(t, r, results[i]["go-libp2p"])
			}
		})
	}
	tab := markdown(table, results, soak)
	t.Logf("\n%s", tab)
	if f := os.Getenv("TACHYON_ADVERSARY_TABLE"); f != "" {
		if err := os.WriteFile(f, []byte(tab), 0o644); err != nil {
			t.Errorf("writing the table: %v", err)
		}
	}
}

// addAddrs gives h n more addresses in its own /24 (.3 upwards; the router
// is .1 and h itself .2) and returns them with h's own.
func addAddrs(h *testbed.Host, n int) ([]src, error) {
	out := []src{{h, h.IPv4()}}
	var batch strings.Builder
	base := h.IPv4().As4()
	for i := range n - 1 {
		ip := netip.AddrFrom4([4]byte{base[0], base[1], base[2], byte(3 + i)})
		fmt.Fprintf(&batch, "addr add %s/24 dev eth0\n", ip)
		out = append(out, src{h, ip})
	}
	cmd := exec.Command("ip", "-n", h.Namespace(), "-batch", "-")
	cmd.Stdin = strings.NewReader(batch.String())
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("adding %d addresses to %s: %w: %s", n, h.Name(), err, b)
	}
	return out, nil
}

// runOne runs attack a against a fresh impl victim for dur.
func runOne(t *testing.T, b bins, impl string, vh, lh *testbed.Host, a attack, e *env, dur time.Duration) *result {
	r := &result{recovered: -1}
	ctx, cancel := context.WithTimeout(context.Background(), dur+3*time.Minute)
	defer cancel()
	v, err := startVictim(ctx, b, impl, vh, a.transport)
	if err != nil {
		r.err = err
		return r
	}
	defer func() {
		select {
		case <-v.done:
		default:
			v.kill()
		}
	}()
	e.v = v
	addr := v.addrs[a.transport]
	lg := &legit{host: lh, bin: b.tachyon}

	// Warm up (ARP, the victim's first connection), then the baseline.
	lctx, lcancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	ready := make(chan struct{})
	wg.Go(func() { lg.ping(lctx, addr, ready) })
	select {
	case <-ready:
	case <-time.After(15 * time.Second):
		lcancel()
		wg.Wait()
		r.err = fmt.Errorf("the legit peer's ping to %s never succeeded before the attack; victim stderr:\n%s", addr, lastLines(v.err.String(), 10))
		return r
	}
	time.Sleep(settle)
	if r.base, err = v.sample(true); err != nil {
		lcancel()
		wg.Wait()
		r.err = err
		return r
	}
	r.peak = r.base

	// The attack, with the legit peer measuring and a sampler tracking
	// peaks.
	lg.open()
	wg.Go(func() { lg.probe(lctx, addr) })
	actx, acancel := context.WithTimeout(ctx, dur)
	sdone := make(chan struct{})
	var smu sync.Mutex
	go func() {
		defer close(sdone)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-actx.Done():
				return
			case <-tick.C:
			}
			s, err := v.sample(false)
			if err != nil {
				continue
			}
			smu.Lock()
			r.peak = maxStats(r.peak, s)
			smu.Unlock()
		}
	}()
	r.note = a.run(actx, e)
	acancel()
	<-sdone
	lg.close()
	lcancel()
	wg.Wait()
	r.p99, r.pings, r.lost = lg.p99()
	r.dials, r.dialsOK, r.dialErrs, r.pingErrs, r.slowestDial = lg.dials, lg.ok, lg.dialErrs, lg.pingErrs, lg.slowest

	// Recovery: everything the attack made must be gone within 10 s.
	start := time.Now()
	for {
		s, err := v.sample(true)
		if err == nil {
			r.peak = maxStats(r.peak, s)
			r.after = s
			if recovered(r.base, s) {
				r.recovered = time.Since(start)
				break
			}
		}
		if time.Since(start) > recoverWithin {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	select {
	case <-v.done:
		r.died = true
	default:
	}
	if err := v.shutdown(); err != nil && !r.died {
		r.unclean = true
		t.Logf("%s: %v", impl, err)
	}
	r.panicked = v.panicked()
	if r.panicked || r.died {
		t.Logf("%s victim stderr (end):\n%s", impl, lastLines(v.err.String(), 40))
	}
	return r
}

func maxStats(a, b stats) stats {
	return stats{rss: max(a.rss, b.rss), fds: max(a.fds, b.fds), threads: max(a.threads, b.threads),
		goroutines: max(a.goroutines, b.goroutines), heap: max(a.heap, b.heap), conns: max(a.conns, b.conns), peerstore: max(a.peerstore, b.peerstore)}
}

// recovered compares a sample after the attack with the baseline: fds,
// and (when measured) goroutines and live heap. RSS is not compared: the
// Go runtime returns memory to the OS lazily.
func recovered(base, s stats) bool {
	if s.fds > base.fds+fdSlack {
		return false
	}
	if base.goroutines >= 0 && s.goroutines > base.goroutines+goroutineSlack {
		return false
	}
	return base.heap < 0 || s.heap <= base.heap+heapSlack
}

func (r *result) rssDelta() int64 { return r.peak.rss - r.base.rss }

func (r *result) summary() string {
	if r.err != nil {
		return "run failed: " + r.err.Error()
	}
	return fmt.Sprintf("RSS %d -> peak %d MiB (Δ %+.1f), fds %d -> %d -> %d, threads %d -> %d, goroutines %d -> %d -> %d, heap %.1f -> %.1f MiB, peerstore max %d, recovered %s, ping p99 %s over %d (%d lost %v), dials %d/%d (slowest %s) %v; attack: %s",
		r.base.rss>>20, r.peak.rss>>20, float64(r.rssDelta())/(1<<20), r.base.fds, r.peak.fds, r.after.fds, r.base.threads, r.peak.threads,
		r.base.goroutines, r.peak.goroutines, r.after.goroutines, float64(r.base.heap)/(1<<20), float64(r.after.heap)/(1<<20), r.peak.peerstore,
		recoveredText(r.recovered), r.p99, r.pings, r.lost, r.pingErrs, r.dialsOK, r.dials, r.slowestDial.Round(time.Millisecond), r.dialErrs, r.note)
}

func recoveredText(d time.Duration) string {
	if d < 0 {
		return "no"
	}
	return d.Round(100 * time.Millisecond).String()
}

// check asserts the goals against tachyon's result.
func check(t *testing.T, r, gor *result) {
	t.Helper()
	if r.err != nil {
		t.Errorf("tachyon: %v", r.err)
		return
	}
	if r.panicked {
		t.Errorf("tachyon victim panicked")
	}
	if r.died {
		t.Errorf("tachyon victim died during the attack")
	} else if r.unclean {
		t.Errorf("tachyon victim did not shut down cleanly after the attack")
	}
	if d := r.rssDelta(); d > maxRSSDelta {
		t.Errorf("peak RSS %.1f MiB above baseline, goal at most %d MiB", float64(d)/(1<<20), maxRSSDelta>>20)
	}
	if gor != nil && gor.err == nil && !gor.died {
		if d, g := r.rssDelta(), gor.rssDelta(); d > g+goMargin {
			t.Errorf("peak RSS %.1f MiB above baseline, go-libp2p %.1f MiB (margin %d MiB)", float64(d)/(1<<20), float64(g)/(1<<20), goMargin>>20)
		}
	}
	if r.recovered < 0 {
		t.Errorf("not back to baseline %s after the attack: fds %d (baseline %d), goroutines %d (%d), live heap %.1f MiB (%.1f)",
			recoverWithin, r.after.fds, r.base.fds, r.after.goroutines, r.base.goroutines, float64(r.after.heap)/(1<<20), float64(r.base.heap)/(1<<20))
	}
	if r.dials == 0 || r.dialsOK < r.dials {
		t.Errorf("legit new connections during the attack: %d of %d succeeded %v", r.dialsOK, r.dials, r.dialErrs)
	} else if r.slowestDial > maxDial {
		t.Errorf("legit new connections during the attack: the slowest took %s (goal: under %s)", r.slowestDial.Round(time.Millisecond), maxDial)
	}
	// On a machine too busy to meet the goal (other processes on the two
	// cores), go-libp2p misses it too under the same attack: then the
	// bound is go-libp2p's p99 with a margin, not a figure the machine
	// cannot give either victim. Only when go-libp2p lost no ping (a lost
	// one counts as 2 s), and never beyond maxBusyPingP99.
	limit := maxPingP99
	if gor != nil && gor.err == nil && !gor.died && gor.pings > 0 && gor.lost == 0 && gor.p99 >= maxPingP99 {
		limit = min(time.Duration(float64(gor.p99)*busyPingMargin), maxBusyPingP99)
		t.Logf("go-libp2p's ping p99 %s misses the goal of %s too (busy machine): tachyon's bound is %s", gor.p99, maxPingP99, limit)
	}
	if r.pings == 0 || r.p99 >= limit || r.lost > 0 {
		t.Errorf("legit ping during the attack: p99 %s over %d pings, %d lost; goal p99 < %s", r.p99, r.pings, r.lost, limit)
	}
}

// markdown is the table for BENCHMARKS.md.
func markdown(table []attack, results []map[string]*result, soak bool) string {
	var s strings.Builder
	length := "CI length (seconds)"
	if soak {
		length = "10 minutes each"
	}
	fmt.Fprintf(&s, "Attack suite (test/adversary), %s; victim and attacker in their own network namespaces, 2 cores shared.\n", length)
	s.WriteString("Per victim: peak RSS above baseline; fds baseline/peak/after; goroutines baseline/peak/after (- : not reported);\n")
	s.WriteString("recovered: time until fds, goroutines and live heap were back to baseline (no: not within 10 s);\n")
	s.WriteString("legit ping p99 during the attack (lost pings count as 2 s); legit new connections that succeeded (the slowest, from process start to echoed byte).\n\n")
	s.WriteString("| attack | tachyon ΔRSS | fds | goroutines | recovered | ping p99 | dials ok | go-libp2p ΔRSS | fds | goroutines | recovered | ping p99 | dials ok |\n")
	s.WriteString("|---|---:|---|---|---|---:|---|---:|---|---|---|---:|---|\n")
	for i, a := range table {
		fmt.Fprintf(&s, "| %s | %s | %s |\n", a.name, cells(results[i]["tachyon"]), cells(results[i]["go-libp2p"]))
	}
	return s.String()
}

func cells(r *result) string {
	switch {
	case r == nil:
		return "n/a | | | | | "
	case r.err != nil:
		return "run failed | | | | | "
	}
	g := "-"
	if r.base.goroutines >= 0 {
		g = fmt.Sprintf("%d/%d/%d", r.base.goroutines, r.peak.goroutines, r.after.goroutines)
	}
	rss := fmt.Sprintf("%+.0f MiB", float64(r.rssDelta())/(1<<20))
	if r.died {
		rss += " (died)"
	}
	if r.panicked {
		rss += " (panic)"
	}
	ping := r.p99.Round(100 * time.Microsecond).String()
	if r.lost > 0 {
		ping += fmt.Sprintf(" (%d lost)", r.lost)
	}
	return fmt.Sprintf("%s | %d/%d/%d | %s | %s | %s | %d/%d (%.1f s)", rss, r.base.fds, r.peak.fds, r.after.fds, g, recoveredText(r.recovered), ping, r.dialsOK, r.dials, r.slowestDial.Seconds())
}
