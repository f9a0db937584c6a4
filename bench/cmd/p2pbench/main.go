// Command p2pbench measures tachyon and go-libp2p side by side, both ends
// of every connection in this one process, over loopback TCP (Noise, TLS),
// QUIC, WebTransport and WebRTC-direct, beside Go's HTTP/1.1, /2 and /3:
//
//  1. a new connection plus the first reply on a new stream,
//  2. single-stream upload throughput, next to bare crypto/tls and the
//     ChaCha20-Poly1305 seal rate as baselines,
//  3. RSS, heap, stack and goroutines per idle connection,
//  4. issue 6's extras (handshake rate, CPU cost, parallel streams, an
//     emulated 63 ms link), and the regression gate (gate.go).
//
// It prints a Markdown report and, with -write, puts it into a file
// between the p2pbench markers, leaving the rest of the file alone.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// params are the sizes of one run; -quick picks the small ones.
type params struct {
	dialN      int   // first replies per setup
	dialRounds int   // interleaved rounds the dials are spread over
	reps       int   // upload and seal-rate runs, the median is reported
	uploadSize int64 // bytes per upload
	sealTime   time.Duration
	idleN      int // client hosts (= connections) per idle measurement
	// idleRTC is idleN for WebRTC-direct, whose connections cost far more
	// (pion's ICE, DTLS and SCTP state and goroutines on both ends).
	idleRTC int
	// Upload sizes of the browser transports, much slower than TCP/QUIC.
	wtSize, rtcSize int64
	// extras turns on issue 6's metrics (handshake rate, CPU per GiB,
	// parallel streams); off for -check and -write-baseline.
	extras  bool
	hsTime  time.Duration // timed handshakes per stack and concurrency
	wanSize int64         // bytes per upload over the emulated 63 ms link
	wanReps int
}

var (
	fullParams = params{dialN: 200, dialRounds: 5, reps: 5, uploadSize: 1 << 30, sealTime: time.Second, idleN: 1000, idleRTC: 1000,
		wtSize: 256 << 20, rtcSize: 64 << 20, extras: true, hsTime: 3 * time.Second, wanSize: 128 << 20, wanReps: 3}
	quickParams = params{dialN: 30, dialRounds: 3, reps: 3, uploadSize: 128 << 20, sealTime: 300 * time.Millisecond, idleN: 200, idleRTC: 100,
		wtSize: 32 << 20, rtcSize: 16 << 20, extras: true, hsTime: time.Second, wanSize: 32 << 20, wanReps: 1}
)

var (
	impls = []string{implTachyon, implGo}
	// secs are the stacks measured for everything, idle cost included.
	secs = []string{secNoise, secTLS}
	// upSecs are the stacks with an upload measurement.
	upSecs = []string{secNoise, secTLS, secQUIC}
	// namedSecs are tachyon's named-security TCP addresses (first reply only).
	namedSecs = []string{secTLSAddr, secNoiseAddr}
	// browserSecs get first replies, single-stream uploads (smaller, see
	// uploadSize) and idle cost, not the handshake rate or 16 streams.
	browserSecs = []string{secWT, secWebRTC}
	// idleSecs are the stacks of the idle-connection measurement.
	idleSecs = []string{secNoise, secTLS, secQUIC, secWT, secWebRTC}
	// httpSec marks the HTTP baselines in setups and serverKeys.
	httpSec = "HTTP"
)

// stacks is every stack of impl that gets a server.
func stacks(impl string) []string {
	if impl == implTachyon {
		return slices.Concat(upSecs, browserSecs, namedSecs)
	}
	return slices.Concat(upSecs, browserSecs)
}

// singleSecs are the stacks with a single-stream upload.
func singleSecs() []string { return slices.Concat(upSecs, browserSecs) }

// uploadSize is the single-stream upload size of sec: the browser
// transports move far less per second, so they send less to keep a run
// short.
func (p params) sizeOf(sec string) int64 {
	switch {
	case sec == secWT && p.wtSize > 0:
		return min(p.wtSize, p.uploadSize)
	case sec == secWebRTC && p.rtcSize > 0:
		return min(p.rtcSize, p.uploadSize)
	}
	return p.uploadSize
}

func main() {
	quick := flag.Bool("quick", false, "small sizes, for a check in about a minute")
	write := flag.String("write", "", "put the report into this Markdown `file` between the p2pbench markers")
	profDir := flag.String("profile", "", "write CPU profiles of each setup's first upload and heap profiles of its idle connections into `dir`")
	charts := flag.String("charts", "", "draw PNG charts into `dir` (default with -write: ../docs/bench)")
	check := flag.String("check", "", "regression gate: measure the ratios in short runs and compare them with the baseline `file`")
	writeBase := flag.String("write-baseline", "", "measure the ratios in short runs and write them as the baseline `file`")
	idleOnly := flag.Bool("idle", false, "measure only the idle connections (with -quick: fewer), results on stderr")
	gateRounds := flag.Int("gate-rounds", defaultGateRounds, "rounds per batch of -check or -write-baseline")
	overhead := flag.Bool("metrics-overhead", false, "measure tachyon with metrics off and on (interleaved rounds, GOMAXPROCS=1) and print the cost per row")
	overheadRounds := flag.Int("overhead-rounds", 60, "rounds of -metrics-overhead")
	overheadAA := flag.Bool("overhead-aa", false, "with -metrics-overhead: both sides with metrics off (an A/A run: the set-up's own bias)")
	attribution := flag.Duration("overhead-attribution", 0, "profile each -metrics-overhead row for this long per member and print the metrics code's share of the CPU instead of the A/B rounds (with -profile, each window's profile is kept there)")
	handshakes := flag.Bool("handshakes", false, "measure only the handshake-rate rows (interleaved rounds, medians; see -hs-rounds, -hs-time, -hs-stacks, -hs-dialers, -hs-phases)")
	streamsOnly := flag.Bool("streams", false, "measure only the parallel-stream rows (interleaved rounds, medians; see -st-rounds, -st-size, -st-stacks, -st-counts, -st-profile)")
	flag.Parse()
	if code, ok := wanChild(); ok {
		os.Exit(code)
	}
	if code, ok := perfToolChild(); ok {
		os.Exit(code)
	}
	if *perfTool {
		os.Exit(perfToolMain(*perfToolRounds, *perfToolSize))
	}
	if code, ok := inboundChild(); ok {
		os.Exit(code)
	}
	if *inboundN > 0 {
		if err := runInbound(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, "p2pbench:", err)
			os.Exit(1)
		}
		return
	}
	if *wanOnly {
		p := quickParams
		if !*quick {
			p = fullParams
		}
		res := &results{p: p}
		var err error
		if res.wan, err = runWAN(context.Background(), p.wanSize, p.wanReps); err != nil {
			fmt.Fprintln(os.Stderr, "p2pbench:", err)
			os.Exit(1)
		}
		var b strings.Builder
		res.wanMarkdown(func(f string, a ...any) { fmt.Fprintf(&b, f, a...) })
		fmt.Print(b.String())
		return
	}

	if *handshakes {
		os.Exit(handshakesMain())
	}
	if *streamsOnly {
		os.Exit(streamsMain())
	}

	if *idleOnly {
		p := fullParams
		if *quick {
			p = quickParams
		}
		res := &results{p: p, idle: make(map[serverKey]idleCost)}
		if err := runIdle(context.Background(), res, *profDir); err != nil {
			fmt.Fprintln(os.Stderr, "p2pbench:", err)
			os.Exit(1)
		}
		return
	}
	if *overhead {
		if *profDir != "" {
			if err := os.MkdirAll(*profDir, 0o755); err != nil {
				fmt.Fprintln(os.Stderr, "p2pbench: profile dir:", err)
				os.Exit(1)
			}
		}
		if *overheadAA {
			overheadMembers = []string{implTachyon, implTachyonAA}
		}
		if *attribution > 0 {
			os.Exit(metricsAttribution(*attribution, *profDir))
		}
		os.Exit(metricsOverhead(*overheadRounds, *profDir))
	}
	if *check != "" || *writeBase != "" {
		os.Exit(gate(*check, *writeBase, *gateRounds))
	}

	p := fullParams
	if *quick {
		p = quickParams
	}
	if *profDir != "" {
		if err := os.MkdirAll(*profDir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "p2pbench: profile dir:", err)
			os.Exit(1)
		}
	}
	res, err := run(context.Background(), p, *profDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "p2pbench:", err)
		os.Exit(1)
	}
	res.quick = *quick
	md := res.markdown()
	fmt.Print(md)
	if *write != "" {
		if err := writeSection(*write, md); err != nil {
			fmt.Fprintln(os.Stderr, "p2pbench:", err)
			os.Exit(1)
		}
		if *charts == "" {
			*charts = "../docs/bench"
		}
	}
	if *charts != "" {
		if err := res.drawCharts(*charts); err != nil {
			fmt.Fprintln(os.Stderr, "p2pbench:", err)
			os.Exit(1)
		}
	}
}

// results is everything one run measured.
type results struct {
	p       params
	quick   bool
	env     environment
	dials   map[setup][]time.Duration
	uploads map[serverKey][]float64 // MiB/s per run
	bareTLS []float64
	seal    []float64
	idle    map[serverKey]idleCost
	// Issue 6 (extras only).
	hs       map[hsKey]hsResult
	upCPU    map[serverKey][]float64 // CPU seconds per GiB, per upload run
	parallel map[serverKey][]float64 // MiB/s aggregate of parStreams streams, per run
	wan      map[string][]float64    // MiB/s per run over the emulated link, by wanStacks entry
}

func run(ctx context.Context, p params, profDir string) (*results, error) {
	res := &results{
		p:        p,
		env:      readEnvironment(),
		uploads:  make(map[serverKey][]float64),
		idle:     make(map[serverKey]idleCost),
		upCPU:    make(map[serverKey][]float64),
		parallel: make(map[serverKey][]float64),
	}
	servers := make(map[serverKey]endpoint)
	defer func() {
		for _, s := range servers {
			s.close()
		}
	}()
	for _, impl := range impls {
		for _, sec := range stacks(impl) {
			s, err := newHost(impl, sec, true)
			if err != nil {
				return nil, err
			}
			servers[serverKey{impl, sec}] = s
			if err := serve(s); err != nil {
				return nil, err
			}
		}
	}
	https := make(map[string]*httpServer)
	defer func() {
		for _, s := range https {
			s.close()
		}
	}()
	for _, kind := range httpKinds {
		s, err := newHTTPServer(kind)
		if err != nil {
			return nil, err
		}
		https[kind] = s
	}

	var setups []setup
	for _, sec := range secs {
		setups = append(setups,
			setup{implTachyon, implTachyon, sec},
			setup{implGo, implGo, sec},
			setup{implTachyon, implGo, sec},
			setup{implGo, implTachyon, sec})
	}
	for _, sec := range append([]string{secQUIC}, browserSecs...) {
		setups = append(setups, setup{implTachyon, implTachyon, sec}, setup{implGo, implGo, sec})
	}
	for _, sec := range namedSecs {
		setups = append(setups, setup{implTachyon, implTachyon, sec})
	}
	for _, kind := range httpKinds {
		setups = append(setups, setup{kind, kind, httpSec})
	}
	logf("first reply: %d setups x %d", len(setups), p.dialN)
	var err error
	res.dials, err = runDials(ctx, servers, https, setups, p.dialN, p.dialRounds)
	if err != nil {
		return nil, err
	}

	if err := runUploads(ctx, res, servers, https, profDir); err != nil {
		return nil, err
	}
	if p.extras {
		if err := runHandshakes(ctx, res, servers); err != nil {
			return nil, err
		}
	}
	for _, s := range servers {
		s.close()
	}
	clear(servers)
	if p.extras {
		var err error
		if res.wan, err = runWAN(ctx, p.wanSize, p.wanReps); err != nil {
			return nil, err
		}
	}
	if p.idleN == 0 {
		return res, nil
	}

	return res, runIdle(ctx, res, profDir)
}

// runIdle measures the idle cost of every stack in idleSecs.
func runIdle(ctx context.Context, res *results, profDir string) error {
	p := res.p
	for _, sec := range idleSecs {
		for _, impl := range impls {
			n := p.idleN
			if sec == secWebRTC {
				n = p.idleRTC
			}
			logf("idle connections: %s/%s x %d", impl, sec, n)
			t0 := time.Now()
			c, err := measureIdle(ctx, impl, sec, n, profDir)
			if err != nil {
				return err
			}
			logf("idle connections: %s/%s: %.1f KiB RSS, %.1f KiB heap, %.1f goroutines per conn (%v)", impl, sec, c.rss/1024, c.heap/1024, c.goroutines, time.Since(t0).Round(time.Millisecond))
			res.idle[serverKey{impl, sec}] = c
			time.Sleep(settle) // let the closed hosts' goroutines exit
		}
	}
	return nil
}

// runUploads takes p.reps turns; in each every stack and baseline runs
// once, so a busy moment on the shared machine does not hit one alone.
func runUploads(ctx context.Context, res *results, servers map[serverKey]endpoint, https map[string]*httpServer, profDir string) error {
	p := res.p
	clients := make(map[serverKey]endpoint)
	defer func() {
		for _, c := range clients {
			c.close()
		}
	}()
	for _, impl := range impls {
		for _, sec := range singleSecs() {
			k := serverKey{impl, sec}
			c, err := newHost(impl, sec, false)
			if err != nil {
				return err
			}
			clients[k] = c
			if err := c.connect(ctx, servers[k].ref()); err != nil {
				return fmt.Errorf("upload %s/%s: connect: %w", impl, sec, err)
			}
		}
	}
	bare, err := newBareTLS()
	if err != nil {
		return err
	}
	defer bare.close()
	ups := make(map[string]*httpUploader)
	defer func() {
		for _, u := range ups {
			u.done()
		}
	}()
	for _, kind := range httpKinds {
		u, err := https[kind].uploader(ctx)
		if err != nil {
			return err
		}
		ups[kind] = u
	}

	for rep := range p.reps {
		logf("upload: run %d of %d, %d MiB each", rep+1, p.reps, p.uploadSize/mib)
		r, err := sealRate(p.sealTime)
		if err != nil {
			return err
		}
		res.seal = append(res.seal, r)
		r, err = bare.uploadOnce(p.uploadSize)
		if err != nil {
			return err
		}
		res.bareTLS = append(res.bareTLS, r)
		for _, kind := range httpKinds {
			c0 := cpuTime()
			r, err := ups[kind].post(ctx, p.uploadSize)
			if err != nil {
				return err
			}
			k := serverKey{kind, httpSec}
			res.upCPU[k] = append(res.upCPU[k], cpuPerGiB(cpuTime()-c0, p.uploadSize))
			res.uploads[k] = append(res.uploads[k], r)
		}
		for _, impl := range impls {
			for _, sec := range singleSecs() {
				k := serverKey{impl, sec}
				size := p.sizeOf(sec)
				dir := ""
				if rep == 0 {
					dir = profDir
				}
				err := profiled(dir, fmt.Sprintf("upload-%s-%s", impl, sec), func() error {
					c0 := cpuTime()
					r, err := uploadOnce(ctx, clients[k], servers[k].ref(), size)
					if err != nil {
						return fmt.Errorf("upload %s/%s: %w", impl, sec, err)
					}
					res.upCPU[k] = append(res.upCPU[k], cpuPerGiB(cpuTime()-c0, size))
					res.uploads[k] = append(res.uploads[k], r)
					return nil
				})
				if err != nil {
					return err
				}
			}
		}
		if !p.extras {
			continue
		}
		for _, impl := range impls {
			for _, sec := range upSecs {
				k := serverKey{impl, sec}
				r, err := parallelUpload(ctx, clients[k], servers[k].ref(), p.uploadSize, parStreams)
				if err != nil {
					return fmt.Errorf("parallel upload %s/%s: %w", impl, sec, err)
				}
				res.parallel[k] = append(res.parallel[k], r)
			}
		}
	}
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "p2pbench: "+format+"\n", args...)
}

// medianBy is the median of f over rs.
func medianBy[T any](rs []T, f func(T) float64) float64 {
	xs := make([]float64, len(rs))
	for i, r := range rs {
		xs[i] = f(r)
	}
	return median(xs)
}

// median of xs; xs is sorted in place.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// percentile q (0..1) of ds by the nearest-rank method; ds is sorted in
// place.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(q*float64(len(ds))+0.999999) - 1
	return ds[max(0, min(i, len(ds)-1))]
}
