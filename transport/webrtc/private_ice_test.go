package webrtc

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// heldWrites passes the first write of a stream (the answer) and holds
// every later one (the trickled candidates) until release is closed.
type heldWrites struct {
	network.Stream
	release <-chan struct{}
	once    sync.Once
}

func (h *heldWrites) Write(b []byte) (int, error) {
	first := false
	h.once.Do(func() { first = true })
	if !first {
		<-h.release
	}
	return h.Stream.Write(b)
}

// TestPrivatePrflxNominatedAtOnce: the listener's candidates reach the
// dialer late, as they do over a relay, so the dialer first knows the
// listener only from its connectivity checks (a peer-reflexive candidate).
// The dialer, the controlling agent, must nominate that working pair at
// once rather than after pion's 1 s prflx acceptance wait.
func TestPrivatePrflxNominatedAtOnce(t *testing.T) {
	leakcheck.Check(t)
	s := newPrivateSetup(t, PrivateConfig{}, PrivateConfig{})
	release := make(chan struct{})
	var releaseOnce sync.Once
	open := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(open)
	s.sig.handler = func(st network.Stream) {
		s.b.HandleSignaling(&heldWrites{Stream: st, release: release})
	}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	start := time.Now()
	c, err := s.a.Dial(ctx, privateAddr(t, s.bID), s.bID)
	took := time.Since(start)
	open() // the listener's session finishes once its candidates are out
	if err != nil {
		t.Fatalf("dial with the listener's candidates held back: %v", err)
	}
	defer c.Close()
	select {
	case r := <-s.accept:
		if r.err != nil {
			t.Fatal(r.err)
		}
		defer r.c.Close()
		echoOnce(t, c, r.c)
	case <-time.After(15 * time.Second):
		t.Fatal("no inbound connection")
	}
	// pion's default prflx wait is 1 s from the start of ICE; a dial on
	// loopback takes well under that otherwise.
	if took >= 900*time.Millisecond {
		t.Fatalf("dial took %s with the listener known only as peer-reflexive, want < 900ms (no prflx acceptance wait)", took)
	}
	t.Logf("dial took %s", took)
}
