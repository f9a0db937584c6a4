package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// syncBuffer is a bytes.Buffer a running command writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startNode runs "tachyon node" until the test ends and returns its first
// printed address.
func startNode(t *testing.T, args ...string) (addr string, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, append([]string{"node"}, args...), &out, &errOut) }()
	stop = sync.OnceValue(func() int {
		cancel()
		select {
		case code := <-done:
			return code
		case <-time.After(10 * time.Second):
			t.Error("node did not stop within 10 s")
			return -1
		}
	})
	t.Cleanup(func() { stop() })
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "\n") {
		if time.Now().After(deadline) {
			t.Fatalf("node printed no address; stderr: %s", errOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return strings.SplitN(out.String(), "\n", 2)[0], stop
}

func runCmd(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code = run(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestNodeKeyFile(t *testing.T) {
	leakcheck.Check(t)
	keyFile := filepath.Join(t.TempDir(), "node.key")
	addr, stop := startNode(t, "--listen", "/ip4/127.0.0.1/tcp/0", "--key", keyFile)
	if !regexp.MustCompile(`^/ip4/127\.0\.0\.1/tcp/\d+/p2p/12D3KooW\w+$`).MatchString(addr) {
		t.Fatalf("address line %q", addr)
	}
	if code := stop(); code != 0 {
		t.Fatalf("node exit %d", code)
	}
	st, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", st.Mode().Perm())
	}
	b, _ := os.ReadFile(keyFile)
	k, err := crypto.UnmarshalPrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	if !strings.HasSuffix(addr, "/p2p/"+id.String()) {
		t.Fatalf("address %s is not for the key's peer %s", addr, id)
	}
	// The same key gives the same identity on the next start, and the same
	// WebRTC-direct certificate hash.
	addr2, _ := startNode(t, "--listen", "/ip4/127.0.0.1/tcp/0", "--key", keyFile)
	if !strings.HasSuffix(addr2, "/p2p/"+id.String()) {
		t.Fatalf("restarted node is %s, want %s", addr2, id)
	}
	certhash := func() string {
		out, stop := startNode(t, "--listen", "/ip4/127.0.0.1/udp/0/webrtc-direct", "--key", keyFile)
		stop()
		i := strings.Index(out, "/certhash/")
		if i < 0 {
			t.Fatalf("no certhash in %s", out)
		}
		return strings.SplitN(out[i:], "/", 4)[2]
	}
	if a, b := certhash(), certhash(); a != b {
		t.Fatalf("certhash changed across restarts: %s, %s", a, b)
	}
}

func TestNodeBadKeyFile(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "node.key")
	os.WriteFile(keyFile, []byte("not a key"), 0o600)
	code, _, stderr := runCmd("node", "--listen", "/ip4/127.0.0.1/tcp/0", "--key", keyFile)
	want := keyFile + ": not a libp2p private key (expected the protobuf PrivateKey written by `tachyon node --key`): "
	if code != 1 || !strings.Contains(stderr, want) || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestPingAndID(t *testing.T) {
	leakcheck.Check(t)
	addr, _ := startNode(t, "--listen", "/ip4/127.0.0.1/tcp/0")

	code, out, stderr := runCmd("ping", addr, "-n", "3", "-i", "0")
	if code != 0 {
		t.Fatalf("ping exit %d: %s", code, stderr)
	}
	if n := strings.Count(out, "pong from"); n != 3 {
		t.Fatalf("%d pongs in:\n%s", n, out)
	}
	if !strings.Contains(out, "3 sent, 3 received") || !strings.Contains(out, "rtt min/avg/max/stddev") {
		t.Fatalf("no summary in:\n%s", out)
	}

	code, out, stderr = runCmd("id", addr)
	if code != 0 {
		t.Fatalf("id exit %d: %s", code, stderr)
	}
	for _, want := range []string{"Agent version:    tachyon/", "/ipfs/ping/1.0.0", "/ipfs/id/1.0.0", "Observed address: /ip4/127.0.0.1/tcp/", "Advertised addresses (as told to us):\n  /ip4/127.0.0.1/tcp/", "Signed record:    true"} {
		if !strings.Contains(out, want) {
			t.Errorf("id output lacks %q:\n%s", want, out)
		}
	}
}

func TestPingFailures(t *testing.T) {
	leakcheck.Check(t)
	addr, _ := startNode(t, "--listen", "/ip4/127.0.0.1/tcp/0")
	k, _ := crypto.GenerateEd25519Key(nil)
	other, _ := peer.IDFromPrivateKey(k)
	wrongID := addr[:strings.LastIndex(addr, "/")+1] + other.String()
	port := regexp.MustCompile(`/tcp/(\d+)/`).FindStringSubmatch(addr)[1]
	_, closedStop := startNode(t, "--listen", "/ip4/127.0.0.1/tcp/0")
	closedStop()

	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"wrong peer id", []string{"ping", wrongID, "-n", "1"}, 1, "peer ID mismatch"},
		{"unreachable", []string{"ping", "/ip4/127.0.0.1/tcp/1/p2p/" + other.String(), "-n", "1", "-timeout", "3s"}, 1, "cannot reach"},
		{"no peer id", []string{"ping", "/ip4/127.0.0.1/tcp/" + port}, 2, "/p2p/"},
		{"bad multiaddr", []string{"ping", "nonsense"}, 2, "bad multiaddr"},
		{"no args", []string{"ping"}, 2, "expected one multiaddr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCmd(tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.msg) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", code, tc.code, stderr, tc.msg)
			}
			if strings.Count(strings.TrimSpace(stderr), "\n") != 0 && tc.code == 1 {
				t.Fatalf("reason is not one line: %q", stderr)
			}
		})
	}
}

func TestDemo(t *testing.T) {
	leakcheck.Check(t)
	code, out, stderr := runCmd("demo", "-pings", "2")
	if code != 0 {
		t.Fatalf("demo exit %d: %s\n%s", code, stderr, out)
	}
	for _, sec := range []string{"/noise", "/tls/1.0.0"} {
		if !strings.Contains(out, sec) {
			t.Errorf("demo lacks %s:\n%s", sec, out)
		}
	}
	if strings.Count(out, " ok\n") < 11 {
		t.Fatalf("demo rows not ok:\n%s", out)
	}
}

func TestUsage(t *testing.T) {
	if code, _, _ := runCmd(); code != 2 {
		t.Fatal("no command: exit", code)
	}
	if code, _, stderr := runCmd("frobnicate"); code != 2 || !strings.Contains(stderr, "unknown command") {
		t.Fatal("unknown command:", code, stderr)
	}
}

// TestNodePerfFlag: perf is served only with --perf, and then a perf client
// can use the node.
func TestNodePerfFlag(t *testing.T) {
	leakcheck.Check(t)
	plain, _ := startNode(t, "--listen", "/ip4/127.0.0.1/tcp/0")
	withPerf, _ := startNode(t, "--perf", "--listen", "/ip4/127.0.0.1/tcp/0")
	for _, tc := range []struct {
		addr string
		want bool
	}{{plain, false}, {withPerf, true}} {
		code, out, stderr := runCmd("id", tc.addr)
		if code != 0 {
			t.Fatalf("id exit %d: %s", code, stderr)
		}
		if got := strings.Contains(out, "/perf/1.0.0"); got != tc.want {
			t.Errorf("node %s announces perf: %v, want %v:\n%s", tc.addr, got, tc.want, out)
		}
	}
	code, out, stderr := runCmd("perf", "--server-address", withPerf, "--transport", "tcp", "--upload-bytes", "100000", "--download-bytes", "200000")
	if code != 0 || !strings.Contains(out, `"uploadBytes":100000,"downloadBytes":200000`) {
		t.Fatalf("perf against a --perf node: exit %d\n%s\n%s", code, out, stderr)
	}
	if code, _, _ := runCmd("perf", "--server-address", plain, "--transport", "tcp", "--upload-bytes", "1", "--download-bytes", "1"); code == 0 {
		t.Error("perf against a node without --perf succeeded")
	}
}
