package quic_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/transport/quic"
	"github.com/tachyon-p2p/tachyon/transport/udpmux"
	tt "github.com/tachyon-p2p/tachyon/transport/udpmux/transporttest"
)

type recTracer struct {
	mu     sync.Mutex
	deltas []int
}

func (r *recTracer) Handshakes(d int) { r.mu.Lock(); r.deltas = append(r.deltas, d); r.mu.Unlock() }

func TestTracer(t *testing.T) {
	leakcheck.Check(t)
	tt.CheckQUICGoroutines(t)
	a, pa := newPeer(t, nil)
	la := tt.Listen(t, a, "/ip4/127.0.0.1/udp/0/quic-v1")
	k, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	tr := &recTracer{}
	mux := udpmux.New(nil)
	b, err := quic.New(k, mux, &quic.Config{Tracer: tr, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	dc, ac := tt.Connect(t, tt.Peer{T: b, ID: id}, la, pa.ID)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := b.Dial(ctx, ma.StringCast(closedUDPPort(t)), pa.ID); err == nil {
		t.Fatal("dialed a closed port")
	}
	dc.Close()
	ac.Close()
	la.Close()
	waitSockets(t, mux, 0)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if want := []int{1, -1, 1, -1}; !slices.Equal(tr.deltas, want) {
		t.Fatalf("traced %v, want %v (a dial that worked, one that failed)", tr.deltas, want)
	}
}
