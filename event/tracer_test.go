package event

import (
	"slices"
	"sync"
	"testing"
)

type recTracer struct {
	mu  sync.Mutex
	got []string
}

func (r *recTracer) Dropped(e string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, e)
}

func TestTracer(t *testing.T) {
	for _, tc := range []struct {
		name string
		emit []any
		want []string
	}{
		{"fits", []any{EvtPeerIdentified{}}, nil},
		{"one too many", []any{EvtPeerIdentified{}, EvtPeerIdentified{}}, []string{"EvtPeerIdentified"}},
		{"other type not subscribed", []any{EvtPeerIdentified{}, EvtHolePunch{}, EvtHolePunch{}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &recTracer{}
			b := NewTracedBus(tr)
			defer b.Close()
			sub := Subscribe[EvtPeerIdentified](b, 1)
			defer sub.Close()
			for _, e := range tc.emit {
				b.Emit(e)
			}
			if !slices.Equal(tr.got, tc.want) {
				t.Fatalf("traced drops %v, want %v", tr.got, tc.want)
			}
		})
	}
}

// TestEmitAllocs keeps Emit without a drop free of allocations, tracer or
// not.
func TestEmitAllocs(t *testing.T) {
	for _, b := range []*Bus{NewBus(), NewTracedBus(&recTracer{})} {
		sub := Subscribe[EvtPeerIdentified](b, 1)
		e := any(EvtPeerIdentified{})
		if n := testing.AllocsPerRun(100, func() {
			b.Emit(e)
			<-sub.Out()
		}); n != 0 {
			t.Errorf("Emit allocates %v times", n)
		}
		sub.Close()
	}
}
