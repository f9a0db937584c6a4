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

// TestInbound runs the whole -inbound measurement, small, against both
// listeners over TCP+Noise and QUIC: the children start, every connection
// is identified on both sides, and the figures are plausible.
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
				r, err := measureInbound(ctx, impl, sec, n, k, 100*time.Millisecond, dir)
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
			})
		}
	}
}
