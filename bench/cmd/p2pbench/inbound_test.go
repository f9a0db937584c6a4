package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as the -inbound children: the
// parent starts os.Executable, which is this binary under go test.
func TestMain(m *testing.M) {
	flag.Parse()
	if code, ok := inboundChild(); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// TestInbound runs the whole -inbound measurement, small and in two
// steps, against both listeners over TCP+Noise and QUIC: the children
// start, every connection is identified on both sides, each step is
// sampled, and the figures are plausible.
func TestInbound(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes and 40 go-libp2p hosts")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const n, k = 20, 2
	for _, sec := range []string{secNoise, secQUIC} {
		for _, impl := range append(slices.Clone(impls), implFloor) {
			t.Run(impl+"/"+sec, func(t *testing.T) {
				dir := t.TempDir()
				r, err := measureInbound(ctx, impl, sec, []int{0, n / 2, n}, k, 100*time.Millisecond, dir)
				if err != nil {
					t.Fatal(err)
				}
				for _, kind := range []string{"cpu", "heap", "goroutine"} {
					p := filepath.Join(dir, fmt.Sprintf("inbound-%s-%s-%d.%s.pprof", impl, sec, n, kind))
					if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
						t.Errorf("%s profile: %v", kind, err)
					}
				}
				if r.conns != n || r.goroutines < 1 || r.heap <= 0 || r.acceptCPU <= 0 || r.accept <= 0 {
					t.Errorf("implausible result %+v", r)
				}
				if len(r.steps) != 3 || r.steps[0].conns != 0 || r.steps[1].conns != n/2 || r.steps[2].conns != n {
					t.Fatalf("steps %+v, want samples at 0, %d and %d connections", r.steps, n/2, n)
				}
				for _, s := range r.steps {
					if s.rss <= 0 || s.heap <= 0 || s.goroutines < 1 {
						t.Errorf("implausible sample %+v", s)
					}
				}
				if r.steps[2].goroutines <= r.steps[0].goroutines {
					t.Errorf("goroutines %v at %d connections, %v at 0", r.steps[2].goroutines, n, r.steps[0].goroutines)
				}
			})
		}
	}
}

// TestInboundFloorMarkdown: the floor gets its row and its ratio to
// go-libp2p under the two listeners' rows, and a failed floor a note.
func TestInboundFloorMarkdown(t *testing.T) {
	r := func(rss float64) []inboundResult {
		return []inboundResult{{conns: 1000, rss: rss * 1024, heap: rss * 512, stack: 1024, goroutines: 2,
			acceptCPU: time.Millisecond, idleCPU: 10, accept: time.Second, load: "1.0"}}
	}
	out := map[inboundKey][]inboundResult{
		{implTachyon, secQUIC}: r(64),
		{implGo, secQUIC}:      r(80),
		{implFloor, secQUIC}:   r(60),
	}
	md := inboundMarkdown([]string{secQUIC}, out, 4, 30*time.Second)
	for _, want := range []string{
		"| QUIC | tachyon / go-libp2p | 0.80 |",
		"| QUIC | floor | 60.0 | 30.0 |",
		"| QUIC | floor / go-libp2p | 0.75 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("table lacks %q:\n%s", want, md)
		}
	}
	out[inboundKey{implFloor, secQUIC}] = []inboundResult{{conns: 1000, failed: "dial timeout", load: "2.0"}}
	md = inboundMarkdown([]string{secQUIC}, out, 4, 30*time.Second)
	if strings.Contains(md, "floor / go-libp2p") || !strings.Contains(md, "- floor/QUIC failed (load 2.0): dial timeout") {
		t.Errorf("a failed floor: want no ratio and a note:\n%s", md)
	}
}

// TestInboundFloorTachyonFailed: the floor's rows do not depend on
// tachyon's listener having succeeded.
func TestInboundFloorTachyonFailed(t *testing.T) {
	ok := []inboundResult{{conns: 1000, rss: 80 * 1024, heap: 40 * 1024, goroutines: 2, acceptCPU: time.Millisecond, idleCPU: 10, accept: time.Second, load: "1.0"}}
	floor := []inboundResult{{conns: 1000, rss: 60 * 1024, heap: 30 * 1024, goroutines: 2, acceptCPU: time.Millisecond, idleCPU: 10, accept: time.Second, load: "1.0"}}
	out := map[inboundKey][]inboundResult{
		{implTachyon, secTLS}: {{conns: 1000, failed: "dial timeout", load: "3.0"}},
		{implGo, secTLS}:      ok,
		{implFloor, secTLS}:   floor,
	}
	md := inboundMarkdown([]string{secTLS}, out, 4, 30*time.Second)
	for _, want := range []string{"| TLS | tachyon | failed |", "| TLS | floor | 60.0 |", "| TLS | floor / go-libp2p | 0.75 |", "bare clients"} {
		if !strings.Contains(md, want) {
			t.Errorf("table lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "tachyon / go-libp2p") {
		t.Errorf("a ratio against a listener that failed:\n%s", md)
	}
}

// TestTCPFloorPings: a floor client over each TCP stack pings at once and
// then every interval, the floor listener answers, and both count the
// connection until it closes.
func TestTCPFloorPings(t *testing.T) {
	defer func(d time.Duration) { floorInterval = d }(floorInterval)
	floorInterval = 20 * time.Millisecond
	for _, sec := range []string{secTLS, secNoise} {
		t.Run(sec, func(t *testing.T) {
			l, err := newTCPFloor(sec, true)
			if err != nil {
				t.Fatal(err)
			}
			defer l.close()
			c, err := newTCPFloor(sec, false)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := c.connect(ctx, l.ref()); err != nil {
				t.Fatal(err)
			}
			for c.pongs.Load() < 5 {
				if ctx.Err() != nil {
					t.Fatalf("%d answers in 10 s, pinging every %v", c.pongs.Load(), floorInterval)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if l.identifiedConns() != 1 || c.numConns() != 1 {
				t.Fatalf("listener counts %d connections, client %d; want 1 each", l.identifiedConns(), c.numConns())
			}
			c.close()
			for l.numConns() != 0 {
				if ctx.Err() != nil {
					t.Fatal("the listener still counts the connection the client closed")
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}
