package metrics

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/dialrank"
	"github.com/tachyon-p2p/tachyon/swarm"
	"github.com/tachyon-p2p/tachyon/upgrader"
)

func newTestMetrics(t *testing.T) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

// histCount is the number of observations of one series of h.
func histCount(t *testing.T, h *prometheus.HistogramVec, lvs ...string) uint64 {
	t.Helper()
	o, err := h.GetMetricWithLabelValues(lvs...)
	if err != nil {
		t.Fatal(err)
	}
	var m dtoMetric
	if err := o.(prometheus.Metric).Write(&m.Metric); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

func TestConnMetricsConnections(t *testing.T) {
	m, _ := newTestMetrics(t)
	c := m.conn
	tcp := swarm.ConnInfo{Dir: network.DirOutbound, IPVersion: 4,
		State: network.ConnState{Transport: "tcp", Security: "/noise", Muxer: "/yamux/1.0.0", EarlyMuxer: true}}
	quic := swarm.ConnInfo{Dir: network.DirInbound, IPVersion: 6, Handshake: 3 * time.Millisecond,
		State: network.ConnState{Transport: "quic-v1", Security: "/tls/1.0.0"}}
	tcpLabels := []string{"outbound", "tcp", "/noise", "/yamux/1.0.0", "true", "ip4"}
	quicLabels := []string{"inbound", "quic-v1", "/tls/1.0.0", "none", "false", "ip6"}

	m.Swarm().ConnOpened(tcp)
	m.Swarm().ConnOpened(quic)
	for _, tc := range []struct {
		name string
		got  float64
		want float64
	}{
		{"tcp opened", value(t, c.connsOpened.WithLabelValues(tcpLabels...)), 1},
		{"quic opened", value(t, c.connsOpened.WithLabelValues(quicLabels...)), 1},
		{"tcp open now", value(t, c.conns.WithLabelValues("outbound", "tcp")), 1},
		{"quic open now", value(t, c.conns.WithLabelValues("inbound", "quic-v1")), 1},
		{"inbound quic handshake", float64(histCount(t, c.handshake, "inbound", "quic-v1", "/tls/1.0.0", "none", "false", "success")), 1},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	m.Swarm().ConnClosed(tcp, time.Minute)
	m.Swarm().ConnClosed(quic, time.Second)
	if got := value(t, c.connsClosed.WithLabelValues(tcpLabels...)); got != 1 {
		t.Errorf("tcp closed: %v", got)
	}
	if got := histCount(t, c.connDuration, quicLabels...); got != 1 {
		t.Errorf("quic durations: %d", got)
	}
	if got := value(t, c.conns); got != 0 {
		t.Errorf("open connections after closing all: %v", got)
	}
}

func TestConnMetricsDials(t *testing.T) {
	for _, tc := range []struct {
		name        string
		attempt     swarm.DialAttempt
		wantAttempt []string // transport, ip_version, outcome
		wantHS      []string // handshake labels, nil: none observed
	}{
		{"tcp refused", swarm.DialAttempt{Transport: dialrank.TCPTLS, IPVersion: 4, Outcome: dialrank.Refused},
			[]string{"tcp", "ip4", "refused"}, nil},
		{"tcp connected: the upgrader reports the handshake", swarm.DialAttempt{Transport: dialrank.TCPNoise, IPVersion: 6, Outcome: dialrank.Connected},
			[]string{"tcp", "ip6", "success"}, nil},
		{"quic connected", swarm.DialAttempt{Transport: dialrank.QUIC, IPVersion: 4, Outcome: dialrank.Connected, SelfSecured: true},
			[]string{"quic-v1", "ip4", "success"}, []string{"outbound", "quic-v1", "/tls/1.0.0", "none", "false", "success"}},
		{"webrtc-direct timeout", swarm.DialAttempt{Transport: dialrank.WebRTCDirect, IPVersion: 4, Outcome: dialrank.Timeout, SelfSecured: true},
			[]string{"webrtc-direct", "ip4", "timeout"}, []string{"outbound", "webrtc-direct", "/noise", "none", "false", "timeout"}},
		{"webtransport overtaken: no handshake to time", swarm.DialAttempt{Transport: dialrank.WebTransport, IPVersion: 4, Outcome: dialrank.Overtaken, SelfSecured: true},
			[]string{"webtransport", "ip4", "overtaken"}, nil},
		{"ws peer mismatch", swarm.DialAttempt{Transport: dialrank.WebSocketSecure, Outcome: dialrank.PeerMismatch},
			[]string{"websocket", "none", "peer_id_mismatch"}, nil},
		{"relay unreachable", swarm.DialAttempt{Transport: dialrank.Relay, IPVersion: 4, Outcome: dialrank.Unreachable},
			[]string{"p2p-circuit", "ip4", "unreachable"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := newTestMetrics(t)
			c := m.conn
			tc.attempt.Took = 5 * time.Millisecond
			m.Swarm().DialAttemptEnded(tc.attempt)
			if got := value(t, c.attempts.WithLabelValues(tc.wantAttempt...)); got != 1 {
				t.Errorf("attempts%v = %v, want 1", tc.wantAttempt, got)
			}
			if got := histCount(t, c.attemptDuration, tc.wantAttempt...); got != 1 {
				t.Errorf("attempt durations%v = %d, want 1", tc.wantAttempt, got)
			}
			want := 0
			if tc.wantHS != nil {
				want = 1
				if got := histCount(t, c.handshake, tc.wantHS...); got != 1 {
					t.Errorf("handshakes%v = %d, want 1", tc.wantHS, got)
				}
			}
			if n := series(t, c.handshake); n != want {
				t.Errorf("%d handshake series, want %d", n, want)
			}
		})
	}

	m, _ := newTestMetrics(t)
	c := m.conn
	for _, d := range []struct {
		err  error
		want string
	}{
		{nil, "success"},
		{swarm.ErrAllFailed, "error"},
		{fmt.Errorf("dialing: %w", context.Canceled), "canceled"},
		{swarm.ErrClosed, "canceled"},
		{&swarm.DialError{Cause: context.DeadlineExceeded}, "timeout"},
	} {
		m.Swarm().DialEnded(swarm.DialEnd{Err: d.err, Attempts: 2, Took: time.Millisecond})
		if got := value(t, c.dials.WithLabelValues(d.want)); got < 1 {
			t.Errorf("dial ending with %v: no %q", d.err, d.want)
		}
	}
	if got := value(t, c.dials.WithLabelValues("canceled")); got != 2 {
		t.Errorf("canceled dials: %v, want 2", got)
	}
	var hm dtoMetric
	if err := c.attemptsPerDial.Write(&hm.Metric); err != nil || hm.GetHistogram().GetSampleCount() != 5 || hm.GetHistogram().GetSampleSum() != 10 {
		t.Errorf("attempts per dial: %v, %v", hm.GetHistogram(), err)
	}
	m.Swarm().AddrSkipped(dialrank.BlackHoled)
	m.Swarm().AddrSkipped(dialrank.SameSocket)
	m.Swarm().AddrSkipped(dialrank.SameSocket)
	if got := value(t, c.skipped.WithLabelValues("same_socket")); got != 2 {
		t.Errorf("same_socket skips: %v", got)
	}
	if got := value(t, c.skipped.WithLabelValues("black_hole")); got != 1 {
		t.Errorf("black_hole skips: %v", got)
	}
}

func TestConnMetricsBlackHoles(t *testing.T) {
	m, _ := newTestMetrics(t)
	c := m.conn
	if n := series(t, c.blackHole); n != 4 {
		t.Fatalf("%d black-hole series at start, want one per class (4)", n)
	}
	m.Swarm().BlackHoleChanged(dialrank.UDP6, dialrank.Blocked)
	if got := value(t, c.blackHole.WithLabelValues("udp/ip6")); got != 2 {
		t.Errorf("udp/ip6 blocked: %v, want 2", got)
	}
	m.Swarm().BlackHoleChanged(dialrank.UDP6, dialrank.Open)
	if got := value(t, c.blackHole.WithLabelValues("udp/ip6")); got != 0 {
		t.Errorf("udp/ip6 reopened: %v, want 0", got)
	}
}

func TestConnMetricsHandshakes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, "success"},
		{fmt.Errorf("upgrade: %w", upgrader.ErrRefused), "refused"},
		{&network.PeerIDMismatchError{}, "peer_id_mismatch"},
		{fmt.Errorf("noise: %w", context.DeadlineExceeded), "timeout"},
		{errors.New("bad handshake"), "error"},
	} {
		m, _ := newTestMetrics(t)
		m.Upgrader().HandshakeDone(upgrader.Handshake{Dir: network.DirInbound, Transport: "websocket", Security: "/noise",
			Muxer: "/yamux/1.0.0", EarlyMuxer: true, Took: time.Millisecond, Err: tc.err})
		if got := histCount(t, m.conn.handshake, "inbound", "websocket", "/noise", "/yamux/1.0.0", "true", tc.want); got != 1 {
			t.Errorf("handshake ending with %v: %d observations as %q", tc.err, got, tc.want)
		}
	}
}

func TestConnMetricsStreams(t *testing.T) {
	m, _ := newTestMetrics(t)
	c := m.conn
	st := m.Streams()
	a := st.StreamOpened(network.DirOutbound, "/echo/1")
	b := st.StreamOpened(network.DirOutbound, "/echo/1")
	st.NegotiationFailed(network.DirInbound)
	u := st.StreamOpened(network.DirInbound, "")
	a.AddBytes(100, 0)
	a.AddBytes(0, 50)
	b.AddBytes(1, 2)
	if got := value(t, c.streams.WithLabelValues("outbound", "/echo/1")); got != 2 {
		t.Errorf("open outbound /echo/1: %v", got)
	}
	a.StreamClosed()
	b.StreamClosed()
	u.StreamClosed()
	for _, tc := range []struct {
		name      string
		got, want float64
	}{
		{"opened", value(t, c.streamsOpened.WithLabelValues("outbound", "/echo/1")), 2},
		{"closed", value(t, c.streamsClosed.WithLabelValues("outbound", "/echo/1")), 2},
		{"unnegotiated", value(t, c.streamsClosed.WithLabelValues("inbound", ProtoUnnegotiated)), 1},
		{"negotiation failures", value(t, c.negFailures.WithLabelValues("inbound")), 1},
		{"open now", value(t, c.streams), 0},
		{"bytes in", value(t, c.bytes.WithLabelValues("in", "/echo/1")), 101},
		{"bytes out", value(t, c.bytes.WithLabelValues("out", "/echo/1")), 52},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestConnMetricsNil(t *testing.T) {
	var m *Metrics
	if m.Swarm() != nil || m.Upgrader() != nil || m.Streams() != nil {
		t.Fatal("a nil *Metrics handed out a non-nil tracer")
	}
}

// TestNewTwice: a second Metrics on one registry is an error, and leaves
// the first one's collectors registered.
func TestNewTwice(t *testing.T) {
	m, reg := newTestMetrics(t)
	if _, err := New(reg); err == nil {
		t.Fatal("New on a registry that has the collectors already: no error")
	}
	m.Swarm().DialEnded(swarm.DialEnd{})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		found = found || mf.GetName() == "tachyon_dials_total" && len(mf.GetMetric()) == 1
	}
	if !found {
		t.Fatal("the first Metrics' dials are not gathered after a failed New")
	}
}

// BenchmarkConnectionEvents is what the connection metrics cost one
// outbound TCP connection on its dialing side: the dial's attempt, the
// dial, the upgrade, one skipped address, open and close.
func BenchmarkConnectionEvents(b *testing.B) {
	m, err := New(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	c := m.conn
	ci := swarm.ConnInfo{Dir: network.DirOutbound, IPVersion: 4,
		State: network.ConnState{Transport: "tcp", Security: "/noise", Muxer: "/yamux/1.0.0", EarlyMuxer: true}}
	hs := upgrader.Handshake{Dir: network.DirOutbound, Transport: "tcp", Security: "/noise", Muxer: "/yamux/1.0.0", EarlyMuxer: true, Took: time.Millisecond}
	at := swarm.DialAttempt{Transport: dialrank.TCPNoise, IPVersion: 4, Outcome: dialrank.Connected, Took: time.Millisecond}
	b.ReportAllocs()
	for range b.N {
		c.AddrSkipped(dialrank.SameSocket)
		c.HandshakeDone(hs)
		c.DialAttemptEnded(at)
		c.DialEnded(swarm.DialEnd{Took: time.Millisecond, Attempts: 1})
		c.ConnOpened(ci)
		c.ConnClosed(ci, time.Second)
	}
}
