package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// A node behind a relay prints its relayed address, and ping reaches it
// there: the relay service, the reservation and a limited connection, all
// from the command line.
func TestPingThroughRelay(t *testing.T) {
	leakcheck.Check(t)
	relay, _ := startNode(t, "--relay-service", "--listen", "/ip4/127.0.0.1/tcp/0")

	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"node", "--listen", "/ip4/127.0.0.1/tcp/0", "--relay", relay, "--reachability", "private"}, &out, &errOut)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("node did not stop within 10 s")
		}
	})
	re := regexp.MustCompile(`(?m)^relay address: (\S+/p2p-circuit/p2p/\S+)$`)
	deadline := time.Now().Add(10 * time.Second)
	var circuit string
	for circuit == "" {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			circuit = m[1]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no relay address printed; stdout %q, stderr %q", out.String(), errOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	relayID := relay[strings.LastIndex(relay, "/")+1:]
	if !strings.Contains(circuit, "/p2p/"+relayID+"/p2p-circuit/p2p/") {
		t.Fatalf("relay address %q does not go through %s", circuit, relay)
	}
	code, pong, stderr := runCmd("ping", circuit, "-n", "2", "-i", "0")
	if code != 0 || strings.Count(pong, "pong from") != 2 {
		t.Fatalf("ping through the relay: exit %d, stdout %q, stderr %q", code, pong, stderr)
	}
}
