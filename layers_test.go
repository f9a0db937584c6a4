package tachyon

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportLayers keeps imports one way (docs/architecture.md): core
// types (and the event types), then security, muxers and node state, then transports, upgrader and protocols,
// then the swarm, then this package, then the commands.
func TestImportLayers(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const mod = "github.com/tachyon-p2p/tachyon"
	layer := func(pkg string) int {
		p := strings.TrimPrefix(strings.TrimPrefix(pkg, mod), "/")
		switch {
		case strings.HasPrefix(p, "core/"), strings.HasPrefix(p, "internal/"), p == "event":
			return 0
		case p == "mss", strings.HasPrefix(p, "security/"), strings.HasPrefix(p, "muxer/"), p == "peerstore",
			p == "limits", p == "connmgr", p == "gater", p == "obsaddr", p == "reachability", p == "dialrank":
			return 1
		case p == "upgrader", p == "resolve", p == "stun", strings.HasPrefix(p, "transport/"), strings.HasPrefix(p, "protocol/"):
			return 2
		case p == "swarm":
			return 3
		case p == "metrics", p == "otelbridge":
			return 4
		case p == "", p == "daemon":
			return 5
		default: // commands, tests, the testbed
			return 6
		}
	}
	family := func(pkg string) string {
		p := strings.TrimPrefix(strings.TrimPrefix(pkg, mod), "/")
		if i := strings.Index(p, "/"); i >= 0 {
			return p[:i]
		}
		return p
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := f[0]
		for _, imp := range f[1:] {
			if imp != mod && !strings.HasPrefix(imp, mod+"/") {
				continue
			}
			lp, li := layer(pkg), layer(imp)
			switch {
			case li > lp:
				t.Errorf("%s (layer %d) imports %s (layer %d): imports must go down", pkg, lp, imp, li)
			case li == lp && lp == 2 && family(pkg) != family(imp):
				// Transports may build on each other (websocket on tcp's
				// shared ports, webtransport on quic's socket); protocols,
				// transports and the upgrader never import one another.
				t.Errorf("%s imports its sibling %s", pkg, imp)
			case li == lp && lp == 1 && family(pkg) != family(imp) && imp != mod+"/mss":
				t.Errorf("%s imports its sibling %s", pkg, imp)
			}
		}
	}
}
