package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"
)

// idleCost is what one idle connection costs, both ends together: the
// client host's side and the server host's side live in this process.
type idleCost struct {
	conns      int
	rss        float64 // resident set (VmRSS) bytes per connection
	heap       float64 // HeapInuse bytes per connection
	stack      float64 // StackInuse bytes per connection
	goroutines float64
}

type memSnapshot struct {
	rss, heap, stack uint64
	goroutines       int
}

func snapshot() memSnapshot {
	// Two cycles: the first may leave finalizer-freed objects for the next.
	runtime.GC()
	// FreeOSMemory collects again and returns free pages to the kernel, so
	// RSS follows what is live rather than the high-water mark of earlier
	// measurements in this process.
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSnapshot{rss: vmRSS(), heap: ms.HeapInuse, stack: ms.StackInuse, goroutines: runtime.NumGoroutine()}
}

// vmRSS is this process's resident set in bytes (VmRSS of
// /proc/self/status), 0 where there is no /proc.
func vmRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// settle is how long hosts and connections are left alone before a
// snapshot, so start-up work (identify, first pushes) has finished.
const settle = time.Second

// measureIdle connects n client hosts, one connection each, to one server
// host. All hosts exist before the first snapshot, so the difference to the
// second snapshot is the connections alone (including what identify stores
// about the peer), with no per-host baseline left in it.
func measureIdle(ctx context.Context, impl, sec string, n int, profDir string) (idleCost, error) {
	server, err := newHost(impl, sec, true)
	if err != nil {
		return idleCost{}, err
	}
	defer server.close()
	if err := serve(server); err != nil {
		return idleCost{}, err
	}
	clients := make([]endpoint, 0, n)
	defer func() {
		for _, c := range clients {
			c.close()
		}
	}()
	for range n {
		c, err := newHost(impl, sec, false)
		if err != nil {
			return idleCost{}, err
		}
		clients = append(clients, c)
	}
	time.Sleep(settle)
	before := snapshot()

	if err := connectAll(ctx, clients, server.ref()); err != nil {
		return idleCost{}, fmt.Errorf("%s/%s: %w", impl, sec, err)
	}
	time.Sleep(settle)
	after := snapshot()
	if profDir != "" {
		// The heap profile shows live objects as of the GC just done.
		if err := writeHeapProfile(filepath.Join(profDir, fmt.Sprintf("idle-%s-%s.heap.pprof", impl, sec))); err != nil {
			return idleCost{}, err
		}
	}
	if got := server.numConns(); got != n {
		return idleCost{}, fmt.Errorf("%s/%s: server has %d connections, want %d", impl, sec, got, n)
	}
	per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) }
	return idleCost{
		conns:      n,
		rss:        per(after.rss, before.rss),
		heap:       per(after.heap, before.heap),
		stack:      per(after.stack, before.stack),
		goroutines: float64(after.goroutines-before.goroutines) / float64(n),
	}, nil
}

// connectAll dials from every client with a few workers: enough to keep
// both cores busy, few enough not to overflow the listen backlog.
func connectAll(ctx context.Context, clients []endpoint, server peerRef) error {
	const workers = 8
	work := make(chan endpoint)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for c := range work {
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				err := c.connect(cctx, server)
				cancel()
				if err != nil {
					errs <- fmt.Errorf("connect: %w", err)
					for range work { // drain so the feeder finishes
					}
					return
				}
			}
		})
	}
	for _, c := range clients {
		work <- c
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("heap profile: %w", err)
	}
	return f.Close()
}
