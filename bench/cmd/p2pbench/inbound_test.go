package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
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
		for _, impl := range impls {
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
