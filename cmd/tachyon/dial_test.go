package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// TestDialCLI: a peer listed with a dead address (nothing listens: refused
// at once) and a live one. A fresh dialer starts the dead one first (lower
// port) and connects through the live one (swarm's TestDialMovesUp checks
// that it starts at once); a dialer that keeps its host puts the dead
// address in back-off and connects with one dial.
func TestDialCLI(t *testing.T) {
	leakcheck.Check(t)
	live, _ := startNode(t, "--listen", "/ip4/127.0.0.1/tcp/0")
	id := live[strings.LastIndex(live, "/")+1:]
	dead := "/ip4/127.0.0.1/tcp/1/p2p/" + id
	liveTpt := live[:strings.Index(live, "/p2p/")]

	code, stdout, stderr := runCmd("dial", dead, live, "-n", "3", "-same-host", "-timeout", "10s")
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, stdout, stderr)
	}
	var l dialLine
	if err := json.Unmarshal([]byte(stdout), &l); err != nil {
		t.Fatalf("%v in %q", err, stdout)
	}
	if l.Event != "dial" || !l.OK || l.Peer != id || len(l.Runs) != 3 {
		t.Fatalf("%q", stdout)
	}
	first := l.Runs[0]
	if first.DialsStarted != 2 || first.Attempts[0].Outcome != "refused" || first.Addr != liveTpt {
		t.Fatalf("first connect: %+v", first)
	}
	// Once identify has run, the peer's own /tls and /noise forms of the
	// live socket are known and rank first (no security negotiation): any
	// of the three is the live address.
	sameSocket := func(a string) bool { return a == liveTpt || a == liveTpt+"/tls" || a == liveTpt+"/noise" }
	for i, r := range l.Runs[1:] {
		if r.DialsStarted != 1 || !sameSocket(r.Addr) {
			t.Errorf("connect %d with the dead address in back-off: %+v", i+2, r)
		}
	}
	if !strings.Contains(first.Trace, "connected via "+liveTpt) {
		t.Errorf("trace: %s", first.Trace)
	}
}

// TestDialCLIFailure: every address fails; the error lists each, with its
// transport and outcome.
func TestDialCLIFailure(t *testing.T) {
	leakcheck.Check(t)
	live, stop := startNode(t, "--listen", "/ip4/127.0.0.1/tcp/0")
	stop()
	id := live[strings.LastIndex(live, "/")+1:]
	code, stdout, _ := runCmd("dial", live, "/ip4/127.0.0.1/tcp/1/p2p/"+id, "-timeout", "5s")
	var l dialLine
	if code != 1 || json.Unmarshal([]byte(stdout), &l) != nil || l.OK {
		t.Fatalf("exit %d, %q", code, stdout)
	}
	for _, want := range []string{"/ip4/127.0.0.1/tcp/1 [tcp]: refused", "refused after"} {
		if !strings.Contains(l.Error, want) {
			t.Errorf("error lacks %q: %s", want, l.Error)
		}
	}
	if code, _, _ := runCmd("dial", live, "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWGRUVh2HTwJHRjfyuYJfkgjiTu5yWKAVt7zZpSWWJqD7z"); code != 2 {
		t.Errorf("two peers: exit %d, want 2", code)
	}
}
