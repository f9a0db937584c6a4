package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/autonat"
	"github.com/libp2p/go-libp2p/p2p/protocol/autonatv2"
	autonatv2pb "github.com/libp2p/go-libp2p/p2p/protocol/autonatv2/pb"
	"github.com/libp2p/go-msgio/pbio"
	ma "github.com/multiformats/go-multiaddr"
)

var peerBin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if peerBin.dir != "" {
		_ = os.RemoveAll(peerBin.dir)
	}
	os.Exit(code)
}

// buildPeer builds golibp2p-peer from this directory once per test run.
func buildPeer(t *testing.T) string {
	t.Helper()
	peerBin.once.Do(func() {
		peerBin.dir, peerBin.err = os.MkdirTemp("", "golibp2p-peer-test")
		if peerBin.err != nil {
			return
		}
		path := filepath.Join(peerBin.dir, "golibp2p-peer")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "go", "build", "-o", path, ".").CombinedOutput()
		if err != nil {
			peerBin.err = fmt.Errorf("go build: %w\n%s", err, out)
			return
		}
		peerBin.path = path
	})
	if peerBin.err != nil {
		t.Fatal(peerBin.err)
	}
	return peerBin.path
}

// line is one stdout line of a golibp2p-peer process, decoded.
type line struct {
	Event        string   `json:"event"`
	MS           float64  `json:"ms"`
	Peer         string   `json:"peer"`
	Addrs        []string `json:"addrs"`
	Reachable    []string `json:"reachable"`
	Unreachable  []string `json:"unreachable"`
	Unknown      []string `json:"unknown"`
	Reachability string   `json:"reachability"`
	Version      int      `json:"version"`
	Status       string   `json:"status"`
	DialStatus   string   `json:"dialStatus"`
	Dialed       string   `json:"dialed"`
	Remote       string   `json:"remote"`
	Local        string   `json:"local"`
	Answered     bool     `json:"answered"`
	raw          string
}

type peerProc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan line // closed at stdout EOF
	seen   []line    // what waitLine has read so far
	stderr *bytes.Buffer
	exited chan struct{}
}

// startPeer runs golibp2p-peer with args, inside network namespace ns
// unless ns is "". Cleanup stops it (stdin EOF, then kill after 10 s).
func startPeer(t *testing.T, name, ns string, args ...string) *peerProc {
	t.Helper()
	bin := buildPeer(t)
	argv := append([]string{bin}, args...)
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	p := &peerProc{t: t, name: name, cmd: exec.Command(argv[0], argv[1:]...), lines: make(chan line, 1024),
		stderr: &bytes.Buffer{}, exited: make(chan struct{})}
	p.cmd.Stderr = &lockedWriter{w: p.stderr}
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			l := line{raw: sc.Text()}
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				l.Event = "malformed"
			}
			p.lines <- l
		}
	}()
	go func() {
		<-read
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.stdin.Close()
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		for l := range p.lines {
			p.seen = append(p.seen, l)
		}
		if t.Failed() {
			t.Logf("%s stdout:\n%s\n%s stderr:\n%s", name, p.dump(), name, p.stderr)
		}
	})
	return p
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (p *peerProc) dump() string {
	var b strings.Builder
	for _, l := range p.seen {
		b.WriteString(l.raw + "\n")
	}
	return b.String()
}

// next returns the next line, or false after timeout or at EOF.
func (p *peerProc) next(timeout <-chan time.Time) (line, bool) {
	select {
	case l, ok := <-p.lines:
		if !ok {
			return line{}, false
		}
		if l.Event == "malformed" {
			p.t.Errorf("%s printed a line that is not JSON: %q", p.name, l.raw)
		}
		p.seen = append(p.seen, l)
		return l, true
	case <-timeout:
		return line{}, false
	}
}

// waitLine returns the first line from now on that match accepts.
func (p *peerProc) waitLine(timeout time.Duration, what string, match func(line) bool) line {
	p.t.Helper()
	tm := time.After(timeout)
	for {
		l, ok := p.next(tm)
		if !ok {
			p.t.Fatalf("%s: no %s within %v", p.name, what, timeout)
		}
		if match(l) {
			return l
		}
	}
}

// none checks that no line match accepts comes within d.
func (p *peerProc) none(d time.Duration, what string, match func(line) bool) {
	p.t.Helper()
	tm := time.After(d)
	for {
		l, ok := p.next(tm)
		if !ok {
			return
		}
		if match(l) {
			p.t.Errorf("%s: unexpected %s: %s", p.name, what, l.raw)
		}
	}
}

// stop closes stdin and checks for the closed line and exit code 0.
func (p *peerProc) stop() {
	p.t.Helper()
	_ = p.stdin.Close()
	p.waitLine(15*time.Second, "closed line", func(l line) bool { return l.Event == "closed" })
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.t.Fatalf("%s: no exit after closed", p.name)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		p.t.Errorf("%s: exit code %d", p.name, code)
	}
}

func isEvent(e string) func(line) bool { return func(l line) bool { return l.Event == e } }

// TestAutoNATLoopback runs an autonat-server and an autonat-client on
// loopback. go-libp2p never asks AutoNAT about non-public addresses, so
// the client sends no request and reports no verdict; the server's
// request lines are checked with requests this test makes by hand, which
// the server refuses (127.0.0.1 is not public).
func TestAutoNATLoopback(t *testing.T) {
	srv := startPeer(t, "server", "", "autonat-server", "--transport", "tcp", "--listen", "/ip4/127.0.0.1/tcp/0")
	sl := srv.waitLine(60*time.Second, "listening line", isEvent("listening"))
	srvID, err := peer.Decode(sl.Peer)
	if err != nil || len(sl.Addrs) != 1 || !strings.HasPrefix(sl.Addrs[0], "/ip4/127.0.0.1/tcp/") {
		t.Fatalf("server listening line: %s (peer: %v)", sl.raw, err)
	}
	srvAddr := sl.Addrs[0] + "/p2p/" + sl.Peer

	cli := startPeer(t, "client", "", "autonat-client", "--transport", "tcp", "--listen", "/ip4/127.0.0.1/tcp/0", "--server", srvAddr)
	cl := cli.waitLine(10*time.Second, "listening line", isEvent("listening"))
	if _, err := peer.Decode(cl.Peer); err != nil || len(cl.Addrs) != 1 {
		t.Fatalf("client listening line: %s", cl.raw)
	}
	cli.waitLine(10*time.Second, "connected line", func(l line) bool {
		if l.Event == "connect-failed" {
			t.Fatalf("client: %s", l.raw)
		}
		return l.Event == "connected" && l.Peer == sl.Peer
	})

	// Requests by hand, v2 and v1, each for a loopback address.
	h, err := libp2p.New(libp2p.NoListenAddrs)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.Connect(ctx, peer.AddrInfo{ID: srvID, Addrs: []ma.Multiaddr{ma.StringCast(sl.Addrs[0])}}); err != nil {
		t.Fatal(err)
	}
	asked := "/ip4/127.0.0.1/tcp/9"
	s, err := h.NewStream(ctx, srvID, autonatv2.DialProtocol)
	if err != nil {
		t.Fatal(err)
	}
	req := autonatv2pb.Message{Msg: &autonatv2pb.Message_DialRequest{DialRequest: &autonatv2pb.DialRequest{
		Addrs: [][]byte{ma.StringCast(asked).Bytes()}, Nonce: 42}}}
	var resp autonatv2pb.Message
	if err := pbio.NewDelimitedWriter(s).WriteMsg(&req); err != nil {
		t.Fatal(err)
	}
	if err := pbio.NewDelimitedReader(s, 8192).ReadMsg(&resp); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if got := resp.GetDialResponse().GetStatus(); got != autonatv2pb.DialResponse_E_DIAL_REFUSED {
		t.Errorf("v2 response status %v, want E_DIAL_REFUSED", got)
	}
	v1 := autonat.NewAutoNATClient(h, func() []ma.Multiaddr { return []ma.Multiaddr{ma.StringCast(asked)} }, nil)
	if err := v1.DialBack(ctx, srvID); !autonat.IsDialRefused(err) {
		t.Errorf("v1 DialBack: %v, want E_DIAL_REFUSED", err)
	}
	for _, v := range []int{2, 1} {
		l := srv.waitLine(10*time.Second, fmt.Sprintf("v%d request line", v), func(l line) bool {
			return l.Event == "autonat-request" && l.Version == v
		})
		if l.Peer != h.ID().String() || l.Status != "E_DIAL_REFUSED" || !slices.Equal(l.Addrs, []string{asked}) ||
			l.Dialed != "" || !strings.HasPrefix(l.Remote, "/ip4/127.0.0.1/tcp/") {
			t.Errorf("server v%d request line: %s", v, l.raw)
		}
	}

	// What go does on loopback: its v2 tracker and v1 client skip
	// non-public addresses, so no request and no verdict. The tracker's
	// first probe is 1 s after the addresses are known and v1 probes right
	// after identify: 3 s is well past both.
	cli.none(3*time.Second, "verdict", func(l line) bool {
		return l.Event == "reachable-addrs" || l.Event == "reachability" || l.Event == "dial-back"
	})
	cli.stop()
	srv.stop()
	for _, l := range srv.seen {
		if l.Event == "autonat-request" && l.Peer == cl.Peer {
			t.Errorf("server served the client on loopback: %s", l.raw)
		}
	}
	for _, l := range cli.seen {
		if l.Event == "addrs" && !slices.Equal(l.Addrs, cl.Addrs) {
			t.Errorf("client addrs line %s, want its listen address %v", l.raw, cl.Addrs)
		}
	}
}

// netnsLAN is a set of network namespaces on one bridge, each with one
// address in 11.0.0.0/24, which go-multiaddr counts as public. The bridge
// lives in a namespace of its own, so nothing changes outside them.
type netnsLAN struct {
	t      *testing.T
	prefix string
	hub    string
	nodes  []string
}

func (n *netnsLAN) ip(args ...string) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
		n.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newNetnsLAN makes count namespaces, node i at 11.0.0.(10+i). It skips
// the test unless it runs as root with iproute2.
func newNetnsLAN(t *testing.T, count int) *netnsLAN {
	t.Helper()
	if testing.Short() {
		t.Skip("network namespaces: not in -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("network namespaces need iproute2's ip")
	}
	n := &netnsLAN{t: t, prefix: fmt.Sprintf("gonat%d", os.Getpid())}
	n.hub = n.prefix + "-hub"
	t.Cleanup(func() {
		for _, ns := range append(slices.Clone(n.nodes), n.hub) {
			_ = exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	n.ip("netns", "add", n.hub)
	n.ip("-n", n.hub, "link", "add", "br0", "type", "bridge")
	n.ip("-n", n.hub, "link", "set", "br0", "up")
	for i := range count {
		ns := fmt.Sprintf("%s-%d", n.prefix, i)
		n.ip("netns", "add", ns)
		n.nodes = append(n.nodes, ns)
		port := fmt.Sprintf("p%d", i)
		n.ip("-n", n.hub, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
		n.ip("-n", n.hub, "link", "set", port, "master", "br0", "up")
		n.ip("-n", ns, "addr", "add", n.addr(i)+"/24", "dev", "eth0")
		n.ip("-n", ns, "link", "set", "eth0", "up")
		n.ip("-n", ns, "link", "set", "lo", "up")
	}
	return n
}

func (n *netnsLAN) addr(i int) string { return fmt.Sprintf("11.0.0.%d", 10+i) }

// nft runs an nftables script inside namespace ns.
func (n *netnsLAN) nft(ns, script string) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		n.t.Fatalf("nft in %s: %v\n%s\n%s", ns, err, out, script)
	}
}

// TestAutoNATNetns: a go client on a public address asks three go servers
// (all in namespaces of their own) and gets a verdict for its address.
// It logs how long go took: the number BENCHMARKS wants for go-libp2p.
func TestAutoNATNetns(t *testing.T) {
	buildPeer(t)
	lan := newNetnsLAN(t, 4) // node 0 is the client
	for _, tc := range []struct {
		name, transport, listen string
		servers                 int
		// block makes the client's listen port refuse new inbound flows
		// (nftables in its namespace); its own outbound ones still work.
		block     string
		reachable bool
	}{
		{"tcp public", "tcp", "/ip4/%s/tcp/4001", 3, "", true},
		{"quic public", "quic-v1", "/ip4/%s/udp/4001/quic-v1", 3, "", true},
		// Two agreeing servers are enough for go (minConfidence).
		{"tcp public two servers", "tcp", "/ip4/%s/tcp/4003", 2, "", true},
		{"tcp blocked", "tcp", "/ip4/%s/tcp/4002", 3, "tcp dport 4002 ct state new reject with tcp reset", false},
		{"quic blocked", "quic-v1", "/ip4/%s/udp/4002/quic-v1", 3, "udp dport 4002 ct state new reject", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var srvs []*peerProc
			var args []string
			for i := 1; i <= tc.servers; i++ {
				s := startPeer(t, fmt.Sprintf("server%d", i), lan.nodes[i], "autonat-server", "--transport", tc.transport,
					"--listen", fmt.Sprintf(tc.listen, lan.addr(i)))
				l := s.waitLine(30*time.Second, "listening line", isEvent("listening"))
				args = append(args, "--server", l.Addrs[0]+"/p2p/"+l.Peer)
				srvs = append(srvs, s)
			}
			if tc.block != "" {
				lan.nft(lan.nodes[0], "table inet gonat\ndelete table inet gonat\ntable inet gonat {\n chain in {\n  type filter hook input priority 0;\n  "+tc.block+"\n }\n}\n")
				t.Cleanup(func() { lan.nft(lan.nodes[0], "delete table inet gonat\n") })
			}
			own := fmt.Sprintf(tc.listen, lan.addr(0))
			cli := startPeer(t, "client", lan.nodes[0], append([]string{"autonat-client", "--transport", tc.transport, "--listen", own}, args...)...)
			cl := cli.waitLine(10*time.Second, "listening line", isEvent("listening"))
			var connected float64
			for range tc.servers {
				connected = cli.waitLine(10*time.Second, "connected line", func(l line) bool {
					if l.Event == "connect-failed" {
						t.Fatalf("client: %s", l.raw)
					}
					return l.Event == "connected"
				}).MS
			}
			verdict := cli.waitLine(30*time.Second, "v2 verdict", func(l line) bool {
				return l.Event == "reachable-addrs" && len(l.Unknown) == 0 && len(l.Reachable)+len(l.Unreachable) > 0
			})
			got := verdict.Reachable
			if !tc.reachable {
				got = verdict.Unreachable
			}
			if !slices.Equal(got, []string{own}) {
				t.Errorf("verdict %s, want %s reachable=%v", verdict.raw, own, tc.reachable)
			}
			// v1 says public after one successful dial-back; private only
			// after a failed one, which a go server reports after its full
			// 15 s dial timeout: wait for v1 only when public.
			if tc.reachable {
				v1 := cli.waitLine(30*time.Second, "v1 verdict", isEvent("reachability"))
				if v1.Reachability != "public" {
					t.Errorf("v1 verdict %s, want public", v1.raw)
				}
				t.Logf("go client, %s: v2 verdict at %.0f ms, v1 at %.0f ms (last server connected at %.0f ms)",
					tc.name, verdict.MS, v1.MS, connected)
			} else {
				t.Logf("go client, %s: v2 verdict at %.0f ms (last server connected at %.0f ms)", tc.name, verdict.MS, connected)
			}
			cli.stop()
			dialBacks := 0
			for _, l := range cli.seen {
				if l.Event == "dial-back" && l.Answered && l.Local == own {
					dialBacks++
				}
			}
			if tc.reachable && dialBacks < 2 {
				t.Errorf("client printed %d answered dial-backs on %s, want at least 2", dialBacks, own)
			}
			if !tc.reachable && dialBacks > 0 {
				t.Errorf("client printed %d answered dial-backs on its blocked address", dialBacks)
			}
			// Every v2 request the servers served for this client names
			// its address and, if it was dialed, the right outcome.
			served := 0
			for _, s := range srvs {
				s.stop()
				for _, l := range s.seen {
					if l.Event == "autonat-request" {
						t.Logf("%s: %s", s.name, l.raw)
					}
					if l.Event != "autonat-request" || l.Version != 2 || l.Peer != cl.Peer {
						continue
					}
					served++
					wantDial := "OK"
					if !tc.reachable {
						wantDial = "E_DIAL_ERROR"
					}
					if l.Status != "OK" || l.DialStatus != wantDial || l.Dialed != own {
						t.Errorf("%s served %s, want status OK, dialStatus %s, dialed %s", s.name, l.raw, wantDial, own)
					}
				}
			}
			if served < 2 {
				t.Errorf("servers served %d v2 requests of the client, want at least 2 (go's minimum confidence)", served)
			}
		})
	}
}
