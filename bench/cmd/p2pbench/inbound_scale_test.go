package main

import (
	"context"
	"errors"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseSteps(t *testing.T) {
	for _, tc := range []struct {
		in      string
		n       int
		want    []int
		wantErr bool
	}{
		{"", 2500, []int{0, 2500}, false},
		{"0,1000,2500,5000,7500,10000", 10000, []int{0, 1000, 2500, 5000, 7500, 10000}, false},
		{"1000, 2500", 2500, []int{0, 1000, 2500}, false}, // 0 added, spaces allowed
		{"1000,2500", 0, []int{0, 1000, 2500}, false},     // no -inbound total to match
		{"", 0, nil, true},
		{"0", 10, nil, true},
		{"1000,500", 500, nil, true},   // descends
		{"1000,1000", 1000, nil, true}, // repeats
		{"1000,x", 1000, nil, true},
		{"-5,10", 10, nil, true},
		{"1000,2000", 3000, nil, true}, // ends short of -inbound
	} {
		got, err := parseSteps(tc.in, tc.n)
		if (err != nil) != tc.wantErr {
			t.Errorf("parseSteps(%q, %d): error %v, want error %v", tc.in, tc.n, err, tc.wantErr)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("parseSteps(%q, %d) = %v, want %v", tc.in, tc.n, got, tc.want)
		}
	}
}

// TestClientShare: the shares of every step add up to the step, no
// client's share shrinks from one step to the next (a step's dials are
// the difference), and the last step's shares are what the clients hold.
func TestClientShare(t *testing.T) {
	for _, tc := range []struct {
		steps []int
		k     int
	}{
		{[]int{0, 1000, 2500, 5000, 7500, 10000}, 4},
		{[]int{0, 1000, 2500, 5000, 7500, 10000}, 7},
		{[]int{0, 3, 10}, 4}, // fewer connections than clients at first
		{[]int{0, 20}, 2},
		{[]int{0, 1}, 1},
	} {
		prev := make([]int, tc.k)
		for _, s := range tc.steps {
			sum := 0
			for i := range tc.k {
				c := clientShare(s, tc.k, i)
				if c < prev[i] {
					t.Errorf("steps %v, k %d: client %d's share falls from %d to %d at %d", tc.steps, tc.k, i, prev[i], c, s)
				}
				if c-s/tc.k > 1 || c < s/tc.k {
					t.Errorf("steps %v, k %d: client %d holds %d of %d, uneven", tc.steps, tc.k, i, c, s)
				}
				prev[i] = c
				sum += c
			}
			if sum != s {
				t.Errorf("steps %v, k %d: shares add up to %d at step %d", tc.steps, tc.k, sum, s)
			}
		}
	}
}

func TestInboundClientCount(t *testing.T) {
	for _, tc := range []struct{ asked, n, want int }{
		{0, 1000, 4},
		{0, 10000, 4},
		{0, 10001, 5},
		{0, 20000, 8},
		{6, 1000, 6},
		{1, 10000, 1},
	} {
		if got := inboundClientCount(tc.asked, tc.n); got != tc.want {
			t.Errorf("inboundClientCount(%d, %d) = %d, want %d", tc.asked, tc.n, got, tc.want)
		}
	}
}

func TestParseProc(t *testing.T) {
	const status = "Name:\tp2pbench\nVmPeak:\t  900 kB\nVmRSS:\t  659384 kB\nThreads:\t6\n"
	if got, err := parseVmRSS(status); err != nil || got != 659384<<10 {
		t.Errorf("parseVmRSS = %d, %v; want %d", got, err, 659384<<10)
	}
	for _, bad := range []string{"Name:\tx\n", "VmRSS:\t12 MB\n", "VmRSS:\tx kB\n"} {
		if _, err := parseVmRSS(bad); err == nil {
			t.Errorf("parseVmRSS(%q): no error", bad)
		}
	}

	// A command name with a space and a parenthesis; utime 150, stime 50
	// ticks of 10 ms.
	const stat = "4242 (p2p bench)) S 1 4242 4242 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 6 0 100 0 0"
	if got, err := parseStatCPU(stat); err != nil || got != 2*time.Second {
		t.Errorf("parseStatCPU = %v, %v; want 2s", got, err)
	}
	for _, bad := range []string{"4242 p2pbench S 1", "4242 (p) S 1 2 3", "4242 (p) S 1 4242 4242 0 -1 4194560 100 0 0 0 x 50 0"} {
		if _, err := parseStatCPU(bad); err == nil {
			t.Errorf("parseStatCPU(%q): no error", bad)
		}
	}

	const meminfo = "MemTotal:       24608056 kB\nMemFree:        23000000 kB\nMemAvailable:   23500000 kB\n"
	if got, err := parseMemAvailable(meminfo); err != nil || got != 23500000<<10 {
		t.Errorf("parseMemAvailable = %d, %v", got, err)
	}
	if _, err := parseMemAvailable("MemTotal: 1 kB\n"); err == nil {
		t.Error("parseMemAvailable without MemAvailable: no error")
	}
}

func TestMedianSteps(t *testing.T) {
	rounds := [][]inboundSample{
		{{conns: 0, rss: 10, heap: 1}, {conns: 100, rss: 30, heap: 5}},
		{{conns: 0, rss: 14, heap: 3}, {conns: 100, rss: 20, heap: 9}},
		{{conns: 0, rss: 12, heap: 2}, {conns: 100, rss: 40, heap: 7}},
	}
	want := []inboundSample{{conns: 0, rss: 12, heap: 2}, {conns: 100, rss: 30, heap: 7}}
	if got := medianSteps(rounds); !slices.Equal(got, want) {
		t.Errorf("medianSteps = %+v, want %+v", got, want)
	}
	if got := medianSteps(nil); got != nil {
		t.Errorf("medianSteps(nil) = %+v", got)
	}
}

// stairResults is a staircase of both listeners on one stack: tachyon
// grows by 20 KiB a connection, go-libp2p by 40.
func stairResults() map[inboundKey][]inboundResult {
	stair := func(base, per float64) []inboundSample {
		var ss []inboundSample
		for _, n := range []int{0, 1000, 2000} {
			ss = append(ss, inboundSample{conns: n, rss: base + per*float64(n), heap: base/2 + per/2*float64(n), goroutines: 10})
		}
		return ss
	}
	return map[inboundKey][]inboundResult{
		{implTachyon, secNoise}: {{conns: 2000, steps: stair(20<<20, 20<<10)}},
		{implGo, secNoise}:      {{conns: 2000, steps: stair(30<<20, 40<<10)}},
	}
}

func TestStepsMarkdown(t *testing.T) {
	md := stepsMarkdown([]string{secNoise, secQUIC}, stairResults())
	for _, want := range []string{
		"| stack | listener | 0 | 1000 | 2000 | KiB per conn |",
		"| Noise | tachyon | 20.0 | 39.5 | 59.1 | 20.0 |",
		"| Noise | go-libp2p | 30.0 | 69.1 | 108.1 | 40.0 |",
		"| Noise | tachyon / go-libp2p | | | | 0.50 |",
		"| Noise | tachyon | 10.0 | 19.8 | 29.5 | 10.0 |", // heap
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "QUIC") {
		t.Errorf("markdown has a row for a stack without results:\n%s", md)
	}
	if got := stepsMarkdown([]string{secNoise}, map[inboundKey][]inboundResult{{implTachyon, secNoise}: {{conns: 5, steps: []inboundSample{{conns: 5}}}}}); got != "" {
		t.Errorf("one step gives a table:\n%s", got)
	}
}

func TestNiceStep(t *testing.T) {
	for _, tc := range []struct {
		vmax float64
		n    int
		want float64
	}{
		{10000, 4, 5000},
		{10000, 5, 2000},
		{730, 5, 200},
		{7.3, 5, 2},
		{100, 5, 20},
		{0, 5, 1},
		{1, 0, 1},
	} {
		if got := niceStep(tc.vmax, tc.n); got != tc.want {
			t.Errorf("niceStep(%v, %d) = %v, want %v", tc.vmax, tc.n, got, tc.want)
		}
	}
	for v, want := range map[float64]string{0: "0", 2500: "2500", 10000: "10k", 12500: "12500", 0.5: "0.5"} {
		if got := tickLabel(v); got != want {
			t.Errorf("tickLabel(%v) = %q, want %q", v, got, want)
		}
	}
}

// TestDrawLines draws the staircase chart and finds both listeners'
// colours in it.
func TestDrawLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "scale.png")
	panels := chartPanels([]string{secTLS, secNoise}, stairResults())
	if len(panels) != 1 || len(panels[0].series) != 2 {
		t.Fatalf("panels %+v, want one (Noise) with two lines", panels)
	}
	if err := drawLines(path, "test", "connections", "RSS MiB", panels); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			for _, impl := range impls {
				c := lineColor(impl)
				if r>>8 == uint32(c.R) && g>>8 == uint32(c.G) && bl>>8 == uint32(c.B) {
					found[impl] = true
				}
			}
		}
	}
	for _, impl := range impls {
		if !found[impl] {
			t.Errorf("no %s line in the chart", impl)
		}
	}
	if err := drawLines(path, "empty", "x", "y", nil); err == nil {
		t.Error("drawLines without panels: no error")
	}
}

// TestFailedListener: a listener that failed part-way keeps its steps in
// the staircase ("–" beyond them, its share up to its last step, no
// ratio), and the main table says it failed and why.
func TestFailedListener(t *testing.T) {
	out := stairResults()
	k := inboundKey{implTachyon, secNoise}
	r := out[k][0]
	r.steps = r.steps[:2] // reached 1000 of 2000
	r.failed = "going from 1000 to 2000 connections: dial timeout"
	r.load = "3.5"
	out[k] = []inboundResult{r}

	md := stepsMarkdown([]string{secNoise}, out)
	for _, want := range []string{
		"| Noise | tachyon | 20.0 | 39.5 | – | 20.0 (to 1000) |",
		"| Noise | go-libp2p | 30.0 | 69.1 | 108.1 | 40.0 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("steps markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "tachyon / go-libp2p") {
		t.Errorf("a ratio against a listener that failed:\n%s", md)
	}

	main := inboundMarkdown([]string{secNoise}, out, 4, 30*time.Second)
	for _, want := range []string{
		"| Noise | tachyon | failed | – | – | – | – | – | – | 3.5 |",
		"- tachyon/Noise failed (load 3.5): going from 1000 to 2000 connections: dial timeout",
	} {
		if !strings.Contains(main, want) {
			t.Errorf("table lacks %q:\n%s", want, main)
		}
	}
	if strings.Contains(main, "tachyon / go-libp2p") {
		t.Errorf("a ratio against a listener that failed:\n%s", main)
	}

	// Over rounds, the failed round's first steps count with the others.
	ss := medianSteps([][]inboundSample{
		{{conns: 0, rss: 1}, {conns: 10, rss: 5}},
		{{conns: 0, rss: 3}, {conns: 10, rss: 7}, {conns: 20, rss: 9}},
	})
	want := []inboundSample{{conns: 0, rss: 2}, {conns: 10, rss: 6}, {conns: 20, rss: 9}}
	if !slices.Equal(ss, want) {
		t.Errorf("medianSteps of a short and a full round = %+v, want %+v", ss, want)
	}
}

// TestWatchMemory: a floor above any machine's memory stops the run with
// a cause that says so; a floor of 0 never does, and stop ends the watch.
func TestWatchMemory(t *testing.T) {
	if _, err := memAvailable(); err != nil {
		t.Skipf("no /proc/meminfo: %v", err)
	}
	ctx, stop := watchMemory(context.Background(), math.MaxUint64)
	<-ctx.Done()
	if cause := context.Cause(ctx); cause == nil || !strings.Contains(cause.Error(), "available memory") {
		t.Errorf("cause %v, want the memory floor", cause)
	}
	stop()

	ctx, stop = watchMemory(context.Background(), 0)
	if ctx.Err() != nil {
		t.Fatalf("cancelled at once: %v", context.Cause(ctx))
	}
	stop()
	if !errors.Is(context.Cause(ctx), context.Canceled) {
		t.Errorf("after stop: cause %v, want context.Canceled", context.Cause(ctx))
	}
}
