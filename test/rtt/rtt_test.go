// Package rtt counts the network round trips tachyon needs from a cold start
// to the first byte echoed on a new stream ("dial + open stream + 1-byte
// request/response"), over every transport, on an emulated 40 ms RTT path,
// next to go-libp2p v0.51 doing the same in the same run.
//
// It needs root (network namespaces); TACHYON_SKIP_NETNS=1 skips it
// elsewhere. Run it without -race: the race detector slows the handshakes'
// CPU work enough to show up as a fraction of a round trip.
//
//	go test ./test/rtt -run TestRoundTrips -v
package rtt

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/testbed"
)

const (
	oneWay     = 10 * time.Millisecond // per host link; a->b RTT is 4x this
	iterations = 6                     // measured, after one warm-up per client run
	tolerance  = 0.5                   // round trips
	buildLimit = 150 * time.Second
	testLimit  = 225 * time.Second // the whole test, builds included
)

// Row is one line of the table.
type row struct {
	name   string
	addr   string // what the row's dialer dials (for the table)
	expect string // "3", "<=4", "<=go"
	client string // "go", or "tachyon" and its rtt flags
	target target
	goArgs []string // the go client's stack flags
	ref    string   // key of the go -> go reference measurement ("" = none)
}

// target is what a row dials: addr gives the address, starting a listener
// if it has to; maxConns > 0 says a listener takes at most that many
// connections before it behaves differently, so each client run gets a
// fresh one.
type target struct {
	addr     func() string
	maxConns int
}

// fresh is a target that starts a new listener for every client run of at
// most 4 connections.
func fresh(start func() string) target { return target{addr: start, maxConns: 4} }

// result is one row's samples: the median is what the table shows; the
// fastest sample is what the checks bound, since a busy machine only adds
// to a sample while a protocol's extra round trip is in every one.
type result struct {
	medianMs float64
	rounds   float64
	fastMs   float64
	fast     float64 // round trips of the fastest sample
	err      error
}

func TestRoundTrips(t *testing.T) {
	start := time.Now()
	n := testbed.ForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), testLimit)
	defer cancel()

	a, err := n.AddHost("a", testbed.LinkConfig{Delay: oneWay})
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.AddHost("b", testbed.LinkConfig{Delay: oneWay})
	if err != nil {
		t.Fatal(err)
	}
	rtt := n.RTT(a, b)
	// TACHYON_RTT_PCAP=FILE captures host a's link (both ways) for
	// finding which round trip is extra; -v logs when each run starts.
	if f := os.Getenv("TACHYON_RTT_PCAP"); f != "" {
		stop, err := a.Link().Capture(f)
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
	}

	bins := build(t, ctx)
	tachyonBin, goBin := bins[0], bins[1]
	t.Logf("built in %s", time.Since(start).Round(time.Second))

	bIP := b.IPv4().String()
	// Listeners in b.
	tachyonAddrs := listen(t, ctx, b, tachyonBin, []string{"node", "--echo",
		"--listen", "/ip4/" + bIP + "/tcp/4001",
		"--listen", "/ip4/" + bIP + "/udp/4001/quic-v1",
		"--listen", "/ip4/" + bIP + "/udp/4001/quic-v1/webtransport",
		"--listen", "/ip4/" + bIP + "/udp/4001/webrtc-direct"},
		"/tcp/4001/p2p/", "/tcp/4001/tls/p2p/", "/tcp/4001/noise/p2p/", "/quic-v1/p2p/", "/webtransport/", "/webrtc-direct/")
	goListen := func(args ...string) string {
		return listen(t, ctx, b, goBin, append([]string{"listen"}, args...), "/p2p/")[0]
	}
	goNoise := goListen("--transport", "tcp", "--security", "noise", "--listen", "/ip4/"+bIP+"/tcp/0")
	goTLS := goListen("--transport", "tcp", "--security", "tls", "--listen", "/ip4/"+bIP+"/tcp/0")
	// go-libp2p's resource manager makes its QUIC listener answer with a
	// Retry (source address validation, +1 RTT) once one /32 has begun
	// more than 4 handshakes (burst ConnCount/2, refilled one per 10 s:
	// rcmgr conn_limiter.go newVerifySourceAddressRateLimiter). That is a
	// DoS defence of the listener, not a round trip of the protocol, so
	// a QUIC/WebTransport go listener takes at most 4 connections: the
	// measurement spreads its samples over fresh listeners (fresh(...)).
	// With one listener for 1+5 connections the last 2 took a Retry and
	// the median was the slowest of 3 samples: a CI run failed on it.
	goQUIC := fresh(func() string {
		return goListen("--transport", "quic-v1", "--listen", "/ip4/"+bIP+"/udp/0/quic-v1")
	})
	goWT := fresh(func() string {
		return goListen("--transport", "webtransport", "--listen", "/ip4/"+bIP+"/udp/0/quic-v1/webtransport")
	})

	goWebRTC := fresh(func() string {
		return goListen("--transport", "webrtc-direct", "--listen", "/ip4/"+bIP+"/udp/0/webrtc-direct")
	})

	ta := func(i int) target { return target{addr: func() string { return tachyonAddrs[i] }} }
	is := func(s string) target { return target{addr: func() string { return s }} }
	// A default go-libp2p host offers both, TLS first. go-libp2p's
	// resource manager accepts a burst of 16 connections from one IP and
	// then one per 5 s (rcmgr connection rate limiting), closing the rest
	// at once: each row that dials such a listener gets its own.
	goBoth := func() target {
		return is(goListen("--transport", "tcp", "--security", "tls,noise", "--listen", "/ip4/"+bIP+"/tcp/0"))
	}
	tcpNoise := []string{"--transport", "tcp", "--security", "noise"}
	tcpTLS := []string{"--transport", "tcp", "--security", "tls"}
	quic := []string{"--transport", "quic-v1"}
	wt := []string{"--transport", "webtransport"}

	// go -> go references, measured in this run.
	refs := []struct {
		key    string
		target target
		args   []string
	}{
		{"tcp/tls", is(goTLS), tcpTLS},
		{"tcp/noise", is(goNoise), tcpNoise},
		{"quic-v1", goQUIC, quic},
		{"webtransport", goWT, wt},
		{"webrtc-direct", goWebRTC, []string{"--transport", "webrtc-direct"}},
	}
	rows := []row{
		{"tachyon -> tachyon", "/tcp/P/tls", "3", "tachyon", ta(1), nil, "tcp/tls"},
		{"tachyon -> tachyon", "/tcp/P/noise", "3", "tachyon", ta(2), nil, "tcp/noise"},
		{"tachyon -> tachyon", "/tcp/P", "<=4", "tachyon", ta(0), nil, "tcp/noise"},
		{"tachyon -> go-libp2p (tls,noise)", "/tcp/P", "<=4", "tachyon", goBoth(), nil, "tcp/tls"},
		// A Noise-only go listener answers "na" to tachyon's first offer
		// (TLS); the last offer (Noise) goes with Noise's first message,
		// so the refusal costs the round trip that the first offer's
		// answer takes and no more.
		{"tachyon -> go-libp2p (noise)", "/tcp/P", "<=4", "tachyon", is(goNoise), nil, "tcp/noise"},
		// A dialer with one security protocol offers it with the
		// handshake's first message: no round trip for multistream-select.
		{"tachyon (noise) -> go-libp2p (tls,noise)", "/tcp/P", "3", "tachyon --security noise", goBoth(), nil, "tcp/noise"},
		{"tachyon (tls) -> go-libp2p (tls,noise)", "/tcp/P", "3", "tachyon --security tls", goBoth(), nil, "tcp/tls"},
		{"go-libp2p -> tachyon (tls)", "/tcp/P", "<=go", "go", ta(0), tcpTLS, "tcp/tls"},
		{"go-libp2p -> tachyon (noise)", "/tcp/P", "<=go", "go", ta(0), tcpNoise, "tcp/noise"},
		{"tachyon -> tachyon", "/udp/P/quic-v1", "2", "tachyon", ta(3), nil, "quic-v1"},
		{"tachyon -> go-libp2p", "/udp/P/quic-v1", "2", "tachyon", goQUIC, nil, "quic-v1"},
		// go-libp2p's NewStream waits for its identify of the listener
		// (one more round trip after the handshake) before it opens a
		// stream, so a go dialer needs 3 whoever listens: issue 4's "2"
		// is out of any listener's reach, and the row is held to go ->
		// go.
		{"go-libp2p -> tachyon", "/udp/P/quic-v1", "<=go", "go", ta(3), quic, "quic-v1"},
		{"tachyon -> tachyon", "/webtransport", "<=4", "tachyon", ta(4), nil, "webtransport"},
		{"tachyon -> tachyon", "/webrtc-direct", "<=8", "tachyon", ta(5), nil, "webrtc-direct"},
	}
	// Rows tachyon does not meet yet, each with what stands in the way. They
	// are measured and printed in every run, and reported as skipped
	// subtests naming the gap, never as passes.
	knownGaps := map[int]string{}

	// run runs one client process that makes n connections to addr and
	// returns each one's time to the echoed byte.
	run := func(client, addr string, goArgs []string, n int) ([]float64, error) {
		var cmd *exec.Cmd
		mctx, mcancel := context.WithTimeout(ctx, 40*time.Second)
		defer mcancel()
		if testing.Verbose() {
			t.Logf("%s %s rtt %s %v", time.Now().Format("15:04:05.000"), client, addr, goArgs)
		}
		if tool, flags, _ := strings.Cut(client, " "); tool == "tachyon" {
			args := append([]string{"rtt", addr, "-n", fmt.Sprint(n), "-timeout", "15s"}, strings.Fields(flags)...)
			cmd = a.Command(mctx, tachyonBin, args...)
		} else {
			cmd = a.Command(mctx, goBin, append(append([]string{"rtt", addr}, goArgs...), "--count", fmt.Sprint(n), "--timeout", "15s")...)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		var res struct {
			Event  string    `json:"event"`
			OK     bool      `json:"ok"`
			Millis []float64 `json:"millis"`
			Error  string    `json:"error"`
		}
		if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &res); jerr != nil || err != nil || !res.OK || len(res.Millis) != n {
			return nil, fmt.Errorf("%s rtt %s: exit %v, stdout %q, stderr %s", client, addr, err, out, lastLines(stderr.String(), 5))
		}
		if testing.Verbose() {
			t.Logf("  -> %v ms", res.Millis)
		}
		return res.Millis, nil
	}
	// measure takes iterations samples, each client run's first
	// connection being a warm-up; a target that takes few connections
	// gets a fresh listener for each run.
	measure := func(client string, tg target, goArgs []string) result {
		per := iterations
		if tg.maxConns > 0 {
			per = tg.maxConns - 1
		}
		var ms []float64
		for len(ms) < iterations {
			n := min(per, iterations-len(ms))
			got, err := run(client, tg.addr(), goArgs, n+1)
			if err != nil {
				return result{err: err}
			}
			ms = append(ms, got[1:]...)
		}
		slices.Sort(ms)
		med := (ms[(len(ms)-1)/2] + ms[len(ms)/2]) / 2
		rounds := func(ms float64) float64 {
			return testbed.RoundTrips(time.Duration(ms*float64(time.Millisecond)), rtt)
		}
		return result{medianMs: med, rounds: rounds(med), fastMs: ms[0], fast: rounds(ms[0])}
	}

	refRes := map[string]result{}
	for _, r := range refs {
		refRes[r.key] = measure("go", r.target, r.args)
		if err := refRes[r.key].err; err != nil {
			t.Errorf("go -> go %s: %v", r.key, err)
		}
	}
	results := make([]result, len(rows))
	for i, r := range rows {
		results[i] = measure(r.client, r.target, r.goArgs)
	}

	var tab strings.Builder
	fmt.Fprintf(&tab, "RTT %s; median of %d, after 1 warm-up per client run; round trips = median / RTT\n", rtt, iterations)
	fmt.Fprintf(&tab, "| %-40s | %-14s | %-8s | %-22s | %-22s |\n", "dialer -> listener", "address", "expected", "measured (ms, RTTs)", "go -> go (ms, RTTs)")
	fmt.Fprintf(&tab, "|%s|%s|%s|%s|%s|\n", strings.Repeat("-", 42), strings.Repeat("-", 16), strings.Repeat("-", 10), strings.Repeat("-", 24), strings.Repeat("-", 24))
	cell := func(r result, ok bool) string {
		if !ok {
			return "n/a"
		}
		if r.err != nil {
			return "error"
		}
		return fmt.Sprintf("%.1f (%.1f)", r.medianMs, r.rounds)
	}
	for i, r := range rows {
		ref, hasRef := refRes[r.ref]
		fmt.Fprintf(&tab, "| %-40s | %-14s | %-8s | %-22s | %-22s |\n", r.name, r.addr, r.expect, cell(results[i], true), cell(ref, hasRef))
	}
	t.Logf("\n%s", tab.String())
	if dir := os.Getenv("TACHYON_RTT_TABLE"); dir != "" {
		os.WriteFile(dir, []byte(tab.String()), 0o644)
	}

	for i, r := range rows {
		res := results[i]
		what := fmt.Sprintf("%s %s", r.name, r.addr)
		if res.err != nil {
			t.Errorf("%s: %v", what, res.err)
			continue
		}
		if gap, ok := knownGaps[i]; ok {
			t.Run(fmt.Sprintf("row%d", i), func(t *testing.T) {
				t.Skipf("%s: measured %.1f round trips, expected %s: not met yet: %s", what, res.rounds, r.expect, gap)
			})
			continue
		}
		switch r.expect {
		case "<=go":
			ref := refRes[r.ref]
			if ref.err == nil && res.fast > ref.fast+tolerance {
				t.Errorf("%s: %.1f round trips at fastest (%.1f ms; median %.1f ms), go-libp2p -> go-libp2p needs %.1f at fastest",
					what, res.fast, res.fastMs, res.medianMs, ref.fast)
			}
		case "<=4", "<=8":
			var max float64
			fmt.Sscanf(r.expect, "<=%g", &max)
			if res.fast > max+tolerance {
				t.Errorf("%s: %.1f round trips at fastest (%.1f ms; median %.1f ms), want at most %g", what, res.fast, res.fastMs, res.medianMs, max)
			}
		default:
			var want float64
			fmt.Sscanf(r.expect, "%g", &want)
			if res.fast < want-tolerance || res.fast > want+tolerance {
				t.Errorf("%s: %.1f round trips at fastest (%.1f ms; median %.1f ms), want %g", what, res.fast, res.fastMs, res.medianMs, want)
			}
		}
	}
	t.Logf("total %s", time.Since(start).Round(time.Second))
}

// build compiles the tachyon CLI and the go-libp2p peer into a temp dir, in
// parallel.
func build(t *testing.T, ctx context.Context) [2]string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	dir := t.TempDir()
	bins := [2]string{filepath.Join(dir, "tachyon"), filepath.Join(dir, "golibp2p-peer")}
	srcs := [2]string{root, filepath.Join(root, "interop", "golibp2p")}
	pkgs := [2]string{"./cmd/tachyon", "."}
	var errs [2]error
	var wg sync.WaitGroup
	bctx, cancel := context.WithTimeout(ctx, buildLimit)
	defer cancel()
	for i := range bins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.CommandContext(bctx, "go", "build", "-o", bins[i], pkgs[i])
			cmd.Dir = srcs[i]
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("building %s in %s: %v\n%s", pkgs[i], srcs[i], err, out)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return bins
}

// listen starts a listener inside h until the test ends and returns, for
// each of want in order, the first printed address containing it.
func listen(t *testing.T, ctx context.Context, h *testbed.Host, bin string, args []string, want ...string) []string {
	t.Helper()
	lctx, cancel := context.WithCancel(ctx)
	cmd := h.Command(lctx, bin, args...)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-lctx.Done():
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	found := make([]string, len(want))
	missing := len(want)
	timer := time.NewTimer(20 * time.Second)
	defer timer.Stop()
	for missing > 0 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("%s %s exited; stderr:\n%s", filepath.Base(bin), args[0], stderr.String())
			}
			for i, w := range want {
				if found[i] == "" && strings.Contains(l, w) {
					found[i] = l
					missing--
				}
			}
		case <-timer.C:
			t.Fatalf("%s %s printed no address with all of %q; got %q; stderr:\n%s", filepath.Base(bin), args[0], want, found, stderr.String())
		}
	}
	// Keep draining (the go listener prints a line per identified peer).
	go func() {
		for range lines {
		}
	}()
	return found
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
