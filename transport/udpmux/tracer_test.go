package udpmux_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/transport/udpmux"
	tt "github.com/tachyon-p2p/tachyon/transport/udpmux/transporttest"
)

type recTracer struct {
	mu         sync.Mutex
	sockets    [][2]string
	handshakes map[string][]int
	done       chan struct{} // closed by the first inbound handshake's end
}

func (r *recTracer) Socket(from, to string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sockets = append(r.sockets, [2]string{from, to})
}

func (r *recTracer) InboundHandshake(alpn string, delta int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handshakes[alpn] = append(r.handshakes[alpn], delta)
	if delta < 0 && r.done != nil {
		close(r.done)
		r.done = nil
	}
}

func TestTracer(t *testing.T) {
	leakcheck.Check(t)
	tt.CheckQUICGoroutines(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hsDone := make(chan struct{})
	tr := &recTracer{handshakes: map[string][]int{}, done: hsDone}
	m := udpmux.New(&udpmux.Config{Tracer: tr})
	conf := serverTLS(t)
	lq, err := m.Listen(loopback, udpmux.ALPNLibp2p, conf)
	if err != nil {
		t.Fatal(err)
	}
	lw, err := m.ListenEarly(loopback, udpmux.ALPNH3, conf)
	if err != nil {
		t.Fatal(err)
	}

	d := udpmux.New(nil)
	c, err := d.Dial(ctx, lq.Addr(), clientTLS(udpmux.ALPNLibp2p))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := lq.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-hsDone:
	case <-ctx.Done():
		t.Fatal("the inbound handshake did not end")
	}
	c.CloseWithError(0, "")
	sc.CloseWithError(0, "")
	lq.Close()
	lw.Close()
	waitSockets(t, m, 0)
	waitSockets(t, d, 0)

	tr.mu.Lock()
	defer tr.mu.Unlock()
	// The accepted connection may keep the socket open, used by nobody
	// else, until it is gone.
	want := [][2]string{{"", "none"}, {"none", "quic-v1"}, {"quic-v1", "quic-v1+webtransport"}, {"quic-v1+webtransport", "webtransport"}, {"webtransport", ""}}
	if len(tr.sockets) == len(want)+1 {
		want = append(want[:len(want)-1], [2]string{"webtransport", "none"}, [2]string{"none", ""})
	}
	if !slices.Equal(tr.sockets, want) {
		t.Errorf("sockets traced %q, want %q", tr.sockets, want)
	}
	if got := tr.handshakes[udpmux.ALPNLibp2p]; !slices.Equal(got, []int{1, -1}) || len(tr.handshakes) != 1 {
		t.Errorf("handshakes traced %v, want +1 -1 for QUIC", tr.handshakes)
	}
}

func TestUsers(t *testing.T) {
	for _, tc := range []struct {
		q, w, n, o bool
		want       string
	}{
		{false, false, false, false, "none"},
		{true, false, false, false, "quic-v1"},
		{true, true, true, false, "quic-v1+webtransport+webrtc-direct"},
		{false, true, false, true, "webtransport+other"},
	} {
		if got := udpmux.Users(tc.q, tc.w, tc.n, tc.o); got != tc.want {
			t.Errorf("Users(%v, %v, %v, %v) = %q, want %q", tc.q, tc.w, tc.n, tc.o, got, tc.want)
		}
	}
}
