// Package webrtcnat measures /webrtc (WebRTC private-to-private, the
// browser-to-browser transport) across emulated NATs. The testbed has
// public addresses; the core host R runs `tachyon node --relay-service
// --stun`; peers A and B sit behind NATs of the same kind, each NAT's link
// 10 ms one way, so A and B are 40 ms apart and both are 20 ms from R (the
// relayed path is as long as the direct one). B runs `tachyon node` with a
// reservation on R, R's STUN server and --listen /webrtc; A is webrtcdial
// (this package's command; no tachyon subcommand dials /webrtc with STUN
// servers) and dials B's <R>/p2p-circuit/webrtc/p2p/<B> address.
//
// It asserts the goals of the browser-to-browser issue:
//
//   - behind endpoint-independent NATs, every /webrtc dial ends with a
//     direct WebRTC connection (not the relay) and an echo over it;
//   - behind symmetric NATs the dial fails within a bound, with a reason
//     that names ICE, and the relayed connection still carries a ping;
//   - from the relayed connection to the first echo reply over the direct
//     connection, tachyon takes no more round trips than js-libp2p in Node
//     (@libp2p/webrtc, node-datachannel) on both ends of the same setup,
//     through the same tachyon relay, when Node and interop/js's
//     node_modules are there.
//
// It also downloads over one stream with perf across the direct /webrtc
// connection and, for comparison, across /webrtc-direct to a public host P
// that is 40 ms from A too, and prints the table for BENCHMARKS.md.
//
// It needs root (network namespaces); TACHYON_SKIP_NETNS=1 skips it
// elsewhere. Run it without -race (timings). CI runs a reduced version, 2
// dials per EIM cell, 1 on the symmetric pair (it waits 20 s for the
// transport's session limit), 1 MiB of perf, in under a minute once built:
//
//	go test -count=1 -v ./test/webrtcnat
//
// The full run (TACHYON_WEBRTCNAT_FULL=1, `make webrtcnat`) makes 10 dials
// per cell, 3 on the symmetric pair, downloads 16 MiB and requires the js
// reference; it writes the markdown tables to TACHYON_WEBRTCNAT_TABLE if
// set. TACHYON_WEBRTCNAT_PCAP=FILE captures A's NAT link during the first
// /webrtc dial (docs/handshakes.md counts its round trips from there).
package webrtcnat

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/internal/testproc"
	"github.com/tachyon-p2p/tachyon/testbed"
)

const (
	oneWay    = 10 * time.Millisecond // on each NAT's link and on P's
	stunPort  = 3478
	dialLimit = 90 * time.Second // one webrtcdial process
	// symBound is how long a /webrtc dial through symmetric NATs may take
	// to fail: the transport's 20 s session limit (PrivateConfig) and
	// slack for the relayed dial before it.
	symBound = 30 * time.Second
)

// settings are the sizes of a run.
type settings struct {
	full     bool
	dials    int    // per punchable cell
	symDials int    // on the symmetric pair
	bytes    uint64 // perf download
	// slack is how many RTTs tachyon's median may exceed js-libp2p's by:
	// measurement noise (emulator lateness, two shared cores), larger
	// with 2 samples than with 10.
	slack float64
}

func runSettings() settings {
	if os.Getenv("TACHYON_WEBRTCNAT_FULL") == "1" {
		return settings{full: true, dials: 10, symDials: 3, bytes: 16 << 20, slack: 0.5}
	}
	return settings{dials: 2, symDials: 1, bytes: 1 << 20, slack: 1}
}

// dialLine is webrtcdial's output (see its Line).
type dialLine struct {
	OK              bool    `json:"ok"`
	Self            string  `json:"self"`
	RelayedMillis   float64 `json:"relayedMillis"`
	DirectMillis    float64 `json:"directMillis"`
	ReplyMillis     float64 `json:"replyMillis"`
	Transport       string  `json:"transport"`
	Remote          string  `json:"remote"`
	Local           string  `json:"local"`
	PerfBytes       uint64  `json:"perfBytes"`
	PerfSeconds     float64 `json:"perfSeconds"`
	RelayedFallback bool    `json:"relayedFallback"`
	FallbackMillis  float64 `json:"fallbackMillis"`
	FailedMillis    float64 `json:"failedMillis"`
	Error           string  `json:"error"`
}

// env is the network and the long-running processes.
type env struct {
	t        *testing.T
	n        *testbed.Network
	bin      string // tachyon
	dialBin  string // webrtcdial
	r, p     *testbed.Host
	relay    string // R's TCP address, /p2p/ included
	relayWS  string // R's WebSocket address, /p2p/ included
	stun     string // stun:R:port
	rtt      time.Duration
	eimA     *testbed.Host
	eimB     *testbed.Host
	symA     *testbed.Host
	symB     *testbed.Host
	eimNATs  [2]netip.Addr // outside addresses of A's and B's NATs
	natA     *testbed.NAT  // A's (EIM)
	settings settings
}

func TestWebRTCNAT(t *testing.T) {
	if raceEnabled {
		t.Skip("timings: runs without -race (the Makefile's TIMED list)")
	}
	start := time.Now()
	n := testbed.ForTest(t, testbed.PublicAddresses())
	ctx := context.Background()
	e := &env{t: t, n: n, settings: runSettings()}

	bctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	bins, err := testproc.Build(bctx, t.TempDir(),
		testproc.Target{Pkg: "./cmd/tachyon", Name: "tachyon"},
		testproc.Target{Pkg: "./test/webrtcnat/webrtcdial", Name: "webrtcdial"})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	e.bin, e.dialBin = bins[0], bins[1]
	t.Logf("built in %s", time.Since(start).Round(time.Second))

	e.setup()
	rRelay := e.startRelay(ctx)
	defer rRelay.Stop()

	var res results
	drops := e.udpDrops(ctx, e.eimA)
	e.runEIM(ctx, &res)
	d := e.udpDrops(ctx, e.eimA)
	t.Logf("UDP datagrams A's kernel dropped for full receive buffers: %d during the /webrtc dials", d-drops)
	e.runDirect(ctx, &res)
	t.Logf("UDP datagrams A's kernel dropped for full receive buffers: %d during the /webrtc-direct dials", e.udpDrops(ctx, e.eimA)-d)
	e.runSymmetric(ctx, &res)
	e.runJS(ctx, &res)

	table := res.markdown(e)
	t.Logf("\n%s", table)
	if f := os.Getenv("TACHYON_WEBRTCNAT_TABLE"); f != "" {
		if err := os.WriteFile(f, []byte(table), 0o644); err != nil {
			t.Error(err)
		}
	}
	e.check(&res)
	t.Logf("total %s", time.Since(start).Round(time.Second))
}

// setup adds R and P in the core, and the NAT pairs.
func (e *env) setup() {
	t, n := e.t, e.n
	var err error
	if e.r, err = n.AddHost("relay", testbed.LinkConfig{}); err != nil {
		t.Fatal(err)
	}
	link := testbed.LinkConfig{Delay: oneWay}
	if e.p, err = n.AddHost("pub", link); err != nil {
		t.Fatal(err)
	}
	host := func(typ testbed.NATType, name string) (*testbed.Host, *testbed.NAT) {
		nat, err := n.AddNAT("n"+name, typ, link)
		if err != nil {
			t.Fatal(err)
		}
		h, err := nat.AddHost(name, testbed.LinkConfig{})
		if err != nil {
			t.Fatal(err)
		}
		return h, nat
	}
	var natB *testbed.NAT
	e.eimA, e.natA = host(testbed.EndpointIndependent, "ea")
	e.eimB, natB = host(testbed.EndpointIndependent, "eb")
	e.eimNATs = [2]netip.Addr{e.natA.IPv4(), natB.IPv4()}
	e.symA, _ = host(testbed.Symmetric, "sa")
	e.symB, _ = host(testbed.Symmetric, "sb")
	e.rtt = n.RTT(e.eimA, e.eimB)
	for _, pair := range [][2]*testbed.Host{{e.symA, e.symB}, {e.eimA, e.p}} {
		if r := n.RTT(pair[0], pair[1]); r != e.rtt {
			t.Fatalf("RTT %s to %s is %s, want %s like A to B", pair[0].Name(), pair[1].Name(), r, e.rtt)
		}
	}
	if r := n.RTT(e.eimA, e.r); 2*r != e.rtt {
		t.Fatalf("RTT A to R is %s, want half of A to B's %s", r, e.rtt)
	}
}

// udpDrops reads Udp RcvbufErrors of h's namespace (/proc/net/snmp):
// datagrams dropped because a socket's receive buffer was full.
func (e *env) udpDrops(ctx context.Context, h *testbed.Host) int64 {
	out, err := h.Command(ctx, "cat", "/proc/net/snmp").Output()
	if err != nil {
		e.t.Logf("reading /proc/net/snmp in %s: %v", h.Name(), err)
		return 0
	}
	var names []string
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(f) {
				v, _ := strconv.ParseInt(f[i], 10, 64)
				return v
			}
		}
	}
	return 0
}

// startRelay runs R: relay service and STUN, TCP for tachyon, WebSocket
// for js-libp2p in Node.
func (e *env) startRelay(ctx context.Context) *testproc.Proc {
	rIP := e.r.IPv4().String()
	r := e.start(ctx, e.r, "relay R", e.bin, "node", "--relay-service", "--reachability", "public", "--no-holepunch",
		"--stun", fmt.Sprintf("%s:%d", rIP, stunPort),
		"--listen", "/ip4/"+rIP+"/tcp/4001", "--listen", "/ip4/"+rIP+"/tcp/4002/ws")
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var err error
	if _, e.relay, err = r.WaitLine(wctx, 0, "/ip4/"+rIP+"/tcp/4001/p2p/"); err != nil {
		e.t.Fatal(err)
	}
	if _, e.relayWS, err = r.WaitLine(wctx, 0, "/ip4/"+rIP+"/tcp/4002/ws/p2p/"); err != nil {
		e.t.Fatal(err)
	}
	if _, _, err = r.WaitLine(wctx, 0, "stun: "); err != nil {
		e.t.Fatal(err)
	}
	e.relay, e.relayWS = strings.TrimSpace(e.relay), strings.TrimSpace(e.relayWS)
	e.stun = fmt.Sprintf("stun:%s:%d", rIP, stunPort)
	return r
}

// start starts a process in h that is stopped at the end of the test.
func (e *env) start(ctx context.Context, h *testbed.Host, name, bin string, args ...string) *testproc.Proc {
	e.t.Helper()
	p, err := testproc.Start(name, h.Command(ctx, bin, args...))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(p.Stop)
	return p
}

// startB runs a tachyon B in h, listening on /webrtc through R, and
// returns it with its /webrtc address.
func (e *env) startB(ctx context.Context, h *testbed.Host, name string) (*testproc.Proc, string) {
	b := e.start(ctx, h, name, e.bin, "node", "--echo", "--perf", "--listen", "/webrtc", "--relay", e.relay,
		"--webrtc-stun", e.stun, "--reachability", "private", "--no-holepunch")
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, l, err := b.WaitLine(wctx, 0, "relay address:", "/p2p-circuit/p2p/")
	if err != nil {
		e.t.Fatalf("%s holds no reservation: %v", name, err)
	}
	circuit := strings.TrimSpace(strings.TrimPrefix(l, "relay address:"))
	i := strings.LastIndex(circuit, "/p2p/")
	return b, circuit[:i] + "/webrtc" + circuit[i:]
}

// dial runs webrtcdial in h once.
func (e *env) dial(ctx context.Context, h *testbed.Host, target string, args ...string) (dialLine, string) {
	dctx, cancel := context.WithTimeout(ctx, dialLimit)
	defer cancel()
	args = append(append([]string{"--timeout", "60s"}, args...), target)
	p, err := testproc.Start("webrtcdial in "+h.Name(), h.Command(dctx, e.dialBin, args...))
	if err != nil {
		e.t.Fatal(err)
	}
	defer p.Stop()
	werr := p.Wait(dctx)
	lines := p.Lines()
	var l dialLine
	if len(lines) == 0 || json.Unmarshal([]byte(lines[len(lines)-1]), &l) != nil {
		l = dialLine{Error: fmt.Sprintf("no result (%v): %s", werr, p.Output(5))}
	} else if l.OK && werr != nil {
		l.OK, l.Error = false, fmt.Sprintf("printed ok but exited with %v", werr)
	}
	raw := strings.Join(lines, "\n")
	if !l.OK {
		raw += "\n" + testproc.LastLines(p.Stderr(), 10)
	}
	return l, raw
}

// runEIM dials B behind an endpoint-independent NAT from A behind another.
func (e *env) runEIM(ctx context.Context, res *results) {
	b, target := e.startB(ctx, e.eimB, "tachyon B (EIM)")
	defer b.Stop()
	for i := 0; i < e.settings.dials; i++ {
		// TACHYON_WEBRTCNAT_PCAP=FILE captures A's NAT link (both ways)
		// during the first dial: the hop-by-hop count of
		// docs/handshakes.md comes from there.
		stop := func() error { return nil }
		if f := os.Getenv("TACHYON_WEBRTCNAT_PCAP"); f != "" && i == 0 {
			var err error
			if stop, err = e.natA.Link().Capture(f); err != nil {
				e.t.Fatal(err)
			}
		}
		l, raw := e.dial(ctx, e.eimA, target, "--stun", e.stun, "--relay", e.relay, "--bytes", fmt.Sprint(e.settings.bytes))
		if err := stop(); err != nil {
			e.t.Error(err)
		}
		if testing.Verbose() {
			e.t.Logf("EIM /webrtc #%d: %s", i+1, raw)
		}
		res.eim = append(res.eim, attempt{line: l, raw: raw})
	}
}

// runDirect dials P's /webrtc-direct address from the same A.
func (e *env) runDirect(ctx context.Context, res *results) {
	pIP := e.p.IPv4().String()
	p := e.start(ctx, e.p, "tachyon P", e.bin, "node", "--echo", "--perf", "--reachability", "public", "--no-holepunch",
		"--listen", "/ip4/"+pIP+"/udp/4002/webrtc-direct")
	defer p.Stop()
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	_, target, err := p.WaitLine(wctx, 0, "/ip4/"+pIP+"/udp/4002/webrtc-direct/certhash/")
	cancel()
	if err != nil {
		e.t.Fatal(err)
	}
	target = strings.TrimSpace(target)
	if testing.Verbose() {
		// tachyon rtt's own step times, to compare with webrtcdial's.
		out, err := e.eimA.Command(ctx, e.bin, "rtt", "-v", "-n", "2", target).CombinedOutput()
		e.t.Logf("tachyon rtt -v to P (%v):\n%s", err, out)
	}
	for i := 0; i < e.settings.dials; i++ {
		l, raw := e.dial(ctx, e.eimA, target, "--bytes", fmt.Sprint(e.settings.bytes))
		if testing.Verbose() {
			e.t.Logf("/webrtc-direct #%d: %s", i+1, raw)
		}
		res.direct = append(res.direct, attempt{line: l, raw: raw})
	}
}

// runSymmetric dials B behind a symmetric NAT from A behind another.
func (e *env) runSymmetric(ctx context.Context, res *results) {
	b, target := e.startB(ctx, e.symB, "tachyon B (symmetric)")
	defer b.Stop()
	for i := 0; i < e.settings.symDials; i++ {
		l, raw := e.dial(ctx, e.symA, target, "--stun", e.stun, "--relay", e.relay)
		if testing.Verbose() {
			e.t.Logf("symmetric /webrtc #%d: %s", i+1, raw)
		}
		res.sym = append(res.sym, attempt{line: l, raw: raw})
	}
}

type attempt struct {
	line dialLine
	raw  string
}

// results of every cell.
type results struct {
	eim, direct, sym []attempt
	js               []jsAttempt
	jsSkipped        string // why the js reference did not run
}

// relayToReply is the time from the relayed connection to the first echo
// reply over the direct one.
func (a attempt) relayToReply() time.Duration {
	return msDur(a.line.ReplyMillis - a.line.RelayedMillis)
}
func (a attempt) relayToDirect() time.Duration {
	return msDur(a.line.DirectMillis - a.line.RelayedMillis)
}

func (a attempt) mbps() float64 {
	if a.line.PerfSeconds <= 0 {
		return 0
	}
	return float64(a.line.PerfBytes) * 8 / a.line.PerfSeconds / 1e6
}

func msDur(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return (s[(len(s)-1)/2] + s[len(s)/2]) / 2
}

// okValues applies f to the successful attempts.
func okValues(as []attempt, f func(attempt) float64) []float64 {
	var out []float64
	for _, a := range as {
		if a.line.OK {
			out = append(out, f(a))
		}
	}
	return out
}

func okCount(as []attempt) int { return len(okValues(as, func(attempt) float64 { return 0 })) }

// check asserts the goals.
func (e *env) check(res *results) {
	t := e.t
	for i, a := range res.eim {
		l := a.line
		switch {
		case !l.OK:
			t.Errorf("EIM /webrtc dial #%d failed: %s\n%s", i+1, l.Error, a.raw)
		case l.Transport != "webrtc":
			t.Errorf("EIM dial #%d: direct connection over %q, want webrtc", i+1, l.Transport)
		case !strings.Contains(l.Remote, "/ip4/"+e.eimNATs[1].String()+"/"):
			t.Errorf("EIM dial #%d: direct connection to %s, want B's NAT %s", i+1, l.Remote, e.eimNATs[1])
		case l.RelayedMillis <= 0 || l.DirectMillis < l.RelayedMillis || l.ReplyMillis < l.DirectMillis:
			t.Errorf("EIM dial #%d: times out of order: relayed %.1f, direct %.1f, reply %.1f ms", i+1, l.RelayedMillis, l.DirectMillis, l.ReplyMillis)
		case l.PerfBytes != e.settings.bytes:
			t.Errorf("EIM dial #%d: perf moved %d bytes, want %d", i+1, l.PerfBytes, e.settings.bytes)
		}
	}
	for i, a := range res.direct {
		if l := a.line; !l.OK || l.Transport != "webrtc-direct" || l.PerfBytes != e.settings.bytes {
			t.Errorf("/webrtc-direct dial #%d: ok=%v transport %q, %d bytes: %s\n%s", i+1, l.OK, l.Transport, l.PerfBytes, l.Error, a.raw)
		}
	}
	for i, a := range res.sym {
		l := a.line
		switch {
		case l.OK:
			t.Errorf("symmetric /webrtc dial #%d succeeded (remote %s): the NATs are not symmetric?", i+1, l.Remote)
		case l.RelayedMillis <= 0:
			t.Errorf("symmetric dial #%d failed before the relayed connection: %s\n%s", i+1, l.Error, a.raw)
		case msDur(l.FailedMillis) > symBound:
			t.Errorf("symmetric dial #%d failed after %.1f s, want within %s", i+1, l.FailedMillis/1000, symBound)
		case !strings.Contains(l.Error, "ICE failed") && !strings.Contains(l.Error, "candidate pair"):
			t.Errorf("symmetric dial #%d: reason %q says neither that ICE failed nor which candidate pairs were tried", i+1, l.Error)
		case !l.RelayedFallback:
			t.Errorf("symmetric dial #%d: the relayed connection did not carry a ping after the failure\n%s", i+1, a.raw)
		}
	}
	if len(res.js) > 0 {
		tMed := median(okValues(res.eim, func(a attempt) float64 { return testbed.RoundTrips(a.relayToReply(), e.rtt) }))
		jMed := median(jsOKValues(res.js, func(a jsAttempt) float64 { return testbed.RoundTrips(a.relayToReply(), e.rtt) }))
		if jsOKCount(res.js) == 0 {
			t.Errorf("js-libp2p reference: no dial succeeded; first: %s", res.js[0].raw)
		} else if tMed > jMed+e.settings.slack {
			t.Errorf("relayed connection -> first echo reply: tachyon median %.1f RTT, js-libp2p %.1f RTT: tachyon is slower (by more than the %.1f RTT of noise allowed)", tMed, jMed, e.settings.slack)
		}
	} else if e.settings.full {
		t.Errorf("the full run needs the js-libp2p reference: %s", res.jsSkipped)
	}
}

// markdown renders the results as tables for BENCHMARKS.md.
func (r *results) markdown(e *env) string {
	var b strings.Builder
	rtts := func(d time.Duration) float64 { return testbed.RoundTrips(d, e.rtt) }
	fmt.Fprintf(&b, "A and B behind NATs, %s RTT between them and %s to the relay; medians of successful dials.\n\n", e.rtt, e.rtt/2)
	b.WriteString("| dialer / listener | NATs | ok | relayed -> direct conn | relayed -> first echo reply | dial start -> reply |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- |\n")
	row := func(name, nats string, ok, n int, toDirect, toReply, total []float64) {
		if ok == 0 {
			fmt.Fprintf(&b, "| %s | %s | %d/%d | - | - | - |\n", name, nats, ok, n)
			return
		}
		fmt.Fprintf(&b, "| %s | %s | %d/%d | %.0f ms (%.1f RTT) | %.0f ms (%.1f RTT) | %.0f ms |\n", name, nats, ok, n,
			median(toDirect), rtts(msDur(median(toDirect))), median(toReply), rtts(msDur(median(toReply))), median(total))
	}
	row("tachyon / tachyon", "EIM, EIM", okCount(r.eim), len(r.eim),
		okValues(r.eim, func(a attempt) float64 { return a.line.DirectMillis - a.line.RelayedMillis }),
		okValues(r.eim, func(a attempt) float64 { return a.line.ReplyMillis - a.line.RelayedMillis }),
		okValues(r.eim, func(a attempt) float64 { return a.line.ReplyMillis }))
	if len(r.js) > 0 {
		row("js-libp2p / js-libp2p (Node)", "EIM, EIM", jsOKCount(r.js), len(r.js),
			jsOKValues(r.js, func(a jsAttempt) float64 { return a.RelayToDirectMs }),
			jsOKValues(r.js, func(a jsAttempt) float64 { return a.RelayToFirstEchoMs }),
			jsOKValues(r.js, func(a jsAttempt) float64 { return a.RelayedAtMs + a.RelayToFirstEchoMs }))
	} else {
		fmt.Fprintf(&b, "| js-libp2p / js-libp2p (Node) | EIM, EIM | not run: %s | | | |\n", r.jsSkipped)
	}
	for _, a := range r.sym {
		// The transport's words, without the addresses the swarm and the
		// transport put before them.
		reason := a.line.Error
		if i := strings.LastIndex(reason, "/p2p-circuit/webrtc: "); i >= 0 {
			reason = reason[i+len("/p2p-circuit/webrtc: "):]
		}
		if len(reason) > 160 {
			reason = reason[:160] + "…"
		}
		fallback := "relayed connection still answers a ping"
		if !a.line.RelayedFallback {
			fallback = "relayed connection lost"
		}
		fmt.Fprintf(&b, "| tachyon / tachyon | symmetric, symmetric | failed after %.1f s (%s): %s | | | |\n", a.line.FailedMillis/1000, fallback, reason)
	}
	fmt.Fprintf(&b, "\nOne stream, perf download of %d MiB, A behind an EIM NAT, %s RTT:\n\n", e.settings.bytes>>20, e.rtt)
	b.WriteString("| transport | ok | time to the direct connection | throughput (median) |\n| --- | --- | --- | --- |\n")
	tput := func(name, what string, as []attempt, conn func(attempt) float64) {
		fmt.Fprintf(&b, "| %s | %d/%d | %.0f ms %s | %.1f Mbit/s |\n", name, okCount(as), len(as),
			median(okValues(as, conn)), what, median(okValues(as, attempt.mbps)))
	}
	tput("/webrtc (through R, STUN)", "from the start of the dial (relayed circuit included)", r.eim, func(a attempt) float64 { return a.line.DirectMillis })
	tput("/webrtc-direct (to public P)", "from the start of the dial", r.direct, func(a attempt) float64 { return a.line.DirectMillis })
	return b.String()
}
