package relayed

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/circuit"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/internal/streamtest"
)

// relayHost plays relays that answer RESERVE with a fixed status each; a
// relay without one cannot be reached.
type relayHost struct {
	t      *testing.T
	local  peer.ID
	status map[peer.ID]circuit.Status
	wg     sync.WaitGroup
}

func (h *relayHost) Connect(_ context.Context, ai peer.AddrInfo) error {
	if _, ok := h.status[ai.ID]; !ok {
		return errors.New("no route")
	}
	return nil
}

func (h *relayHost) NewStream(_ context.Context, p peer.ID, _ ...protocol.ID) (network.Stream, error) {
	a, b := streamtest.Pair(streamtest.Config{A: h.local, B: p, Protocol: circuit.HopID,
		AAddr: ma.StringCast("/ip4/192.0.2.1/tcp/1"), BAddr: ma.StringCast("/ip4/192.0.2.9/tcp/1")})
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		if _, err := circuit.ReadHop(b); err != nil {
			b.Reset()
			return
		}
		m := &circuit.HopMessage{Type: circuit.HopStatus, Status: h.status[p]}
		if m.Status == circuit.StatusOK {
			m.Reservation = &circuit.Reservation{Expire: uint64(time.Now().Add(time.Hour).Unix())}
		}
		circuit.WriteHop(b, m)
		b.Close()
	}()
	return a, nil
}

type recTracer struct {
	requests []circuit.Status
	held     []int
}

func (r *recTracer) ReservationRequest(s circuit.Status) { r.requests = append(r.requests, s) }
func (r *recTracer) Reservations(n int)                  { r.held = append(r.held, n) }

func TestReservationsTracer(t *testing.T) {
	leakcheck.Check(t)
	ok, full, down := streamtest.PeerID(t, "ok"), streamtest.PeerID(t, "full"), streamtest.PeerID(t, "down")
	h := &relayHost{t: t, local: streamtest.PeerID(t, "me"), status: map[peer.ID]circuit.Status{
		ok: circuit.StatusOK, full: circuit.StatusReservationRefused}}
	defer h.wg.Wait()
	tr := &recTracer{}
	r := NewReservations(h, h.local, ReservationsConfig{
		Relays: []peer.AddrInfo{{ID: ok}, {ID: full}, {ID: down}},
		Want:   3,
		Tracer: tr,
	})
	r.SetActive(true)
	r.step(context.Background(), map[peer.ID]time.Time{})
	if want := []circuit.Status{circuit.StatusOK, circuit.StatusReservationRefused, circuit.StatusUnused}; !slices.Equal(tr.requests, want) {
		t.Errorf("requests traced %v, want %v", tr.requests, want)
	}
	r.PeerDisconnected(ok)
	r.SetActive(false)
	r.step(context.Background(), map[peer.ID]time.Time{})
	if want := []int{1, 0}; !slices.Equal(tr.held, want) {
		t.Errorf("reservations traced %v, want %v", tr.held, want)
	}
}
