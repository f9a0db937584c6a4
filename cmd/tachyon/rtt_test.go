package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

func TestRTTCLI(t *testing.T) {
	leakcheck.Check(t)
	tcp, _ := startNode(t, "--echo", "--listen", "/ip4/127.0.0.1/tcp/0")
	quic, _ := startNode(t, "--echo", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1")
	for _, addr := range []string{tcp, quic} {
		code, stdout, stderr := runCmd("rtt", addr, "-n", "3", "-timeout", "10s")
		if code != 0 {
			t.Fatalf("rtt %s: exit %d: %s%s", addr, code, stdout, stderr)
		}
		var l rttLine
		if err := json.Unmarshal([]byte(stdout), &l); err != nil {
			t.Fatalf("rtt %s: %v in %q", addr, err, stdout)
		}
		if l.Event != "rtt" || !l.OK || len(l.Millis) != 3 || strings.Count(stdout, "\n") != 1 {
			t.Fatalf("rtt %s: %q", addr, stdout)
		}
		for _, m := range l.Millis {
			if m <= 0 || m > 10000 {
				t.Errorf("rtt %s: implausible %v ms", addr, m)
			}
		}
	}
}

func TestRTTCLIVerbose(t *testing.T) {
	leakcheck.Check(t)
	addr, _ := startNode(t, "--echo", "--listen", "/ip4/127.0.0.1/tcp/0")
	code, stdout, stderr := runCmd("rtt", "-v", addr, "-n", "2")
	if code != 0 || strings.Count(stderr, "rtt: connect ") != 2 || !strings.Contains(stdout, `"ok":true`) {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestRTTCLIFailures(t *testing.T) {
	leakcheck.Check(t)
	addr, stop := startNode(t, "--listen", "/ip4/127.0.0.1/tcp/0") // no --echo
	code, stdout, _ := runCmd("rtt", addr, "-n", "1", "-timeout", "5s")
	var l rttLine
	if code != 1 || json.Unmarshal([]byte(stdout), &l) != nil || l.OK || l.Error == "" {
		t.Fatalf("no echo handler: exit %d, %q", code, stdout)
	}
	stop()
	if code, _, _ := runCmd("rtt", "/ip4/127.0.0.1/tcp/1"); code != 2 {
		t.Fatalf("no /p2p: exit %d", code)
	}
	if code, _, _ := runCmd("rtt", addr, "-n", "0"); code != 2 {
		t.Fatalf("-n 0: exit %d", code)
	}
}
