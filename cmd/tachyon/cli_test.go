package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// TestHelp: -h and --help on every command print its description, usage
// line and every flag to stdout and exit 0; an unknown flag exits 2 with
// the usage on stderr.
func TestHelp(t *testing.T) {
	cases := []struct {
		cmd   string
		flags []string
	}{
		{"node", []string{"-listen MADDR", "-key FILE", "-tls-cert FILE", "-tls-key FILE", "-perf", "-echo", "-debug-addr HOST:PORT", "-metrics HOST:PORT", "-log-level LEVEL", "(default warn)"}},
		{"ping", []string{"-n N", "-i duration", "-timeout duration", "-log-level LEVEL", "(default 5)", "(default 10s)"}},
		{"id", []string{"-timeout duration", "-log-level LEVEL"}},
		{"rtt", []string{"-n N", "-timeout duration", "-v", "-log-level LEVEL"}},
		{"dial", []string{"-n N", "-timeout duration", "-same-host", "-v", "-log-level LEVEL"}},
		{"perf", []string{"-run-server", "-server-address ADDR", "-transport NAME", "-upload-bytes N", "-download-bytes N", "-security string", "-log-level LEVEL"}},
		{"demo", []string{"-pings int", "-log-level LEVEL"}},
		{"daemon", []string{"-listen string", "-hostAddrs string", "-id string", "-muxer string", "-metricsAddr string", "-log-level LEVEL"}},
		{"punch", []string{"-listen MADDR", "-timeout duration", "-holepunch-private-addrs", "-holepunch-public-prefixes CIDRs", "-transport NAME", "-log-level LEVEL", "(default 1m0s)"}},
		{"transport-interop", nil},
		{"version", nil},
	}
	if len(cases) != len(commands) {
		t.Errorf("%d cases for %d commands", len(cases), len(commands))
	}
	for _, tc := range cases {
		c := lookup(tc.cmd)
		for _, args := range [][]string{{tc.cmd, "-h"}, {tc.cmd, "--help"}, {"help", tc.cmd}} {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				code, stdout, stderr := runCmd(args...)
				if code != 0 || stderr != "" {
					t.Fatalf("exit %d, stderr %q", code, stderr)
				}
				for _, want := range append([]string{"tachyon " + tc.cmd + ": " + c.short + "\n", "usage: tachyon " + tc.cmd}, tc.flags...) {
					if !strings.Contains(stdout, want) {
						t.Errorf("lacks %q:\n%s", want, stdout)
					}
				}
			})
		}
		t.Run(tc.cmd+" --no-such-flag", func(t *testing.T) {
			code, stdout, stderr := runCmd(tc.cmd, "--no-such-flag")
			if code != 2 || stdout != "" {
				t.Fatalf("exit %d, stdout %q", code, stdout)
			}
			if !strings.HasPrefix(stderr, "tachyon "+tc.cmd+": flag provided but not defined: -no-such-flag\n") || !strings.Contains(stderr, "usage: tachyon "+tc.cmd) {
				t.Errorf("stderr lacks the error or the usage:\n%s", stderr)
			}
		})
	}
}

func TestTopUsage(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		code, stdout, stderr := runCmd(args...)
		if code != 0 || stderr != "" {
			t.Fatalf("%v: exit %d, stderr %q", args, code, stderr)
		}
		for _, c := range commands {
			if !regexp.MustCompile(`(?m)^  ` + c.name + ` +` + regexp.QuoteMeta(c.short) + `$`).MatchString(stdout) {
				t.Errorf("%v: no line for %s:\n%s", args, c.name, stdout)
			}
		}
	}
	code, stdout, stderr := runCmd()
	if code != 2 || stdout != "" || !strings.Contains(stderr, "commands:\n  node ") {
		t.Errorf("no arguments: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code, _, stderr := runCmd("help", "frobnicate"); code != 2 || !strings.Contains(stderr, "unknown command") {
		t.Errorf("help frobnicate: exit %d, stderr %q", code, stderr)
	}
	// Other usage mistakes are one line that says where the usage is.
	code, _, stderr = runCmd("ping")
	if code != 2 || stderr != "tachyon ping: expected one multiaddr, got 0 arguments (see tachyon ping -h)\n" {
		t.Errorf("ping without arguments: exit %d, stderr %q", code, stderr)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, stdout, stderr := runCmd(args...)
		if code != 0 || stderr != "" {
			t.Fatalf("%v: exit %d, stderr %q", args, code, stderr)
		}
		if !strings.HasPrefix(stdout, "tachyon ") || !strings.Contains(stdout, runtime.GOOS+"/"+runtime.GOARCH+")\n") || strings.Count(stdout, "\n") != 1 {
			t.Errorf("%v: %q", args, stdout)
		}
	}
	if code, _, _ := runCmd("version", "extra"); code != 2 {
		t.Errorf("version extra: exit %d", code)
	}
	cases := []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"no build info", nil, "tachyon " + tachyon.Version + "-devel (" + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH + ")"},
		{"tagged", &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "v0.2.0"}}, "tachyon v0.2.0 (go1.26.1, "},
		{"devel", &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"}}},
			"tachyon " + tachyon.Version + "-devel (commit 0123456789ab+modified, go1.26.1, "},
		{"devel clean", &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "false"}}},
			"tachyon " + tachyon.Version + "-devel (commit 0123456789ab, go1.26.1, "},
	}
	for _, tc := range cases {
		if got := versionLine(tc.bi); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: %q, want prefix %q", tc.name, got, tc.want)
		}
	}
}

func TestLogLevel(t *testing.T) {
	for s, want := range map[string]slog.Level{"debug": slog.LevelDebug, "INFO": slog.LevelInfo, "warn": slog.LevelWarn, "warning": slog.LevelWarn, "error": slog.LevelError} {
		if got, err := parseLogLevel(s); err != nil || got != want {
			t.Errorf("parseLogLevel(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "verbose", "3"} {
		if _, err := parseLogLevel(s); err == nil {
			t.Errorf("parseLogLevel(%q) succeeded", s)
		}
	}
	for _, cmd := range []string{"node", "ping", "id", "rtt", "perf", "demo", "daemon"} {
		code, _, stderr := runCmd(cmd, "-log-level", "loud")
		if code != 2 || !strings.Contains(stderr, `invalid value "loud" for flag -log-level: want debug, info, warn or error`) {
			t.Errorf("%s -log-level loud: exit %d, stderr %q", cmd, code, stderr)
		}
	}
}

// TestNodeLogLevel: the host logs at the level asked for, on stderr.
func TestNodeLogLevel(t *testing.T) {
	leakcheck.Check(t)
	for _, tc := range []struct {
		level string
		want  bool
	}{{"info", true}, {"", false}, {"error", false}} {
		args := []string{"--listen", "/ip4/127.0.0.1/tcp/0"}
		if tc.level != "" {
			args = append(args, "--log-level", tc.level)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var out, errOut syncBuffer
		done := make(chan int, 1)
		go func() { done <- run(ctx, append([]string{"node"}, args...), &out, &errOut) }()
		deadline := time.Now().Add(10 * time.Second)
		for out.String() == "" && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		if code := <-done; code != 0 {
			t.Fatalf("node %v: exit %d: %s", args, code, errOut.String())
		}
		if got := strings.Contains(errOut.String(), "level=INFO msg=\"host started\""); got != tc.want {
			t.Errorf("--log-level %q: host start logged %v, want %v; stderr:\n%s", tc.level, got, tc.want, errOut.String())
		}
	}
}

// TestPerfAgainstNode: a multiaddr names its transport, so perf needs no
// --transport; a node without --perf is named as such; HOST:PORT against a
// node (which has its own identity) says to pass the full multiaddr.
func TestPerfAgainstNode(t *testing.T) {
	leakcheck.Check(t)
	plain, _ := startNode(t, "--listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--listen", "/ip4/127.0.0.1/tcp/0")
	withPerf, _ := startNode(t, "--perf", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1")
	if !strings.Contains(withPerf, "/quic-v1/p2p/") || !strings.Contains(plain, "/quic-v1/p2p/") {
		t.Fatalf("first addresses %s, %s are not QUIC", plain, withPerf)
	}

	code, out, stderr := runCmd("perf", "--server-address", withPerf, "--upload-bytes", "1000", "--download-bytes", "2000")
	if code != 0 || !strings.Contains(out, `"uploadBytes":1000,"downloadBytes":2000`) {
		t.Fatalf("perf over QUIC without --transport: exit %d\n%s\n%s", code, out, stderr)
	}

	code, out, stderr = runCmd("perf", "--server-address", plain, "--upload-bytes", "1", "--download-bytes", "1")
	want := "tachyon perf: opening a perf stream with " + plain + ": peer does not serve /perf/1.0.0 (start it with --perf)\n"
	if code != 1 || out != "" || stderr != want {
		t.Errorf("perf against a node without --perf: exit %d, stdout %q, stderr %q, want %q", code, out, stderr, want)
	}

	a := ma.StringCast(plain)
	port, _ := a.ValueForProtocol(ma.P_UDP)
	info, _ := peer.AddrInfoFromP2pAddr(a)
	code, _, stderr = runCmd("perf", "--server-address", "localhost:"+port, "--transport", "quic-v1", "--upload-bytes", "1")
	for _, w := range []string{
		"cannot reach localhost:" + port,
		"peer ID mismatch: the node there is " + info.ID.String(),
		"HOST:PORT assumes the perf server identity " + perfServerID,
		"--server-address /ip4/127.0.0.1/udp/" + port + "/quic-v1/p2p/" + info.ID.String(),
	} {
		if code != 1 || !strings.Contains(stderr, w) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("perf HOST:PORT against a node: exit %d, stderr %q lacks %q", code, stderr, w)
		}
	}
	// The address's ID is named twice at most: the line must not be a
	// wall of peer IDs.
	if n := strings.Count(stderr, perfServerID); n > 2 {
		t.Errorf("perf server ID %d times in %q", n, stderr)
	}
}

// TestPerfLocalhost: the test-plans contract with a host name.
func TestPerfLocalhost(t *testing.T) {
	leakcheck.Check(t)
	port := startPerfServer(t)
	code, out, stderr := runCmd("perf", "--server-address", "localhost:"+port, "--transport", "tcp", "--upload-bytes", "10", "--download-bytes", "20")
	if code != 0 || !strings.Contains(out, `"uploadBytes":10,"downloadBytes":20`) {
		t.Fatalf("exit %d\n%s\n%s", code, out, stderr)
	}
}

// TestDialErrors: one line with the address and a hint.
func TestDialErrors(t *testing.T) {
	leakcheck.Check(t)
	k, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(k)
	l, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedUDP := l.LocalAddr().(*net.UDPAddr).Port
	l.Close()
	quicAddr := "/ip4/127.0.0.1/udp/" + strconv.Itoa(closedUDP) + "/quic-v1/p2p/" + id.String()
	start := time.Now()
	code, _, stderr := runCmd("ping", quicAddr, "-n", "1", "-timeout", "8s")
	t.Logf("after %v: %s", time.Since(start), stderr)
	if code != 1 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, quicAddr) || !strings.Contains(stderr, "is a node listening on that UDP port?") {
		t.Errorf("ping a closed QUIC port: exit %d, stderr %q", code, stderr)
	}
	if runtime.GOOS == "linux" && !strings.Contains(stderr, "connection refused") {
		t.Errorf("ping a closed QUIC port on Linux: want it refused at once, got %q", stderr)
	}

	// A UDP port that takes datagrams and never answers.
	silent, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	silentAddr := "/ip4/127.0.0.1/udp/" + strconv.Itoa(silent.LocalAddr().(*net.UDPAddr).Port) + "/quic-v1/p2p/" + id.String()
	code, _, stderr = runCmd("ping", silentAddr, "-n", "1", "-timeout", "1s")
	want := "tachyon ping: QUIC handshake with " + silentAddr + " timed out after 1s: no reply; is a node listening on that UDP port?\n"
	if code != 1 || stderr != want {
		t.Errorf("ping a silent QUIC port: exit %d, stderr %q, want %q", code, stderr, want)
	}

	tcpAddr := "/ip4/127.0.0.1/tcp/1/p2p/" + id.String()
	code, _, stderr = runCmd("id", tcpAddr, "-timeout", "3s")
	want = "tachyon id: cannot reach " + tcpAddr + ": dial tcp4 127.0.0.1:1: connect: connection refused; is a node listening there?\n"
	if code != 1 || stderr != want {
		t.Errorf("id a closed TCP port: exit %d, stderr %q, want %q", code, stderr, want)
	}
}

// TestNodeWebSocketTLS: --tls-cert and --tls-key serve /tls/ws.
func TestNodeWebSocketTLS(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeSelfSigned(t, certFile, keyFile)

	addr, _ := startNode(t, "--listen", "/ip4/127.0.0.1/tcp/0/tls/ws", "--tls-cert", certFile, "--tls-key", keyFile)
	if !regexp.MustCompile(`^/ip4/127\.0\.0\.1/tcp/\d+/tls/ws/p2p/`).MatchString(addr) {
		t.Fatalf("address %s", addr)
	}
	ai, err := peer.AddrInfoFromP2pAddr(ma.StringCast(addr))
	if err != nil {
		t.Fatal(err)
	}
	client, err := tachyon.New(tachyon.WebSocketInsecureSkipVerify())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.Connect(ctx, *ai); err != nil {
		t.Fatalf("connecting over /tls/ws: %v", err)
	}
	if err := client.Ping(ctx, ai.ID, 1, 0, 5*time.Second, nil); err != nil {
		t.Fatalf("ping over /tls/ws: %v", err)
	}
	client.Close()

	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not PEM"), 0o600)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--listen", "/ip4/127.0.0.1/tcp/0/tls/ws"}, 2, "listening on /tls/ws needs a certificate: pass --tls-cert and --tls-key (PEM files)"},
		{[]string{"--listen", "/ip4/127.0.0.1/tcp/0/wss"}, 2, "needs a certificate"},
		{[]string{"--listen", "/ip4/127.0.0.1/tcp/0/tls/ws", "--tls-cert", certFile}, 2, "--tls-cert and --tls-key go together"},
		{[]string{"--listen", "/ip4/127.0.0.1/tcp/0/tls/ws", "--tls-cert", garbage, "--tls-key", keyFile}, 1, "loading --tls-cert " + garbage},
	} {
		code, _, stderr := runCmd(append([]string{"node"}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("node %v: exit %d, stderr %q; want %d and %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
}

// TestNodeWebRTCCertFile: the certificate file is kept only for a node
// that listens on WebRTC-direct; a bad one says how to recover.
func TestNodeWebRTCCertFile(t *testing.T) {
	leakcheck.Check(t)
	keyFile := filepath.Join(t.TempDir(), "node.key")
	certFile := keyFile + ".webrtc.pem"
	_, stop := startNode(t, "--listen", "/ip4/127.0.0.1/tcp/0", "--key", keyFile)
	stop()
	if _, err := os.Stat(certFile); !os.IsNotExist(err) {
		t.Fatalf("TCP-only node wrote %s: %v", certFile, err)
	}
	os.WriteFile(certFile, []byte("garbage"), 0o600)
	// Not listening on WebRTC-direct: the file is not read.
	_, stop = startNode(t, "--listen", "/ip4/127.0.0.1/tcp/0", "--key", keyFile)
	if code := stop(); code != 0 {
		t.Fatalf("TCP-only node with a bad certificate file: exit %d", code)
	}
	code, _, stderr := runCmd("node", "--listen", "/ip4/127.0.0.1/udp/0/webrtc-direct", "--key", keyFile)
	for _, want := range []string{certFile + ": not a WebRTC-direct certificate", "delete the file to make a new one", "/certhash"} {
		if code != 1 || !strings.Contains(stderr, want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("bad certificate: exit %d, stderr %q lacks %q", code, stderr, want)
		}
	}
	os.Remove(certFile)
	addr, _ := startNode(t, "--listen", "/ip4/127.0.0.1/udp/0/webrtc-direct", "--key", keyFile)
	if !strings.Contains(addr, "/certhash/") {
		t.Errorf("address %s", addr)
	}
	if _, err := os.Stat(certFile); err != nil {
		t.Errorf("WebRTC-direct node wrote no certificate: %v", err)
	}
}

func writeSelfSigned(t *testing.T, certFile, keyFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "tachyon test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestNodeDebugStats: --debug-addr serves the figures the attack suite reads.
func TestNodeDebugStats(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"node", "--listen", "/ip4/127.0.0.1/tcp/0", "--debug-addr", "127.0.0.1:0"}, &out, &errOut)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("node exit %d: %s", code, errOut.String())
		}
	}()
	re := regexp.MustCompile(`debug server on (http://\S+)`)
	deadline := time.Now().Add(10 * time.Second)
	var url string
	for url == "" {
		if m := re.FindStringSubmatch(errOut.String()); m != nil {
			url = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no debug server line; stderr: %s", errOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := http.Get(url + "?gc=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st debugStats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.Goroutines == 0 || st.HeapLiveBytes == 0 || st.Conns != 0 {
		t.Fatalf("stats %+v", st)
	}
}
