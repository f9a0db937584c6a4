package webtransport_test

import (
	"slices"
	"sync"
	"testing"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	tt "github.com/tachyon-p2p/tachyon/transport/udpmux/transporttest"
	"github.com/tachyon-p2p/tachyon/transport/webtransport"
)

type recTracer struct {
	mu     sync.Mutex
	deltas []int
}

func (r *recTracer) Handshakes(d int) { r.mu.Lock(); r.deltas = append(r.deltas, d); r.mu.Unlock() }

func (r *recTracer) get() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.deltas)
}

func TestTracer(t *testing.T) {
	leakcheck.Check(t)
	tt.CheckQUICGoroutines(t)
	ta, tb := &recTracer{}, &recTracer{}
	a, pa, _ := newPeer(t, nil, &webtransport.Config{Tracer: ta})
	_, pb, _ := newPeer(t, nil, &webtransport.Config{Tracer: tb})
	la := tt.Listen(t, a, "/ip4/127.0.0.1/udp/0/quic-v1/webtransport")
	dc, ac := tt.Connect(t, pb, la, pa.ID)
	dc.Close()
	ac.Close()
	// The listener traced before it queued the session that Connect
	// accepted.
	if got, want := ta.get(), []int{1, -1}; !slices.Equal(got, want) {
		t.Errorf("listener traced %v, want %v", got, want)
	}
	if got, want := tb.get(), []int{1, -1}; !slices.Equal(got, want) {
		t.Errorf("dialer traced %v, want %v", got, want)
	}
}
