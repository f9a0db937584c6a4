package webrtc

import (
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

type recTracer struct {
	mu     sync.Mutex
	deltas []int
	ice    chan struct{} // gets one value per ICE failure
}

func newRecTracer() *recTracer { return &recTracer{ice: make(chan struct{}, 10)} }

func (r *recTracer) Handshakes(d int) { r.mu.Lock(); r.deltas = append(r.deltas, d); r.mu.Unlock() }
func (r *recTracer) ICEFailed()       { r.ice <- struct{}{} }

func (r *recTracer) get() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.deltas)
}

func TestTracer(t *testing.T) {
	t.Run("connected", func(t *testing.T) {
		leakcheck.Check(t)
		a, _ := newTransport(t)
		b, idB := newTransport(t)
		ta, tb := newRecTracer(), newRecTracer()
		a.cfg.Tracer, b.cfg.Tracer = ta, tb
		l := listen(t, b, "/ip4/127.0.0.1/udp/0/webrtc-direct")
		connect(t, a, l, idB)
		// The listener traced the end before handing the connection over.
		for who, tr := range map[string]*recTracer{"dialer": ta, "listener": tb} {
			if got := tr.get(); !slices.Equal(got, []int{1, -1}) {
				t.Errorf("%s traced %v, want [1 -1]", who, got)
			}
			if len(tr.ice) != 0 {
				t.Errorf("%s traced an ICE failure", who)
			}
		}
	})
	t.Run("ICE never completes", func(t *testing.T) {
		leakcheck.Check(t)
		b, _ := newTransport(t)
		tb := newRecTracer()
		b.cfg.Tracer = tb
		b.cfg.HandshakeTimeout = 300 * time.Millisecond
		l := listen(t, b, "/ip4/127.0.0.1/udp/0/webrtc-direct").(*listener)
		c, err := net.DialUDP("udp4", nil, l.mux.local)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(halfOpenRequest(t, 0))
		select {
		case <-tb.ice:
		case <-time.After(5 * time.Second):
			t.Fatal("no ICE failure traced")
		}
		l.Close() // waits for the handler, which traced the end
		if got := tb.get(); !slices.Equal(got, []int{1, -1}) {
			t.Errorf("listener traced %v, want [1 -1]", got)
		}
	})
}
