package event

import (
	"sync"
	"testing"

	"github.com/tachyon-p2p/tachyon/core/peer"
)

func TestSubscribeByType(t *testing.T) {
	for _, tc := range []struct {
		name  string
		types []any
		want  int // events of the three emitted below
	}{
		{"all", nil, 3},
		{"one type", []any{EvtPeerConnectedness{}}, 2},
		{"two types", []any{EvtPeerConnectedness{}, EvtLocalProtocolsUpdated{}}, 3},
		{"other type", []any{EvtPeerIdentified{}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBus()
			s := b.Subscribe(8, tc.types...)
			b.Emit(EvtPeerConnectedness{Peer: "a", Connected: true})
			b.Emit(EvtLocalProtocolsUpdated{})
			b.Emit(EvtPeerConnectedness{Peer: "a"})
			s.Close()
			n := 0
			for range s.Out() {
				n++
			}
			if n != tc.want {
				t.Fatalf("%d events, want %d", n, tc.want)
			}
		})
	}
}

func TestTypedSubscription(t *testing.T) {
	b := NewBus()
	s := Subscribe[EvtPeerConnectedness](b, 4)
	defer s.Close()
	b.Emit(EvtLocalAddrsUpdated{})
	b.Emit(EvtPeerConnectedness{Peer: peer.ID("p"), Connected: true})
	if e := <-s.Out(); e.Peer != "p" || !e.Connected {
		t.Fatalf("got %+v", e)
	}
	select {
	case e := <-s.Out():
		t.Fatalf("unexpected %+v", e)
	default:
	}
}

func TestFullBufferDrops(t *testing.T) {
	for _, tc := range []struct {
		name          string
		buf, emit     int
		wantKept      int
		wantDropped   uint64
		wantBusDrops  uint64
		withFastOther bool
	}{
		{"fits", 4, 4, 4, 0, 0, false},
		{"overflows", 4, 10, 4, 6, 6, false},
		{"default size", 0, DefaultBufSize + 1, DefaultBufSize, 1, 1, false},
		{"slow one does not hold back another", 1, 5, 1, 4, 4, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBus()
			slow := Subscribe[EvtPeerConnectedness](b, tc.buf)
			var fast *TypedSubscription[EvtPeerConnectedness]
			if tc.withFastOther {
				fast = Subscribe[EvtPeerConnectedness](b, tc.emit)
			}
			for range tc.emit {
				b.Emit(EvtPeerConnectedness{}) // never blocks
			}
			if got := len(slow.Out()); got != tc.wantKept {
				t.Fatalf("kept %d, want %d", got, tc.wantKept)
			}
			if got := slow.Dropped(); got != tc.wantDropped {
				t.Fatalf("dropped %d, want %d", got, tc.wantDropped)
			}
			if got := b.Dropped(); got != tc.wantBusDrops {
				t.Fatalf("bus dropped %d, want %d", got, tc.wantBusDrops)
			}
			if fast != nil && (len(fast.Out()) != tc.emit || fast.Dropped() != 0) {
				t.Fatalf("fast subscriber got %d, dropped %d", len(fast.Out()), fast.Dropped())
			}
		})
	}
}

func TestCloseConcurrentWithEmit(t *testing.T) {
	b := NewBus()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				b.Emit(EvtPeerConnectedness{})
			}
		}
	}()
	for range 200 {
		s := b.Subscribe(1)
		s.Close()
		s.Close() // twice is fine
		for range s.Out() {
		}
	}
	close(stop)
	wg.Wait()
	s := b.Subscribe(1)
	b.Close()
	if _, ok := <-s.Out(); ok {
		t.Fatal("event after bus Close")
	}
	s.Close()
	late := Subscribe[EvtConnOpened](b, 1)
	if _, ok := <-late.Out(); ok {
		t.Fatal("subscription to a closed bus delivered")
	}
	late.Close()
	b.Emit(EvtConnOpened{}) // no panic
}

// TestWants: the bus wants an event type while a subscription to it, or to
// every event, is open.
func TestWants(t *testing.T) {
	b := NewBus()
	if b.Wants(EvtPeerIdentified{}) {
		t.Fatal("an empty bus wants events")
	}
	other := b.Subscribe(1, EvtConnOpened{})
	if b.Wants(EvtPeerIdentified{}) || !b.Wants(EvtConnOpened{}) {
		t.Fatal("Wants does not follow the subscription's types")
	}
	typed := Subscribe[EvtPeerIdentified](b, 1)
	if !b.Wants(EvtPeerIdentified{}) {
		t.Fatal("a typed subscription is not wanted")
	}
	typed.Close()
	other.Close()
	all := b.Subscribe(1)
	if !b.Wants(EvtPeerIdentified{}) {
		t.Fatal("a subscription to every event does not want this one")
	}
	all.Close()
	if b.Wants(EvtPeerIdentified{}) {
		t.Fatal("closed subscriptions still want events")
	}
}
