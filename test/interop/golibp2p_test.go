// Package interop runs tachyon against real peers of other implementations.
// This file drives go-libp2p v0.51 through the peer program in
// interop/golibp2p (a module of its own, so go-libp2p never enters ours).
package interop

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/internal/logs/logtest"
)

const (
	echoID     protocol.ID = "/tachyon-test/echo/1.0.0"
	goAgent                = "golibp2p-peer/0.51.0"
	ourAgent               = "tachyon-interop/1"
	buildLimit             = 10 * time.Minute
)

// goPeer builds the go-libp2p peer program once per test run.
var goPeer = buildProgram("interop/golibp2p", ".", "golibp2p-peer")

// buildProgram returns a function that builds the main package pkg of the
// module in moduleDir (relative to the repository root) once per test run
// and returns the binary's path.
func buildProgram(moduleDir, pkg, name string) func(*testing.T) string {
	build := sync.OnceValues(func() (string, error) {
		_, file, _, _ := runtime.Caller(0)
		src := filepath.Join(filepath.Dir(file), "..", "..", moduleDir)
		dir, err := os.MkdirTemp("", name)
		if err != nil {
			return "", err
		}
		bin := filepath.Join(dir, name)
		ctx, cancel := context.WithTimeout(context.Background(), buildLimit)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
		cmd.Dir = src
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("building %s in %s: %v\n%s", name, src, err, out)
		}
		return bin, nil
	})
	return func(t *testing.T) string {
		t.Helper()
		bin, err := build()
		if err != nil {
			t.Fatal(err)
		}
		return bin
	}
}

func echo(s network.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.Copy(s, s); err != nil {
		s.Reset()
	}
}

type identifyInfo struct {
	AgentVersion    string   `json:"agentVersion"`
	Protocols       []string `json:"protocols"`
	ProtocolVersion string   `json:"protocolVersion"`
	ListenAddrs     []string `json:"listenAddrs"`
	ObservedAddr    string   `json:"observedAddr"`
}

type event struct {
	Event string `json:"event"`
	OK    bool   `json:"ok"`
	Error string `json:"error"`
	Peer  string `json:"peer"`
	Self  string `json:"self"`
	identifyInfo
	PingRTTs  []float64    `json:"pingRTTsMillis"`
	Identify  identifyInfo `json:"identify"`
	EchoBytes int          `json:"echoBytes"`
	Security  string       `json:"security"`
	Muxer     string       `json:"muxer"`
}

// goCase is one transport x security combination run both ways.
type goCase struct {
	name      string
	transport string      // the go peer's --transport
	security  string      // the go peer's --security ("" where the transport has its own)
	ourSec    protocol.ID // what tachyon offers / expects
	listen    string      // tachyon's listen address
	muxer     string      // the muxer both sides must report ("" for native streams)
}

func goCases() []goCase {
	return []goCase{
		{"tcp-noise", "tcp", "noise", tachyon.Noise, "/ip4/127.0.0.1/tcp/0", "/yamux/1.0.0"},
		{"tcp-tls", "tcp", "tls", tachyon.TLS, "/ip4/127.0.0.1/tcp/0", "/yamux/1.0.0"},
		{"ws-noise", "ws", "noise", tachyon.Noise, "/ip4/127.0.0.1/tcp/0/ws", "/yamux/1.0.0"},
		{"ws-tls", "ws", "tls", tachyon.TLS, "/ip4/127.0.0.1/tcp/0/ws", "/yamux/1.0.0"},
		{"quic-v1", "quic-v1", "", tachyon.TLS, "/ip4/127.0.0.1/udp/0/quic-v1", ""},
		{"webtransport", "webtransport", "", tachyon.Noise, "/ip4/127.0.0.1/udp/0/quic-v1/webtransport", ""},
		{"webrtc-direct", "webrtc-direct", "", tachyon.Noise, "/ip4/127.0.0.1/udp/0/webrtc-direct", ""},
	}
}

func (c goCase) goArgs() []string {
	args := []string{"--transport", c.transport}
	if c.security != "" {
		args = append(args, "--security", c.security)
	}
	return args
}

func hasAll(t *testing.T, who string, got []string, want ...protocol.ID) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(got, string(w)) {
			t.Errorf("%s protocols %v lack %s", who, got, w)
		}
	}
}

// TestGoDialsTachyon: go-libp2p connects to tachyon, pings 10 times, checks
// identify, echoes 10 MiB on 8 concurrent streams, closes.
func TestGoDialsTachyon(t *testing.T) {
	bin := goPeer(t)
	for _, tc := range goCases() {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			log, logs := logtest.New()
			h, err := tachyon.New(tachyon.ListenAddrStrings(tc.listen), tachyon.UserAgent(ourAgent), tachyon.Logger(log))
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			h.SetStreamHandler(echoID, echo)
			addr := h.FullAddrs()[0].String()

			cmd := exec.CommandContext(ctx, bin, append(append([]string{"dial", addr}, tc.goArgs()...),
				"--pings", "10", "--echo-bytes", "1310720", "--echo-streams", "8")...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			exited := time.Now()
			var res event
			if jerr := json.Unmarshal(lastLine(out), &res); jerr != nil {
				t.Fatalf("go peer output %q (err %v, exit %v): %v\nstderr:\n%s", out, jerr, err, jerr, stderr.String())
			}
			if err != nil || !res.OK {
				t.Fatalf("go peer failed: %v %s\nstderr:\n%s", err, res.Error, stderr.String())
			}
			if len(res.PingRTTs) != 10 {
				t.Errorf("%d ping RTTs, want 10", len(res.PingRTTs))
			}
			if res.EchoBytes != 10<<20 {
				t.Errorf("echoed %d bytes", res.EchoBytes)
			}
			if tc.security != "" && res.Security != string(tc.ourSec) || res.Muxer != tc.muxer {
				t.Errorf("go negotiated %q %q", res.Security, res.Muxer)
			}
			if res.Identify.AgentVersion != ourAgent {
				t.Errorf("go saw agent %q", res.Identify.AgentVersion)
			}
			hasAll(t, "go saw tachyon", res.Identify.Protocols, "/ipfs/id/1.0.0", "/ipfs/id/push/1.0.0", "/ipfs/ping/1.0.0", echoID)
			if len(res.Identify.ListenAddrs) == 0 {
				t.Error("go saw no listen addresses")
			}

			// Our side identified the go peer too.
			goID, err := peer.Decode(res.Self)
			if err != nil {
				t.Fatal(err)
			}
			// Our identify of the go peer ran alongside its session; it may
			// finish a moment after the go peer's own.
			if !eventually(5*time.Second, func() bool { a, _ := h.Peerstore().Agent(goID); return a != "" }) {
				t.Fatalf("tachyon's identify of the go peer did not finish within 5 s of the go peer's exit")
			}
			agent, _ := h.Peerstore().Agent(goID)
			if agent != goAgent {
				t.Errorf("tachyon saw agent %q", agent)
			}
			hasAll(t, "tachyon saw go", protoStrings(h.Peerstore().Protocols(goID)), "/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", echoID)
			// The go peer closed its connection (an SCTP ABORT and a DTLS
			// close_notify for WebRTC-direct) before it exited; we notice.
			closed := func() bool { return len(h.Network().ConnsToPeer(goID)) == 0 }
			if !eventually(5*time.Second, closed) {
				// The close is two UDP datagrams for WebRTC-direct, sent
				// once. Issue #12: the listener's per-connection queue,
				// full under CI load, dropped the newest datagrams, these
				// two; it now drops the oldest. Datagrams can still be lost
				// before it (the socket's buffer) or after it (pion's ICE
				// and DTLS buffers drop the newest), and then only the ICE
				// timeouts end the connection (20 s disconnected, 30 s
				// failed): the report shows where they went.
				conns := len(h.Network().ConnsToPeer(goID))
				stacks := transportStacks() + "\n" + udpSockets(h.Addrs())
				if tc.name != "webrtc-direct" || !eventually(35*time.Second, closed) {
					t.Fatalf("%d connections to the go peer %v after it exited (at %s)\ngo stderr:\n%s\ntachyon log:\n%s\ntransport goroutines 5 s after the exit:\n%s",
						len(h.Network().ConnsToPeer(goID)), time.Since(exited), exited.Format(timeFormat), stderr.String(), logs.String(), stacks)
				}
				// What the listener's socket received comes once the
				// connection is gone from it.
				eventually(5*time.Second, func() bool { return strings.Contains(logs.String(), "left the listener's socket") })
				t.Logf("MISSED CLOSE: %d connections to the go peer 5 s after it exited (at %s); ended by the ICE timeouts after %v\ngo stderr:\n%s\ntachyon log:\n%s\ntransport goroutines 5 s after the exit:\n%s",
					conns, exited.Format(timeFormat), time.Since(exited), stderr.String(), logs.String(), stacks)
			}
		})
	}
}

// timeFormat is how failure reports print instants, to compare with the
// go peer's log and tachyon's.
const timeFormat = "15:04:05.000000"

// transportStacks returns the stacks of the goroutines of pion and of
// tachyon's transports: where the side that missed a close is waiting.
func transportStacks() string {
	var b bytes.Buffer
	pprof.Lookup("goroutine").WriteTo(&b, 2)
	var out []string
	for g := range strings.SplitSeq(b.String(), "\n\n") {
		if strings.Contains(g, "github.com/pion/") || strings.Contains(g, "tachyon/transport/") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// udpSockets returns the kernel's lines (/proc/net/udp, Linux) for the UDP
// ports among addrs: their drops column counts datagrams lost to a full
// receive buffer.
func udpSockets(addrs []ma.Multiaddr) string {
	var out []string
	for _, a := range addrs {
		port, err := a.ValueForProtocol(ma.P_UDP)
		if err != nil {
			continue
		}
		var n int
		if _, err := fmt.Sscan(port, &n); err != nil {
			continue
		}
		for _, f := range []string{"/proc/net/udp", "/proc/net/udp6"} {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			for line := range strings.SplitSeq(string(b), "\n") {
				if fs := strings.Fields(line); len(fs) > 1 && strings.HasSuffix(fs[1], fmt.Sprintf(":%04X", n)) {
					out = append(out, f+": "+line)
				}
			}
		}
	}
	return "UDP sockets (drops is the last column):\n" + strings.Join(out, "\n")
}

// TestTachyonDialsGo: tachyon connects to a go-libp2p listener, pings 10
// times, checks identify both ways, echoes 10 MiB on 8 concurrent streams,
// closes.
func TestTachyonDialsGo(t *testing.T) {
	bin := goPeer(t)
	for _, tc := range goCases() {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, append([]string{"listen"}, tc.goArgs()...)...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				cmd.Process.Kill()
				cmd.Wait()
			}()
			lines := bufio.NewScanner(stdout)
			var addrs []ma.Multiaddr
			for lines.Scan() && lines.Text() != "READY" {
				a, err := ma.NewMultiaddr(lines.Text())
				if err != nil {
					t.Fatalf("go listener printed %q: %v", lines.Text(), err)
				}
				addrs = append(addrs, a)
			}
			if len(addrs) == 0 {
				t.Fatalf("go listener printed no address; stderr:\n%s", stderr.String())
			}
			ai, err := peer.AddrInfoFromP2pAddr(addrs[0])
			if err != nil {
				t.Fatal(err)
			}

			h, err := tachyon.New(tachyon.Security(tc.ourSec), tachyon.UserAgent(ourAgent),
				tachyon.ListenAddrStrings(tc.listen))
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			h.SetStreamHandler(echoID, echo)
			if err := h.Connect(ctx, *ai); err != nil {
				t.Fatalf("connect: %v\ngo stderr:\n%s", err, stderr.String())
			}
			st := h.Network().ConnsToPeer(ai.ID)[0].ConnState()
			wantTransport := tc.transport
			if wantTransport == "ws" {
				wantTransport = "websocket"
			}
			if st.Security != tc.ourSec || string(st.Muxer) != tc.muxer || st.Transport != wantTransport {
				t.Errorf("negotiated %+v", st)
			}
			n := 0
			if err := h.Ping(ctx, ai.ID, 10, 0, 5*time.Second, func(int, time.Duration) { n++ }); err != nil || n != 10 {
				t.Fatalf("ping: %d replies, %v", n, err)
			}
			res, err := h.IdentifyWait(ctx, ai.ID)
			if err != nil {
				t.Fatal(err)
			}
			if res.Message.AgentVersion != goAgent {
				t.Errorf("agent %q", res.Message.AgentVersion)
			}
			hasAll(t, "go", protoStrings(res.Message.Protocols), "/ipfs/id/1.0.0", "/ipfs/id/push/1.0.0", "/ipfs/ping/1.0.0", echoID)
			if res.Record() == nil {
				t.Error("go's signed peer record missing or not verified")
			}

			// 10 MiB echoed on 8 concurrent streams.
			echoErrs := make(chan error, 8)
			for i := 0; i < 8; i++ {
				go func() { echoErrs <- echoOnce(ctx, h, ai.ID, 10<<20/8) }()
			}
			for i := 0; i < 8; i++ {
				if err := <-echoErrs; err != nil {
					t.Fatal(err)
				}
			}

			// The go side reports what identify told it about us.
			ev := waitEvent(t, lines, "identified", &stderr)
			if ev.AgentVersion != ourAgent {
				t.Errorf("go saw agent %q", ev.AgentVersion)
			}
			hasAll(t, "go saw tachyon", ev.Protocols, "/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", echoID)
			if len(ev.ListenAddrs) == 0 {
				t.Error("go saw no listen addresses from tachyon")
			}

			if err := h.Close(); err != nil {
				t.Fatal(err)
			}
			cmd.Process.Signal(syscall.SIGTERM)
			waitEvent(t, lines, "closed", &stderr)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("go listener exit: %v\nstderr:\n%s", err, stderr.String())
			}
		})
	}
}

// echoOnce sends n random bytes on a new echo stream while reading them
// back, and checks they return unchanged.
func echoOnce(ctx context.Context, h *tachyon.Host, p peer.ID, n int) error {
	s, err := h.NewStream(ctx, p, echoID)
	if err != nil {
		return err
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	data := make([]byte, n)
	rand.Read(data)
	go func() {
		s.Write(data)
		s.CloseWrite()
	}()
	got, err := io.ReadAll(s)
	if err != nil || !bytes.Equal(got, data) {
		return fmt.Errorf("echo: %d of %d bytes back, equal %v, err %v", len(got), n, bytes.Equal(got, data), err)
	}
	return nil
}

func waitEvent(t *testing.T, lines *bufio.Scanner, name string, stderr *bytes.Buffer) event {
	t.Helper()
	for lines.Scan() {
		var ev event
		if err := json.Unmarshal(lines.Bytes(), &ev); err != nil {
			t.Fatalf("go listener printed %q: %v", lines.Text(), err)
		}
		if ev.Event == name {
			return ev
		}
	}
	t.Fatalf("go listener ended before %q; stderr:\n%s", name, stderr.String())
	return event{}
}

func lastLine(b []byte) []byte {
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return b[i+1:]
	}
	return b
}

func protoStrings(ps []protocol.ID) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p)
	}
	return out
}

// eventually polls cond for up to d and reports whether it held.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
