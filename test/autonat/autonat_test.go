// Package autonat checks AutoNAT verdicts end to end on the testbed: a
// client (`tachyon node` or golibp2p-peer autonat-client, go-libp2p v0.51)
// on an emulated host 40 ms (RTT) from three AutoNAT servers in the core
// (`tachyon node` or golibp2p-peer autonat-server, on three core hosts:
// three observer /24s), and a tachyon relay in the core.
//
// Scenarios (the client listens on TCP and QUIC, IPv4, plus IPv6 in 6):
//
//  1. public host: TCP public, QUIC public;
//  2. endpoint-independent NAT forwarding the client's TCP port: NAT:P/tcp
//     public, NAT:P/quic private;
//  3. endpoint-independent NAT, no forward: both private, and a tachyon
//     client advertises only its relay addresses;
//  4. symmetric NAT: no candidate address at all, relay addresses only;
//  5. public host with UDP blackholed: TCP public, QUIC private;
//  6. routed IPv6 and IPv4 behind an endpoint-independent NAT: IPv6 TCP and
//     QUIC public, IPv4 both private;
//  7. scenario 2, then the NAT's outside address changes: the new NAT:P/tcp
//     advertised and the old one no longer, within 10 s.
//
// Each scenario has one client host (or a NAT and a host behind it) shared
// by four cells on four ports: (client, servers) = (tachyon, tachyon),
// (tachyon, go), (go, tachyon), (go, go). A go client gets one address per
// process (its README: with two addresses and three servers go's 2-minute
// per-server spacing delays the second verdict to ~156 s), so a go cell is
// one process per address.
//
// Per cell it records each address's final verdict against the truth, the
// time from the client's start to its correct verdict, the probes the
// servers served for it until then, verdict changes after the correct one
// (flaps), and for tachyon clients the advertised set. After the verdicts
// the client links lose 2 % of packets for the soak (60 s in CI, 5 min in
// `make autonat`) and every later verdict change is a flap.
//
// Asserted: every tachyon client's verdicts and exact advertised set, and
// no flap; for tachyon clients of tachyon servers also every verdict
// within 3 probes and 5 s of start, and scenario 7 re-advertised within
// 10 s (the reachability goals); go clients of tachyon servers must be right
// wherever go clients of go servers are. Other go numbers are tabulated.
// In CI, goals missed for a documented cause are logged as "GOAL MISSED
// (known limit: ...)" instead of failing (make autonat fails on them):
//
//   - a private verdict waits for the servers' dial-back timeout (3 s for tachyon servers, 5-10 s for go's);
//   - observed addresses come per transport and family, and a tachyon
//     client reaches each peer over one transport: with fewer than 3
//     observers (servers, relay) on a transport, its outside address there
//     is no candidate (checked against the NAT's conntrack table), and the
//     advertised set lacks it;
//   - after a renumbering nothing tells the client until a connection is
//     re-made, and the old address is withdrawn only once private.
//
// docs/autonat-results.md has the measured tables and the causes.
//
// Needs root (network namespaces); TACHYON_SKIP_NETNS=1 skips it elsewhere.
// Runs without -race (timings):
//
//	go test -count=1 -v ./test/autonat
//
// TACHYON_AUTONAT_FULL=1 (make autonat) soaks 5 minutes, repeats the
// whole run TACHYON_AUTONAT_ROUNDS times (default 3), waits longer for go's
// slow verdicts, turns missed timing goals into failures, and writes the
// tables to TACHYON_AUTONAT_TABLE.
package autonat

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/testbed"
)

const (
	oneWay     = 20 * time.Millisecond // on the client's (or its NAT's) link; servers' links have none
	lossRate   = 0.02                  // on the client's link during the soak
	verdictMax = 5 * time.Second       // goal: every verdict within 5 s of start
	probesMax  = 3                     // goal: within 3 probes
	readvMax   = 10 * time.Second      // goal: re-advertised within 10 s of an outside address change
)

type impl string

const (
	tachyonImpl impl = "tachyon"
	goImpl      impl = "go-libp2p"
)

// Verdicts as printed and tabulated; none: the address was never a
// candidate.
const (
	public  = "public"
	private = "private"
	unknown = "unknown"
	none    = "none"
)

// slot is one listening address of a client: family and transport.
type slot struct {
	v6   bool
	quic bool
}

func (s slot) String() string {
	f, tp := "ip4", "tcp"
	if s.v6 {
		f = "ip6"
	}
	if s.quic {
		tp = "quic"
	}
	return f + "/" + tp
}

// maddr is the slot's address at ip and port.
func (s slot) maddr(ip netip.Addr, port int) string {
	f := "/ip4/"
	if s.v6 {
		f = "/ip6/"
	}
	if s.quic {
		return fmt.Sprintf("%s%s/udp/%d/quic-v1", f, ip, port)
	}
	return fmt.Sprintf("%s%s/tcp/%d", f, ip, port)
}

// truth is one address's expected verdict.
type truth struct {
	slot    slot
	addr    string // "" when there is no candidate address (verdict none)
	verdict string
}

// scenario is one client location.
type scenario struct {
	num  int
	name string
	nat  *testbed.NAT
	host *testbed.Host
	// link carries the delay (the host's or its NAT's) and gets the loss.
	link  *testbed.Link
	base  testbed.LinkConfig
	slots []slot
	// verdictOf is the truth for a slot, given the current outside address.
	verdictOf func(s slot) string
	// outside is where peers see the slot now.
	outside func(s slot) netip.Addr
}

func (sc *scenario) truths(port int) []truth {
	var out []truth
	for _, s := range sc.slots {
		v := sc.verdictOf(s)
		t := truth{slot: s, verdict: v}
		if v != none {
			t.addr = s.maddr(sc.outside(s), port)
		}
		out = append(out, t)
	}
	return out
}

// cell is one (scenario, client impl, server impl) and its processes.
type cell struct {
	sc      *scenario
	client  impl
	servers impl
	port    int
	procs   []*clientProc // tachyon: one; go: one per slot
	// conns: a tachyon client behind a NAT, the servers it reached per
	// slot after the verdict phase (serverConns); connsErr if unknown.
	conns    map[slot]int
	connsErr error
}

func (c *cell) String() string {
	return fmt.Sprintf("%d %s: client %s, servers %s", c.sc.num, c.sc.name, c.client, c.servers)
}

// connsNote describes how a tachyon client behind a NAT reached its
// servers.
func (c *cell) connsNote() string {
	switch {
	case c.client != tachyonImpl || c.sc.nat == nil:
		return ""
	case c.connsErr != nil:
		return c.connsErr.Error()
	}
	var parts []string
	for _, s := range c.sc.slots {
		if !s.v6 {
			parts = append(parts, fmt.Sprintf("%d %s", c.conns[s], s))
		}
	}
	return "observers (servers, relay) reached over " + strings.Join(parts, ", ")
}

// noObservers: the client cannot have had the slot's outside address as a
// candidate: fewer than 3 observers (the observed-address threshold) were
// connected over its transport and family. IPv6 behind the NATs here is
// routed: its candidates are listen addresses, and its flows are not
// tracked.
func (c *cell) noObservers(s slot) bool {
	return c.client == tachyonImpl && c.sc.nat != nil && !s.v6 && c.connsErr == nil && c.conns[s] < 3
}

// serverConns counts, per slot (family and transport), the observers (its
// servers and the relay) a client behind a NAT reached from its listening
// port, from the NAT's connection tracking table. Observed addresses come
// per transport and family, so with fewer than 3 such observers (the
// observed-address threshold) the client cannot have that slot's outside
// address as a candidate. Nil for a client without NAT, whose candidates are its listen
// addresses.
func (r *run) serverConns(c *cell) (map[slot]int, error) {
	if c.sc.nat == nil {
		return nil, nil
	}
	// Observers: the servers on their port, and the relay the client
	// holds a reservation on (over TCP).
	dport := "dport=4001"
	if c.servers == goImpl {
		dport = "dport=4002"
	}
	observers := map[string]string{strings.Split(r.relay, "/")[2]: "dport=4001"}
	for _, m := range r.servers[c.servers].addrs {
		for _, a := range m {
			observers[strings.Split(a, "/")[2]] = dport
		}
	}
	ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", c.sc.nat.Namespace(), "cat", "/proc/net/nf_conntrack").Output()
	if err != nil {
		return nil, fmt.Errorf("reading the connection tracking table of NAT %s: %w", c.sc.nat.Name(), err)
	}
	seen := map[slot]map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 6 || f[2] != "tcp" && f[2] != "udp" || f[2] == "tcp" && !slices.Contains(f, "ESTABLISHED") {
			continue
		}
		// The original direction: the first src, dst, sport and dport.
		var dst, sport, dp string
		for _, kv := range f {
			k, v, _ := strings.Cut(kv, "=")
			switch {
			case k == "dst" && dst == "":
				dst = v
			case k == "sport" && sport == "":
				sport = v
			case k == "dport" && dp == "":
				dp = kv
			}
		}
		if sport != strconv.Itoa(c.port) || dp != observers[dst] {
			continue
		}
		s := slot{v6: f[0] == "ipv6", quic: f[2] == "udp"}
		if seen[s] == nil {
			seen[s] = map[string]bool{}
		}
		seen[s][dst] = true
	}
	conns := map[slot]int{}
	for s, m := range seen {
		conns[s] = len(m)
	}
	return conns, nil
}

// clientProc is one client process and what it covers.
type clientProc struct {
	p     *proc
	id    string
	slots []slot
}

// servers are the three AutoNAT servers of one implementation.
type serverSet struct {
	impl  impl
	procs []*proc
	ids   []string
	// addrs[i]: server i's full addresses (with /p2p/) by slot.
	addrs []map[slot]string
}

type run struct {
	t        *testing.T
	ctx      context.Context
	bins     map[impl]string
	servers  map[impl]*serverSet
	relay    string   // the relay's TCP address with /p2p/
	relayAdv []string // the relay addresses a client behind it should advertise
	full     bool
}

func TestAutoNAT(t *testing.T) {
	if raceEnabled {
		t.Skip("timings: runs without -race (the Makefile's TIMED list)")
	}
	leakcheck.Check(t)
	start := time.Now()
	full := os.Getenv("TACHYON_AUTONAT_FULL") == "1"
	rounds, soak, verdictWait := 1, 60*time.Second, 45*time.Second
	if full {
		rounds, soak, verdictWait = 3, 5*time.Minute, 200*time.Second
		if s := os.Getenv("TACHYON_AUTONAT_ROUNDS"); s != "" {
			v, err := strconv.Atoi(s)
			if err != nil || v < 1 {
				t.Fatalf("TACHYON_AUTONAT_ROUNDS=%q: want a positive number", s)
			}
			rounds = v
		}
	}
	if s := os.Getenv("TACHYON_AUTONAT_SOAK"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("TACHYON_AUTONAT_SOAK=%q: %v", s, err)
		}
		soak = d
	}
	n := testbed.ForTest(t, testbed.PublicAddresses())
	ctx := context.Background()
	tachyonBin, goBin := buildBinaries(t, ctx)
	t.Logf("built in %s", time.Since(start).Round(time.Second))
	r := &run{t: t, ctx: ctx, bins: map[impl]string{tachyonImpl: tachyonBin, goImpl: goBin}, full: full}

	var srvHosts []*testbed.Host
	for i := range 3 {
		h, err := n.AddHost(fmt.Sprintf("srv%d", i+1), testbed.LinkConfig{})
		if err != nil {
			t.Fatal(err)
		}
		srvHosts = append(srvHosts, h)
	}
	rh, err := n.AddHost("relay", testbed.LinkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	scs := buildScenarios(t, n)
	if only := os.Getenv("TACHYON_AUTONAT_ONLY"); only != "" {
		scs = slices.DeleteFunc(scs, func(sc *scenario) bool { return !strings.Contains(","+only+",", ","+strconv.Itoa(sc.num)+",") })
	}
	for _, sc := range scs {
		if rtt := n.RTT(sc.host, srvHosts[0]); rtt != 2*oneWay {
			t.Fatalf("scenario %d: RTT to the servers %s, want %s", sc.num, rtt, 2*oneWay)
		}
	}
	r.startServers(srvHosts, rh)
	t.Logf("servers and relay up at %s", time.Since(start).Round(time.Second))

	var all []*roundResult
	for i := range rounds {
		rr := r.round(scs, verdictWait, soak)
		all = append(all, rr)
		t.Logf("round %d/%d done at %s", i+1, rounds, time.Since(start).Round(time.Second))
	}
	table := renderTables(all, soak, full)
	t.Logf("\n%s", table)
	if f := os.Getenv("TACHYON_AUTONAT_TABLE"); f != "" {
		if err := os.WriteFile(f, []byte(table), 0o644); err != nil {
			t.Error(err)
		}
	}
	dumped := os.Getenv("TACHYON_AUTONAT_DUMP") == "1"
	for _, rr := range all {
		// What the failing clients printed, and the servers' lines about
		// them: a failure in CI is often the only one seen.
		if failed := checkGoals(t, rr, full); len(failed) > 0 && !dumped {
			r.dump(failed)
		}
	}
	t.Logf("total %s", time.Since(start).Round(time.Second))
}

// buildScenarios makes each scenario's client host, and its NAT.
func buildScenarios(t *testing.T, n *testbed.Network) []*scenario {
	t.Helper()
	delay := testbed.LinkConfig{Delay: oneWay}
	v4 := []slot{{quic: false}, {quic: true}}
	dual := []slot{{}, {quic: true}, {v6: true}, {v6: true, quic: true}}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	publicHost := func(num int, name string, cfg testbed.LinkConfig, verdict func(slot) string) *scenario {
		h, err := n.AddHost(fmt.Sprintf("c%d", num), cfg)
		must(err)
		return &scenario{num: num, name: name, host: h, link: h.Link(), base: cfg, slots: v4, verdictOf: verdict,
			outside: func(s slot) netip.Addr { return h.IPv4() }}
	}
	natHost := func(num int, name string, typ testbed.NATType, slots []slot, verdict func(slot) string, opts ...testbed.NATOption) *scenario {
		nat, err := n.AddNAT(fmt.Sprintf("n%d", num), typ, delay, opts...)
		must(err)
		h, err := nat.AddHost(fmt.Sprintf("c%d", num), testbed.LinkConfig{})
		must(err)
		return &scenario{num: num, name: name, nat: nat, host: h, link: nat.Link(), base: delay, slots: slots, verdictOf: verdict,
			outside: func(s slot) netip.Addr {
				if s.v6 {
					return h.IPv6() // routed
				}
				return nat.IPv4()
			}}
	}
	tcpOnly := func(s slot) string {
		if s.quic {
			return private
		}
		return public
	}
	scs := []*scenario{
		publicHost(1, "public host", delay, func(slot) string { return public }),
		natHost(2, "EIM NAT, TCP forwarded", testbed.EndpointIndependent, v4, tcpOnly),
		natHost(3, "EIM NAT, no forward", testbed.EndpointIndependent, v4, func(slot) string { return private }),
		natHost(4, "symmetric NAT", testbed.Symmetric, v4, func(slot) string { return none }),
		publicHost(5, "public host, UDP blackholed", testbed.LinkConfig{Delay: oneWay, Blackhole: testbed.Blackhole{UDP: true}}, tcpOnly),
		natHost(6, "IPv6 routed, IPv4 EIM NAT", testbed.EndpointIndependent, dual, func(s slot) string {
			if s.v6 {
				return public
			}
			return private
		}, testbed.RoutedIPv6()),
		natHost(7, "EIM NAT, TCP forwarded, outside address changes", testbed.EndpointIndependent, v4, tcpOnly),
	}
	for _, sc := range scs {
		if sc.num != 2 && sc.num != 7 {
			continue
		}
		for _, p := range cellPorts {
			must(sc.nat.Forward("tcp", uint16(p), sc.host, uint16(p)))
		}
	}
	return scs
}

// cellPorts: each cell of a scenario listens on its own port of the
// shared client host (TCP and UDP).
var cellPorts = map[[2]impl]int{
	{tachyonImpl, tachyonImpl}: 4001,
	{tachyonImpl, goImpl}:      4011,
	{goImpl, tachyonImpl}:      4021,
	{goImpl, goImpl}:           4031,
}

var cellOrder = [][2]impl{{tachyonImpl, tachyonImpl}, {tachyonImpl, goImpl}, {goImpl, tachyonImpl}, {goImpl, goImpl}}

// startServers starts three tachyon and three go-libp2p AutoNAT servers
// (one of each per core host: ports 4001 and 4002) and the tachyon relay.
func (r *run) startServers(hosts []*testbed.Host, rh *testbed.Host) {
	t := r.t
	r.servers = map[impl]*serverSet{tachyonImpl: {impl: tachyonImpl}, goImpl: {impl: goImpl}}
	listen := func(h *testbed.Host, port int) []string {
		var out []string
		for _, s := range []slot{{}, {quic: true}, {v6: true}, {v6: true, quic: true}} {
			ip := h.IPv4()
			if s.v6 {
				ip = h.IPv6()
			}
			out = append(out, "--listen", s.maddr(ip, port))
		}
		return out
	}
	for i, h := range hosts {
		// Servers know they are public: their own reachability checks
		// would only add requests to the clients'.
		tp := startProc(t, r.ctx, h, fmt.Sprintf("tachyon server %d", i+1), r.bins[tachyonImpl],
			append([]string{"node", "--reachability", "public", "--no-holepunch", "--log-level", "debug"}, listen(h, 4001)...)...)
		gp := startProc(t, r.ctx, h, fmt.Sprintf("go server %d", i+1), r.bins[goImpl],
			append([]string{"autonat-server"}, listen(h, 4002)...)...)
		for im, p := range map[impl]*proc{tachyonImpl: tp, goImpl: gp} {
			ss := r.servers[im]
			ss.procs = append(ss.procs, p)
			port := 4001
			if im == goImpl {
				port = 4002
			}
			ids := ""
			if im == tachyonImpl {
				l, err := p.waitLine(20*time.Second, "/p2p/")
				if err != nil {
					t.Fatal(err)
				}
				ids = l[strings.LastIndex(l, "/p2p/")+len("/p2p/"):]
			} else {
				l, err := p.waitLine(20*time.Second, `"event":"listening"`)
				if err != nil {
					t.Fatal(err)
				}
				var ev goLine
				if err := json.Unmarshal([]byte(l), &ev); err != nil {
					t.Fatalf("%s: %q: %v", p.name, l, err)
				}
				ids = ev.Peer
			}
			ss.ids = append(ss.ids, ids)
			m := map[slot]string{}
			for _, s := range []slot{{}, {quic: true}, {v6: true}, {v6: true, quic: true}} {
				ip := h.IPv4()
				if s.v6 {
					ip = h.IPv6()
				}
				m[s] = s.maddr(ip, port) + "/p2p/" + ids
			}
			ss.addrs = append(ss.addrs, m)
		}
	}
	rIP := rh.IPv4()
	rp := startProc(t, r.ctx, rh, "tachyon relay", r.bins[tachyonImpl], "node", "--relay-service", "--reachability", "public",
		"--no-holepunch", "--no-autonat-service",
		"--listen", slot{}.maddr(rIP, 4001), "--listen", slot{quic: true}.maddr(rIP, 4001))
	l, err := rp.waitLine(20*time.Second, "/p2p/")
	if err != nil {
		t.Fatal(err)
	}
	rid := l[strings.LastIndex(l, "/p2p/")+len("/p2p/"):]
	r.relay = slot{}.maddr(rIP, 4001) + "/p2p/" + rid
	// A client behind the relay advertises a circuit address through
	// each address the relay advertises (its /tls and /noise forms
	// included), which it printed at start.
	if _, err := rp.waitLine(5*time.Second, "/noise/p2p/"); err != nil {
		t.Fatal(err)
	}
	for _, l := range rp.lines(false) {
		if strings.HasPrefix(l.text, "/ip") && strings.HasSuffix(l.text, "/p2p/"+rid) {
			r.relayAdv = append(r.relayAdv, l.text+"/p2p-circuit")
		}
	}
}

// roundResult is one run of every cell.
type roundResult struct {
	cells   []*cell
	results map[*cell]*cellResult
	soak    time.Duration
}

// round starts every cell's clients, waits for the verdicts, changes
// scenario 7's outside address, soaks with loss, and evaluates.
func (r *run) round(scs []*scenario, verdictWait, soak time.Duration) *roundResult {
	t := r.t
	for _, sc := range scs {
		if err := sc.link.Update(sc.base); err != nil {
			t.Fatal(err)
		}
	}
	rr := &roundResult{results: map[*cell]*cellResult{}, soak: soak}
	var startWG sync.WaitGroup
	for _, sc := range scs {
		for _, k := range cellOrder {
			c := &cell{sc: sc, client: k[0], servers: k[1], port: cellPorts[k]}
			rr.cells = append(rr.cells, c)
		}
	}
	// Starting 50 processes at once would measure the machine's two
	// cores (a client took 1.5 s to print its addresses); one scenario's
	// clients a second spreads the start-up.
	for i, sc := range scs {
		if i > 0 {
			time.Sleep(time.Second)
		}
		for _, c := range rr.cells {
			if c.sc != sc {
				continue
			}
			startWG.Add(1)
			go func() {
				defer startWG.Done()
				r.startClient(c)
			}()
		}
	}
	startWG.Wait()

	// Phase 1: verdicts on a clean 40 ms network.
	deadline := time.Now().Add(verdictWait)
	for time.Now().Before(deadline) && !allSettled(r, rr.cells) {
		time.Sleep(250 * time.Millisecond)
	}

	for _, c := range rr.cells {
		if c.client == tachyonImpl {
			c.conns, c.connsErr = r.serverConns(c)
		}
	}

	// Phase 2: scenario 7's NAT changes its outside address.
	var changed time.Time
	var pre map[*cell]*cellResult
	for _, c := range rr.cells {
		if c.sc.num == 7 && changed.IsZero() {
			pre = map[*cell]*cellResult{}
			for _, d := range rr.cells {
				if d.sc.num == 7 {
					pre[d] = r.evaluate(d, time.Time{}, time.Now())
				}
			}
			old := c.sc.nat.IPv4()
			now, err := c.sc.nat.ChangeOutsideAddress()
			if err != nil {
				t.Fatal(err)
			}
			changed = time.Now()
			var at []string
			for _, d := range rr.cells {
				if d.sc.num == 7 {
					for _, cp := range d.procs {
						at = append(at, fmt.Sprintf("%s at %s", cp.p.name, fmtDur(changed.Sub(cp.p.started))))
					}
				}
			}
			t.Logf("scenario 7: NAT outside address %s -> %s; %s", old, now, strings.Join(at, ", "))
			limit := time.Now().Add(3 * readvMax)
			for time.Now().Before(limit) && !readvertised(r, rr.cells, changed) {
				time.Sleep(100 * time.Millisecond)
			}
		}
	}

	// Phase 3: soak with loss on every client link.
	for _, sc := range scs {
		cfg := sc.base
		cfg.Loss = lossRate
		if err := sc.link.Update(cfg); err != nil {
			t.Fatal(err)
		}
	}
	soakStart := time.Now()
	time.Sleep(soak)
	end := time.Now()
	for _, c := range rr.cells {
		res := r.evaluate(c, changed, end)
		res.soakStart = soakStart
		if c.sc.num == 7 {
			res.pre = pre[c]
		}
		rr.results[c] = res
	}
	if os.Getenv("TACHYON_AUTONAT_DUMP") == "1" {
		r.dump(rr.cells)
	}
	for _, c := range rr.cells {
		for _, cp := range c.procs {
			cp.p.stop()
		}
	}
	for _, sc := range scs {
		if err := sc.link.Update(sc.base); err != nil {
			t.Fatal(err)
		}
	}
	return rr
}

// startClient starts a cell's client process(es).
func (r *run) startClient(c *cell) {
	t := r.t
	sc := c.sc
	ss := r.servers[c.servers]
	h := sc.host
	name := fmt.Sprintf("%s client (scenario %d, %s servers)", c.client, sc.num, c.servers)
	if c.client == tachyonImpl {
		args := []string{"node", "--no-holepunch", "--log-level", "info", "--observed-addr-threshold", "3", "--relay", r.relay}
		for _, s := range sc.slots {
			ip := "0.0.0.0"
			if s.v6 {
				ip = "::"
			}
			args = append(args, "--listen", s.maddr(netip.MustParseAddr(ip), c.port))
		}
		// Every server by each of its addresses in the client's families:
		// the client picks how it connects. Scenario 7 is about the TCP
		// address that follows the NAT: TCP only, so that the client has
		// it as a candidate at all (see noObservers).
		for _, m := range ss.addrs {
			for _, s := range sc.slots {
				if sc.num != 7 || !s.quic {
					args = append(args, "--bootstrap", m[s])
				}
			}
		}
		p := startProc(t, r.ctx, h, name, r.bins[tachyonImpl], args...)
		cp := &clientProc{p: p, slots: sc.slots}
		if l, err := p.waitLine(20*time.Second, "/p2p/"); err == nil {
			cp.id = l[strings.LastIndex(l, "/p2p/")+len("/p2p/"):]
		} else {
			t.Errorf("%s: %v", c, err)
		}
		c.procs = append(c.procs, cp)
		return
	}
	for _, s := range sc.slots {
		ip := h.IPv4()
		if s.v6 {
			ip = h.IPv6()
		}
		transport := "tcp"
		if s.quic {
			transport = "tcp,quic-v1" // TCP too: under a UDP black hole it reaches the servers only so
		}
		args := []string{"autonat-client", "--listen", s.maddr(ip, c.port), "--transport", transport, "--observed-addr-threshold", "3"}
		for _, m := range ss.addrs {
			// The slot's own transport, so that the servers observe the
			// listening socket; a QUIC client may fall back to TCP.
			args = append(args, "--server", m[s])
			if s.quic {
				args = append(args, "--server", m[slot{v6: s.v6}])
			}
		}
		p := startProc(t, r.ctx, h, name+" "+s.String(), r.bins[goImpl], args...)
		cp := &clientProc{p: p, slots: []slot{s}}
		if l, err := p.waitLine(20*time.Second, `"event":"listening"`); err == nil {
			var ev goLine
			if err := json.Unmarshal([]byte(l), &ev); err == nil {
				cp.id = ev.Peer
			}
		} else {
			t.Errorf("%s %s: %v", c, s, err)
		}
		c.procs = append(c.procs, cp)
	}
}

// allSettled: every cell's addresses have their true verdict (go cells
// too, so that the wait also covers go's slower verdicts, up to the
// limit).
func allSettled(r *run, cells []*cell) bool {
	for _, c := range cells {
		res := r.evaluate(c, time.Time{}, time.Now())
		if !res.allRight() {
			return false
		}
		if c.client == tachyonImpl && !res.advRight {
			return false
		}
	}
	return true
}

// readvertised: scenario 7's tachyon cells advertise the new outside
// address (go cells report it reachable).
func readvertised(r *run, cells []*cell, changed time.Time) bool {
	for _, c := range cells {
		if c.sc.num != 7 {
			continue
		}
		res := r.evaluate(c, changed, time.Now())
		if c.client == tachyonImpl && !res.advRight || c.client == goImpl && !res.allRight() {
			return false
		}
	}
	return true
}

// addrResult is one address's outcome in a cell.
type addrResult struct {
	truth   truth
	final   string
	right   bool
	at      time.Duration // client start -> the correct verdict (the last change to it)
	probes  int           // requests the servers served about it until then
	flaps   int           // verdict changes after the first correct verdict
	wrong   []string      // verdicts given before the correct one, or instead of it
	history []string      // every verdict change, "verdict@time"
}

type cellResult struct {
	addrs    []*addrResult
	extra    []string // verdicts for addresses that are no candidates by the truth
	advRight bool     // tachyon: the final advertised set is exact
	adv      []string // tachyon: final advertised set
	advWant  []string
	// advWantLimited: advWant without the slots the client had no
	// candidate for (noObservers), the known limit.
	advWantLimited []string
	advAt          time.Duration // tachyon: client start -> the final advertised set
	// advChanges: tachyon, changes of the advertised set after it was
	// first exact.
	advChanges int
	// readv: scenario 7, outside address change -> the new set advertised
	// (tachyon) or the new address reachable (go); 0: not yet.
	readv     time.Duration
	pre       *cellResult // scenario 7 before the change
	soakStart time.Time
	problems  []string // the cell could not run properly
}

func (r *cellResult) allRight() bool {
	for _, a := range r.addrs {
		if !a.right {
			return false
		}
	}
	return len(r.extra) == 0
}

func (r *cellResult) rightCount() int {
	n := 0
	for _, a := range r.addrs {
		if a.right {
			n++
		}
	}
	return n
}

// maxTime is the time to the last correct verdict, and how many
// addresses are wrong.
func (r *cellResult) maxTime() (last time.Duration, wrong int) {
	for _, a := range r.addrs {
		if !a.right {
			wrong++
			continue
		}
		last = max(last, a.at)
	}
	return last, wrong
}

// change is one verdict change of one address, at an absolute time.
type change struct {
	at      time.Time
	addr    string
	verdict string
}

// evaluate compares a cell's output until end with the truth. With a
// non-zero changed (scenario 7), the truth is the one after the change
// and only changes after it count.
func (r *run) evaluate(c *cell, changed, end time.Time) *cellResult {
	res := &cellResult{}
	truths := c.sc.truths(c.port)
	since := time.Time{}
	if c.sc.num == 7 && !changed.IsZero() {
		since = changed
	}
	for _, cp := range c.procs {
		var changes []change
		var adv []stamped
		goPrev := map[string]string{}
		for _, l := range cp.p.lines(false) {
			at := cp.p.started.Add(l.at)
			if at.After(end) {
				break
			}
			if c.client == tachyonImpl {
				if a, v, ok := parseTachyonVerdict(l.text); ok {
					changes = append(changes, change{at: at, addr: a, verdict: v})
				}
				if rest, ok := strings.CutPrefix(l.text, "advertised: "); ok {
					adv = append(adv, stamped{at: l.at, text: rest})
				}
			} else {
				changes = append(changes, goChanges(l.text, at, goPrev)...)
			}
		}
		for _, tr := range truths {
			if !slices.Contains(cp.slots, tr.slot) {
				continue
			}
			res.addrs = append(res.addrs, r.judge(cp, tr, changes, since))
		}
		// Verdicts about addresses that are no candidate by the truth: the
		// symmetric NAT's random ports, scenario 7's old address before
		// the change is exempt.
		for _, ch := range changes {
			if ch.verdict == unknown || ch.verdict == none || ch.at.Before(since) {
				continue
			}
			if !slices.ContainsFunc(truths, func(tr truth) bool { return tr.addr == ch.addr }) {
				if c.sc.num == 7 && !since.IsZero() && isOld(c, ch.addr, truths) {
					continue
				}
				// A private verdict on an address the truth has no
				// candidate for (a tachyon client guesses its NAT's IP on
				// every listener, and a symmetric NAT maps none of them) is
				// true: nothing in these scenarios forwards it. Only a
				// public one would be wrong.
				if ch.verdict == private {
					continue
				}
				res.extra = append(res.extra, fmt.Sprintf("%s %s at %s", ch.addr, ch.verdict, fmtDur(ch.at.Sub(cp.p.started))))
			}
		}
		if c.client == tachyonImpl {
			res.advWant = r.wantAdvertised(truths)
			firstExact := -1
			for i, l := range adv {
				if firstExact < 0 && sameSet(advFields(l.text), res.advWant) && !cp.p.started.Add(l.at).Before(since) {
					firstExact = i
				} else if firstExact >= 0 {
					res.advChanges++
				}
			}
			if len(adv) > 0 {
				last := adv[len(adv)-1]
				res.adv = advFields(last.text)
				res.advAt = last.at
				res.advRight = sameSet(res.adv, res.advWant)
				if res.advRight && !since.IsZero() && cp.p.started.Add(last.at).After(since) {
					res.readv = cp.p.started.Add(last.at).Sub(since)
				}
			} else {
				res.advRight = len(res.advWant) == 0
			}
		}
		if c.client == tachyonImpl {
			// What the client can advertise at best when it has no
			// candidate for a slot (noObservers).
			var reachable []truth
			for _, a := range res.addrs {
				if !(a.final == none && c.noObservers(a.truth.slot)) {
					reachable = append(reachable, a.truth)
				}
			}
			res.advWantLimited = r.wantAdvertised(reachable)
		}
		if cp.id == "" {
			res.problems = append(res.problems, cp.p.name+" did not start")
		}
	}
	if c.client == goImpl && !since.IsZero() && res.allRight() {
		// The latest correct verdict after the change.
		for _, a := range res.addrs {
			if a.truth.verdict == public {
				res.readv = max(res.readv, a.at-since.Sub(c.procs[0].p.started))
			}
		}
	}
	return res
}

// isOld: addr is one of scenario 7's addresses before the change (same
// port and transport as a truth address, another IP).
func isOld(c *cell, addr string, truths []truth) bool {
	for _, tr := range truths {
		if tr.addr == "" {
			continue
		}
		i := strings.Index(tr.addr[len("/ip4/"):], "/")
		if i > 0 && strings.HasSuffix(addr, tr.addr[len("/ip4/")+i:]) {
			return true
		}
	}
	return false
}

// judge is one address's outcome from the verdict changes of its client.
func (r *run) judge(cp *clientProc, tr truth, changes []change, since time.Time) *addrResult {
	a := &addrResult{truth: tr, final: none}
	if tr.verdict == none {
		// No candidate: nothing may be said about any address of this
		// slot; evaluate reports such verdicts as extra.
		a.right = true
		return a
	}
	firstRight := -1
	for i, ch := range changes {
		if ch.addr != tr.addr || ch.at.Before(since) {
			continue
		}
		a.history = append(a.history, fmt.Sprintf("%s@%s", ch.verdict, fmtDur(ch.at.Sub(cp.p.started))))
		a.final = ch.verdict
		switch {
		case ch.verdict == tr.verdict && firstRight < 0:
			firstRight = i
			a.at = ch.at.Sub(cp.p.started)
		case firstRight >= 0:
			a.flaps++
		case ch.verdict != unknown:
			a.wrong = append(a.wrong, ch.verdict)
		}
	}
	a.right = a.final == tr.verdict
	if a.right && a.flaps > 0 {
		// Back to the truth after a flap: the time is the last change.
		for i := len(changes) - 1; i >= 0; i-- {
			if changes[i].addr == tr.addr {
				a.at = changes[i].at.Sub(cp.p.started)
				break
			}
		}
	}
	if a.right && cp.id != "" {
		a.probes = r.probesBefore(cp.id, tr.addr, cp.p.started.Add(a.at))
	}
	return a
}

// wantAdvertised is the exact set a tachyon client must advertise: its
// public addresses, with /tls and /noise forms for TCP, or the relay
// addresses when it has none.
func (r *run) wantAdvertised(truths []truth) []string {
	var out []string
	for _, tr := range truths {
		if tr.verdict != public {
			continue
		}
		out = append(out, tr.addr)
		if !tr.slot.quic {
			out = append(out, tr.addr+"/tls", tr.addr+"/noise")
		}
	}
	if len(out) == 0 {
		out = append(out, r.relayAdv...)
	}
	return out
}

// advFields splits an "advertised:" line's addresses.
func advFields(s string) []string {
	f := strings.Fields(s)
	if len(f) == 1 && f[0] == "(none)" {
		return nil
	}
	return f
}

func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	sort.Strings(x)
	sort.Strings(y)
	return slices.Equal(slices.Compact(x), slices.Compact(y)) && len(x) == len(y)
}

// parseTachyonVerdict reads "reachability: <addr> <verdict> (was ...)".
func parseTachyonVerdict(l string) (addr, verdict string, ok bool) {
	rest, ok := strings.CutPrefix(l, "reachability: ")
	if !ok {
		return "", "", false
	}
	f := strings.Fields(rest)
	if len(f) < 2 {
		return "", "", false
	}
	return f[0], f[1], true
}

// goLine is a golibp2p-peer JSON line (the fields used here).
type goLine struct {
	Event       string   `json:"event"`
	MS          float64  `json:"ms"`
	Peer        string   `json:"peer"`
	Reachable   []string `json:"reachable"`
	Unreachable []string `json:"unreachable"`
	Unknown     []string `json:"unknown"`
	Version     int      `json:"version"`
	Addrs       []string `json:"addrs"`
	Status      string   `json:"status"`
	DialStatus  string   `json:"dialStatus"`
	Dialed      string   `json:"dialed"`
	TookMillis  float64  `json:"tookMillis"`
}

// goChanges turns a reachable-addrs line into per-address verdict
// changes against prev (the state after the previous line, updated): an
// address in no list any more becomes none.
func goChanges(l string, at time.Time, prev map[string]string) []change {
	if !strings.Contains(l, `"event":"reachable-addrs"`) {
		return nil
	}
	var ev goLine
	if json.Unmarshal([]byte(l), &ev) != nil {
		return nil
	}
	now := map[string]string{}
	for _, group := range []struct {
		addrs []string
		v     string
	}{{ev.Reachable, public}, {ev.Unreachable, private}, {ev.Unknown, unknown}} {
		for _, a := range group.addrs {
			now[a] = group.v
		}
	}
	var out []change
	for a, v := range now {
		if prev[a] != v {
			out = append(out, change{at: at, addr: a, verdict: v})
		}
	}
	for a := range prev {
		if _, ok := now[a]; !ok {
			out = append(out, change{at: at, addr: a, verdict: none})
		}
	}
	clear(prev)
	for a, v := range now {
		prev[a] = v
	}
	return out
}

// probesBefore counts the AutoNAT v2 requests about addr from client id
// that any server started before t (tachyon servers' debug log, go
// servers' request lines).
func (r *run) probesBefore(id, addr string, t time.Time) int {
	n := 0
	for _, ss := range r.servers {
		for _, p := range ss.procs {
			if ss.impl == tachyonImpl {
				for _, l := range p.lines(true) {
					if !strings.Contains(l.text, `msg="autonatv2 dial request"`) {
						continue
					}
					kv := logFields(l.text)
					if kv["peer"] != id || kv["addr"] != addr {
						continue
					}
					took, _ := time.ParseDuration(kv["took"])
					if p.started.Add(l.at - took).Before(t) {
						n++
					}
				}
				continue
			}
			for _, l := range p.lines(false) {
				if !strings.Contains(l.text, `"event":"autonat-request"`) {
					continue
				}
				var ev goLine
				if json.Unmarshal([]byte(l.text), &ev) != nil || ev.Peer != id || ev.Version != 2 || len(ev.Addrs) == 0 || ev.Addrs[0] != addr {
					continue
				}
				took := time.Duration(ev.TookMillis * float64(time.Millisecond))
				if p.started.Add(l.at - took).Before(t) {
					n++
				}
			}
		}
	}
	return n
}

// logFields splits a log/slog text line into its key=value pairs.
func logFields(l string) map[string]string {
	out := map[string]string{}
	for len(l) > 0 {
		l = strings.TrimLeft(l, " ")
		eq := strings.IndexByte(l, '=')
		if eq < 0 {
			break
		}
		k := l[:eq]
		l = l[eq+1:]
		var v string
		if strings.HasPrefix(l, `"`) {
			if s, err := strconv.QuotedPrefix(l); err == nil {
				v, _ = strconv.Unquote(s)
				l = l[len(s):]
			} else {
				v, l = l, ""
			}
		} else if sp := strings.IndexByte(l, ' '); sp >= 0 {
			v, l = l[:sp], l[sp:]
		} else {
			v, l = l, ""
		}
		out[k] = v
	}
	return out
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// dump logs every client's stdout and the servers' lines about it
// (TACHYON_AUTONAT_DUMP=1 for every cell; a failing cell always).
func (r *run) dump(cells []*cell) {
	for _, c := range cells {
		for _, cp := range c.procs {
			var b strings.Builder
			for _, l := range cp.p.lines(false) {
				fmt.Fprintf(&b, "  %s %s\n", fmtDur(l.at), l.text)
			}
			for _, l := range cp.p.lines(true) {
				fmt.Fprintf(&b, "  %s [stderr] %s\n", fmtDur(l.at), l.text)
			}
			for _, ss := range r.servers {
				for _, p := range ss.procs {
					for _, l := range append(p.lines(false), p.lines(true)...) {
						if cp.id != "" && strings.Contains(l.text, cp.id) && strings.Contains(l.text, "request") {
							fmt.Fprintf(&b, "  [%s] %s\n", p.name, l.text)
						}
					}
				}
			}
			r.t.Logf("%s (%s):\n%s", cp.p.name, cp.id, b.String())
		}
	}
}
