package relay

import (
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/core/circuit"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// recTracer records what the service traced.
type recTracer struct {
	mu           sync.Mutex
	requests     map[Request][]circuit.Status
	reservations []int
	circuits     []int
	closed       []time.Duration
	bytes        int
}

func (r *recTracer) Request(req Request, st circuit.Status) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.requests == nil {
		r.requests = map[Request][]circuit.Status{}
	}
	r.requests[req] = append(r.requests[req], st)
}

func (r *recTracer) Reservations(n int) {
	r.mu.Lock()
	r.reservations = append(r.reservations, n)
	r.mu.Unlock()
}
func (r *recTracer) Circuits(n int) { r.mu.Lock(); r.circuits = append(r.circuits, n); r.mu.Unlock() }
func (r *recTracer) CircuitClosed(d time.Duration) {
	r.mu.Lock()
	r.closed = append(r.closed, d)
	r.mu.Unlock()
}
func (r *recTracer) BytesRelayed(n int) { r.mu.Lock(); r.bytes += n; r.mu.Unlock() }

func TestTracer(t *testing.T) {
	leakcheck.Check(t)
	tr := &recTracer{}
	hs := newHarness(t, Config{MaxReservations: 1, Tracer: tr})
	a := newNode(t, "a", "/ip4/192.0.2.1/tcp/1")
	b := newNode(t, "b", "/ip4/192.0.2.2/tcp/1")
	c := newNode(t, "c", "/ip4/192.0.2.3/tcp/1")

	dialer, target, _, _ := circuitUp(t, hs, a, b)
	if s := hs.reserve(c).Status; s != circuit.StatusReservationRefused {
		t.Fatalf("second reservation: %s, want refused", s)
	}
	if _, resp := hs.connect(b, c.id); resp.Status != circuit.StatusNoReservation {
		t.Fatalf("CONNECT to c: %s", resp.Status)
	}
	if _, err := dialer.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	dialer.CloseWrite()
	if got, err := io.ReadAll(target); err != nil || string(got) != "hello" {
		t.Fatalf("target read %q, %v", got, err)
	}
	target.Write([]byte("hi"))
	target.CloseWrite()
	io.ReadAll(dialer)
	hs.log.WaitLine(t, testTimeout, "relay: circuit closed")
	hs.svc.PeerDisconnected(a.id)

	tr.mu.Lock()
	defer tr.mu.Unlock()
	want := map[Request][]circuit.Status{
		ReqReserve: {circuit.StatusOK, circuit.StatusReservationRefused},
		ReqConnect: {circuit.StatusOK, circuit.StatusNoReservation},
	}
	for req, w := range want {
		if got := tr.requests[req]; !slices.Equal(got, w) {
			t.Errorf("requests %d traced %v, want %v", req, got, w)
		}
	}
	if !slices.Equal(tr.reservations, []int{1, 0}) {
		t.Errorf("reservations traced %v, want [1 0]", tr.reservations)
	}
	if !slices.Equal(tr.circuits, []int{1, 0}) || len(tr.closed) != 1 || tr.closed[0] <= 0 {
		t.Errorf("circuits traced %v, closed after %v", tr.circuits, tr.closed)
	}
	if tr.bytes != 7 {
		t.Errorf("bytes traced %d, want 7", tr.bytes)
	}
}
