package relay

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/circuit"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/internal/logs/logtest"
	"github.com/tachyon-p2p/tachyon/internal/lp"
)

// testTimeout bounds every wait of a test.
const testTimeout = 10 * time.Second

type harness struct {
	t   testing.TB
	h   *fakeHost
	svc *Service
	log *logtest.Buffer
	wg  sync.WaitGroup // HandleHop calls
}

// newHarness starts a service on a fake host; the test's cleanup closes it
// and waits for everything it started. Call leakcheck.Check first.
func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	logger, buf := logtest.New()
	hs := &harness{t: t, h: newFakeHost(t), log: buf}
	hs.svc = New(hs.h, cfg, logger)
	t.Cleanup(func() {
		_ = hs.svc.Close()
		hs.wg.Wait()
		hs.h.wg.Wait()
	})
	return hs
}

// hop opens a hop stream from n to the relay, over a connection from n's
// address, and runs HandleHop on it.
func (hs *harness) hop(n node) *fakeStream {
	cl, rl := streamPair(circuit.HopID, n.id, hs.h.id, n.addr, hs.h.addrs[0])
	_ = cl.SetDeadline(time.Now().Add(testTimeout))
	hs.wg.Add(1)
	go func() {
		defer hs.wg.Done()
		hs.svc.HandleHop(rl)
	}()
	return cl
}

// request sends m from n and returns the stream and the relay's answer.
func (hs *harness) request(n node, m *circuit.HopMessage) (*fakeStream, *circuit.HopMessage) {
	hs.t.Helper()
	cl := hs.hop(n)
	if err := circuit.WriteHop(cl, m); err != nil {
		hs.t.Fatalf("writing %s: %v", m.Type, err)
	}
	resp, err := circuit.ReadHop(cl)
	if err != nil {
		hs.t.Fatalf("reading the answer to %s: %v", m.Type, err)
	}
	if resp.Type != circuit.HopStatus {
		hs.t.Fatalf("answer to %s has type %s", m.Type, resp.Type)
	}
	return cl, resp
}

// reserve makes n reserve and returns the answer; the relay closes the
// stream after it.
func (hs *harness) reserve(n node) *circuit.HopMessage {
	hs.t.Helper()
	cl, resp := hs.request(n, &circuit.HopMessage{Type: circuit.HopReserve})
	if _, err := cl.Read(make([]byte, 1)); err != io.EOF {
		hs.t.Errorf("after the reservation answer: %v, want EOF", err)
	}
	_ = cl.Close()
	return resp
}

// connect sends CONNECT{dst} from n.
func (hs *harness) connect(n node, dst peer.ID) (*fakeStream, *circuit.HopMessage) {
	hs.t.Helper()
	return hs.request(n, &circuit.HopMessage{Type: circuit.HopConnect, Peer: &circuit.Peer{ID: dst}})
}

// stopCall is one STOP stream a target received.
type stopCall struct {
	st  *fakeStream
	req *circuit.StopMessage
}

// acceptStop answers STOP CONNECT with OK and passes the stream on.
func acceptStop(calls chan<- stopCall) stopHandler {
	return answerStop(circuit.StopStatus, circuit.StatusOK, calls)
}

// answerStop reads the STOP request, answers it with typ/status, and
// passes the stream on (OK) or closes it.
func answerStop(typ circuit.StopType, status circuit.Status, calls chan<- stopCall) stopHandler {
	return func(st *fakeStream) {
		_ = st.SetDeadline(time.Now().Add(testTimeout))
		req, err := circuit.ReadStop(st)
		if err != nil {
			_ = st.Reset()
			return
		}
		if err := circuit.WriteStop(st, &circuit.StopMessage{Type: typ, Status: status}); err != nil {
			_ = st.Reset()
			return
		}
		if status != circuit.StatusOK || calls == nil {
			_ = st.Close()
			return
		}
		calls <- stopCall{st: st, req: req}
	}
}

// silentStop reads the STOP request and never answers; it returns when the
// relay gives up on the stream.
func silentStop(st *fakeStream) {
	_ = st.SetDeadline(time.Now().Add(testTimeout))
	if _, err := circuit.ReadStop(st); err == nil {
		_, _ = st.Read(make([]byte, 1))
	}
	_ = st.Reset()
}

func nodes(t testing.TB, n int, addr string) []node {
	out := make([]node, n)
	for i := range out {
		out[i] = newNode(t, "peer"+string(rune('A'+i))+addr, addr)
	}
	return out
}

func TestReserve(t *testing.T) {
	leakcheck.Check(t)
	hs := newHarness(t, Config{})
	a := newNode(t, "a", "/ip4/192.0.2.1/tcp/1234")

	before := time.Now()
	resp := hs.reserve(a)
	if resp.Status != circuit.StatusOK {
		t.Fatalf("status %s, want OK", resp.Status)
	}
	r := resp.Reservation
	if r == nil {
		t.Fatal("no reservation")
	}
	exp := time.Unix(int64(r.Expire), 0)
	if exp.Before(before.Add(time.Hour).Add(-time.Second)) || exp.After(time.Now().Add(time.Hour)) {
		t.Errorf("expire %s, want about an hour from now", exp)
	}
	want := []string{
		"/ip4/198.51.100.1/tcp/4001/p2p/" + hs.h.id.String(),
		"/ip4/198.51.100.1/udp/4001/quic-v1/p2p/" + hs.h.id.String(),
	}
	var got []string
	for _, a := range r.Addrs {
		got = append(got, a.String())
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("addrs\n got %q\nwant %q", got, want)
	}
	v, err := circuit.OpenVoucher(r.Voucher)
	if err != nil {
		t.Fatalf("voucher: %v", err)
	}
	if v.Relay != hs.h.id || v.Peer != a.id || v.Expiration != r.Expire {
		t.Errorf("voucher %+v, want relay %s peer %s expiration %d", v, hs.h.id, a.id, r.Expire)
	}
	if l := resp.Limit; l == nil || l.Duration != 120 || l.Data != 128<<10 {
		t.Errorf("limit %+v, want 120 s and 131072 bytes", l)
	}
	if st := hs.svc.Stat(); st.Reservations != 1 {
		t.Errorf("Stat().Reservations = %d, want 1", st.Reservations)
	}
}

func TestReserveLimits(t *testing.T) {
	ipA := "/ip4/192.0.2.1/tcp/1"
	ipB := "/ip4/192.0.2.2/tcp/1"
	tests := []struct {
		name string
		cfg  Config
		// peers reserve in order; want is each one's status
		peers []node
		want  []circuit.Status
		// rsvps is Stat().Reservations at the end
		rsvps int
	}{
		{
			name:  "refresh replaces the peer's own",
			cfg:   Config{MaxReservations: 1},
			peers: []node{newNode(t, "a", ipA), newNode(t, "a", ipA), newNode(t, "b", ipB)},
			want:  []circuit.Status{circuit.StatusOK, circuit.StatusOK, reservationRefused},
			rsvps: 1,
		},
		{
			name:  "total",
			cfg:   Config{MaxReservations: 2},
			peers: []node{newNode(t, "a", ipA), newNode(t, "b", ipB), newNode(t, "c", "/ip4/192.0.2.3/tcp/1")},
			want:  []circuit.Status{circuit.StatusOK, circuit.StatusOK, reservationRefused},
			rsvps: 2,
		},
		{
			name:  "per IP",
			cfg:   Config{MaxReservationsPerIP: 2},
			peers: append(nodes(t, 3, ipA), newNode(t, "d", ipB)),
			want:  []circuit.Status{circuit.StatusOK, circuit.StatusOK, reservationRefused, circuit.StatusOK},
			rsvps: 3,
		},
		{
			name:  "per IP, IPv4-mapped IPv6 counts as IPv4",
			cfg:   Config{MaxReservationsPerIP: 1},
			peers: []node{newNode(t, "a", ipA), newNode(t, "b", "/ip6/::ffff:192.0.2.1/tcp/1")},
			want:  []circuit.Status{circuit.StatusOK, reservationRefused},
			rsvps: 1,
		},
		{
			name:  "over a relayed connection",
			peers: []node{newNode(t, "a", "/ip4/192.0.2.9/tcp/1/p2p/"+newNode(t, "r2", ipA).id.String()+"/p2p-circuit")},
			want:  []circuit.Status{circuit.StatusPermissionDenied},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			hs := newHarness(t, tc.cfg)
			for i, p := range tc.peers {
				if got := hs.reserve(p).Status; got != tc.want[i] {
					t.Errorf("reservation %d: %s, want %s", i, got, tc.want[i])
				}
			}
			st := hs.svc.Stat()
			if st.Reservations != tc.rsvps {
				t.Errorf("Stat().Reservations = %d, want %d", st.Reservations, tc.rsvps)
			}
			var refused uint64
			for _, s := range tc.want {
				if s != circuit.StatusOK {
					refused++
				}
			}
			var total uint64
			for _, n := range st.Refused {
				total += n
			}
			if total != refused {
				t.Errorf("Stat().Refused = %v, want %d in all", st.Refused, refused)
			}
		})
	}
}

func TestLimitMessage(t *testing.T) {
	tests := []struct {
		limit *Limit
		want  *circuit.Limit
	}{
		{nil, &circuit.Limit{Duration: 120, Data: 131072}},
		{&Limit{}, nil},
		{&Limit{Data: 10}, &circuit.Limit{Data: 10}},
		{&Limit{Duration: 1500 * time.Millisecond}, &circuit.Limit{Duration: 2}},
		{&Limit{Duration: 100 * time.Millisecond, Data: 5}, &circuit.Limit{Duration: 1, Data: 5}},
	}
	for _, tc := range tests {
		s := New(newFakeHost(t), Config{Limit: tc.limit}, nil)
		got := s.limitMsg()
		if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
			t.Errorf("Limit %+v: sent %+v, want %+v", tc.limit, got, tc.want)
		}
		_ = s.Close()
	}
}

func TestReservationExpires(t *testing.T) {
	leakcheck.Check(t)
	hs := newHarness(t, Config{ReservationTTL: 50 * time.Millisecond})
	a := newNode(t, "a", "/ip4/192.0.2.1/tcp/1")
	b := newNode(t, "b", "/ip4/192.0.2.2/tcp/1")
	if s := hs.reserve(a).Status; s != circuit.StatusOK {
		t.Fatalf("reserve: %s", s)
	}
	time.Sleep(100 * time.Millisecond)
	if n := hs.svc.Stat().Reservations; n != 0 {
		t.Errorf("%d reservations after the TTL, want 0", n)
	}
	_, resp := hs.connect(b, a.id)
	if resp.Status != circuit.StatusNoReservation {
		t.Errorf("CONNECT after the TTL: %s, want NO_RESERVATION", resp.Status)
	}
}

func TestPeerDisconnected(t *testing.T) {
	leakcheck.Check(t)
	hs := newHarness(t, Config{})
	a := newNode(t, "a", "/ip4/192.0.2.1/tcp/1")
	b := newNode(t, "b", "/ip4/192.0.2.2/tcp/1")
	hs.h.setTarget(a, acceptStop(nil))
	if s := hs.reserve(a).Status; s != circuit.StatusOK {
		t.Fatalf("reserve: %s", s)
	}
	hs.svc.PeerDisconnected(a.id)
	if n := hs.svc.Stat().Reservations; n != 0 {
		t.Errorf("%d reservations, want 0", n)
	}
	cl, resp := hs.connect(b, a.id)
	if resp.Status != circuit.StatusNoReservation {
		t.Errorf("CONNECT: %s, want NO_RESERVATION", resp.Status)
	}
	if _, err := cl.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("after the refusal: %v, want EOF", err)
	}
}

func TestConnectRefused(t *testing.T) {
	ipA := "/ip4/192.0.2.1/tcp/1"
	tests := []struct {
		name   string
		target stopHandler // nil: no connection to the target
		// openErr, if set, is what NewStream to the target fails with
		openErr error
		// reserve: the target reserves first
		reserve bool
		dialer  string
		want    circuit.Status
	}{
		{name: "no reservation", target: acceptStop(nil), want: circuit.StatusNoReservation},
		{name: "over a relayed connection", target: acceptStop(nil), reserve: true,
			dialer: "/ip4/192.0.2.8/tcp/1/p2p-circuit", want: circuit.StatusPermissionDenied},
		{name: "no connection to the target", reserve: true, want: circuit.StatusConnectionFailed},
		{name: "NewStream fails", target: acceptStop(nil), openErr: errors.New("protocols not supported"),
			reserve: true, want: circuit.StatusConnectionFailed},
		{name: "target refuses", target: answerStop(circuit.StopStatus, circuit.StatusConnectionFailed, nil),
			reserve: true, want: circuit.StatusConnectionFailed},
		{name: "target answers CONNECT", target: answerStop(circuit.StopConnect, circuit.StatusUnused, nil),
			reserve: true, want: circuit.StatusConnectionFailed},
		{name: "target hangs up", target: func(st *fakeStream) { _ = st.Reset() },
			reserve: true, want: circuit.StatusConnectionFailed},
		{name: "target silent", target: silentStop, reserve: true, want: circuit.StatusConnectionFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			// The STOP exchange must end within StreamTimeout.
			hs := newHarness(t, Config{StreamTimeout: 300 * time.Millisecond})
			a := newNode(t, "a", ipA)
			dialer := "/ip4/192.0.2.2/tcp/1"
			if tc.dialer != "" {
				dialer = tc.dialer
			}
			b := newNode(t, "b", dialer)
			if tc.target != nil {
				hs.h.setTarget(a, tc.target)
			}
			if tc.openErr != nil {
				hs.h.mu.Lock()
				hs.h.openErr[a.id] = tc.openErr
				hs.h.mu.Unlock()
			}
			if tc.reserve {
				if s := hs.reserve(a).Status; s != circuit.StatusOK {
					t.Fatalf("reserve: %s", s)
				}
			}
			cl, resp := hs.connect(b, a.id)
			if resp.Status != tc.want {
				t.Errorf("CONNECT: %s, want %s", resp.Status, tc.want)
			}
			if _, err := cl.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("after the refusal: %v, want EOF", err)
			}
			if n := hs.svc.Stat().Refused[tc.want]; n != 1 {
				t.Errorf("Stat().Refused[%s] = %d, want 1", tc.want, n)
			}
			for _, st := range hs.h.openedStreams() {
				if e := st.WaitEnded(t, testTimeout); e != "reset" {
					t.Errorf("the relay's STOP stream ended by %q, want reset", e)
				}
			}
		})
	}
}

// circuitUp reserves for a, connects b to a and returns the dialer's and
// the target's streams.
func circuitUp(t *testing.T, hs *harness, a, b node) (dialer, target *fakeStream, req *circuit.StopMessage, resp *circuit.HopMessage) {
	t.Helper()
	calls := make(chan stopCall, 1)
	hs.h.setTarget(a, acceptStop(calls))
	if s := hs.reserve(a).Status; s != circuit.StatusOK {
		t.Fatalf("reserve: %s", s)
	}
	dialer, resp = hs.connect(b, a.id)
	if resp.Status != circuit.StatusOK {
		t.Fatalf("CONNECT: %s, want OK", resp.Status)
	}
	select {
	case c := <-calls:
		t.Cleanup(func() { _ = c.st.Reset() })
		t.Cleanup(func() { _ = dialer.Reset() })
		return dialer, c.st, c.req, resp
	case <-time.After(testTimeout):
		t.Fatal("the target got no STOP stream")
	}
	return nil, nil, nil, nil
}

func TestConnect(t *testing.T) {
	leakcheck.Check(t)
	hs := newHarness(t, Config{})
	a := newNode(t, "a", "/ip4/192.0.2.1/tcp/1")
	b := newNode(t, "b", "/ip4/192.0.2.2/tcp/1")
	dialer, target, req, resp := circuitUp(t, hs, a, b)

	if req.Type != circuit.StopConnect || req.Peer == nil || req.Peer.ID != b.id {
		t.Errorf("STOP request %+v, want CONNECT from %s", req, b.id)
	}
	if req.Limit == nil || *req.Limit != (circuit.Limit{Duration: 120, Data: 131072}) {
		t.Errorf("STOP limit %+v", req.Limit)
	}
	if resp.Limit == nil || *resp.Limit != (circuit.Limit{Duration: 120, Data: 131072}) {
		t.Errorf("HOP limit %+v", resp.Limit)
	}
	hs.h.mu.Lock()
	noDial := hs.h.noDial
	hs.h.mu.Unlock()
	if !noDial {
		t.Error("STOP was opened without network.WithNoDial")
	}
	// The dialer hears OK before the service counts the circuit (splice
	// runs after the answer), so the count may come a moment later.
	deadline := time.Now().Add(testTimeout)
	for st := hs.svc.Stat(); st.Circuits != 1 || st.CircuitsOpened != 1; st = hs.svc.Stat() {
		if time.Now().After(deadline) {
			t.Fatalf("Stat: %+v, want 1 circuit", st)
		}
		time.Sleep(time.Millisecond)
	}

	// Dialer -> target, then half-close: the target reads EOF while it can
	// still answer.
	big := bytes.Repeat([]byte("0123456789abcdef"), 1000) // 16000 bytes: several buffers
	if _, err := dialer.Write(big); err != nil {
		t.Fatal(err)
	}
	if err := dialer.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(target)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("target read %d bytes, err %v; want %d bytes", len(got), err, len(big))
	}
	if _, err := target.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if err := target.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(dialer)
	if err != nil || string(got) != "pong" {
		t.Fatalf("dialer read %q, err %v; want pong", got, err)
	}
	hs.log.WaitLine(t, testTimeout, "relay: circuit closed", "bytes_src_dst=16000", "bytes_dst_src=4")

	st := hs.svc.Stat()
	if st.Circuits != 0 || st.BytesRelayed != 16004 {
		t.Errorf("Stat after: %+v, want no circuit and 16004 bytes", st)
	}
	if e := hs.h.openedStreams()[0].Ended(); e != "close" {
		t.Errorf("the relay's STOP stream ended by %q, want close", e)
	}
}

func TestDataLimit(t *testing.T) {
	leakcheck.Check(t)
	hs := newHarness(t, Config{Limit: &Limit{Data: 1000}})
	a := newNode(t, "a", "/ip4/192.0.2.1/tcp/1")
	b := newNode(t, "b", "/ip4/192.0.2.2/tcp/1")
	dialer, target, _, resp := circuitUp(t, hs, a, b)
	if resp.Limit == nil || *resp.Limit != (circuit.Limit{Data: 1000}) {
		t.Errorf("HOP limit %+v, want 1000 bytes only", resp.Limit)
	}

	// Exactly the limit crosses; the byte after it resets both sides.
	if _, err := dialer.Write(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(target, make([]byte, 1000)); err != nil {
		t.Fatalf("reading up to the limit: %v", err)
	}
	if _, err := dialer.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	if _, err := target.Read(make([]byte, 1)); !errors.Is(err, network.ErrReset) {
		t.Errorf("target after the limit: %v, want a reset", err)
	}
	if _, err := dialer.Read(make([]byte, 1)); !errors.Is(err, network.ErrReset) {
		t.Errorf("dialer after the limit: %v, want a reset", err)
	}
	hs.log.WaitLine(t, testTimeout, "level=INFO", "relay: circuit reset: data limit 1000 bytes reached",
		"src="+b.id.String(), "dst="+a.id.String(), "bytes_src_dst=1000")
	if st := hs.svc.Stat(); st.DataLimitResets != 1 {
		t.Errorf("Stat().DataLimitResets = %d, want 1", st.DataLimitResets)
	}
}

func TestDurationLimit(t *testing.T) {
	leakcheck.Check(t)
	hs := newHarness(t, Config{Limit: &Limit{Duration: 200 * time.Millisecond}})
	a := newNode(t, "a", "/ip4/192.0.2.1/tcp/1")
	b := newNode(t, "b", "/ip4/192.0.2.2/tcp/1")
	start := time.Now()
	dialer, target, _, resp := circuitUp(t, hs, a, b)
	if resp.Limit == nil || *resp.Limit != (circuit.Limit{Duration: 1}) {
		t.Errorf("HOP limit %+v, want 1 s (rounded up) only", resp.Limit)
	}
	if _, err := dialer.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(target, make([]byte, 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := target.Read(make([]byte, 1)); !errors.Is(err, network.ErrReset) {
		t.Errorf("target: %v, want a reset", err)
	}
	if _, err := dialer.Read(make([]byte, 1)); !errors.Is(err, network.ErrReset) {
		t.Errorf("dialer: %v, want a reset", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("reset after %s, before the limit", d)
	}
	hs.log.WaitLine(t, testTimeout, "level=INFO", "relay: circuit reset: duration limit 200ms reached")
	if st := hs.svc.Stat(); st.DurationLimitResets != 1 {
		t.Errorf("Stat().DurationLimitResets = %d, want 1", st.DurationLimitResets)
	}
}

func TestCircuitLimits(t *testing.T) {
	ip := func(i int) string { return "/ip4/192.0.2." + string(rune('1'+i)) + "/tcp/1" }
	tests := []struct {
		name string
		cfg  Config
		// circuits: each is {target, dialer} as indexes into the peers
		circuits [][2]int
		want     []circuit.Status
	}{
		{
			name:     "per target",
			cfg:      Config{MaxCircuitsPerPeer: 2},
			circuits: [][2]int{{0, 1}, {0, 2}, {0, 3}},
			want:     []circuit.Status{circuit.StatusOK, circuit.StatusOK, circuit.StatusResourceLimitExceeded},
		},
		{
			name:     "per dialer",
			cfg:      Config{MaxCircuitsPerPeer: 2},
			circuits: [][2]int{{0, 3}, {1, 3}, {2, 3}},
			want:     []circuit.Status{circuit.StatusOK, circuit.StatusOK, circuit.StatusResourceLimitExceeded},
		},
		{
			name:     "total",
			cfg:      Config{MaxCircuits: 2},
			circuits: [][2]int{{0, 3}, {1, 4}, {2, 5}},
			want:     []circuit.Status{circuit.StatusOK, circuit.StatusOK, circuit.StatusResourceLimitExceeded},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			hs := newHarness(t, tc.cfg)
			var peers []node
			for i := range 6 {
				peers = append(peers, newNode(t, tc.name+string(rune('a'+i)), ip(i)))
			}
			calls := make(chan stopCall, len(tc.circuits))
			reserved := map[int]bool{}
			for i, c := range tc.circuits {
				tgt, dlr := peers[c[0]], peers[c[1]]
				if !reserved[c[0]] {
					reserved[c[0]] = true
					hs.h.setTarget(tgt, acceptStop(calls))
					if s := hs.reserve(tgt).Status; s != circuit.StatusOK {
						t.Fatalf("reserve: %s", s)
					}
				}
				cl, resp := hs.connect(dlr, tgt.id)
				t.Cleanup(func() { _ = cl.Reset() })
				if resp.Status != tc.want[i] {
					t.Errorf("circuit %d: %s, want %s", i, resp.Status, tc.want[i])
				}
			}
			for range len(calls) {
				c := <-calls
				t.Cleanup(func() { _ = c.st.Reset() })
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	hop := func(m *circuit.HopMessage) []byte { return lp.Append(nil, m.Marshal()) }
	tests := []struct {
		name string
		in   []byte
		want circuit.Status
	}{
		{"not protobuf", lp.Append(nil, []byte{0xff, 0xff, 0xff}), circuit.StatusMalformedMessage},
		{"no type", lp.Append(nil, nil), circuit.StatusMalformedMessage},
		{"unknown type", lp.Append(nil, []byte{0x08, 0x07}), circuit.StatusMalformedMessage},
		{"too large", lp.Append(nil, make([]byte, circuit.MaxMessageSize+1)), circuit.StatusMalformedMessage},
		{"truncated", []byte{0x10, 0x08}, circuit.StatusMalformedMessage},
		{"STATUS to the relay", hop(&circuit.HopMessage{Type: circuit.HopStatus, Status: circuit.StatusOK}),
			circuit.StatusUnexpectedMessage},
		{"CONNECT without a peer", hop(&circuit.HopMessage{Type: circuit.HopConnect}), circuit.StatusMalformedMessage},
		{"CONNECT with an empty peer", hop(&circuit.HopMessage{Type: circuit.HopConnect, Peer: &circuit.Peer{}}),
			circuit.StatusMalformedMessage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			hs := newHarness(t, Config{})
			cl := hs.hop(newNode(t, "a", "/ip4/192.0.2.1/tcp/1"))
			if _, err := cl.Write(tc.in); err != nil {
				t.Fatal(err)
			}
			_ = cl.CloseWrite()
			resp, err := circuit.ReadHop(cl)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			if resp.Type != circuit.HopStatus || resp.Status != tc.want {
				t.Errorf("answer %s %s, want STATUS %s", resp.Type, resp.Status, tc.want)
			}
			if _, err := cl.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("after the answer: %v, want EOF", err)
			}
		})
	}
}

func TestSilentPeer(t *testing.T) {
	leakcheck.Check(t)
	hs := newHarness(t, Config{StreamTimeout: 100 * time.Millisecond})
	cl := hs.hop(newNode(t, "a", "/ip4/192.0.2.1/tcp/1"))
	if _, err := cl.Read(make([]byte, 1)); !errors.Is(err, network.ErrReset) {
		t.Errorf("silent peer: %v, want a reset", err)
	}
}

func TestClose(t *testing.T) {
	leakcheck.Check(t)
	hs := newHarness(t, Config{})
	a := newNode(t, "a", "/ip4/192.0.2.1/tcp/1")
	b := newNode(t, "b", "/ip4/192.0.2.2/tcp/1")
	c := newNode(t, "c", "/ip4/192.0.2.3/tcp/1")
	dialer, target, _, _ := circuitUp(t, hs, a, b)
	silent := hs.hop(c) // waits for a request that never comes

	closed := make(chan struct{})
	go func() {
		_ = hs.svc.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(testTimeout):
		t.Fatal("Close did not return")
	}
	for name, st := range map[string]*fakeStream{"dialer": dialer, "target": target, "silent": silent} {
		if _, err := st.Read(make([]byte, 1)); !errors.Is(err, network.ErrReset) {
			t.Errorf("%s after Close: %v, want a reset", name, err)
		}
	}
	hs.log.WaitLine(t, testTimeout, "relay: circuit reset: relay closed")

	// New work is refused.
	late := hs.hop(b)
	if _, err := late.Read(make([]byte, 1)); !errors.Is(err, network.ErrReset) {
		t.Errorf("hop stream after Close: %v, want a reset", err)
	}
	if err := hs.svc.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestConfigDefaults(t *testing.T) {
	got := Config{}.withDefaults()
	want := DefaultConfig()
	if *got.Limit != *want.Limit {
		t.Errorf("Limit %+v, want %+v", got.Limit, want.Limit)
	}
	got.Limit, want.Limit = nil, nil
	if got != want {
		t.Errorf("zero Config gives %+v, want %+v", got, want)
	}
	if want := (Config{
		ReservationTTL: time.Hour, MaxReservations: 128, MaxReservationsPerIP: 8, MaxCircuitsPerPeer: 16,
		MaxCircuits: 1024, BufferSize: 2048, StreamTimeout: time.Minute,
	}); got != want {
		t.Errorf("defaults %+v, want go-libp2p's %+v", got, want)
	}
	l := &Limit{Data: 1}
	c := Config{Limit: l}.withDefaults()
	l.Data = 2
	if c.Limit.Data != 1 {
		t.Error("the service shares the caller's Limit")
	}
}

func TestOwnAddrs(t *testing.T) {
	h := newFakeHost(t)
	h.addrs = append(h.addrs, nil, ma.StringCast("/p2p/"+h.id.String()))
	s := New(h, Config{}, nil)
	defer s.Close()
	got := s.ownAddrs(h.id)
	if len(got) != 3 {
		t.Fatalf("addrs %v, want 3", got)
	}
	for _, a := range got {
		if _, id := peer.SplitAddr(a); id != h.id || isRelayed(a) {
			t.Errorf("%s does not end in /p2p/<relay> or is relayed", a)
		}
	}
}

// FuzzHandleHop feeds arbitrary bytes as the first message of a hop stream:
// the service answers with a status, or closes or resets the stream, and
// never panics.
func FuzzHandleHop(f *testing.F) {
	target := newNode(f, "target", "/ip4/192.0.2.1/tcp/1")
	f.Add(lp.Append(nil, (&circuit.HopMessage{Type: circuit.HopReserve}).Marshal()))
	f.Add(lp.Append(nil, (&circuit.HopMessage{Type: circuit.HopConnect, Peer: &circuit.Peer{ID: target.id}}).Marshal()))
	f.Add(lp.Append(nil, (&circuit.HopMessage{Type: circuit.HopStatus, Status: circuit.StatusOK}).Marshal()))
	f.Add([]byte{0x02, 0x08, 0x09})
	f.Add([]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		leakcheck.Check(t)
		hs := newHarness(t, Config{StreamTimeout: time.Second})
		// The target holds a reservation, so a CONNECT reaches STOP.
		calls := make(chan stopCall, 1)
		hs.h.setTarget(target, acceptStop(calls))
		if s := hs.reserve(target).Status; s != circuit.StatusOK {
			t.Fatalf("reserve: %s", s)
		}
		cl := hs.hop(newNode(t, "dialer", "/ip4/192.0.2.2/tcp/1"))
		defer cl.Reset()
		if _, err := cl.Write(in); err != nil {
			t.Fatal(err)
		}
		_ = cl.CloseWrite()
		resp, err := circuit.ReadHop(cl)
		switch {
		case errors.Is(err, network.ErrReset) || err == io.EOF:
			return
		case err != nil:
			t.Fatalf("unreadable answer: %v", err)
		case resp.Type != circuit.HopStatus || resp.Status == circuit.StatusUnused:
			t.Fatalf("answer %s %s, want a STATUS", resp.Type, resp.Status)
		}
		if resp.Status == circuit.StatusOK && len(calls) > 0 {
			c := <-calls
			_ = c.st.Reset()
		}
	})
}
