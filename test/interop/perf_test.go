package interop

// The test-plans perf contract, both ways between the `tachyon perf`
// executable and the go-libp2p perf peer (interop/golibp2p perf): the
// server listens on HOST:PORT with the all-zero-seed identity, the client
// prints JSON lines and a final one with the bytes moved.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tachyonBin builds cmd/tachyon once per test run.
var tachyonBin = buildProgram(".", "./cmd/tachyon", "tachyon")

// freePort finds a port free on 127.0.0.1 for both TCP and UDP, and for
// UDP one above it (where a go-libp2p server puts WebRTC-direct). Another
// process may take it before the server binds; the server then fails
// loudly and the test says so.
func freePort(t *testing.T) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u1, err1 := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		u2, err2 := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port + 1})
		l.Close()
		for _, u := range []*net.UDPConn{u1, u2} {
			if u != nil {
				u.Close()
			}
		}
		if err1 == nil && err2 == nil && port < 65535 {
			return port
		}
	}
	t.Fatal("no free TCP+UDP port pair on 127.0.0.1")
	return 0
}

// perfServer starts a perf server and returns its printed multiaddrs.
func perfServer(t *testing.T, ctx context.Context, bin string, args ...string) []string {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	// The servers print their addresses at once; a read past that waits
	// for more that never comes, so collect what arrives in a short window.
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var addrs []string
	deadline := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				if len(addrs) == 0 {
					t.Fatalf("perf server %s exited without addresses\nstderr:\n%s", bin, stderr.String())
				}
				return addrs
			}
			addrs = append(addrs, l)
		case <-time.After(time.Second):
			if len(addrs) > 0 {
				go func() {
					for range lines {
					}
				}()
				return addrs
			}
		case <-deadline:
			t.Fatalf("perf server %s printed no address\nstderr:\n%s", bin, stderr.String())
		}
	}
}

type perfResult struct {
	Type          string  `json:"type"`
	TimeSeconds   float64 `json:"timeSeconds"`
	UploadBytes   uint64  `json:"uploadBytes"`
	DownloadBytes uint64  `json:"downloadBytes"`
}

// TestPerfInterop runs the perf contract between tachyon and go-libp2p
// both ways on every transport both have.
func TestPerfInterop(t *testing.T) {
	goBin := goPeer(t)
	ourBin := tachyonBin(t)
	const up, down = 16 << 20, 24 << 20
	type side struct{ name, bin string }
	tachyon, golibp2p := side{"tachyon", ourBin}, side{"go-libp2p", goBin}
	for _, pair := range [][2]side{{tachyon, golibp2p}, {golibp2p, tachyon}} {
		server, client := pair[0], pair[1]
		t.Run(client.name+"->"+server.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			hostPort := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			addrs := perfServer(t, ctx, server.bin, "perf", "--run-server", "--server-address", hostPort)
			for _, transport := range []string{"tcp", "quic-v1", "webtransport", "webrtc-direct"} {
				t.Run(transport, func(t *testing.T) {
					target := hostPort
					if transport == "webtransport" || transport == "webrtc-direct" {
						// Certificate hashes only travel in the full address.
						target = ""
						for _, a := range addrs {
							if strings.Contains(a, "/"+transport+"/") {
								target = a
							}
						}
						if target == "" {
							t.Fatalf("%s perf server printed no %s address: %q", server.name, transport, addrs)
						}
					}
					runCtx, cancel := context.WithTimeout(ctx, time.Minute)
					defer cancel()
					cmd := exec.CommandContext(runCtx, client.bin, "perf", "--server-address", target, "--transport", transport,
						"--upload-bytes", fmt.Sprint(up), "--download-bytes", fmt.Sprint(down))
					var stderr bytes.Buffer
					cmd.Stderr = &stderr
					out, err := cmd.Output()
					if err != nil {
						t.Fatalf("%s perf client: %v\nstdout:\n%s\nstderr:\n%s", client.name, err, out, stderr.String())
					}
					var final perfResult
					for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
						var r perfResult
						if err := json.Unmarshal([]byte(l), &r); err != nil {
							t.Fatalf("%s perf client line %q: %v", client.name, l, err)
						}
						switch r.Type {
						case "intermediary":
						case "final":
							final = r
						default:
							t.Errorf("line %q: unknown type", l)
						}
					}
					if final.Type != "final" || final.UploadBytes != up || final.DownloadBytes != down || final.TimeSeconds <= 0 {
						t.Fatalf("final line %+v, want %d up and %d down", final, up, down)
					}
					t.Logf("%s -> %s over %s: %.0f ms", client.name, server.name, transport, final.TimeSeconds*1000)
				})
			}
		})
	}
}
