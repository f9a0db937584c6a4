package webrtc

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/stun"
)

// TestPrivateWithSTUN: with a STUN server configured, each side trickles
// a server-reflexive candidate as well (on loopback it maps to 127.0.0.1)
// and the connection comes up.
func TestPrivateWithSTUN(t *testing.T) {
	leakcheck.Check(t)
	srv, err := stun.Listen("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background()) }()
	defer func() {
		srv.Close()
		<-served
	}()
	cfg := PrivateConfig{STUNServers: []string{"stun:" + srv.Addr().String()}}
	s := newPrivateSetup(t, cfg, cfg)
	p := newProxy(s.b)
	var mu sync.Mutex
	srflx := map[bool]int{}
	p.edit = func(toA bool, m signalMessage) []signalMessage {
		if m.typ == sigCandidate && strings.Contains(m.data, "typ srflx") {
			mu.Lock()
			srflx[toA]++
			mu.Unlock()
		}
		return []signalMessage{m}
	}
	s.sig.handler = p.handle
	c, server := s.connect(t)
	echoOnce(t, c, server)
	c.Close()
	server.Close()
	s.sig.wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	// Gathering may still run when the connection is up (then the rest
	// is not sent): require a srflx candidate from at least one side.
	if srflx[true]+srflx[false] == 0 {
		t.Fatal("no server-reflexive candidate was trickled")
	}
	t.Logf("srflx candidates: to A %d, to B %d", srflx[true], srflx[false])
}
