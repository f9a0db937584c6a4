package interop

// This file tests WebRTC private-to-private ("/webrtc", browser to
// browser): two endpoints reserve on a relay, one dials the other's
// <relay>/p2p-circuit/webrtc/p2p/<peer> address, the SDP and ICE candidates
// travel over the relayed connection, and the peers then talk over a
// direct WebRTC connection. Each row of b2bPairs names the dialer, the
// listener and the relay. Today the endpoints are js-libp2p in headless
// Chromium and in Node (node-datachannel), the relay is tachyon's circuit
// relay v2 service; the npm project is interop/js (src/b2b-*.{js,mjs}).
//
// Everything runs in a private network namespace: WebRTC gathers
// candidates on every interface, and Chromium ignores loopback, so the
// namespace holds lo plus one veth end with b2bVethIP and a default route
// through it (Chromium gathers only on the default route's interface; with
// no default route it gathers nothing). The test re-executes its own
// binary inside the namespace (b2bReexec).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/protocol/relay"
)

const (
	// b2bNetnsEnv marks the re-executed test binary inside the namespace.
	b2bNetnsEnv = "TACHYON_B2B_NETNS"
	// b2bVethIP is the namespace's only non-loopback address: every ICE
	// host candidate has it (198.18.0.0/15 is for benchmarking, RFC 2544).
	b2bVethIP = "198.18.0.1"
	// b2bRelayedMax bounds the bytes the relay may carry for one pair:
	// the signalling circuit's multistream, Noise and yamux set-up,
	// identify both ways, the SDP offer and answer and a few candidates
	// (4.5-5.5 KiB measured with js on both sides; about 10 KiB between
	// tachyon peers, whose identify messages carry signed records with
	// their relay addresses in named forms, both ways). A 1 MiB echo that
	// leaked onto the circuit would be far above it (and above the
	// relay's 128 KiB circuit limit).
	b2bRelayedMax = 16 << 10
	b2bRowLimit   = 60 * time.Second
	b2bChildLimit = 4 * time.Minute
)

// b2bPairs is the table: dialer x listener x relay. Rows with tachyon
// endpoints are added once tachyon has a /webrtc transport: a b2bImpl whose
// start returns an in-process b2bEndpoint (a host with the transport, the
// relay client and the echo handler) filling the same b2bResult and
// b2bReport fields, e.g. {b2bTachyon, b2bChromium, b2bTachyonRelay}.
// A go-libp2p relay is another b2bRelayImpl.
var b2bPairs = []b2bPair{
	{dialer: b2bChromium, listener: b2bChromium, relay: b2bTachyonRelay},
	{dialer: b2bNode, listener: b2bNode, relay: b2bTachyonRelay},
	{dialer: b2bChromium, listener: b2bNode, relay: b2bTachyonRelay},
	{dialer: b2bNode, listener: b2bChromium, relay: b2bTachyonRelay},
	{dialer: b2bTachyonEndpoint, listener: b2bTachyonEndpoint, relay: b2bTachyonRelay},
	{dialer: b2bTachyonEndpoint, listener: b2bNode, relay: b2bTachyonRelay},
	{dialer: b2bNode, listener: b2bTachyonEndpoint, relay: b2bTachyonRelay},
	{dialer: b2bTachyonEndpoint, listener: b2bChromium, relay: b2bTachyonRelay},
	{dialer: b2bChromium, listener: b2bTachyonEndpoint, relay: b2bTachyonRelay},
}

type b2bPair struct {
	dialer, listener b2bImpl
	relay            b2bRelayImpl
}

func (p b2bPair) name() string {
	return p.dialer.name + "-" + p.listener.name + "-via-" + p.relay.name
}

// b2bImpl makes endpoints of one implementation.
type b2bImpl struct {
	name  string
	start func(t *testing.T) b2bEndpoint
}

// b2bEndpoint is one side of a pair: both sides reserve on the relay and
// listen on /webrtc through it, then one dials the other.
type b2bEndpoint interface {
	// Start reserves a slot on relay and returns the /webrtc address.
	Start(ctx context.Context, relay string) (b2bListening, error)
	// Dial dials target and runs the checks over the connection it gets
	// (b2bResult says which).
	Dial(ctx context.Context, target string) (b2bResult, error)
	// Report says what the endpoint saw as a listener; called after the
	// other side's checks.
	Report(ctx context.Context) (b2bReport, error)
	// Close stops the endpoint and returns its log.
	Close() string
}

type b2bListening struct {
	Peer   string   `json:"peer"`
	WebRTC string   `json:"webrtc"`
	Addrs  []string `json:"addrs"`
}

// b2bConn describes one connection as libp2p sees it. Direct is js-libp2p's
// Connection.direct (the address is not a plain circuit address), Limited
// says the relay's limits apply.
type b2bConn struct {
	RemoteAddr string `json:"remoteAddr"`
	Direct     bool   `json:"direct"`
	Limited    bool   `json:"limited"`
	Status     string `json:"status"`
	Direction  string `json:"direction"`
}

// b2bPath is the selected ICE candidate pair of a connected peer
// connection.
type b2bPath struct {
	Local  b2bCandidate `json:"local"`
	Remote b2bCandidate `json:"remote"`
	Error  string       `json:"error"`
}

type b2bCandidate struct {
	Type    string `json:"type"`
	Address string `json:"address"`
	Port    int    `json:"port"`
}

func (c b2bCandidate) String() string { return fmt.Sprintf("%s %s:%d", c.Type, c.Address, c.Port) }

// b2bResult is the dialer's outcome. Times are in milliseconds from the
// dialer's clock: RelayToDirectMs from the relayed connection to the
// target being up (upgraded) to the direct connection being returned,
// RelayToFirstEchoMs to the first echo reply over the direct connection.
type b2bResult struct {
	Peer               string            `json:"peer"`
	Target             string            `json:"target"`
	Connected          bool              `json:"connected"`
	Error              string            `json:"error"`
	b2bConn                              // the connection the dial returned
	RelayedAddr        string            `json:"relayedAddr"`
	RelayedLimited     bool              `json:"relayedLimited"`
	RelayedAtMs        float64           `json:"relayedAtMs"` // from the start of the dial
	Progress           []string          `json:"progress"`    // "<ms from the start of the dial> <event>"
	DialMs             float64           `json:"dialMs"`
	RelayToDirectMs    float64           `json:"relayToDirectMs"`
	RelayToFirstEchoMs float64           `json:"relayToFirstEchoMs"`
	FirstEchoMs        float64           `json:"firstEchoMs"`
	FirstEchoError     string            `json:"firstEchoError"`
	PingMs             []float64         `json:"pingMs"`
	PingErrors         []string          `json:"pingErrors"`
	EchoBytes          int               `json:"echoBytes"`
	EchoMs             float64           `json:"echoMs"`
	EchoError          string            `json:"echoError"`
	Pairs              []b2bPath         `json:"pairs"`
	Conns              []b2bConn         `json:"conns"`
	PeerConnections    []json.RawMessage `json:"peerConnections"`
	// Retried holds the errors of the attempts before the last when the
	// dialer dialed more than once because a peer connection of a dial
	// ended before it connected (a fault of the js WebRTC stacks, see
	// b2b-peer.js); Attempts is then how many dials it made.
	Retried  string `json:"retried"`
	Attempts int    `json:"attempts"`
}

// b2bReport is what the listener saw.
type b2bReport struct {
	Conns  []b2bConn `json:"conns"`
	Opened []b2bConn `json:"opened"`
	Echoed []struct {
		Bytes int    `json:"bytes"`
		Error string `json:"error"`
	} `json:"echoed"`
	Pairs           []b2bPath         `json:"pairs"`
	PeerConnections []json.RawMessage `json:"peerConnections"`
}

// b2bRelayImpl makes relays of one implementation.
type b2bRelayImpl struct {
	name  string
	start func(t *testing.T) b2bRelay
}

type b2bRelay interface {
	// Addr is the address endpoints reserve on: WebSocket on loopback,
	// which browsers can dial, ending in /p2p/<relay>.
	Addr() string
	// Relayed returns the bytes relayed (both directions) and the
	// circuits opened so far.
	Relayed() (bytes, circuits uint64)
	// Close stops the relay and returns its log.
	Close() string
}

var (
	b2bChromium = b2bImpl{name: "chromium", start: func(t *testing.T) b2bEndpoint {
		return &b2bProc{dir: jsDir(), name: "node", args: []string{"src/b2b-chromium.mjs"}, env: []string{"CHROMIUM=" + jsChromium}}
	}}
	b2bNode = b2bImpl{name: "node", start: func(t *testing.T) b2bEndpoint {
		// Node 20 has no global WebSocket.
		return &b2bProc{dir: jsDir(), name: "node", args: []string{"--experimental-websocket", "src/b2b-node.mjs"}}
	}}
	b2bTachyonRelay = b2bRelayImpl{name: "tachyon", start: startB2BTachyonRelay}
)

// TestB2B runs every pair of b2bPairs: both endpoints reserve on the relay,
// the dialer dials the listener's /webrtc address, and the test asserts a
// direct connection (js-libp2p's direct flag, not limited, a host-to-host
// ICE path), 3 pings and 1 MiB echoed byte for byte over it, the listener's
// view of it, and that the relay carried one circuit of at most
// b2bRelayedMax bytes. It logs the time from the relayed connection to the
// first echo reply over the direct one.
func TestB2B(t *testing.T) {
	leakcheck.Check(t)
	if os.Getenv(b2bNetnsEnv) == "" {
		b2bReexec(t)
		return
	}
	for _, p := range b2bPairs {
		t.Run(p.name(), func(t *testing.T) { runB2BPair(t, p) })
	}
}

// b2bReexec prepares the npm project (which needs the network), then runs
// TestB2B again in a fresh network namespace and reports its output.
func b2bReexec(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("TACHYON_SKIP_NETNS") == "1" {
			t.Skip("browser-to-browser WebRTC runs in a network namespace, which needs root")
		}
		t.Fatal("browser-to-browser WebRTC runs in a network namespace, which needs root; set TACHYON_SKIP_NETNS=1 to skip")
	}
	for _, tool := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("browser-to-browser WebRTC needs %s (util-linux, iproute2): %v", tool, err)
		}
	}
	jsRequire(t, true)
	b2bNpm(t)
	dir := jsSetup(t)
	b2bBundle(t, dir)

	run := "^TestB2B$"
	if f := flag.Lookup("test.run"); f != nil {
		if _, sub, ok := strings.Cut(f.Value.String(), "/"); ok {
			run += "/" + sub
		}
	}
	// veth, not dummy: this kernel has no dummy links.
	script := strings.Join([]string{
		"set -e",
		"ip link set lo up",
		"ip link add b2b0 type veth peer name b2b1",
		"ip addr add " + b2bVethIP + "/32 dev b2b0",
		"ip link set b2b0 up",
		"ip link set b2b1 up",
		"ip route add default dev b2b0",
		`exec "$@"`,
	}, "\n")
	ctx, cancel := context.WithTimeout(context.Background(), b2bChildLimit+30*time.Second)
	defer cancel()
	cmd := jsCommand(ctx, ".", "unshare", "-n", "sh", "-c", script, "sh", os.Args[0],
		"-test.run="+run, "-test.v", "-test.count=1", "-test.timeout="+b2bChildLimit.String())
	cmd.Env = append(os.Environ(), b2bNetnsEnv+"=1")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("in the network namespace (%s):\n%s", time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		// Repeated last and short: CI logs keep the head and tail of a
		// long output, and the rows' own logs are long.
		t.Fatalf("TestB2B in the network namespace: %v; what the failed rows said:\n%s", err, b2bFailures(out))
	}
	if !bytes.Contains(out, []byte("--- PASS: TestB2B")) {
		t.Fatal("TestB2B in the network namespace did not pass")
	}
}

// b2bFailures picks from the namespace run's verbose output the checks'
// messages of each failed row: its section's test-log lines, without the
// bulky ones (the dial result's JSON, the dial steps, the endpoints' logs),
// each cut to 600 bytes.
func b2bFailures(out []byte) string {
	failed := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if _, row, ok := strings.Cut(line, "--- FAIL: TestB2B/"); ok {
			failed[strings.Fields(row)[0]] = true
		}
	}
	var b strings.Builder
	row := ""
	more := 0 // continuation lines of the last message still to keep
	for _, line := range strings.Split(string(out), "\n") {
		if _, r, ok := strings.Cut(line, "=== RUN   TestB2B/"); ok {
			row, more = strings.TrimSpace(r), 0
			continue
		}
		msg := strings.TrimSpace(line)
		if !failed[row] || msg == "" || strings.HasPrefix(msg, "--- ") {
			continue
		}
		if !strings.HasPrefix(msg, "b2b_test.go:") {
			if more > 0 && !strings.HasPrefix(msg, "at ") { // not a JS stack frame
				more--
				fmt.Fprintf(&b, "%s:     %s\n", row, cut600(msg))
			}
			continue
		}
		more = 0
		if strings.Contains(msg, "dial result:") || strings.Contains(msg, "dial steps") ||
			strings.Contains(msg, ") log:") {
			continue
		}
		more = 6
		fmt.Fprintf(&b, "%s: %s\n", row, cut600(msg))
	}
	if b.Len() == 0 {
		return "(no row failed a check: see the output above)"
	}
	return b.String()
}

func cut600(s string) string {
	if len(s) > 600 {
		return s[:600] + "..."
	}
	return s
}

// b2bNpm reinstalls the npm packages of a node_modules made before the
// relay client was added to package.json (jsSetup installs only when
// node_modules is missing).
func b2bNpm(t *testing.T) {
	t.Helper()
	dir := jsDir()
	if _, err := os.Stat(filepath.Join(dir, "node_modules")); err != nil {
		return // jsSetup installs
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@libp2p", "circuit-relay-v2", "package.json")); err == nil {
		return
	}
	t.Logf("node_modules in %s lacks @libp2p/circuit-relay-v2: npm ci", dir)
	ctx, cancel := context.WithTimeout(context.Background(), jsNpmLimit)
	defer cancel()
	if out, err := jsRun(ctx, dir, "npm", "ci", "--no-audit", "--no-fund"); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
}

// b2bBundle bundles the page of the Chromium endpoint into www/b2b.js.
func b2bBundle(t *testing.T, dir string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := jsRun(ctx, dir, filepath.Join("node_modules", ".bin", "esbuild"), "src/b2b-browser.js",
		"--bundle", "--format=esm", "--platform=browser", "--target=es2022", "--outfile=www/b2b.js")
	if err != nil {
		t.Fatalf("esbuild b2b: %v\n%s", err, out)
	}
}

func runB2BPair(t *testing.T, p b2bPair) {
	ctx, cancel := context.WithTimeout(context.Background(), b2bRowLimit)
	defer cancel()
	r := p.relay.start(t)
	listener := p.listener.start(t)
	dialer := p.dialer.start(t)
	defer func() {
		dlog, llog, rlog := dialer.Close(), listener.Close(), r.Close()
		if t.Failed() {
			t.Logf("dialer (%s) log:\n%s\nlistener (%s) log:\n%s\nrelay (%s) log:\n%s",
				p.dialer.name, dlog, p.listener.name, llog, p.relay.name, rlog)
		}
	}()

	// Both start at once: a browser takes seconds to launch.
	var d b2bListening
	dStarted := make(chan error, 1)
	go func() {
		var err error
		d, err = dialer.Start(ctx, r.Addr())
		dStarted <- err
	}()
	l, err := listener.Start(ctx, r.Addr())
	if derr := <-dStarted; derr != nil {
		t.Fatalf("dialer: %v", derr)
	}
	if err != nil {
		t.Fatalf("listener: %v", err)
	}
	wantPrefix := r.Addr() + "/p2p-circuit/webrtc/p2p/"
	if l.WebRTC != wantPrefix+l.Peer {
		t.Fatalf("listener's /webrtc address %q, want %s<peer %s>", l.WebRTC, wantPrefix, l.Peer)
	}
	bytes0, circuits0 := r.Relayed()
	res, err := dialer.Dial(ctx, l.WebRTC)
	if err != nil {
		t.Fatalf("dialer: %v", err)
	}
	rep, err := listener.Report(ctx)
	if err != nil {
		t.Errorf("listener report: %v", err)
	}
	bytes1, circuits1 := r.Relayed()
	relayed, circuits := bytes1-bytes0, circuits1-circuits0

	b, _ := json.Marshal(res)
	t.Logf("dial result: %s", b)
	if !res.Connected {
		t.Fatalf("dial %s: %s\npeer connections: %s\nlistener's peer connections: %s",
			l.WebRTC, res.Error, res.PeerConnections, rep.PeerConnections)
	}
	maxRelayed, maxCircuits, maxPaths := uint64(b2bRelayedMax), uint64(1), 1
	if res.Retried != "" {
		// A signalling exchange per dial; each over a new circuit if the
		// listener closed the relayed connection meanwhile (tachyon does,
		// 3 s after a direct connection is up, and an earlier attempt's
		// may have been).
		n := max(res.Attempts, 2)
		t.Logf("%s: the dialer dialed %d times; the earlier attempts: %s", p.name(), n, res.Retried)
		maxRelayed, maxCircuits, maxPaths = uint64(n)*maxRelayed, uint64(n), n
	}
	b2bCheckResult(t, res, l.Peer)
	if res.Peer != d.Peer {
		t.Errorf("dialer says it is %s, started as %s", res.Peer, d.Peer)
	}
	b2bCheckReport(t, rep, d.Peer, maxPaths)
	if circuits < 1 || circuits > maxCircuits {
		t.Errorf("relay opened %d circuits during the dial, want 1 (the signalling one), at most one per dial if it dialed again (max %d)", circuits, maxCircuits)
	}
	if relayed > maxRelayed {
		t.Errorf("relay carried %d bytes during the dial, want at most %d (signalling only)", relayed, maxRelayed)
	}
	t.Logf("%s: relayed connection up -> direct /webrtc connection %.1f ms -> first echo reply over it %.1f ms "+
		"(whole dial %.1f ms; pings %v ms; 1 MiB echoed in %.0f ms; relay carried %d bytes in %d circuit)",
		p.name(), res.RelayToDirectMs, res.RelayToFirstEchoMs, res.DialMs, res.PingMs, res.EchoMs, relayed, circuits)
	t.Logf("%s: dial steps (ms from the start of the dial; relayed connection up at %.1f):\n%s",
		p.name(), res.RelayedAtMs, strings.Join(res.Progress, "\n"))
}

// b2bCheckResult checks the dialer's side: the connection the dial
// returned is the direct WebRTC one, and pings and the echo went over it.
func b2bCheckResult(t *testing.T, res b2bResult, listenerPeer string) {
	t.Helper()
	// js-libp2p's dialer keeps the dialed address as the connection's
	// remote address (<relay>/p2p-circuit/webrtc/p2p/<peer>), so "no
	// /p2p-circuit" cannot be asserted on this side; its direct flag, the
	// missing limits and the ICE path say the connection is not relayed.
	if !res.Direct || res.Limited || !strings.HasSuffix(res.RemoteAddr, "/webrtc/p2p/"+listenerPeer) {
		t.Errorf("the dial returned %+v, want a direct, unlimited /webrtc connection to %s", res.b2bConn, listenerPeer)
	}
	if !strings.Contains(res.RelayedAddr, "/p2p-circuit/p2p/"+listenerPeer) || !res.RelayedLimited {
		t.Errorf("signalling connection %q (limited %v), want a limited circuit to %s", res.RelayedAddr, res.RelayedLimited, listenerPeer)
	}
	b2bCheckPath(t, "dialer", res.Pairs, 1)
	if res.FirstEchoError != "" {
		t.Errorf("first echo: %s", res.FirstEchoError)
	}
	if res.RelayToFirstEchoMs <= 0 || res.RelayToDirectMs <= 0 || res.RelayToFirstEchoMs < res.RelayToDirectMs {
		t.Errorf("times from the relayed connection: direct %.1f ms, first echo %.1f ms; want 0 < direct <= first echo",
			res.RelayToDirectMs, res.RelayToFirstEchoMs)
	}
	if len(res.PingMs) != 3 {
		t.Errorf("%d of 3 pings answered: %q", len(res.PingMs), res.PingErrors)
	}
	if res.EchoBytes != jsEchoSize {
		t.Errorf("echo of 1 MiB: %d bytes back: %s", res.EchoBytes, res.EchoError)
	}
}

// b2bCheckPath wants one connected peer connection (up to max: a listener
// may still count the abandoned one of a dial that was retried) whose
// selected ICE pair is on the namespace's address, from a host candidate to
// a host or peer-reflexive one (prflx: the peer's checks arrived before its
// candidate did, which the trickle over the relay makes common).
func b2bCheckPath(t *testing.T, side string, pairs []b2bPath, max int) {
	t.Helper()
	if len(pairs) < 1 || len(pairs) > max {
		t.Errorf("%s: %d connected peer connections %+v, want 1", side, len(pairs), pairs)
		return
	}
	for _, p := range pairs {
		if p.Local.Type == "addr" {
			// A tachyon endpoint: the path as the connection's addresses
			// show it, candidate types unknown.
			if p.Local.Address != b2bVethIP || p.Remote.Address != b2bVethIP {
				t.Errorf("%s: ICE path %s -> %s, want %s at both ends", side, p.Local, p.Remote, b2bVethIP)
			}
			continue
		}
		// Chromium redacts the address of a peer-reflexive remote candidate.
		remoteOK := p.Remote.Type == "host" && p.Remote.Address == b2bVethIP ||
			p.Remote.Type == "prflx" && (p.Remote.Address == b2bVethIP || p.Remote.Address == "")
		if p.Error != "" || p.Local.Type != "host" || p.Local.Address != b2bVethIP || !remoteOK {
			t.Errorf("%s: selected ICE pair %s -> %s (%s), want host %s to host or prflx %s", side, p.Local, p.Remote, p.Error, b2bVethIP, b2bVethIP)
		}
	}
}

// b2bCheckReport checks the listener's side: it accepted a direct /webrtc
// connection from the dialer and echoed the 1 MiB.
func b2bCheckReport(t *testing.T, rep b2bReport, dialerPeer string, maxPaths int) {
	t.Helper()
	var direct bool
	for _, c := range rep.Opened {
		// js says /webrtc/p2p/<peer>; tachyon names the path too
		// (/ip4/A/udp/P/webrtc/p2p/<peer>).
		if strings.HasSuffix(c.RemoteAddr, "/webrtc/p2p/"+dialerPeer) && c.Direct && !c.Limited && c.Direction == "inbound" {
			direct = true
		}
	}
	if !direct {
		t.Errorf("listener opened %+v, want an inbound /webrtc/p2p/%s connection, direct and unlimited", rep.Opened, dialerPeer)
	}
	b2bCheckPath(t, "listener", rep.Pairs, maxPaths)
	var big bool
	for _, e := range rep.Echoed {
		big = big || (e.Bytes == jsEchoSize && e.Error == "")
	}
	if !big {
		t.Errorf("listener echo streams %+v, want one of %d bytes", rep.Echoed, jsEchoSize)
	}
}

// startB2BTachyonRelay starts an in-process tachyon host with the relay
// service (as `tachyon node --relay-service` does) on a loopback WebSocket
// address; its relayed byte counter is Host.RelayStat.
func startB2BTachyonRelay(t *testing.T) b2bRelay {
	t.Helper()
	r := &b2bTachyon{}
	h, err := tachyon.New(tachyon.ListenAddrStrings("/ip4/127.0.0.1/tcp/0/ws"),
		tachyon.RelayService(relay.DefaultConfig()),
		tachyon.ForceReachability(network.ReachabilityPublic),
		tachyon.Logger(slog.New(slog.NewTextHandler(&lockedWriter{mu: &r.mu, w: &r.log}, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		t.Fatalf("tachyon relay: %v", err)
	}
	r.h = h
	for _, a := range h.FullAddrs() {
		if strings.Contains(a.String(), "/ws/") {
			r.addr = a.String()
		}
	}
	if r.addr == "" {
		h.Close()
		t.Fatalf("tachyon relay has no WebSocket address: %v", h.FullAddrs())
	}
	return r
}

type b2bTachyon struct {
	h    *tachyon.Host
	addr string
	mu   sync.Mutex
	log  bytes.Buffer
}

func (r *b2bTachyon) Addr() string { return r.addr }

func (r *b2bTachyon) Relayed() (uint64, uint64) {
	st, _ := r.h.RelayStat()
	return st.BytesRelayed, st.CircuitsOpened
}

func (r *b2bTachyon) Close() string {
	r.h.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.String()
}

// b2bProc is a js endpoint process speaking the line protocol of
// interop/js/src/b2b-endpoint.mjs. Its methods are called from one
// goroutine at a time.
type b2bProc struct {
	dir, name string
	args, env []string

	cancel context.CancelFunc
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  *bufio.Scanner
	stderr bytes.Buffer
	closed bool
}

// start runs the process. It lives until Close,
// not until the context of the call that started it ends.
func (p *b2bProc) start(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), b2bRowLimit)
	cmd := jsCommand(ctx, p.dir, p.name, append(append([]string(nil), p.args...), args...)...)
	// DEBUG (e.g. libp2p:webrtc*) passes through: js-libp2p's logs go to
	// stderr, which the test prints for a failed row.
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stderr = &p.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		cancel()
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return err
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return fmt.Errorf("starting %v: %w", cmd.Args, err)
	}
	p.cmd, p.cancel, p.stdin = cmd, cancel, stdin
	p.lines = bufio.NewScanner(stdout)
	p.lines.Buffer(nil, 4<<20)
	return nil
}

// next reads the next event line into v; ctx bounds the wait (the process
// is killed when it ends, which unblocks the read).
func (p *b2bProc) next(ctx context.Context, want string, v any) error {
	type line struct {
		b   []byte
		err error
	}
	ch := make(chan line, 1)
	go func() {
		if p.lines.Scan() {
			ch <- line{b: bytes.Clone(p.lines.Bytes())}
			return
		}
		err := p.lines.Err()
		if err == nil {
			err = io.EOF
		}
		ch <- line{err: err}
	}()
	var l line
	select {
	case l = <-ch:
	case <-ctx.Done():
		p.cancel()
		<-ch
		return fmt.Errorf("waiting for %q from %v: %w", want, p.cmd.Args, ctx.Err())
	}
	if l.err != nil {
		return fmt.Errorf("waiting for %q from %v: %w", want, p.cmd.Args, l.err)
	}
	var ev struct {
		Event string `json:"event"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(l.b, &ev); err != nil {
		return fmt.Errorf("line %q from %v: %w", l.b, p.cmd.Args, err)
	}
	if ev.Event != want {
		return fmt.Errorf("%v: %q event (%s), want %q", p.cmd.Args, ev.Event, ev.Error, want)
	}
	return json.Unmarshal(l.b, v)
}

func (p *b2bProc) Start(ctx context.Context, relay string) (b2bListening, error) {
	var l b2bListening
	if err := p.start(relay); err != nil {
		return l, err
	}
	return l, p.next(ctx, "ready", &l)
}

func (p *b2bProc) Dial(ctx context.Context, target string) (b2bResult, error) {
	var r b2bResult
	if err := p.command(map[string]string{"cmd": "dial", "target": target}); err != nil {
		return r, err
	}
	return r, p.next(ctx, "result", &r)
}

func (p *b2bProc) Report(ctx context.Context) (b2bReport, error) {
	var r b2bReport
	if err := p.command(map[string]string{"cmd": "report"}); err != nil {
		return r, err
	}
	return r, p.next(ctx, "report", &r)
}

// command writes one command line to the endpoint.
func (p *b2bProc) command(cmd map[string]string) error {
	if p.cmd == nil {
		return errors.New("endpoint not started")
	}
	b, err := json.Marshal(cmd)
	if err != nil {
		return err
	}
	if _, err := p.stdin.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("command %s to %v: %w", b, p.cmd.Args, err)
	}
	return nil
}

// Close closes stdin (the endpoint then stops its node and exits) and
// waits for the process, killing it if it takes more than 15 s.
func (p *b2bProc) Close() string {
	if p.cmd == nil || p.closed {
		return p.stderr.String()
	}
	p.closed = true
	p.stdin.Close()
	waited := make(chan error, 1)
	go func() { waited <- p.cmd.Wait() }()
	var err error
	select {
	case err = <-waited:
	case <-time.After(15 * time.Second):
		p.cancel()
		err = fmt.Errorf("killed after 15 s: %w", <-waited)
	}
	p.cancel()
	if err != nil {
		return fmt.Sprintf("%s(exit: %v)\n", p.stderr.String(), err)
	}
	return p.stderr.String()
}

func TestB2BFailures(t *testing.T) {
	out := strings.Join([]string{
		"=== RUN   TestB2B",
		"=== RUN   TestB2B/a-b-via-tachyon",
		`    b2b_test.go:360: dial result: {"peer":"x"}`,
		"    b2b_test.go:400: listener: 2 connected peer connections, want 1",
		"        peer connections: [closed]",
		"            at new DOMException (node:internal)",
		"=== RUN   TestB2B/c-d-via-tachyon",
		"    b2b_test.go:401: a message of a row that passed",
		"    b2b_test.go:300: dialer (node) log:",
		"--- FAIL: TestB2B (3.00s)",
		"    --- FAIL: TestB2B/a-b-via-tachyon (1.00s)",
		"    --- PASS: TestB2B/c-d-via-tachyon (1.00s)",
	}, "\n")
	got := b2bFailures([]byte(out))
	want := "a-b-via-tachyon: b2b_test.go:400: listener: 2 connected peer connections, want 1\n" +
		"a-b-via-tachyon:     peer connections: [closed]\n"
	if got != want {
		t.Errorf("b2bFailures = %q, want %q", got, want)
	}
	if got := b2bFailures([]byte("--- FAIL: TestB2B (3.00s)\n")); !strings.Contains(got, "no row failed") {
		t.Errorf("b2bFailures without failed rows = %q", got)
	}
}
