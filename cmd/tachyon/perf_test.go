package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/swarm"
)

// startPerfServer runs "tachyon perf --run-server" on loopback until the
// test ends and returns the port of its TCP listener.
func startPerfServer(t *testing.T) (port string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"perf", "--run-server", "--server-address", "127.0.0.1:0"}, &out, &errOut)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("perf server exited %d; stderr: %s", code, errOut.String())
			}
		case <-time.After(10 * time.Second):
			t.Error("perf server did not stop within 10 s")
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "\n") {
		if time.Now().After(deadline) {
			t.Fatalf("perf server printed no address; stderr: %s", errOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	first := strings.SplitN(out.String(), "\n", 2)[0]
	a, err := ma.NewMultiaddr(first)
	if err != nil {
		t.Fatalf("server address line %q: %v", first, err)
	}
	if id, _ := a.ValueForProtocol(ma.P_P2P); id != perfServerID {
		t.Errorf("server peer ID %q, want %s", id, perfServerID)
	}
	port, err = a.ValueForProtocol(ma.P_TCP)
	if err != nil {
		t.Fatalf("first server address %s is not TCP", a)
	}
	return port
}

// parseLines decodes the client's stdout, insisting on one JSON object of
// exactly the contract's four fields per line.
func parseLines(t *testing.T, stdout string) []perfLine {
	t.Helper()
	var lines []perfLine
	for _, l := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal([]byte(l), &fields); err != nil {
			t.Fatalf("stdout line %q: %v", l, err)
		}
		if len(fields) != 4 {
			t.Errorf("line %q has %d fields, want type, timeSeconds, uploadBytes, downloadBytes", l, len(fields))
		}
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		var pl perfLine
		if err := dec.Decode(&pl); err != nil {
			t.Fatalf("stdout line %q: %v", l, err)
		}
		lines = append(lines, pl)
	}
	return lines
}

func TestPerfCLI(t *testing.T) {
	leakcheck.Check(t)
	port := startPerfServer(t)
	addr := "127.0.0.1:" + port
	cases := []struct {
		security         string
		upload, download uint64
	}{
		{"", 0, 0},
		{"noise", 1, 1},
		{"tls", 1, 1},
		{"noise", 5 << 20, 3 << 20},
		{"tls", 3<<20 + 1, 5<<20 - 1},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/%d/%d", tc.security, tc.upload, tc.download), func(t *testing.T) {
			args := []string{"perf", "--server-address", addr, "--transport", "tcp",
				"--upload-bytes", strconv.FormatUint(tc.upload, 10), "--download-bytes", strconv.FormatUint(tc.download, 10)}
			if tc.security != "" {
				args = append(args, "--security", tc.security)
			}
			start := time.Now()
			code, stdout, stderr := runCmd(args...)
			took := time.Since(start)
			if code != 0 {
				t.Fatalf("exit %d; stderr: %s", code, stderr)
			}
			if stderr != "" {
				t.Errorf("stderr not a terminal, yet written: %q", stderr)
			}
			lines := parseLines(t, stdout)
			final := lines[len(lines)-1]
			if final.Type != "final" || final.UploadBytes != tc.upload || final.DownloadBytes != tc.download {
				t.Errorf("final line %+v, want upload %d download %d", final, tc.upload, tc.download)
			}
			if final.TimeSeconds <= 0 || final.TimeSeconds > took.Seconds() {
				t.Errorf("final timeSeconds %f, run took %s", final.TimeSeconds, took)
			}
			for _, l := range lines[:len(lines)-1] {
				if l.Type != "intermediary" {
					t.Errorf("line %+v before the final one", l)
				}
			}
		})
	}
}

// TestPerfCLIIntermediary stops an unlimited download after a few seconds:
// one intermediary line a second, each for about a second, then a one-line
// failure.
func TestPerfCLIIntermediary(t *testing.T) {
	leakcheck.Check(t)
	port := startPerfServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	var out, errOut bytes.Buffer
	code := run(ctx, []string{"perf", "--server-address", "127.0.0.1:" + port,
		"--upload-bytes", "0", "--download-bytes", "18446744073709551615"}, &out, &errOut)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if s := errOut.String(); strings.Count(s, "\n") != 1 || !strings.Contains(s, "deadline exceeded") {
		t.Errorf("stderr %q, want one line about the deadline", s)
	}
	lines := parseLines(t, out.String())
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2 in 2.5 s: %+v", len(lines), lines)
	}
	for _, l := range lines {
		if l.Type != "intermediary" || l.TimeSeconds < 0.9 || l.TimeSeconds > 1.5 || l.DownloadBytes == 0 || l.UploadBytes != 0 {
			t.Errorf("line %+v, want an intermediary of about a second with download bytes", l)
		}
	}
}

func TestPerfCLIErrors(t *testing.T) {
	leakcheck.Check(t)
	// A loopback port with no listener: bind one, then close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()

	cases := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no address", []string{}, 2, "--server-address is required"},
		{"bad address", []string{"--server-address", "localhost"}, 2, "want HOST:PORT"},
		{"bad transport", []string{"--server-address", "127.0.0.1:1", "--transport", "carrier-pigeon"}, 2, "want one of tcp, quic-v1"},
		{"webtransport needs certhash", []string{"--server-address", "127.0.0.1:1", "--transport", "webtransport"}, 2, "certificate hash"},
		{"webrtc-direct needs certhash", []string{"--server-address", "127.0.0.1:1", "--transport", "webrtc-direct"}, 2, "certificate hash"},
		{"multiaddr of another transport", []string{"--server-address", "/ip4/127.0.0.1/tcp/1", "--transport", "quic-v1"}, 2, "is a tcp address"},
		{"bad security", []string{"--server-address", "127.0.0.1:1", "--security", "rot13"}, 2, "want noise or tls"},
		{"stray argument", []string{"--server-address", "127.0.0.1:1", "extra"}, 2, "unexpected argument"},
		{"nobody listening", []string{"--server-address", closed}, 1, "cannot reach " + closed + " (/ip4/127.0.0.1/tcp/"},
		{"nobody listening hint", []string{"--server-address", closed}, 1, "connection refused; is a node listening there?"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(append([]string{"perf"}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			if strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("stderr %q, want one line containing %q", stderr, tc.stderr)
			}
		})
	}
}

func TestPerfTarget(t *testing.T) {
	const certhash = "/certhash/uEiBHj_Qs0FmHdRSztpzT5qS1lfllpClDMy4topK5Cpdbcg"
	other := "12D3KooWCTbAYqVTycRoukYuxVSCyBeVV6mGQceehMoQSirsTVpB"
	cases := []struct {
		addr, transport string
		want, wantID    string
	}{
		{"10.0.0.1:4001", "tcp", "/ip4/10.0.0.1/tcp/4001", perfServerID},
		{"10.0.0.1:4001", "quic-v1", "/ip4/10.0.0.1/udp/4001/quic-v1", perfServerID},
		{"10.0.0.1:4001", "", "/ip4/10.0.0.1/tcp/4001", perfServerID},
		{"/ip4/10.0.0.1/udp/4001/quic-v1", "", "/ip4/10.0.0.1/udp/4001/quic-v1", perfServerID},
		{"/ip4/10.0.0.1/udp/4001/quic-v1/p2p/" + other, "", "/ip4/10.0.0.1/udp/4001/quic-v1", other},
		{"[::1]:4001", "tcp", "/ip6/::1/tcp/4001", perfServerID},
		{"perf.example:4001", "quic-v1", "/dns/perf.example/udp/4001/quic-v1", perfServerID},
		{"/ip4/10.0.0.1/udp/4001/quic-v1/webtransport" + certhash, "webtransport", "/ip4/10.0.0.1/udp/4001/quic-v1/webtransport" + certhash, perfServerID},
		{"/ip4/10.0.0.1/udp/4001/webrtc-direct" + certhash + "/p2p/" + other, "webrtc-direct", "/ip4/10.0.0.1/udp/4001/webrtc-direct" + certhash, other},
	}
	for _, tc := range cases {
		t.Run(tc.addr+" "+tc.transport, func(t *testing.T) {
			ai, err := perfTarget(tc.addr, tc.transport)
			if err != nil {
				t.Fatal(err)
			}
			if len(ai.Addrs) != 1 || ai.Addrs[0].String() != tc.want || ai.ID.String() != tc.wantID {
				t.Errorf("got %v, want %s at %s", ai, tc.wantID, tc.want)
			}
		})
	}
}

// TestPerfServerID checks the fixed identity against the contract's peer ID.
func TestPerfServerID(t *testing.T) {
	id, err := peer.IDFromPrivateKey(perfServerKey())
	if err != nil {
		t.Fatal(err)
	}
	if id.String() != perfServerID {
		t.Errorf("zero-seed peer ID %s, want %s", id, perfServerID)
	}
}

func TestPerfDialError(t *testing.T) {
	a := ma.StringCast("/ip4/127.0.0.1/udp/1/webrtc-direct/certhash/uEiBHj_Qs0FmHdRSztpzT5qS1lfllpClDMy4topK5Cpdbcg")
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"no transport", &swarm.DialError{Cause: swarm.ErrNoAddresses}, "has no webrtc-direct transport for it"},
		{"other", errors.New("something odd happened to the connection"), "cannot reach " + a.String() + ": something odd"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := explainDial(dialTarget{shown: a.String(), info: peer.AddrInfo{Addrs: []ma.Multiaddr{a}}}, tc.err)
			if !strings.Contains(err.Error(), tc.want) || !errors.Is(err, tc.err) {
				t.Errorf("explainDial: %v; want it to say %q and wrap %v", err, tc.want, tc.err)
			}
		})
	}
}
