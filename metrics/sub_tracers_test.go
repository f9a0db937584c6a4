package metrics

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/circuit"
	"github.com/tachyon-p2p/tachyon/event"
	"github.com/tachyon-p2p/tachyon/protocol/holepunch"
	"github.com/tachyon-p2p/tachyon/protocol/identify"
	"github.com/tachyon-p2p/tachyon/protocol/relay"
	"github.com/tachyon-p2p/tachyon/reachability"
	"github.com/tachyon-p2p/tachyon/transport/udpmux"
)

var errX = errors.New("x")

// want is a series and its expected value.
type want struct {
	s subSeries
	v float64
}

func TestSubsystemTracers(t *testing.T) {
	for _, tc := range []struct {
		name string
		do   func(m *Metrics)
		want []want
	}{
		{"identify", func(m *Metrics) {
			tr := m.Identify()
			tr.Message(identify.Sent, identify.KindIdentify, nil)
			tr.Message(identify.Sent, identify.KindIdentify, nil)
			tr.Message(identify.Received, identify.KindPush, errX)
		}, []want{
			{ser("tachyon_identify_total", "dir", "sent", "kind", "identify", "result", "success"), 2},
			{ser("tachyon_identify_total", "dir", "received", "kind", "push", "result", "error"), 1},
			{ser("tachyon_identify_total", "dir", "received", "kind", "identify", "result", "success"), 0},
		}},
		{"ping", func(m *Metrics) {
			tr := m.Ping()
			tr.Ping(3*time.Millisecond, nil)
			tr.Ping(5*time.Millisecond, nil)
			tr.Ping(0, fmt.Errorf("ping: %w", context.DeadlineExceeded))
			tr.Ping(0, fmt.Errorf("ping: reading: %w", os.ErrDeadlineExceeded))
			tr.Ping(0, context.Canceled)
			tr.Ping(0, errX)
		}, []want{
			{ser("tachyon_ping_rtt_seconds"), 2},
			{ser("tachyon_ping_total", "result", "success"), 2},
			{ser("tachyon_ping_total", "result", "timeout"), 2},
			{ser("tachyon_ping_total", "result", "canceled"), 1},
			{ser("tachyon_ping_total", "result", "error"), 1},
		}},
		{"perf", func(m *Metrics) {
			m.Perf().Run(100, 7, nil)
			m.Perf().Run(1, 2, errX)
		}, []want{
			{ser("tachyon_perf_bytes_total", "dir", "out"), 101},
			{ser("tachyon_perf_bytes_total", "dir", "in"), 9},
			{ser("tachyon_perf_runs_total", "result", "success"), 1},
			{ser("tachyon_perf_runs_total", "result", "error"), 1},
		}},
		{"QUIC-based handshakes", func(m *Metrics) {
			m.QUIC().Handshakes(1)
			m.QUIC().Handshakes(1)
			m.UDPMux().InboundHandshake(udpmux.ALPNLibp2p, 1)
			m.QUIC().Handshakes(-1)
			m.WebTransport().Handshakes(1)
			m.UDPMux().InboundHandshake(udpmux.ALPNH3, 1)
			m.UDPMux().InboundHandshake(udpmux.ALPNH3, -1)
			m.UDPMux().InboundHandshake("other", 1)
		}, []want{
			{ser("tachyon_quic_handshakes_in_flight", "transport", "quic-v1"), 2},
			{ser("tachyon_quic_handshakes_in_flight", "transport", "webtransport"), 1},
		}},
		{"WebRTC", func(m *Metrics) {
			m.WebRTCDirect().Handshakes(1)
			m.WebRTCDirect().ICEFailed()
			m.WebRTC().Handshakes(1)
			m.WebRTC().Handshakes(-1)
			m.WebRTC().ICEFailed()
			m.WebRTC().ICEFailed()
		}, []want{
			{ser("tachyon_webrtc_handshakes_in_flight", "transport", "webrtc-direct"), 1},
			{ser("tachyon_webrtc_handshakes_in_flight", "transport", "webrtc"), 0},
			{ser("tachyon_webrtc_ice_failures_total", "transport", "webrtc-direct"), 1},
			{ser("tachyon_webrtc_ice_failures_total", "transport", "webrtc"), 2},
		}},
		{"UDP sockets", func(m *Metrics) {
			tr := m.UDPMux()
			tr.Socket("", "none")
			tr.Socket("none", "quic-v1")
			tr.Socket("quic-v1", "quic-v1+webtransport")
			tr.Socket("", "none")
		}, []want{
			{ser("tachyon_udp_sockets", "shared_by", "none"), 1},
			{ser("tachyon_udp_sockets", "shared_by", "quic-v1"), 0},
			{ser("tachyon_udp_sockets", "shared_by", "quic-v1+webtransport"), 1},
		}},
		{"relay service", func(m *Metrics) {
			tr := m.RelayService()
			tr.Request(relay.ReqReserve, circuit.StatusOK)
			tr.Request(relay.ReqReserve, circuit.StatusReservationRefused)
			tr.Reservations(1)
			tr.Request(relay.ReqConnect, circuit.StatusOK)
			tr.Request(relay.ReqConnect, circuit.StatusNoReservation)
			tr.Request(relay.ReqOther, circuit.StatusMalformedMessage)
			tr.Circuits(1)
			tr.BytesRelayed(10)
			tr.BytesRelayed(5)
			tr.Circuits(0)
			tr.CircuitClosed(2 * time.Second)
		}, []want{
			{ser("tachyon_relay_service_reservations"), 1},
			{ser("tachyon_relay_service_reservation_requests_total", "result", "ok"), 1},
			{ser("tachyon_relay_service_reservation_requests_total", "result", "reservation_refused"), 1},
			{ser("tachyon_relay_service_circuit_requests_total", "result", "ok"), 1},
			{ser("tachyon_relay_service_circuit_requests_total", "result", "no_reservation"), 1},
			{ser("tachyon_relay_service_circuits"), 0},
			{ser("tachyon_relay_service_bytes_total"), 15},
			{ser("tachyon_relay_service_circuit_duration_seconds"), 1},
		}},
		{"relay client", func(m *Metrics) {
			tr := m.RelayClient()
			tr.ReservationRequest(circuit.StatusOK)
			tr.ReservationRequest(circuit.StatusUnused)
			tr.Reservations(1)
		}, []want{
			{ser("tachyon_relay_client_reservations"), 1},
			{ser("tachyon_relay_client_reservation_requests_total", "result", "ok"), 1},
			{ser("tachyon_relay_client_reservation_requests_total", "result", "error"), 1},
		}},
		{"hole punching", func(m *Metrics) {
			tr := m.HolePunch()
			tr.Attempt(holepunch.SideInitiator, "", holepunch.ReasonDialError, time.Second)
			tr.Attempt(holepunch.SideInitiator, "quic-v1", "", 100*time.Millisecond)
			tr.Attempt(holepunch.SideResponder, "made-up", "", time.Millisecond)
		}, []want{
			{ser("tachyon_holepunch_attempts_total", "outcome", "dial_error", "side", "initiator", "transport", "none"), 1},
			{ser("tachyon_holepunch_attempts_total", "outcome", "success", "side", "initiator", "transport", "quic-v1"), 1},
			{ser("tachyon_holepunch_attempts_total", "outcome", "success", "side", "responder", "transport", "other"), 1},
			{ser("tachyon_holepunch_duration_seconds", "result", "success"), 2},
			{ser("tachyon_holepunch_duration_seconds", "result", "failure"), 1},
		}},
		{"AutoNAT", func(m *Metrics) {
			m.AutoNATv2().ServerRequest("ok")
			m.AutoNATv2().ClientCheck("reachable")
			m.AutoNATv2().ClientCheck("reachable")
			m.AutoNATv1().ServerRequest("dial_error")
		}, []want{
			{ser("tachyon_autonat_requests_total", "result", "ok", "side", "server", "version", "v2"), 1},
			{ser("tachyon_autonat_requests_total", "result", "reachable", "side", "client", "version", "v2"), 2},
			{ser("tachyon_autonat_requests_total", "result", "dial_error", "side", "server", "version", "v1"), 1},
		}},
		{"reachability", func(m *Metrics) {
			tr := m.Reachability()
			tr.Addrs(0, 0, 3)
			tr.Changed(reachability.Unknown, reachability.Public)
			tr.Addrs(1, 0, 2)
		}, []want{
			{ser("tachyon_reachability_addresses", "state", "public"), 1},
			{ser("tachyon_reachability_addresses", "state", "private"), 0},
			{ser("tachyon_reachability_addresses", "state", "unknown"), 2},
			{ser("tachyon_reachability_changes_total", "from", "unknown", "to", "public"), 1},
		}},
		{"advertised addresses", func(m *Metrics) {
			m.Advertised().Advertised([]ma.Multiaddr{ma.StringCast("/ip4/1.2.3.4/tcp/1")})
			m.Advertised().Advertised([]ma.Multiaddr{
				ma.StringCast("/ip4/1.2.3.4/tcp/1"),
				ma.StringCast("/ip4/1.2.3.4/tcp/1/ws"),
				ma.StringCast("/ip4/1.2.3.4/tcp/1/tls/ws"),
				ma.StringCast("/ip4/1.2.3.4/udp/1/quic-v1"),
				ma.StringCast("/ip4/1.2.3.4/udp/1/quic-v1/webtransport"),
				ma.StringCast("/ip4/1.2.3.4/udp/1/webrtc-direct"),
				ma.StringCast("/ip4/1.2.3.4/tcp/1/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit"),
				ma.StringCast("/ip4/1.2.3.4/tcp/1/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit/webrtc"),
			})
		}, []want{
			{ser("tachyon_advertised_addresses", "transport", "tcp"), 1},
			{ser("tachyon_advertised_addresses", "transport", "ws"), 1},
			{ser("tachyon_advertised_addresses", "transport", "wss"), 1},
			{ser("tachyon_advertised_addresses", "transport", "quic-v1"), 1},
			{ser("tachyon_advertised_addresses", "transport", "webtransport"), 1},
			{ser("tachyon_advertised_addresses", "transport", "webrtc-direct"), 1},
			{ser("tachyon_advertised_addresses", "transport", "p2p-circuit"), 1},
			{ser("tachyon_advertised_addresses", "transport", "webrtc"), 1},
			{ser("tachyon_advertised_addresses", "transport", "other"), 0},
		}},
		{"limits, connmgr", func(m *Metrics) {
			m.Limits().Refused("ip", "handshakes")
			m.Limits().Refused("ip", "handshakes")
			m.ConnMgr().Trimmed(3)
			m.ConnMgr().Trimmed(2)
		}, []want{
			{ser("tachyon_limits_refusals_total", "resource", "handshakes", "scope", "ip"), 2},
			{ser("tachyon_connmgr_trimmed_connections_total"), 5},
		}},
		{"event bus", func(m *Metrics) {
			m.EventBus().Dropped("EvtPeerIdentified")
			m.EventBus().Dropped("SomeUserEvent")
		}, []want{
			{ser("tachyon_event_bus_dropped_total", "event", "EvtPeerIdentified"), 1},
			{ser("tachyon_event_bus_dropped_total", "event", "other"), 1},
		}},
		{"daemon", func(m *Metrics) {
			tr := m.Daemon()
			tr.Request("identify", nil)
			tr.Request("dht", errX)
		}, []want{
			{ser("tachyon_daemon_requests_total", "result", "success", "type", "identify"), 1},
			{ser("tachyon_daemon_requests_total", "result", "error", "type", "dht"), 1},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, reg := newTestMetrics(t)
			tc.do(m)
			for _, w := range tc.want {
				v, ok := sample(t, reg, w.s)
				if !ok && w.v != 0 {
					t.Errorf("%s%v: no such series", w.s.name, w.s.labels)
					continue
				}
				if v != w.v {
					t.Errorf("%s%v = %v, want %v", w.s.name, w.s.labels, v, w.v)
				}
			}
		})
	}
}

// TestSubsystemAccessorsNil: without metrics every accessor returns a nil
// interface, which the packages' nil checks recognise.
func TestSubsystemAccessorsNil(t *testing.T) {
	var m *Metrics
	for name, tr := range map[string]any{
		"Identify": m.Identify(), "Ping": m.Ping(), "Perf": m.Perf(), "QUIC": m.QUIC(), "WebTransport": m.WebTransport(),
		"WebRTCDirect": m.WebRTCDirect(), "WebRTC": m.WebRTC(), "UDPMux": m.UDPMux(), "RelayService": m.RelayService(),
		"RelayClient": m.RelayClient(), "HolePunch": m.HolePunch(), "AutoNATv2": m.AutoNATv2(), "AutoNATv1": m.AutoNATv1(),
		"Reachability": m.Reachability(), "Advertised": m.Advertised(), "Limits": m.Limits(), "ConnMgr": m.ConnMgr(),
		"EventBus": m.EventBus(), "Daemon": m.Daemon(),
	} {
		if tr != nil {
			t.Errorf("%s on nil Metrics = %#v, want nil", name, tr)
		}
	}
	if m.Identify() != nil || m.Limits() != nil || m.EventBus() != nil {
		t.Error("an accessor returned a typed nil")
	}
	_ = event.NewTracedBus(m.EventBus()) // a nil tracer is valid
}

// TestSubsystemHotPathAllocs keeps the tracers called per chunk or per
// message free of allocations.
func TestSubsystemHotPathAllocs(t *testing.T) {
	m, _ := newTestMetrics(t)
	for name, f := range map[string]func(){
		"relay bytes": func() { m.RelayService().BytesRelayed(1000) },
		"identify":    func() { m.Identify().Message(identify.Received, identify.KindPush, nil) },
		"ping":        func() { m.Ping().Ping(time.Millisecond, nil) },
		"handshakes":  func() { m.QUIC().Handshakes(1) },
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocations per call", name, n)
		}
	}
}
