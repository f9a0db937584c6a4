package holepunch

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

type attempt struct {
	side              Side
	transport, reason string
	took              time.Duration
}

type recTracer struct {
	mu  sync.Mutex
	got []attempt
}

func (r *recTracer) Attempt(side Side, transport, reason string, took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, attempt{side, transport, reason, took})
}

func (r *recTracer) list() []attempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// TestTracer checks that each side's tracer hears of every attempt its
// OnEvent does, with the same values.
func TestTracer(t *testing.T) {
	for _, tt := range []struct {
		name    string
		dialB   func(ps *pair) dialFunc
		reasons []string // B's, in order; "" for a success
	}{
		{"dial errors", func(ps *pair) dialFunc {
			return func(context.Context, int, []ma.Multiaddr) (network.Conn, error) { return nil, errors.New("refused") }
		}, []string{ReasonDialError, ReasonDialError, ReasonDialError}},
		{"punch works", func(ps *pair) dialFunc { return dialOK(ps.aID) }, []string{""}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			leakcheck.Check(t)
			ta, tb := &recTracer{}, &recTracer{}
			ps := newPair(t, time.Millisecond, Config{Tracer: ta}, Config{Tracer: tb, DialTimeout: 50 * time.Millisecond})
			ps.b.dial = tt.dialB(ps)
			ps.a.dial = dialOK(ps.bID)
			ps.directConnect(t)
			ps.wg.Wait()
			for who, c := range map[string]struct {
				tr   *recTracer
				evs  []Event
				side Side
			}{"A": {ta, ps.evA.list(), SideResponder}, "B": {tb, ps.evB.list(), SideInitiator}} {
				got := c.tr.list()
				if len(got) != len(c.evs) {
					t.Fatalf("%s traced %d attempts, OnEvent heard %d", who, len(got), len(c.evs))
				}
				for i, e := range c.evs {
					want := attempt{c.side, e.Transport, e.Reason, e.Took}
					if got[i] != want || (e.Success && (got[i].transport == "" || got[i].reason != "")) {
						t.Errorf("%s attempt %d traced %+v, want %+v", who, i, got[i], want)
					}
				}
			}
			var reasons []string
			for _, a := range tb.list() {
				reasons = append(reasons, a.reason)
			}
			if !slices.Equal(reasons, tt.reasons) {
				t.Errorf("B traced reasons %q, want %q", reasons, tt.reasons)
			}
		})
	}
}
