// Package dialing measures smart dialing end to end on the testbed: how
// long a fresh dialer takes from Connect to connected, and how many dial
// attempts it starts, for `tachyon dial` and for go-libp2p v0.51
// (golibp2p-peer dial-time: a default host, default ranker, transports and
// black-hole detectors, relay client) against the same listener.
//
// Network (public addresses): the dialer D has 10 ms one way on its link,
// where the black holes go (packets vanish both ways, so dials time out).
// Listener L (10 ms, so 40 ms RTT from D) runs `tachyon node` on its IPv4
// and IPv6 address: TCP (printed plain, /tls and /noise), QUIC,
// WebTransport (QUIC's port) and WebRTC-direct (the next port); two more
// such nodes on other ports of L serve scenarios 2-3's learning run.
// Scenarios:
//
//  1. everything works: L's addresses;
//  2. IPv6 blackholed on D's link;
//  3. UDP blackholed on D's link;
//  4. one identity on two hosts (--key FILE): QUIC only on Q (20 ms RTT),
//     TCP only on T (200 ms RTT); T's addresses listed first;
//  5. ten dead QUIC addresses (5 IPv4, 5 IPv6, same port, IPs blackholed
//     on D's link) listed before L's one live address, IPv4 QUIC;
//  6. L's addresses, but an nftables rule in L's namespace answers every
//     TCP SYN to L's port with a RST (refused at once); UDP untouched;
//  7. N behind an endpoint-independent NAT (--reachability private, no
//     hole punching) with a reservation on a tachyon relay R (--relay-service,
//     TCP and QUIC on IPv4 and IPv6, 40 ms RTT from D; 40 ms R to N): the
//     dialer gets every relay address N prints (…/p2p-circuit/p2p/N), nothing
//     direct.
//
// Each iteration is one dialer process (-n 1: a fresh host, no state)
// started in D's namespace after the previous one ended, so tcpdump's
// capture in D's namespace splits by the processes' run times. Attempts
// are counted on the wire, the same way for both (flows_test.go: TCP SYNs,
// QUIC client connection IDs, WebRTC-direct STUN requests); for tachyon
// the count must equal the JSON's dialsStarted, except that a relayed
// attempt through a relay an earlier attempt of the dial already reached
// opens a circuit over that connection and no flow. Times are each
// dialer's own: Connect (tachyon) and Network().DialPeer (go, whose
// Host.Connect also waits for identify) until the connection is up.
//
// The best single address is the fastest median, over the addresses that
// work in the scenario, of `tachyon dial ADDR` given that address alone.
//
// Goals asserted (medians over the iterations):
//
//   - tachyon's time <= 1.1 x best single + 1 RTT (the best address's path:
//     40 ms; 20 ms in 4; D-R plus R-N, 80 ms, in 7);
//   - tachyon's time <= go-libp2p's, within the emulator's precision
//     (1 ms + 5 %, docs/testbed.md), in the median or in the best run:
//     where both make the same single dial, 5 samples of two processes on
//     2 shared cores differ by a few ms either way (scheduling, not
//     dialing), while a dialing delay moves every run, the best too;
//   - tachyon's dials: median <= go's median, and max <= go's max;
//   - scenario 1: every tachyon iteration starts exactly one dial;
//   - scenarios 2-3, learned: one tachyon process keeps one host and dials
//     the three L peers in turn 30 times (`tachyon dial -same-host`; the
//     black-hole detector wants strikes from 3 peers). The black hole is
//     learned at the first dial whose plan skips an address in it as a
//     black hole (the JSON's "skipped"); that must happen within the run,
//     from then on the time goal holds (median of those dials), and no
//     attempt goes into a class (udp/ip6, tcp/ip6, ...) of the hole that
//     an earlier or the same plan skipped as a black hole, but for
//     probes. The wire agrees: as many flows in all, and into the hole,
//     as the JSON has attempts.
//
// The time goal cannot hold for fresh dialers in 2, 3 and 5 together with
// scenario 1's one dial and "no slower than go-libp2p" (which dials QUIC
// first): in 1 the second address must wait longer than the first's
// handshake (~1 RTT) or it is dialed too, and in 2 it must start within
// ~1 RTT of the first to land within 1 RTT of the best; a dialer that knows
// nothing cannot tell the two apart. There it is logged as a known limit
// (GOAL MISSED (known limit ...)), and the learned runs of 2 and 3 assert it.
//
// A missed goal fails the test with "GOAL MISSED"; docs/dialing-results.md
// has the measured table and the causes.
//
// CI runs every scenario with 5 iterations (and 3 dials per single
// address), about 2 minutes; TACHYON_DIALING_FULL=1 (make dialing) runs
// 10 (and 10), about 4 minutes. The markdown
// table is logged and, with DIALING_RESULTS=path, written there.
// TACHYON_DIALING_SCENARIOS=1,4 runs a subset. Needs root (network
// namespaces); TACHYON_SKIP_NETNS=1 skips it elsewhere. Runs without -race
// (timings).
package dialing

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/testbed"
)

const (
	oneWay        = 10 * time.Millisecond // D's link, L's, R's and the NAT's
	dialTimeout   = 15 * time.Second      // -timeout of every dial
	procLimit     = 30 * time.Second      // one dialer process, start to exit
	sameHostDials = 30
	slackFactor   = 1.1 // goal: within 10 % + 1 RTT of the best single address
)

type impl string

const (
	tachyonImpl impl = "tachyon"
	goImpl      impl = "go-libp2p"
)

// scenario is one listener setup and what the dialer gets.
type scenario struct {
	num   int
	name  string
	hole  testbed.Blackhole // on D's link during the scenario
	rtt   time.Duration     // the best address's path, for the goal
	addrs []string          // given to the dialer, in this order
	live  []string          // addresses that work alone
	// inHole says whether an address (scenarios 2-3) or a flow is in the
	// black hole; nil elsewhere.
	inHole     func(addr string) bool
	flowInHole func(f flow) bool
	learnAddrs []string // scenarios 2-3: the three peers' addresses for -same-host
	setup      func() error
	teardown   func() error
}

// implResult is one implementation's iterations in a scenario.
type implResult struct {
	times     []float64 // connect ms per iteration
	wire      []int     // attempts on the wire per iteration
	json      []int     // tachyon: dialsStarted per iteration
	connected []string  // address per iteration
	runs      []dialRun
	flows     [][]flow
	stray     []flow // flows outside every process's run
	err       error
}

// learnResult is scenarios 2-3's same-host run.
type learnResult struct {
	runs        []dialRun
	learnedAt   int       // first run whose plan skipped an address as a black hole; -1: never
	after       []float64 // connect ms from learnedAt on
	dialsAfter  []int     // attempts per dial from learnedAt on
	probesAfter int       // attempts into the hole from learnedAt on (all must be probes)
	holeJSON    int       // attempts into the hole in the JSON
	holeWire    int       // flows into the hole on the wire
	wireTotal   int
	jsonTotal   int
	err         error
}

type result struct {
	sc       *scenario
	single   map[string]float64 // median ms per live address
	best     float64
	bestAddr string
	impls    map[impl]*implResult
	learn    *learnResult
	err      error // the scenario could not run
}

func TestDialing(t *testing.T) {
	if raceEnabled {
		t.Skip("timings: runs without -race")
	}
	leakcheck.Check(t)
	iters, baseline := 5, 3
	if os.Getenv("TACHYON_DIALING_FULL") == "1" {
		iters, baseline = 10, 10
	}
	only, err := parseScenarios(os.Getenv("TACHYON_DIALING_SCENARIOS"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()

	n := testbed.ForTest(t, testbed.PublicAddresses())
	link := testbed.LinkConfig{Delay: oneWay}
	add := func(name string, cfg testbed.LinkConfig) *testbed.Host {
		h, err := n.AddHost(name, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	d := add("dialer", link)
	l := add("listener", link)
	q := add("quic", testbed.LinkConfig{})                             // 20 ms RTT from D
	tt := add("tcp", testbed.LinkConfig{Delay: 90 * time.Millisecond}) // 200 ms RTT from D
	r := add("relay", link)
	nat, err := n.AddNAT("home", testbed.EndpointIndependent, link)
	if err != nil {
		t.Fatal(err)
	}
	nh, err := nat.AddHost("natted", testbed.LinkConfig{})
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	tachyonBin, goBin := buildBinaries(t, ctx)
	t.Logf("built in %s", time.Since(start).Round(time.Second))
	if err := checkDialCommand(ctx, tachyonBin); err != nil {
		t.Fatal(err)
	}
	warmUp(t, ctx, d, l, q, tt, r)
	keys := t.TempDir()

	// Listeners. L serves three peers; the first is the scenarios'.
	var lPeers [][]string
	for i := range 3 {
		port := 4001 + 100*i
		node := startDaemon(t, ctx, l, fmt.Sprintf("listener %d", i), tachyonBin, append([]string{"node",
			"--key", filepath.Join(keys, fmt.Sprintf("l%d.key", i)), "--reachability", "public", "--no-autonat", "--no-holepunch"},
			listenArgs(l, port, true, true)...)...)
		addrs, err := waitAddrs(node, l, port, true, true)
		if err != nil {
			t.Fatal(err)
		}
		lPeers = append(lPeers, addrs)
	}
	sameKey := filepath.Join(keys, "qt.key")
	qNode := startDaemon(t, ctx, q, "QUIC half", tachyonBin, append([]string{"node", "--key", sameKey,
		"--reachability", "public", "--no-autonat", "--no-holepunch"}, listenArgs(q, 4001, false, true)...)...)
	qAddrs, err := waitAddrs(qNode, q, 4001, false, true)
	if err != nil {
		t.Fatal(err)
	}
	// The key file exists now; T loads it.
	tNode := startDaemon(t, ctx, tt, "TCP half", tachyonBin, append([]string{"node", "--key", sameKey,
		"--reachability", "public", "--no-autonat", "--no-holepunch"}, listenArgs(tt, 4001, true, false)...)...)
	tAddrs, err := waitAddrs(tNode, tt, 4001, true, false)
	if err != nil {
		t.Fatal(err)
	}
	if peerOf(qAddrs[0]) != peerOf(tAddrs[0]) {
		t.Fatalf("the two halves have different peer IDs: %s, %s", peerOf(qAddrs[0]), peerOf(tAddrs[0]))
	}
	relayAddrs, err := startRelayed(t, ctx, r, nh, tachyonBin)
	if err != nil {
		t.Fatal(err)
	}

	scs := scenarios(n, d, l, q, r, nh, lPeers, qAddrs, tAddrs, relayAddrs)
	var results []*result
	for _, sc := range scs {
		if only != nil && !only[sc.num] {
			continue
		}
		res := &result{sc: sc, impls: map[impl]*implResult{}}
		results = append(results, res)
		t.Run(fmt.Sprintf("%d-%s", sc.num, strings.ReplaceAll(sc.name, " ", "-")), func(t *testing.T) {
			res.err = runScenario(t, ctx, d, sc, res, tachyonBin, goBin, iters, baseline)
			if res.err != nil {
				t.Fatal(res.err)
			}
			checkGoals(t, res)
		})
	}
	table := resultsTable(results, iters)
	t.Logf("\n%s", table)
	if p := os.Getenv("DIALING_RESULTS"); p != "" {
		if err := os.WriteFile(p, []byte(table), 0o644); err != nil {
			t.Errorf("writing DIALING_RESULTS: %v", err)
		}
	}
}

func parseScenarios(s string) (map[int]bool, error) {
	if s == "" {
		return nil, nil
	}
	m := map[int]bool{}
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 1 || v > 7 {
			return nil, fmt.Errorf("TACHYON_DIALING_SCENARIOS=%q: want numbers 1-7, comma-separated", s)
		}
		m[v] = true
	}
	return m, nil
}

// checkDialCommand fails early, and clearly, on a tachyon without `dial`.
func checkDialCommand(ctx context.Context, bin string) error {
	out, err := execOutput(ctx, bin, "dial", "-h")
	if !strings.Contains(out, "same-host") {
		return fmt.Errorf("tachyon dial with -same-host is missing (the dialing CLI): %v\n%s", err, out)
	}
	return nil
}

// warmUp makes D and every host it dials resolve their routers' link
// addresses (the first packet to a new neighbour waits one RTT more):
// a TCP connect to a closed port, both families.
func warmUp(t *testing.T, ctx context.Context, d *testbed.Host, hosts ...*testbed.Host) {
	t.Helper()
	for _, h := range hosts {
		for _, ip := range []netip.Addr{h.IPv4(), h.IPv6()} {
			wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			c, err := d.Dial(wctx, "tcp", netip.AddrPortFrom(ip, 9).String())
			cancel()
			if err == nil {
				c.Close()
			}
		}
	}
}

// listenArgs are the --listen flags for a node on h's two addresses:
// TCP on port, and QUIC, WebTransport on port and WebRTC-direct on
// port+1.
func listenArgs(h *testbed.Host, port int, tcp, udp bool) []string {
	var out []string
	for _, ip := range []string{"/ip4/" + h.IPv4().String(), "/ip6/" + h.IPv6().String()} {
		if tcp {
			out = append(out, "--listen", fmt.Sprintf("%s/tcp/%d", ip, port))
		}
		if udp {
			out = append(out, "--listen", fmt.Sprintf("%s/udp/%d/quic-v1", ip, port),
				"--listen", fmt.Sprintf("%s/udp/%d/quic-v1/webtransport", ip, port),
				"--listen", fmt.Sprintf("%s/udp/%d/webrtc-direct", ip, port+1))
		}
	}
	return out
}

// waitAddrs waits until node has printed its address on every transport
// listenArgs gave it, and returns every address it printed (with the
// /tls and /noise forms of TCP that come with them).
func waitAddrs(node *daemon, h *testbed.Host, port int, tcp, udp bool) ([]string, error) {
	var want [][]string
	for _, fam := range []string{"/ip4/" + h.IPv4().String() + "/", "/ip6/" + h.IPv6().String() + "/"} {
		if tcp {
			want = append(want, []string{fam, fmt.Sprintf("/tcp/%d/p2p/", port)})
		}
		if udp {
			want = append(want, []string{fam, fmt.Sprintf("/udp/%d/quic-v1/p2p/", port)},
				[]string{fam, "/webtransport/"}, []string{fam, "/webrtc-direct/"})
		}
	}
	for _, w := range want {
		if _, err := node.waitLine(20*time.Second, w...); err != nil {
			return nil, err
		}
	}
	if tcp {
		// Printed after the plain forms, when the node offers them.
		node.waitLine(2*time.Second, "/ip6/", fmt.Sprintf("/tcp/%d/noise/p2p/", port))
	}
	var out []string
	for _, l := range node.matching("/p2p/") {
		if strings.HasPrefix(l, "/ip4/"+h.IPv4().String()+"/") || strings.HasPrefix(l, "/ip6/"+h.IPv6().String()+"/") {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out, nil
}

// startRelayed starts the relay on r and the NAT'd node on nh with a
// reservation there, and returns the node's relay addresses.
func startRelayed(t *testing.T, ctx context.Context, r, nh *testbed.Host, bin string) ([]string, error) {
	t.Helper()
	args := []string{"node", "--relay-service", "--reachability", "public", "--no-autonat", "--no-holepunch"}
	for _, ip := range []string{"/ip4/" + r.IPv4().String(), "/ip6/" + r.IPv6().String()} {
		args = append(args, "--listen", ip+"/tcp/4001", "--listen", ip+"/udp/4001/quic-v1")
	}
	relay := startDaemon(t, ctx, r, "relay", bin, args...)
	line, err := relay.waitLine(20*time.Second, "/ip4/"+r.IPv4().String()+"/tcp/4001/p2p/")
	if err != nil {
		return nil, err
	}
	node := startDaemon(t, ctx, nh, "NAT'd listener", bin, "node", "--reachability", "private", "--no-holepunch",
		"--relay", strings.TrimSpace(line), "--listen", "/ip4/0.0.0.0/tcp/4001", "--listen", "/ip4/0.0.0.0/udp/4001/quic-v1")
	if _, err := node.waitLine(30*time.Second, "relay address:"); err != nil {
		return nil, fmt.Errorf("the NAT'd node got no reservation: %w", err)
	}
	// The relay's other addresses come with identify, shortly after.
	node.waitLine(3*time.Second, "relay address:", "/ip6/")
	var out []string
	for _, l := range node.matching("relay address:") {
		if strings.Contains(l, "gone") {
			continue
		}
		a := strings.TrimSpace(strings.TrimPrefix(l, "relay address:"))
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out, nil
}

func peerOf(addr string) string { return addr[strings.LastIndex(addr, "/p2p/")+len("/p2p/"):] }

func isIPv6(addr string) bool { return strings.HasPrefix(addr, "/ip6/") }
func isUDP(addr string) bool  { return strings.Contains(addr, "/udp/") }

// scenarios builds the seven scenarios on the started nodes.
func scenarios(n *testbed.Network, d, l, q, r, nh *testbed.Host, lPeers [][]string, qAddrs, tAddrs, relayAddrs []string) []*scenario {
	rtt := n.RTT(d, l)
	all := lPeers[0]
	var learn []string
	for _, p := range lPeers {
		learn = append(learn, p...)
	}
	except := func(drop func(string) bool) []string {
		return slices.DeleteFunc(slices.Clone(all), drop)
	}
	var live5 string
	for _, a := range all {
		if strings.HasPrefix(a, "/ip4/") && strings.Contains(a, "/udp/4001/quic-v1/p2p/") {
			live5 = a
		}
	}
	var dead []netip.Addr
	var addrs5 []string
	for i := range 5 {
		// Below L's addresses in numeric order too, so that a dialer
		// sorting by IP cannot find the live one first by luck.
		for _, ip := range []netip.Addr{netip.AddrFrom4([4]byte{11, 0, 0, byte(2 + i)}), netip.MustParseAddr(fmt.Sprintf("2a0c::1:%d", 2+i))} {
			dead = append(dead, ip)
			fam := "/ip4/"
			if ip.Is6() {
				fam = "/ip6/"
			}
			addrs5 = append(addrs5, fmt.Sprintf("%s%s/udp/4001/quic-v1/p2p/%s", fam, ip, peerOf(live5)))
		}
	}
	reject := func(cmd ...string) func() error {
		return func() error {
			out, err := execOutput(context.Background(), "ip", append([]string{"netns", "exec", l.Namespace(), "nft"}, cmd...)...)
			if err != nil {
				return fmt.Errorf("nft %s in the listener's namespace: %v: %s", strings.Join(cmd, " "), err, out)
			}
			return nil
		}
	}
	return []*scenario{
		{num: 1, name: "everything works", rtt: rtt, addrs: all, live: all},
		{num: 2, name: "IPv6 blackholed", rtt: rtt, hole: testbed.Blackhole{IPv6: true}, addrs: all,
			live: except(isIPv6), inHole: isIPv6, flowInHole: func(f flow) bool { return f.dst.Addr().Is6() }, learnAddrs: learn},
		{num: 3, name: "UDP blackholed", rtt: rtt, hole: testbed.Blackhole{UDP: true}, addrs: all,
			live: except(isUDP), inHole: isUDP, flowInHole: flow.udp, learnAddrs: learn},
		{num: 4, name: "QUIC 20 ms, TCP 200 ms", rtt: n.RTT(d, q), addrs: append(slices.Clone(tAddrs), qAddrs...),
			live: append(slices.Clone(tAddrs), qAddrs...)},
		{num: 5, name: "ten dead addresses first", rtt: rtt, hole: testbed.Blackhole{Addrs: dead},
			addrs: append(addrs5, live5), live: []string{live5}},
		{num: 6, name: "TCP refused (RST)", rtt: rtt, addrs: all, live: except(func(a string) bool { return !isUDP(a) }),
			setup: reject("add table inet dialbed; add chain inet dialbed input { type filter hook input priority 0; policy accept; }; " +
				"add rule inet dialbed input tcp dport 4001 reject with tcp reset"),
			teardown: reject("delete table inet dialbed")},
		{num: 7, name: "relay only", rtt: n.RTT(d, r) + n.RTT(r, nh), addrs: relayAddrs, live: relayAddrs},
	}
}

// runScenario measures one scenario: the best single address, then the
// fresh dialers of both implementations, then (2-3) the learning run.
func runScenario(t *testing.T, ctx context.Context, d *testbed.Host, sc *scenario, res *result, tachyonBin, goBin string, iters, baseline int) error {
	if sc.setup != nil {
		if err := sc.setup(); err != nil {
			return err
		}
	}
	if sc.teardown != nil {
		defer func() {
			if err := sc.teardown(); err != nil {
				t.Errorf("undoing scenario %d: %v", sc.num, err)
			}
		}()
	}
	base := d.Link().Config()
	cfg := base
	cfg.Blackhole = sc.hole
	if err := d.Link().Update(cfg); err != nil {
		return fmt.Errorf("black hole on the dialer's link: %w", err)
	}
	defer func() {
		if err := d.Link().Update(base); err != nil {
			t.Errorf("clearing the black hole: %v", err)
		}
	}()

	res.single = map[string]float64{}
	res.best = math.Inf(1)
	for _, a := range sc.live {
		out, _, err := runDial(ctx, d, procLimit+time.Duration(baseline)*dialTimeout, tachyonBin, "dial", "-n", strconv.Itoa(baseline), "-timeout", dialTimeout.String(), a)
		if err != nil {
			return fmt.Errorf("best single address: %w", err)
		}
		var ms []float64
		for _, r := range out.Runs {
			ms = append(ms, r.ConnectMillis)
		}
		m := median(ms)
		res.single[a] = m
		if m < res.best {
			res.best, res.bestAddr = m, a
		}
	}

	mine := map[netip.Addr]bool{d.IPv4(): true, d.IPv6(): true}
	res.impls = fresh(ctx, d, sc, map[impl]string{tachyonImpl: tachyonBin, goImpl: goBin}, iters, mine)
	if sc.learnAddrs != nil {
		res.learn = learn(ctx, d, sc, tachyonBin, mine)
	}
	return nil
}

// fresh runs iters dialer processes of each implementation, alternating
// (so that load from other jobs falls on both alike), one after the
// other, under one capture.
func fresh(ctx context.Context, d *testbed.Host, sc *scenario, bins map[impl]string, iters int, mine map[netip.Addr]bool) map[impl]*implResult {
	impls := []impl{tachyonImpl, goImpl}
	res := map[impl]*implResult{}
	for _, im := range impls {
		res[im] = &implResult{}
	}
	cap, err := startCapture(ctx, d)
	if err != nil {
		for _, im := range impls {
			res[im].err = err
		}
		return res
	}
	var wins []window
	var owner []impl
	for i := 0; i < iters; i++ {
		for _, im := range impls {
			r := res[im]
			if r.err != nil {
				continue
			}
			args := []string{"dial-time"}
			if im == tachyonImpl {
				args = []string{"dial"}
			}
			args = append(args, "-n", "1", "-timeout", dialTimeout.String())
			out, w, err := runDial(ctx, d, procLimit, bins[im], append(args, sc.addrs...)...)
			wins, owner = append(wins, w), append(owner, im)
			if err != nil {
				r.err = fmt.Errorf("iteration %d: %w", i+1, err)
				continue
			}
			run := out.Runs[0]
			r.times = append(r.times, run.ConnectMillis)
			r.json = append(r.json, run.DialsStarted)
			r.connected = append(r.connected, run.Addr)
			r.runs = append(r.runs, run)
		}
	}
	pkts, err := cap.stop()
	if err != nil {
		for _, im := range impls {
			res[im].err = errors.Join(res[im].err, err)
		}
		return res
	}
	per, stray := split(attempts(flows(pkts, mine)), wins)
	for i, fs := range per {
		r := res[owner[i]]
		if len(r.wire) < len(r.times) { // a failed run's flows are not counted
			r.flows = append(r.flows, fs)
			r.wire = append(r.wire, len(fs))
		}
	}
	res[tachyonImpl].stray = stray
	return res
}

// split assigns each flow to the process that ran when it started.
func split(fs []flow, wins []window) (per [][]flow, stray []flow) {
	per = make([][]flow, len(wins))
next:
	for _, f := range fs {
		for i, w := range wins {
			if !f.at.Before(w.from) && !f.at.After(w.to) {
				per[i] = append(per[i], f)
				continue next
			}
		}
		stray = append(stray, f)
	}
	return per, stray
}

// learn runs scenarios 2-3's same-host dials and reads where the black
// hole was learned.
func learn(ctx context.Context, d *testbed.Host, sc *scenario, bin string, mine map[netip.Addr]bool) *learnResult {
	res := &learnResult{learnedAt: -1}
	cap, err := startCapture(ctx, d)
	if err != nil {
		res.err = err
		return res
	}
	args := append([]string{"dial", "-same-host", "-n", strconv.Itoa(sameHostDials), "-timeout", dialTimeout.String()}, sc.learnAddrs...)
	out, _, err := runDial(ctx, d, procLimit+sameHostDials*time.Second, bin, args...)
	pkts, cerr := cap.stop()
	if err != nil || cerr != nil {
		res.err = errors.Join(err, cerr)
		return res
	}
	res.runs = out.Runs
	for i, r := range out.Runs {
		res.jsonTotal += r.DialsStarted
		for _, a := range r.Attempts {
			if sc.inHole(a.Addr) {
				res.holeJSON++
			}
		}
		if res.learnedAt < 0 && slices.ContainsFunc(r.Skipped, func(s skip) bool {
			return sc.inHole(s.Addr) && strings.Contains(s.Reason, "black hole")
		}) {
			res.learnedAt = i
		}
		if res.learnedAt >= 0 {
			res.after = append(res.after, r.ConnectMillis)
			res.dialsAfter = append(res.dialsAfter, r.DialsStarted)
			for _, a := range r.Attempts {
				if sc.inHole(a.Addr) && a.Probe {
					res.probesAfter++
				}
			}
		}
	}
	for _, f := range attempts(flows(pkts, mine)) {
		res.wireTotal++
		if sc.flowInHole(f) {
			res.holeWire++
		}
	}
	return res
}

// checkGoals asserts the goals of the package comment on one scenario.
func checkGoals(t *testing.T, res *result) {
	t.Helper()
	sc := res.sc
	tr, gr := res.impls[tachyonImpl], res.impls[goImpl]
	if tr.err != nil {
		t.Fatalf("tachyon: %v", tr.err)
	}
	if gr.err != nil {
		t.Errorf("go-libp2p (no comparison): %v", gr.err)
	}
	for i := range tr.json {
		if i >= len(tr.wire) {
			break
		}
		// A relayed attempt through a relay that an earlier attempt of
		// the dial already connected to opens a circuit over that
		// connection and no flow: the wire may show fewer.
		shared := sharedRelayAttempts(tr.runs[i])
		if tr.wire[i] > tr.json[i] || tr.wire[i] < tr.json[i]-shared {
			t.Errorf("tachyon iteration %d: dialsStarted %d in its JSON, %d on the wire: %v\n%s", i+1, tr.json[i], tr.wire[i], tr.flows[i], tr.runs[i].Trace)
		}
	}
	for im, r := range res.impls {
		if len(r.stray) > 0 {
			t.Errorf("%s: %d flows outside every dialer's run: %v", im, len(r.stray), r.stray)
		}
	}
	rttMs := float64(sc.rtt) / 1e6
	limit := slackFactor*res.best + rttMs
	tMed := median(tr.times)
	switch {
	case tMed <= limit:
	case sc.num == 2 || sc.num == 3 || sc.num == 5:
		// Unreachable for a dialer that knows nothing (see the package
		// comment): logged; the learned runs carry the goal.
		t.Logf("GOAL MISSED (known limit: a fresh dialer cannot know the first addresses are dead before the gap): tachyon's median %.1f ms > %.1f ms (1.1 x best single %.1f ms via %s + 1 RTT %.0f ms); runs %v",
			tMed, limit, res.best, res.bestAddr, rttMs, tr.times)
	default:
		t.Errorf("GOAL MISSED: tachyon's median %.1f ms > %.1f ms (1.1 x best single %.1f ms via %s + 1 RTT %.0f ms); runs %v, connected via %v",
			tMed, limit, res.best, res.bestAddr, rttMs, tr.times, tr.connected)
	}
	if gr.err == nil {
		gMed := median(gr.times)
		tMin, gMin := slices.Min(tr.times), slices.Min(gr.times)
		if tMed > gMed*1.05+1 && tMin > gMin*1.05+1 {
			t.Errorf("GOAL MISSED: tachyon's median %.1f ms > go-libp2p's %.1f ms and its best %.1f ms > go's %.1f ms (+1 ms + 5 %%); tachyon %v via %v, go %v via %v",
				tMed, gMed, tMin, gMin, tr.times, tr.connected, gr.times, gr.connected)
		}
		tw, gw := intsF(tr.wire), intsF(gr.wire)
		if median(tw) > median(gw) || slices.Max(tw) > slices.Max(gw) {
			t.Errorf("GOAL MISSED: tachyon starts more dials than go-libp2p: tachyon %v, go %v (flows: tachyon %v, go %v)", tr.wire, gr.wire, tr.flows, gr.flows)
		}
	}
	if sc.num == 1 {
		for i, w := range tr.wire {
			if w != 1 {
				t.Errorf("GOAL MISSED: scenario 1, tachyon iteration %d started %d dials, want 1: %v", i+1, w, tr.flows[i])
			}
		}
	}
	if lr := res.learn; lr != nil {
		switch {
		case lr.err != nil:
			t.Errorf("learning run: %v", lr.err)
		case lr.learnedAt < 0:
			t.Errorf("GOAL MISSED: the black hole was not learned in %d same-host dials: %s", len(lr.runs), describeRuns(lr.runs))
		default:
			// Per class (UDP or TCP, IPv4 or IPv6): an IPv6 black hole is
			// learned for QUIC before TCP, which is dialed less.
			learned := map[string]bool{}
			for i, r := range lr.runs {
				for _, s := range r.Skipped {
					if strings.Contains(s.Reason, "black hole") {
						learned[classOf(s.Addr)] = true
					}
				}
				for _, a := range r.Attempts {
					if sc.inHole(a.Addr) && !a.Probe && learned[classOf(a.Addr)] {
						t.Errorf("GOAL MISSED: same-host dial %d went into the black hole (%s, learned before), not as a probe: %s\n%s", i+1, classOf(a.Addr), a.Addr, r.Trace)
					}
				}
			}
			if m := median(lr.after); m > limit {
				t.Errorf("GOAL MISSED: learned black hole: tachyon's median %.1f ms > %.1f ms (1.1 x best single %.1f ms + 1 RTT); runs %v", m, limit, res.best, lr.after)
			}
			if lr.holeWire != lr.holeJSON || lr.wireTotal != lr.jsonTotal {
				t.Errorf("same-host run: the wire shows %d flows, %d into the black hole; the JSON %d attempts, %d into it", lr.wireTotal, lr.holeWire, lr.jsonTotal, lr.holeJSON)
			}
		}
	}
}

// classOf is an address's black-hole class as dialrank names them
// ("udp/ip6"); relayed addresses have none.
func classOf(addr string) string {
	if strings.Contains(addr, "/p2p-circuit") {
		return "none"
	}
	fam, proto := "ip4", "tcp"
	if isIPv6(addr) {
		fam = "ip6"
	}
	if isUDP(addr) {
		proto = "udp"
	}
	return proto + "/" + fam
}

// sharedRelayAttempts counts a run's relayed attempts after the first
// through the same relay peer.
func sharedRelayAttempts(r dialRun) int {
	seen := map[string]bool{}
	n := 0
	for _, a := range r.Attempts {
		i := strings.Index(a.Addr, "/p2p-circuit")
		if i < 0 {
			continue
		}
		relay := peerOf(a.Addr[:i])
		if seen[relay] {
			n++
		}
		seen[relay] = true
	}
	return n
}

func describeRuns(runs []dialRun) string {
	var b strings.Builder
	for i, r := range runs {
		fmt.Fprintf(&b, "\n  %d: %.1f ms via %s:", i+1, r.ConnectMillis, r.Addr)
		for _, a := range r.Attempts {
			fmt.Fprintf(&b, " [%s %s probe=%v]", a.Addr, a.Outcome, a.Probe)
		}
		for _, s := range r.Skipped {
			fmt.Fprintf(&b, " [skipped %s: %s]", s.Addr, s.Reason)
		}
	}
	return b.String()
}

func intsF(v []int) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// median of v (the mean of the middle two for an even count); NaN if empty.
func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
