package main

// Issue 6's metrics, full and -quick runs only (never -check): handshake
// rate with CPU per connection, CPU per GiB uploaded, and the aggregate
// throughput of parallel streams on one connection.

import (
	"context"
	"fmt"
	"io"
	"runtime/trace"
	"slices"
	"sync"
	"syscall"
	"time"
)

// hsConcs are the numbers of concurrent dialers of the handshake rate.
var hsConcs = []int{1, 16}

// parStreams is the number of streams of the parallel upload.
const parStreams = 16

type hsKey struct {
	impl, sec string
	conc      int
}

// hsResult is one handshake-rate measurement.
type hsResult struct {
	conns      int
	wall       time.Duration // timed phases only
	cpu        time.Duration // process CPU during the timed phases
	perSec     float64
	cpuPerConn time.Duration
}

// cpuTime is the process's user plus system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuPerGiB converts CPU time spent on size bytes into CPU seconds per GiB.
func cpuPerGiB(cpu time.Duration, size int64) float64 {
	return cpu.Seconds() / (float64(size) / (1 << 30))
}

// handshake is one new connection from a fresh client host: connect, a
// 1-byte echo on a new stream (so both ends have finished the handshake),
// and identify finished both ways (needed before closing, see firstReply).
func handshake(ctx context.Context, c, srv endpoint) error {
	server := srv.ref()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	defer trace.StartRegion(ctx, "handshake").End() // for -hs-trace
	if err := c.connect(ctx, server); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	s, err := c.newStream(ctx, server, echoProto)
	if err != nil {
		return fmt.Errorf("new stream: %w", err)
	}
	defer s.Close()
	b := []byte{42}
	if _, err := s.Write(b); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if _, err := io.ReadFull(s, b); err != nil {
		return fmt.Errorf("read reply: %w", err)
	}
	waitIdentified(ctx, c, srv)
	return ctx.Err()
}

// measureHandshakes runs conc dialers, each making new connections to srv
// back to back, until the timed phases add up to d. Client hosts are built
// in batches before a phase and closed after it, outside the clock and the
// CPU count, so a connection's cost is the dial, both handshakes, the echo
// and identify, both ends together (they share this process).
//
// With client set (one dialer), that running host makes the connections
// instead, each dropped at both ends before the next (hangUp, outside the
// clock and the CPU count).
func measureHandshakes(ctx context.Context, impl, sec string, srv, client endpoint, conc int, d time.Duration) (hsResult, error) {
	perWorker := 8
	if conc == 1 {
		perWorker = 32
	}
	var r hsResult
	if client != nil {
		for r.wall < d {
			for range perWorker {
				c0, t0 := cpuTime(), time.Now()
				if err := handshake(ctx, client, srv); err != nil {
					return r, fmt.Errorf("handshakes %s/%s, running client: %w", impl, sec, err)
				}
				r.wall += time.Since(t0)
				r.cpu += cpuTime() - c0
				r.conns++
				hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := hangUp(hctx, client, srv)
				cancel()
				if err != nil {
					return r, err
				}
			}
		}
		r.perSec = float64(r.conns) / r.wall.Seconds()
		r.cpuPerConn = r.cpu / time.Duration(r.conns)
		return r, nil
	}
	for r.wall < d {
		hosts := make([]endpoint, conc*perWorker)
		for i := range hosts {
			h, err := newHost(impl, sec, false)
			if err != nil {
				for _, h := range hosts[:i] {
					h.close()
				}
				return r, err
			}
			hosts[i] = h
		}
		errs := make([]error, conc)
		var wg sync.WaitGroup
		c0, t0 := cpuTime(), time.Now()
		for w := range conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < len(hosts); i += conc {
					if err := handshake(ctx, hosts[i], srv); err != nil {
						errs[w] = fmt.Errorf("handshakes %s/%s x%d: %w", impl, sec, conc, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		r.wall += time.Since(t0)
		r.cpu += cpuTime() - c0
		r.conns += len(hosts)
		for _, h := range hosts {
			h.close()
		}
		for _, err := range errs {
			if err != nil {
				return r, err
			}
		}
	}
	r.perSec = float64(r.conns) / r.wall.Seconds()
	r.cpuPerConn = r.cpu / time.Duration(r.conns)
	return r, nil
}

// hsFullRounds is the number of interleaved rounds runHandshakes splits
// each row's timed phases into, so that a change of the machine's load
// falls on both implementations alike.
const hsFullRounds = 3

// runHandshakes measures every stack of upSecs for both implementations
// (interleaved rounds, see hsRounds); a row's result is the sum of its
// rounds.
func runHandshakes(ctx context.Context, res *results, servers map[serverKey]endpoint) error {
	var rows []hsRow
	for _, conc := range hsConcs {
		for _, sec := range upSecs {
			rows = append(rows, hsRow{sec, conc})
		}
	}
	got, err := hsRounds(ctx, servers, rows, hsFullRounds, res.p.hsTime/hsFullRounds, func(r int) {
		logf("handshakes: round %d of %d done", r+1, hsFullRounds)
	})
	if err != nil {
		return err
	}
	res.hs = make(map[hsKey]hsResult)
	for k, rs := range got {
		var sum hsResult
		for _, r := range rs {
			sum.conns += r.conns
			sum.wall += r.wall
			sum.cpu += r.cpu
		}
		sum.perSec = float64(sum.conns) / sum.wall.Seconds()
		sum.cpuPerConn = sum.cpu / time.Duration(sum.conns)
		res.hs[k] = sum
	}
	return nil
}

// hsRow is one row of the handshake rate: a stack and a number of dialers.
type hsRow struct {
	sec  string
	conc int
}

// hsRounds measures every row of both implementations for per in each of
// rounds rounds, after a short warm-up round that is dropped. The rows and
// implementations take turns, and which implementation goes first
// alternates, so that neither always follows the other's closed hosts.
// Every row of a trace (-hs-trace) is a task, every connection a region.
func hsRounds(ctx context.Context, servers map[serverKey]endpoint, rows []hsRow, rounds int, per time.Duration, done func(round int)) (map[hsKey][]hsResult, error) {
	got := make(map[hsKey][]hsResult)
	order := slices.Clone(impls)
	for r := -1; r < rounds; r++ {
		for _, row := range rows {
			slices.Reverse(order)
			for _, impl := range order {
				d := per
				if r < 0 {
					d = per / 5
				}
				tctx, task := trace.NewTask(ctx, fmt.Sprintf("handshake %s/%s x%d", impl, row.sec, row.conc))
				res, err := measureHandshakes(tctx, impl, row.sec, servers[serverKey{impl, row.sec}], nil, row.conc, d)
				task.End()
				if err != nil {
					return nil, err
				}
				if r >= 0 {
					k := hsKey{impl, row.sec, row.conc}
					got[k] = append(got[k], res)
				}
				time.Sleep(100 * time.Millisecond) // let closed hosts wind down
			}
		}
		if r >= 0 && done != nil {
			done(r)
		}
	}
	return got, nil
}

// parallelUpload sends size bytes split over n new streams of the existing
// connection from client to server, all at once, and returns the aggregate
// MiB/s, timed from opening the first stream to the last acknowledgement.
func parallelUpload(ctx context.Context, client endpoint, server peerRef, size int64, n int) (float64, error) {
	per := size / int64(n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := client.newStream(ctx, server, sinkProto)
			if err != nil {
				errs[i] = fmt.Errorf("new stream: %w", err)
				return
			}
			defer s.Close()
			if err := upload(s, s.CloseWrite, per); err != nil {
				s.Reset()
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return rate(per*int64(n), d), nil
}
