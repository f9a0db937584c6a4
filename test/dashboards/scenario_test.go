package dashboards

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/daemon"
	"github.com/tachyon-p2p/tachyon/event"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/internal/streamtest"
	"github.com/tachyon-p2p/tachyon/limits"
	"github.com/tachyon-p2p/tachyon/protocol/perf"
	"github.com/tachyon-p2p/tachyon/protocol/relay"
	"github.com/tachyon-p2p/tachyon/reachability"
	"github.com/tachyon-p2p/tachyon/swarm"
)

// allowedEmpty are the panel targets that may return no series after the
// scenario, keyed "file/panel title/refId", with the reason. Keep it empty
// when possible: every entry is a panel nobody checks. The test fails when
// an entry's panel has data.
var allowedEmpty = map[string]string{}

const (
	echoID protocol.ID = "/dash/echo/1.0.0"
	holdID protocol.ID = "/dash/hold/1.0.0" // limited to one inbound stream on the relay host
	pushID protocol.ID = "/dash/push/1.0.0" // added mid-run: identify push
	nopeID protocol.ID = "/dash/nope/1.0.0" // served by nobody
)

// outsideIP is an IPv4 address of this machine other than loopback, for
// listeners that hole punching may use.
func outsideIP() (netip.Addr, bool) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return netip.Addr{}, false
	}
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := p.Addr()
		if ip.Is4() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() && !ip.IsMulticast() {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// node is a host with its own registry, served on a loopback port.
type node struct {
	*tachyon.Host
	name   string
	scrape string // host:port of its /metrics
}

func newNode(t *testing.T, name string, opts ...tachyon.Option) *node {
	t.Helper()
	reg := prometheus.NewRegistry()
	h, err := tachyon.New(append([]tachyon.Option{tachyon.PrometheusRegisterer(reg)}, opts...)...)
	if err != nil {
		t.Fatalf("host %s: %v", name, err)
	}
	t.Cleanup(func() { h.Close() })
	return &node{Host: h, name: name, scrape: serveMetrics(t, reg)}
}

// TestDashboardsAgainstPrometheus runs three hosts (a relay R that also
// serves AutoNAT, a host A that dials R over every transport, a host B
// behind R, A also serving the daemon's control protocol) scraped by a
// real Prometheus, then evaluates every panel's expression of every
// dashboard.
func TestDashboardsAgainstPrometheus(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("no prometheus binary in PATH (Debian package prometheus; scripts/setup.sh installs it)")
	}
	leakcheck.Check(t)
	dashboards, targets := loadDashboards(t)
	if t.Failed() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Hole punching ignores loopback addresses: A and B also listen on an
	// outside address of this machine when it has one.
	listen := []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	prefixes := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	if ip, ok := outsideIP(); ok {
		listen = append(listen, "/ip4/"+ip.String()+"/tcp/0", "/ip4/"+ip.String()+"/udp/0/quic-v1")
		prefixes = append(prefixes, netip.PrefixFrom(ip, 32))
	} else {
		t.Log("no outside IPv4 address: hole punching attempts fail (no usable address)")
	}
	// Loopback (and that address) count as the Internet: AutoNAT servers
	// dial them back, hole punching uses them.
	public := tachyon.PublicPrefixes(prefixes...)
	loopback := tachyon.ListenAddrStrings(listen...)
	lim := limits.Default()
	lim.ProtocolStreams = map[protocol.ID]int{holdID: 1}
	r := newNode(t, "relay", public, tachyon.RelayService(relay.DefaultConfig()), tachyon.Limits(lim),
		tachyon.ListenAddrStrings(
			"/ip4/127.0.0.1/tcp/0", "/ip6/::1/tcp/0", "/ip4/127.0.0.1/tcp/0/ws",
			"/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/udp/0/quic-v1/webtransport",
			"/ip4/127.0.0.1/udp/0/webrtc-direct"))
	// One server's word makes a verdict: A has only R as a server until it
	// meets B.
	a := newNode(t, "a", public, loopback,
		tachyon.AutoNAT(tachyon.AutoNATConfig{Reachability: reachability.Config{Confirmations: 1}}))
	relayTCP := pick(t, r.Addrs(), "/ip4/127.0.0.1/tcp/", "")
	relayInfo, _ := peer.AddrInfo{ID: r.ID(), Addrs: []ma.Multiaddr{relayTCP}}.P2pAddrs()
	// B is private: like a node behind a NAT it is reached through R, then
	// punches through to A.
	b := newNode(t, "b", public, loopback, tachyon.StaticRelays(relayInfo[0]), tachyon.ForceReachability(network.ReachabilityPrivate))
	nodes := []*node{r, a, b}
	for _, n := range nodes {
		n.SetStreamHandler(echoID, echo, tachyon.AllowLimitedConns())
	}
	r.SetStreamHandler(perf.ID, perf.Handle)
	r.SetStreamHandler(holdID, func(s network.Stream) {
		s.Write([]byte{1}) // served
		io.Copy(io.Discard, s)
		s.Close()
	})
	// A serves the daemon's control protocol, as tachyon daemon does.
	daemonAddr := serveDaemon(t, a.Host)
	// A slow subscriber that never reads: the bus drops events for it.
	slow := event.Subscribe[event.EvtConnOpened](a.EventBus(), 1)
	defer slow.Close()

	var scrape []string
	for _, n := range nodes {
		scrape = append(scrape, n.scrape)
	}
	prom := startPrometheus(ctx, t, bin, scrape)
	promStart := time.Now()
	// A first scrape before the scenario gives every counter a sample to
	// rise from.
	prom.waitScrapes(ctx, t, len(nodes), 1, promStart)

	// Two rounds with a scrape between them: a series is born at its first
	// event, so a rate (and a quantile) moves only once the second round
	// adds to a value Prometheus has seen.
	sc := newScenario(t, r, a, b)
	sc.daemon = daemonAddr
	for round := 1; round <= 2; round++ {
		sc.round(ctx, t, round)
		prom.waitScrapes(ctx, t, len(nodes), 2, time.Now())
	}

	// Panels use Grafana's variables: the window covers the whole run.
	window := fmt.Sprintf("%ds", int(time.Since(promStart).Seconds())+30)
	vars := strings.NewReplacer(
		"${__rate_interval}", window, "$__rate_interval", window,
		"${__interval}", window, "$__interval", window,
		"${__range}", window, "$__range", window,
		"${job}", "tachyon", "$job", "tachyon",
		"${instance}", ".+", "$instance", ".+",
	)
	names, err := prom.metricNames(ctx)
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, pt := range targets {
		key := pt.file + "/" + pt.panel + "/" + pt.refID
		expr := vars.Replace(pt.expr)
		if strings.Contains(expr, "$") {
			t.Errorf("%s: a variable the test does not know in %q", pt, expr)
			continue
		}
		why, emptyOK := allowedEmpty[key]
		used[key] = true
		for _, n := range metricName.FindAllString(expr, -1) {
			// An empty panel's metrics have no series; TestDashboardsWellFormed
			// checks their names against docs/metrics.md.
			if !names[n] && !emptyOK {
				t.Errorf("%s: unknown metric %s in %q", pt, n, pt.expr)
			}
		}
		res, err := prom.query(ctx, expr)
		switch {
		case errors.Is(err, errQuery):
			t.Errorf("%s: %q: %v", pt, expr, err)
			continue
		case err != nil:
			t.Fatalf("%s: %v", pt, err)
		}
		switch {
		case len(res) == 0 && emptyOK:
			t.Logf("%s: empty, allowed: %s", pt, why)
			continue
		case len(res) == 0:
			t.Errorf("%s: no series for %q", pt, expr)
			continue
		case emptyOK:
			t.Errorf("%s: has data now: remove it from allowedEmpty", pt)
		}
		t.Logf("%s: %d series", pt, len(res))
		// NaN only: a quantile of buckets that did not move in the window,
		// which Grafana draws as no data.
		if allNaN(res) {
			t.Errorf("%s: only NaN for %q (%d series)", pt, expr, len(res))
		}
	}
	for key := range allowedEmpty {
		if !used[key] {
			t.Errorf("allowedEmpty names %s, which no dashboard has", key)
		}
	}
	checkVariables(ctx, t, prom, dashboards, vars)
}

// labelValuesQuery is Grafana's label_values(selector, label).
var labelValuesQuery = regexp.MustCompile(`^label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// checkVariables evaluates the job and instance variables' queries: each
// must list at least one value.
func checkVariables(ctx context.Context, t *testing.T, prom *promServer, ds map[string]dashboard, vars *strings.Replacer) {
	t.Helper()
	for file, d := range ds {
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			m := labelValuesQuery.FindStringSubmatch(strings.TrimSpace(v.Definition))
			if m == nil {
				t.Errorf("%s: variable %s: %q is not label_values(selector, label)", file, v.Name, v.Definition)
				continue
			}
			vals, err := prom.labelValues(ctx, vars.Replace(m[1]), m[2])
			if err != nil {
				t.Errorf("%s: variable %s: %v", file, v.Name, err)
				continue
			}
			if len(vals) == 0 {
				t.Errorf("%s: variable %s: no values for %q", file, v.Name, v.Definition)
			}
		}
	}
}

func allNaN(res []sample) bool {
	for _, s := range res {
		str, _ := s.Value[1].(string)
		if f, err := strconv.ParseFloat(str, 64); err == nil && !math.IsNaN(f) {
			return false
		}
	}
	return true
}

// scenario makes every panel have data: connections over every transport
// (opened and closed), streams, bytes, pings, perf, identify and its push,
// a refused protocol, failed dials, a stream the limits refuse, a relay
// reservation and circuits, hole punching, AutoNAT.
type scenario struct {
	r, a, b *node
	daemon  string // A's daemon control address
	punched *event.TypedSubscription[event.EvtHolePunch]
	reach   *event.TypedSubscription[event.EvtAddrReachability]
}

func newScenario(t *testing.T, r, a, b *node) *scenario {
	sc := &scenario{
		r: r, a: a, b: b,
		punched: event.Subscribe[event.EvtHolePunch](b.EventBus(), 16),
		reach:   event.Subscribe[event.EvtAddrReachability](a.EventBus(), 16),
	}
	t.Cleanup(func() {
		sc.punched.Close()
		sc.reach.Close()
	})
	return sc
}

// round runs the scenario once; the second round repeats the first but
// for what happens once (the reservation, the reachability verdict).
func (sc *scenario) round(ctx context.Context, t *testing.T, n int) {
	r, a := sc.r, sc.a
	// A to R over each transport in turn; each connection carries pings
	// and an echo stream, then closes (connection lifetimes).
	for _, tc := range []struct{ prefix, suffix string }{
		{"/ip4/127.0.0.1/tcp/", ""},
		{"/ip6/::1/tcp/", ""},
		{"/ip4/127.0.0.1/tcp/", "/ws"},
		{"/ip4/127.0.0.1/udp/", "/quic-v1"},
		{"/ip4/127.0.0.1/udp/", "/quic-v1/webtransport"},
		{"/ip4/127.0.0.1/udp/", "/webrtc-direct"},
	} {
		addr := pick(t, r.Addrs(), tc.prefix, tc.suffix)
		a.Peerstore().ClearAddrs(r.ID())
		if err := a.Connect(ctx, peer.AddrInfo{ID: r.ID(), Addrs: []ma.Multiaddr{addr}}); err != nil {
			t.Fatalf("A to R over %s: %v", addr, err)
		}
		if err := a.Ping(ctx, r.ID(), 3, 0, 10*time.Second, nil); err != nil {
			t.Fatalf("ping over %s: %v", addr, err)
		}
		if err := echoOnce(ctx, a.Host, r.ID(), 4<<10); err != nil {
			t.Fatalf("echo over %s: %v", addr, err)
		}
		if err := a.ClosePeer(r.ID()); err != nil {
			t.Fatalf("closing A-R over %s: %v", addr, err)
		}
	}
	a.Peerstore().ClearAddrs(r.ID())
	if err := a.Connect(ctx, peer.AddrInfo{ID: r.ID(), Addrs: r.Addrs()}); err != nil {
		t.Fatalf("A to R: %v", err)
	}
	if _, err := a.IdentifyWait(ctx, r.ID()); err != nil {
		t.Fatal(err)
	}
	// A perf run, both ways.
	if s, err := a.NewStream(network.WithEagerNegotiation(ctx), r.ID(), perf.ID); err != nil {
		t.Fatalf("perf stream: %v", err)
	} else if _, err := perf.Run(ctx, s, 256<<10, 256<<10, nil); err != nil {
		t.Fatalf("perf run: %v", err)
	}
	// A protocol added while connected: R pushes identify to A.
	r.SetStreamHandler(protocol.ID(fmt.Sprintf("%s/%d", pushID, n)), echo)
	// A protocol nobody serves: negotiation fails on both ends.
	if s, err := a.NewStream(network.WithEagerNegotiation(ctx), r.ID(), nopeID); err == nil {
		s.Reset()
		t.Fatalf("a stream for %s that R does not serve", nopeID)
	}
	// R serves one hold stream per protocol limit: the second is refused.
	held, err := a.NewStream(network.WithEagerNegotiation(ctx), r.ID(), holdID)
	if err != nil {
		t.Fatalf("first hold stream: %v", err)
	}
	held.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := held.Read(make([]byte, 1)); err != nil {
		t.Fatalf("first hold stream not served: %v", err)
	}
	if s, err := a.NewStream(network.WithEagerNegotiation(ctx), r.ID(), holdID); err == nil {
		// The refusal may arrive as a reset after negotiation; a served
		// stream gets a byte from the handler.
		s.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := s.Read(make([]byte, 1)); err == nil {
			t.Logf("round %d: a second hold stream past R's limit of one was served over %s", n, s.Conn().ConnState().Transport)
		}
		s.Reset()
	}
	held.Close()

	// Failed dials: a port nobody listens on, and R's address under
	// another peer's ID.
	if err := a.Connect(ctx, peer.AddrInfo{ID: streamtest.PeerID(t, fmt.Sprintf("nobody %d", n)), Addrs: []ma.Multiaddr{closedTCPAddr(t)}}); err == nil {
		t.Fatal("a dial to a closed port succeeded")
	}
	if err := a.Connect(ctx, peer.AddrInfo{ID: streamtest.PeerID(t, fmt.Sprintf("impostor %d", n)), Addrs: []ma.Multiaddr{pick(t, r.Addrs(), "/ip4/127.0.0.1/tcp/", "")}}); err == nil {
		t.Fatal("a dial of R under another peer ID succeeded")
	}

	// A control request to A's daemon.
	if err := daemonIdentify(ctx, sc.daemon); err != nil {
		t.Fatalf("daemon IDENTIFY: %v", err)
	}

	// A reaches B through R (B's reservation), B punches through to A.
	// The first round must; the second tries for 30 s and says why not
	// (the hole-punch series exist from the start, so the panels have
	// their rates from the first round alone).
	if n == 1 {
		if err := sc.relayAndPunch(ctx, t, n); err != nil {
			t.Fatal(err)
		}
	} else {
		rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
		err := sc.relayAndPunch(rctx, t, n)
		rcancel()
		if err != nil {
			t.Logf("round %d, relayed connection and hole punch (best effort): %v", n, err)
		}
	}

	if n > 1 {
		return
	}
	// A has AutoNAT servers R and B: wait for a verdict, bounded.
	vctx, vcancel := context.WithTimeout(ctx, 20*time.Second)
	defer vcancel()
	select {
	case e := <-sc.reach.Out():
		t.Logf("reachability of %s: %s -> %s", e.Addr, e.From, e.To)
	case <-vctx.Done():
		t.Logf("no reachability verdict for A within 20 s; table %+v", a.ReachabilityTable())
	}
}

func echo(s network.Stream) {
	io.Copy(s, s)
	s.Close()
}

// echoOnce sends n bytes to p's echo handler and reads them back.
func echoOnce(ctx context.Context, h *tachyon.Host, p peer.ID, n int) error {
	s, err := h.NewStream(ctx, p, echoID)
	if err != nil {
		return fmt.Errorf("opening an echo stream: %w", err)
	}
	defer s.Reset()
	if d, ok := ctx.Deadline(); ok {
		s.SetDeadline(d)
	}
	msg := make([]byte, n)
	rand.Read(msg)
	errc := make(chan error, 1)
	go func() {
		_, err := s.Write(msg)
		if err == nil {
			err = s.CloseWrite()
		}
		errc <- err
	}()
	got, err := io.ReadAll(s)
	if werr := <-errc; werr != nil {
		return fmt.Errorf("writing: %w", werr)
	}
	if err != nil {
		return fmt.Errorf("reading: %w", err)
	}
	if len(got) != n {
		return fmt.Errorf("echoed %d bytes of %d", len(got), n)
	}
	return s.Close()
}

// pick returns the address of addrs that starts with prefix and ends with
// suffix after the port.
func pick(t *testing.T, addrs []ma.Multiaddr, prefix, suffix string) ma.Multiaddr {
	t.Helper()
	for _, a := range addrs {
		s := a.String()
		if !strings.HasPrefix(s, prefix) {
			continue
		}
		// After the port: the suffix, then certificate hashes if any.
		rest, _, _ := strings.Cut(strings.TrimPrefix(s, prefix), "/certhash/")
		if _, after, _ := strings.Cut(rest, "/"); "/"+after == suffix || after == "" && !strings.Contains(rest, "/") && suffix == "" {
			return a
		}
	}
	t.Fatalf("no address %s<port>%s among %v", prefix, suffix, addrs)
	return nil
}

// closedTCPAddr is a loopback TCP address nobody listens on.
func closedTCPAddr(t *testing.T) ma.Multiaddr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port))
}

// relayAddr waits for h's address through its relay.
func relayAddr(ctx context.Context, h *tachyon.Host) (ma.Multiaddr, error) {
	for {
		addrs := h.Addrs()
		if i := slices.IndexFunc(addrs, swarm.IsRelayAddr); i >= 0 {
			return addrs[i], nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no relay reservation: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// relayAndPunch connects A to B through R, pings and echoes over the
// relayed connection, waits for B's hole punch, then closes A-B.
func (sc *scenario) relayAndPunch(ctx context.Context, t *testing.T, n int) error {
	a, b := sc.a, sc.b
	circuit, err := relayAddr(ctx, b.Host)
	if err != nil {
		return err
	}
	a.Peerstore().ClearAddrs(b.ID())
	a.Peerstore().AddAddrs(b.ID(), []ma.Multiaddr{circuit}, time.Hour)
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID()}); err != nil {
		return fmt.Errorf("A to B through R: %w", err)
	}
	if err := a.Ping(ctx, b.ID(), 2, 0, 10*time.Second, nil); err != nil {
		return fmt.Errorf("ping through R: %w", err)
	}
	if err := echoOnce(network.WithAllowLimitedConn(ctx, "test"), a.Host, b.ID(), 16<<10); err != nil {
		return fmt.Errorf("echo through R: %w", err)
	}
	select {
	case e := <-sc.punched.Out():
		t.Logf("round %d: hole punch attempt %d: success %v, transport %q, reason %q", n, e.Attempt, e.Success, e.Transport, e.Reason)
	case <-ctx.Done():
		return fmt.Errorf("no hole punch attempt by B: %w", ctx.Err())
	}
	// End the circuit (its duration is observed) and the direct
	// connection: the next round starts over.
	if err := a.ClosePeer(b.ID()); err != nil {
		return fmt.Errorf("closing A-B: %w", err)
	}
	return nil
}

// serveDaemon serves the p2pd control protocol for h on a loopback port
// until the test ends, with the host's daemon tracer as tachyon daemon
// does.
func serveDaemon(t *testing.T, h *tachyon.Host) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		daemon.Serve(ctx, ln, daemon.TachyonHost(h), &daemon.Config{Tracer: h.Metrics().Daemon()})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return ln.Addr().String()
}

// daemonIdentify sends an IDENTIFY request (length 2: type IDENTIFY, as
// the js client writes it) and reads the answer to EOF.
func daemonIdentify(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte{0x02, 0x08, 0x00}); err != nil {
		return err
	}
	resp, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	// A varint length, then type OK (field 1, value 0).
	_, n := binary.Uvarint(resp)
	if n <= 0 || len(resp) < n+2 || resp[n] != 0x08 || resp[n+1] != 0x00 {
		return fmt.Errorf("response %x is not OK", resp)
	}
	return nil
}
