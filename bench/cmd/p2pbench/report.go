package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"
)

const (
	beginMarker = "<!-- p2pbench:begin -->"
	endMarker   = "<!-- p2pbench:end -->"
)

// environment says where the numbers came from.
type environment struct {
	date     string
	cpus     int
	cpuModel string
	goVer    string
	goLibp2p string
	quicGo   string
	tachyon  string
}

func readEnvironment() environment {
	e := environment{
		date:     time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		cpus:     runtime.NumCPU(),
		cpuModel: "unknown",
		goVer:    runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		goLibp2p: "unknown",
		tachyon:  "unknown",
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				e.cpuModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/libp2p/go-libp2p" {
				e.goLibp2p = d.Version
			}
			if d.Path == "github.com/quic-go/quic-go" {
				e.quicGo = d.Version
			}
		}
	}
	// tachyon is built from the working tree (replace ../), which other
	// engineers may have changed since the last commit.
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		e.tachyon = "working tree at " + strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "status", "--porcelain", "--", "..").Output(); err == nil && len(st) > 0 {
			e.tachyon += " plus uncommitted changes"
		}
	}
	return e
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

func ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func (r *results) markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p := r.p
	cmd := "cd bench && go run ./cmd/p2pbench -write ../BENCHMARKS.md"
	mode := "full"
	if r.quick {
		cmd = "cd bench && go run ./cmd/p2pbench -quick -write ../BENCHMARKS.md"
		mode = "quick (small sizes; not for comparison)"
	}

	w("%s\n## tachyon vs go-libp2p on loopback (p2pbench)\n\n", beginMarker)
	w("Both implementations run in one process, client and server alike, over TCP (yamux), QUIC, WebTransport and WebRTC-direct on 127.0.0.1, beside Go's HTTPS/1.1, HTTP/2 and HTTP/3 in the same run.\n")
	w("**The machine is shared (%d cores) with other engineers building and testing at the same time, so the numbers are noisy**: setups take turns in interleaved rounds and every figure is a median.\n\n", r.env.cpus)
	w("| | |\n|---|---|\n")
	w("| date | %s |\n", r.env.date)
	w("| machine | %d CPUs (`nproc`), %s |\n", r.env.cpus, r.env.cpuModel)
	w("| Go | %s |\n", r.env.goVer)
	w("| go-libp2p | %s: TCP with one security protocol and yamux, or QUIC, WebTransport or WebRTC-direct alone; resource manager with `rcmgr.InfiniteLimits`, `connmgr.NullConnMgr`, no relay, no metrics |\n", r.env.goLibp2p)
	w("| tachyon | %s |\n", r.env.tachyon)
	w("| mode | %s |\n\n", mode)
	w("Reproduce:\n\n```sh\n%s\n```\n\n", cmd)

	w("### Results\n\n")
	w("Ratio is tachyon / go-libp2p: below 1 is better for latency and memory, above 1 for throughput.\n\n")
	w("| metric | stack | tachyon | go-libp2p | ratio |\n|---|---|---:|---:|---:|\n")
	for _, sec := range slices.Concat(upSecs, browserSecs, namedSecs) {
		t := r.dials[setup{implTachyon, implTachyon, sec}]
		g := r.dials[setup{implGo, implGo, goSec(sec)}]
		for _, q := range []struct {
			name string
			q    float64
		}{{"median", 0.5}, {"p90", 0.9}} {
			tq, gq := percentile(t, q.q), percentile(g, q.q)
			w("| new conn + first reply, %s (ms) | %s | %s | %s | %s |\n", q.name, sec, ms(tq), ms(gq), ratio(float64(tq), float64(gq)))
		}
	}
	for _, sec := range singleSecs() {
		t, g := median(r.uploads[serverKey{implTachyon, sec}]), median(r.uploads[serverKey{implGo, sec}])
		size := ""
		if p.sizeOf(sec) != p.uploadSize {
			size = fmt.Sprintf(", %d MiB", p.sizeOf(sec)/mib)
		}
		w("| upload, 1 stream (MiB/s%s) | %s | %.0f | %.0f | %s |\n", size, sec, t, g, ratio(t, g))
	}
	for _, sec := range idleSecs {
		if r.p.idleN == 0 {
			break
		}
		t, g := r.idle[serverKey{implTachyon, sec}], r.idle[serverKey{implGo, sec}]
		n := ""
		if t.conns != p.idleN || g.conns != p.idleN {
			n = fmt.Sprintf(" [%d / %d conns]", t.conns, g.conns)
		}
		w("| idle conn: RSS (KiB)%s | %s | %.1f | %.1f | %s |\n", n, sec, t.rss/1024, g.rss/1024, ratio(t.rss, g.rss))
		w("| idle conn: heap (KiB)%s | %s | %.1f | %.1f | %s |\n", n, sec, t.heap/1024, g.heap/1024, ratio(t.heap, g.heap))
		w("| idle conn: goroutine stacks (KiB)%s | %s | %.1f | %.1f | %s |\n", n, sec, t.stack/1024, g.stack/1024, ratio(t.stack, g.stack))
		w("| idle conn: goroutines%s | %s | %.1f | %.1f | %s |\n", n, sec, t.goroutines, g.goroutines, ratio(t.goroutines, g.goroutines))
	}

	w("\nQUIC is QUIC v1 with its own TLS 1.3 and streams (no yamux); go-libp2p's QUIC transport, tachyon's on `/ip4/127.0.0.1/udp/0/quic-v1`. WebTransport is `/quic-v1/webtransport` (HTTP/3 session, Noise on the first stream with the certhashes checked) and WebRTC-direct is `/webrtc-direct` (ICE, DTLS, SCTP data channels, Noise), each the implementation's own transport (go-libp2p: `p2p/transport/webtransport`, `p2p/transport/webrtc`); their uploads move %d MiB and %d MiB instead of %d MiB so a run stays short. The `/tls addr` and `/noise addr` rows dial tachyon's `/tcp/P/tls` and `/tcp/P/noise` addresses, which skip the multistream negotiation of the security protocol; their go-libp2p column is go-libp2p over the plain TCP address with the same security protocol (go-libp2p does not know these forms).\n", p.sizeOf(secWT)/mib, p.sizeOf(secWebRTC)/mib, p.uploadSize/mib)
	if t, g := median(r.uploads[serverKey{implTachyon, secWebRTC}]), median(r.uploads[serverKey{implGo, secWebRTC}]); g > 0 {
		verdict := "not met"
		if t >= 3*g {
			verdict = "met"
		}
		w("\nThe goal for WebRTC-direct, at least 3x go-libp2p's single-stream throughput: %.2fx in this run, %s.\n", t/g, verdict)
	}

	w("\n### tachyon vs plain HTTP, same run\n\n")
	w("Go's `net/http` over TLS 1.3 (HTTPS/1.1, HTTP/2) and `quic-go/http3` %s (HTTP/3), self-signed certificates, on the same loopback link. TCP stacks are compared with HTTPS/1.1 and HTTP/2, QUIC with HTTP/3. Ratio is tachyon / HTTP: below 1 is better for latency, above 1 for throughput.\n\n", r.env.quicGo)
	w("| metric | tachyon stack | tachyon | HTTP | HTTP figure | tachyon / HTTP | tachyon / go-libp2p |\n|---|---|---:|---|---:|---:|---:|\n")
	for _, q := range []struct {
		name string
		q    float64
	}{{"median", 0.5}, {"p90", 0.9}} {
		for _, sec := range append(slices.Clone(upSecs), namedSecs...) {
			t := float64(percentile(r.dials[setup{implTachyon, implTachyon, sec}], q.q))
			g := float64(percentile(r.dials[setup{implGo, implGo, goSec(sec)}], q.q))
			for _, kind := range httpKinds {
				if httpFamily(kind) != family(sec) {
					continue
				}
				h := float64(percentile(r.dials[setup{kind, kind, httpSec}], q.q))
				w("| new conn + first reply, %s (ms) | %s | %s | %s | %s | %s | %s |\n", q.name, sec, ms(time.Duration(t)), kind, ms(time.Duration(h)), ratio(t, h), ratio(t, g))
			}
		}
	}
	for _, sec := range upSecs {
		t, g := median(r.uploads[serverKey{implTachyon, sec}]), median(r.uploads[serverKey{implGo, sec}])
		for _, kind := range httpKinds {
			if httpFamily(kind) != family(sec) {
				continue
			}
			h := median(r.uploads[serverKey{kind, httpSec}])
			w("| upload, 1 stream (MiB/s) | %s | %.0f | %s | %.0f | %s | %s |\n", sec, t, kind, h, ratio(t, h), ratio(t, g))
		}
	}
	w("\nCharts of the same run: [upload throughput](docs/bench/%s), [setup latency](docs/bench/%s), [memory per idle connection](docs/bench/%s).\n\n", chartThroughput, chartSetup, chartMemory)
	w("![upload throughput](docs/bench/%s)\n\n![setup latency](docs/bench/%s)\n\n![memory per idle connection](docs/bench/%s)\n", chartThroughput, chartSetup, chartMemory)

	if p.extras {
		r.extrasMarkdown(w)
		r.wanMarkdown(w)
	}
	w("\nCross-implementation first reply (ms):\n\n")
	w("| client -> server | security | median | p90 |\n|---|---|---:|---:|\n")
	for _, sec := range secs {
		for _, su := range []setup{{implTachyon, implGo, sec}, {implGo, implTachyon, sec}} {
			d := r.dials[su]
			w("| %s -> %s | %s | %s | %s |\n", su.client, su.server, sec, ms(percentile(d, 0.5)), ms(percentile(d, 0.9)))
		}
	}

	seal, bare := median(r.seal), median(r.bareTLS)
	tTLS, gTLS := median(r.uploads[serverKey{implTachyon, secTLS}]), median(r.uploads[serverKey{implGo, secTLS}])
	tNoise, gNoise := median(r.uploads[serverKey{implTachyon, secNoise}]), median(r.uploads[serverKey{implGo, secNoise}])
	w("\nBaselines, measured in the same run:\n\n")
	w("| baseline | MiB/s | tachyon / baseline | go-libp2p / baseline | goal for tachyon |\n|---|---:|---:|---:|---|\n")
	w("| bare crypto/tls 1.3 stream over loopback TCP | %.0f | %s | %s | TLS >= 0.90 |\n", bare, ratio(tTLS, bare), ratio(gTLS, bare))
	w("| ChaCha20-Poly1305 seal, 1 core, 64 KiB messages | %.0f | %s | %s | Noise >= 0.85 |\n", seal, ratio(tNoise, seal), ratio(gNoise, seal))

	w("\nEvery upload run (MiB/s, sorted), to show the spread:\n\n")
	runs := func(xs []float64) string {
		parts := make([]string, len(xs))
		for i, x := range xs {
			parts[i] = fmt.Sprintf("%.0f", x)
		}
		return strings.Join(parts, ", ")
	}
	for _, impl := range impls {
		for _, sec := range singleSecs() {
			w("- %s %s: %s\n", impl, sec, runs(r.uploads[serverKey{impl, sec}]))
		}
	}
	for _, kind := range httpKinds {
		w("- %s: %s\n", kind, runs(r.uploads[serverKey{kind, httpSec}]))
	}
	w("- bare crypto/tls: %s\n- ChaCha20-Poly1305 seal: %s\n", runs(r.bareTLS), runs(r.seal))

	w("\nMethod:\n\n")
	w("- **New conn + first reply**: a fresh client host (built before the clock starts) calls `Connect` then `NewStream` on an echo protocol, writes 1 byte and reads it back; the clock runs from the dial to the reply. %d samples per setup in %d interleaved rounds, after %d warm-up dials. go-libp2p's `NewStream` waits for identify to finish on the new connection, as every go-libp2p user gets it; tachyon's does not wait and negotiates the protocol optimistically with the first write.\n", p.dialN, p.dialRounds, dialWarmup)
	w("- **Upload**: %d MiB (WebTransport %d MiB, WebRTC-direct %d MiB) written in %d KiB writes on one new stream of an existing connection; the server reads it in %d KiB reads and, on EOF, acknowledges with the byte count; the clock runs from the first write to the acknowledgement. Median of %d runs. The bare crypto/tls baseline does the same over a TLS 1.3 connection (the handshake is not timed); the seal baseline encrypts %d KiB messages on one goroutine for %v. Sender and receiver share the same cores here, so a Noise upload spends a seal and an open per byte (plus syscalls) where the seal baseline spends a seal on a core of its own: the 0.85 goal is a loose ceiling in this set-up.\n", p.uploadSize/mib, p.sizeOf(secWT)/mib, p.sizeOf(secWebRTC)/mib, bufSize>>10, bufSize>>10, p.reps, bufSize>>10, p.sealTime)
	w("- **HTTP baselines**: new conn + first reply uses a fresh `http.Transport` (or `http3.Transport`) per sample, built before the clock starts, and POSTs 1 byte to an echo handler; the clock runs until the byte is read back, so it includes TCP + TLS 1.3 (or QUIC) setup, and for HTTP/2 the preface and SETTINGS. Upload POSTs the same number of bytes with a known Content-Length on a connection opened by an earlier untimed request; the handler reads the body in %d KiB reads and answers with the count; the clock runs from sending the request to reading that answer. They take turns with the libp2p setups in the same rounds.\n", bufSize>>10)
	w("- **Regression gate**: `cd bench && go run ./cmd/p2pbench -check baseline.json` compares ratios only (tachyon / go-libp2p and tachyon / HTTP of the same family, first-reply medians and best uploads over TCP+Noise, TCP+TLS and QUIC), never absolute times, measured with `GOMAXPROCS=1` (both ends take turns on one thread, so a figure does not depend on whether the second, shared core is free). In each round the members of a comparison (e.g. tachyon Noise, go-libp2p Noise, HTTPS/1.1, HTTP/2) take single turns with a rotating start, on upload connections made anew (untimed) every round, %d dials and %d uploads (%d MiB on TCP, %d MiB on QUIC) each; the round gives one ratio per comparison (median of its dials, best of its uploads) and the gate takes the median of %d such rounds (after %d warm-up round). If a ratio is more than %.0f %% worse than in `bench/baseline.json` (the baseline of the machine it runs on, known by its processor's model, cache size and flags; on a machine without one, per ratio the worst of all machines') it measures another %d rounds and pools them, up to %d batches, then fails naming every such ratio. `-write-baseline baseline.json` takes %d batches and adds or replaces this machine's baseline, keeping the others'.\n", gateDials, gateUploads, gateUpTCP/mib, gateUpQUIC/mib, defaultGateRounds, gateWarmup, 100*gateTolerance, defaultGateRounds, gateBatches, gateBatches)
	if p.extras {
		w("- **Handshakes per second**: for each stack and for %v concurrent dialers, the dialers make new connections to one server back to back for %v of timed phases; each connection is a fresh client host (hosts are built in batches before a phase and closed after it, outside the clock and the CPU count) doing `Connect`, `NewStream` on the echo protocol, a 1-byte echo, and waiting until identify has finished both ways. Rate = connections / timed wall time. **CPU per connection** is the process's user+system CPU (`syscall.Getrusage(RUSAGE_SELF)`) over the timed phases divided by the connections: **client and server both run in this process, so it is both ends of the connection together**, plus the runtime's background work (GC).\n", hsConcs, p.hsTime)
		w("- **CPU per GiB**: process CPU (`Getrusage`, user+system, both ends together since sender and receiver share the process) around each single-stream upload, divided by the GiB moved; median of %d runs. The HTTP figures are measured the same way around each POST.\n", p.reps)
		w("- **%d parallel streams**: the same client connection as the single-stream upload opens %d streams at once and sends %d MiB / %d on each; aggregate MiB/s from opening the first stream to the last acknowledgement. Median of %d runs, in the same turns as the single-stream uploads.\n", parStreams, parStreams, p.uploadSize/mib, parStreams, p.reps)
	}
	w("- **Idle conn**: per stack, %d client hosts (%d for WebRTC-direct) and one server host are built; after GC and `debug.FreeOSMemory` (so RSS follows what is live, not earlier measurements' high-water mark), a snapshot of the process's RSS (`VmRSS` of `/proc/self/status`), `runtime.MemStats` (HeapInuse, StackInuse) and `runtime.NumGoroutine`; then every client connects once (identify included, 8 dialers at a time), the connections sit idle for %v, GC, a second snapshot. The difference divided by the connections is one connection, **both ends together** (client and server share the process); hosts themselves are in both snapshots, so their baseline cancels out. RSS includes what the heap and stacks hold plus the Go runtime's own overhead and anything outside the Go heap. One run per setup.\n", p.idleN, p.idleRTC, settle)
	w("%s\n", endMarker)
	return b.String()
}

// writeSection replaces the p2pbench section of the Markdown file at path,
// or appends one (creating the file) if there is none.
func writeSection(path, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	doc := string(old)
	var out string
	i, j := strings.Index(doc, beginMarker), strings.Index(doc, endMarker)
	switch {
	case i >= 0 && j > i:
		end := j + len(endMarker)
		if end < len(doc) && doc[end] == '\n' {
			end++
		}
		out = doc[:i] + section + doc[end:]
	case doc == "":
		out = "# Benchmarks\n\n" + section
	default:
		out = strings.TrimRight(doc, "\n") + "\n\n" + section
	}
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// extrasMarkdown writes issue 6's table: handshake rate and CPU per
// connection, CPU per GiB uploaded, parallel-stream throughput.
func (r *results) extrasMarkdown(w func(string, ...any)) {
	w("\n### Handshake rate, CPU cost, parallel streams\n\n")
	w("Same run. tachyon / go-libp2p: above 1 is better for rates and throughput, below 1 for CPU. CPU figures are process CPU, **both ends of the connection together** (client and server share this process). The HTTP columns are filled where the same measurement exists for HTTP (TCP stacks: HTTPS/1.1; QUIC: HTTP/3). These rows come from one pass of each; `-handshakes` and `-streams` (sections below, when present) measure the handshake and parallel-stream rows in interleaved rounds and take medians: where they differ, they are the better figures.\n\n")
	w("| metric | stack | tachyon | go-libp2p | tachyon / go-libp2p | HTTP | tachyon / HTTP |\n|---|---|---:|---:|---:|---:|---:|\n")
	for _, conc := range hsConcs {
		for _, sec := range upSecs {
			t, g := r.hs[hsKey{implTachyon, sec, conc}], r.hs[hsKey{implGo, sec, conc}]
			w("| handshakes/s, %d dialer(s) | %s | %.0f | %.0f | %s | – | – |\n", conc, sec, t.perSec, g.perSec, ratio(t.perSec, g.perSec))
		}
	}
	for _, conc := range hsConcs {
		for _, sec := range upSecs {
			t, g := r.hs[hsKey{implTachyon, sec, conc}], r.hs[hsKey{implGo, sec, conc}]
			w("| CPU per connection (ms), %d dialer(s) | %s | %.2f | %.2f | %s | – | – |\n", conc, sec, ms1(t.cpuPerConn), ms1(g.cpuPerConn), ratio(float64(t.cpuPerConn), float64(g.cpuPerConn)))
		}
	}
	for _, sec := range singleSecs() {
		t, g := median(r.upCPU[serverKey{implTachyon, sec}]), median(r.upCPU[serverKey{implGo, sec}])
		var kind string
		switch family(sec) {
		case "TCP":
			kind = "HTTPS/1.1"
		case "QUIC":
			kind = "HTTP/3"
		}
		if kind == "" {
			w("| upload, 1 stream: CPU s per GiB | %s | %.2f | %.2f | %s | – | – |\n", sec, t, g, ratio(t, g))
			continue
		}
		h := median(r.upCPU[serverKey{kind, httpSec}])
		w("| upload, 1 stream: CPU s per GiB | %s | %.2f | %.2f | %s | %s %.2f | %s |\n", sec, t, g, ratio(t, g), kind, h, ratio(t, h))
	}
	for _, sec := range upSecs {
		t, g := median(r.parallel[serverKey{implTachyon, sec}]), median(r.parallel[serverKey{implGo, sec}])
		w("| upload, %d streams on 1 conn (MiB/s total) | %s | %.0f | %.0f | %s | – | – |\n", parStreams, sec, t, g, ratio(t, g))
	}
	w("\nHandshake counts (connections / timed seconds / CPU seconds):\n\n")
	for _, conc := range hsConcs {
		for _, sec := range upSecs {
			for _, impl := range impls {
				x := r.hs[hsKey{impl, sec, conc}]
				w("- %s %s, %d dialer(s): %d / %.2f / %.2f\n", impl, sec, conc, x.conns, x.wall.Seconds(), x.cpu.Seconds())
			}
		}
	}
}

// wanMarkdown writes the upload over the emulated long fat link.
func (r *results) wanMarkdown(w func(string, ...any)) {
	if r.wan == nil {
		w("\n### Upload over an emulated 63 ms RTT link\n\nNot measured in this run (no testbed: needs root and `ip`, `ethtool`).\n")
		return
	}
	l := wanLink
	w("\n### Upload over an emulated 63 ms RTT link\n\n")
	w("Two testbed hosts (network namespaces, `docs/testbed.md`), each on an emulated link of %v one way and %.0f Mbit/s; the path crosses both links, so %v RTT; the server is a p2pbench child process in one host, the client another in the other. One connection, an untimed 16 MiB warm-up upload, then %d MiB on one new stream (WebRTC-direct: half of that; go-libp2p's WebRTC-direct a sixteenth after a 1 MiB warm-up, since it moves well under 1 MiB/s), timed to the acknowledgement; median of %d runs, stacks in turns. The emulator runs in the parent process and needs most of the 2 shared cores at this rate, so the absolute figures are capped by the machine; compare the ratios. TCP socket buffers are the kernel defaults of the namespace.\n\n", l.Delay, float64(l.Rate)/1e6, 4*l.Delay, r.p.wanSize/mib, r.p.wanReps)
	w("| stack | tachyon (MiB/s) | go-libp2p (MiB/s) | tachyon / go-libp2p | HTTP (MiB/s) | tachyon / HTTP |\n|---|---:|---:|---:|---:|---:|\n")
	for _, sec := range upSecs {
		t, g := median(r.wan[implTachyon+"/"+sec]), median(r.wan[implGo+"/"+sec])
		kind := httpH1
		if family(sec) == "QUIC" {
			kind = httpH3
		}
		h := median(r.wan[kind])
		w("| %s | %.1f | %.1f | %s | %s %.1f | %s |\n", sec, t, g, ratio(t, g), kind, h, ratio(t, h))
	}
	wanRTCRow(r.wan, w)
	w("\nEvery run (MiB/s):\n\n")
	for _, st := range wanStacks {
		parts := make([]string, len(r.wan[st]))
		for i, x := range r.wan[st] {
			parts[i] = fmt.Sprintf("%.1f", x)
		}
		w("- %s: %s\n", st, strings.Join(parts, ", "))
	}
}

func ms1(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
