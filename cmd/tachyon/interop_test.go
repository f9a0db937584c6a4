package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseInteropEnv(t *testing.T) {
	base := func(kv ...string) map[string]string {
		m := map[string]string{"transport": "tcp", "security": "noise", "muxer": "yamux", "is_dialer": "true"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		bad  string // part of the error; "" for none
	}{
		{"tcp noise defaults", base(), ""},
		{"ws tls", base("transport", "ws", "security", "tls", "is_dialer", "false"), ""},
		{"quic ignores security and muxer", map[string]string{"transport": "quic-v1", "is_dialer": "false"}, ""},
		{"webtransport", map[string]string{"transport": "webtransport", "is_dialer": "true"}, ""},
		{"webrtc-direct", map[string]string{"transport": "webrtc-direct", "is_dialer": "true"}, ""},
		{"no transport", map[string]string{"is_dialer": "true"}, "transport"},
		{"wss not supported", base("transport", "wss"), "transport"},
		{"unknown security", base("security", "plaintext"), "security"},
		{"tcp without security", base("security", ""), "security"},
		{"mplex", base("muxer", "mplex"), "muxer"},
		{"is_dialer missing", base("is_dialer", ""), "is_dialer"},
		{"is_dialer yes", base("is_dialer", "yes"), "is_dialer"},
		{"ipv6 ip", base("ip", "::1"), "ip"},
		{"hostname ip", base("ip", "localhost"), "ip"},
		{"timeout zero", base("test_timeout_seconds", "0"), "test_timeout_seconds"},
		{"timeout text", base("test_timeout_seconds", "10s"), "test_timeout_seconds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseInteropEnv(envOf(tc.env))
			if tc.bad == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.ip != "0.0.0.0" && tc.env["ip"] == "" || c.redisAddr != "redis:6379" || c.timeout != 180*time.Second {
					t.Fatalf("defaults: %+v", c)
				}
				return
			}
			var u interopUsage
			if !errors.As(err, &u) || !strings.Contains(err.Error(), tc.bad) {
				t.Fatalf("got %v, want a usage error about %s", err, tc.bad)
			}
		})
	}
}

func TestReadRESP(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string // nil with err false: a null reply
		err  bool
	}{
		{"+PONG\r\n", []string{"PONG"}, false},
		{":3\r\n", []string{"3"}, false},
		{"$5\r\nhello\r\n", []string{"hello"}, false},
		{"$0\r\n\r\n", []string{""}, false},
		{"$-1\r\n", nil, false},
		{"*-1\r\n", nil, false},
		{"*2\r\n$12\r\nlistenerAddr\r\n$4\r\n/a/b\r\n", []string{"listenerAddr", "/a/b"}, false},
		{"-ERR wrong type\r\n", nil, true},
		{"$5\r\nhel\r\n", nil, true},
		{"$5\r\nhelloXY", nil, true},
		{"$99999999999\r\n", nil, true},
		{"*2000\r\n", nil, true},
		{"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n+x\r\n", nil, true},
		{"?x\r\n", nil, true},
		{"+PONG\n", nil, true},
		{"\r\n", nil, true},
		{"", nil, true},
	} {
		got, err := readRESP(bufio.NewReader(strings.NewReader(tc.in)), 0)
		if (err != nil) != tc.err || fmt.Sprint(got) != fmt.Sprint(tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("%q: got %q, %v", tc.in, got, err)
		}
	}
}

func FuzzReadRESP(f *testing.F) {
	for _, s := range []string{"+PONG\r\n", "*2\r\n$12\r\nlistenerAddr\r\n$4\r\n/a/b\r\n", "*-1\r\n", ":1\r\n", "-ERR x\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := readRESP(bufio.NewReader(bytes.NewReader(b)), 0)
		if err == nil && len(strings.Join(out, "")) > len(b) {
			t.Fatalf("reply longer than its input: %q", out)
		}
	})
}

// startRedis runs a throwaway redis-server on a free port.
func startRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed (Debian package redis-server)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting redis-server: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return addr
}

// TestTransportInteropRedis runs the listener and the dialer of the
// contract against a real redis-server, every transport and security.
func TestTransportInteropRedis(t *testing.T) {
	leakcheck.Check(t)
	redis := startRedis(t)
	for _, tc := range []struct{ transport, security string }{
		{"tcp", "noise"}, {"tcp", "tls"}, {"ws", "noise"}, {"ws", "tls"},
		{"quic-v1", ""}, {"webtransport", ""}, {"webrtc-direct", ""},
	} {
		t.Run(tc.transport+"-"+tc.security, func(t *testing.T) {
			env := map[string]string{"transport": tc.transport, "security": tc.security, "muxer": "yamux",
				"ip": "127.0.0.1", "redis_addr": redis, "test_timeout_seconds": "20"}
			listenerEnv := map[string]string{"is_dialer": "false"}
			dialerEnv := map[string]string{"is_dialer": "true"}
			for k, v := range env {
				listenerEnv[k], dialerEnv[k] = v, v
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			lctx, stopListener := context.WithCancel(ctx)
			lerr := make(chan error, 1)
			var lout bytes.Buffer
			go func() { lerr <- transportInterop(lctx, envOf(listenerEnv), &lout, io.Discard) }()
			var out bytes.Buffer
			err := transportInterop(ctx, envOf(dialerEnv), &out, io.Discard)
			stopListener()
			if lerr := <-lerr; !errors.Is(lerr, context.Canceled) {
				t.Errorf("listener: %v, want canceled", lerr)
			}
			if err != nil {
				t.Fatalf("dialer: %v", err)
			}
			if lout.Len() != 0 {
				t.Errorf("listener wrote %q on stdout", lout.String())
			}
			line := out.String()
			var r map[string]float64
			if strings.Count(line, "\n") != 1 || json.Unmarshal([]byte(line), &r) != nil || len(r) != 2 {
				t.Fatalf("dialer line %q", line)
			}
			if r["handshakePlusOneRTTMillis"] <= 0 || r["pingRTTMilllis"] <= 0 || r["pingRTTMilllis"] > r["handshakePlusOneRTTMillis"] {
				t.Fatalf("implausible times in %q", line)
			}
		})
	}
}

// TestTransportInteropCLI checks the exit codes through the command.
func TestTransportInteropCLI(t *testing.T) {
	leakcheck.Check(t)
	redis := startRedis(t)
	t.Setenv("transport", "tcp")
	t.Setenv("security", "noise")
	t.Setenv("muxer", "yamux")
	t.Setenv("ip", "127.0.0.1")
	t.Setenv("redis_addr", redis)
	t.Setenv("test_timeout_seconds", "1")

	t.Setenv("is_dialer", "maybe")
	if code, _, stderr := runCmd("transport-interop"); code != 2 || !strings.Contains(stderr, "is_dialer") {
		t.Fatalf("bad is_dialer: exit %d, %q", code, stderr)
	}
	if code, _, _ := runCmd("transport-interop", "extra"); code != 2 {
		t.Fatalf("an argument: exit %d", code)
	}
	// No listener: BLPOP times out after test_timeout_seconds, exit 1.
	t.Setenv("is_dialer", "true")
	if code, stdout, stderr := runCmd("transport-interop"); code != 1 || stdout != "" {
		t.Fatalf("no listener: exit %d, %q, %q", code, stdout, stderr)
	}
	// A listener exits non-zero once the test timeout passes.
	t.Setenv("is_dialer", "false")
	start := time.Now()
	if code, stdout, _ := runCmd("transport-interop"); code != 1 || stdout != "" || time.Since(start) < time.Second {
		t.Fatalf("listener: exit %d after %v, %q", code, time.Since(start), stdout)
	}
}
