package tachyon

import (
	"context"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/limits"
	"github.com/tachyon-p2p/tachyon/protocol/relay"
	"github.com/tachyon-p2p/tachyon/swarm"
)

// promValue is the value of the series name{labels} in reg (a histogram's
// sample count), 0 when there is none.
func promValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := len(m.GetLabel()) == len(labels)
			for _, lp := range m.GetLabel() {
				match = match && labels[lp.GetName()] == lp.GetValue()
			}
			switch {
			case !match:
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			default:
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// waitValue waits, at most 10 s, until the series reaches want.
func waitValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v := promValue(t, reg, name, labels)
		if v == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v, want %v", name, labels, v, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMetricsIdentifyAndPing: after a connection each host answered one
// identify request and had one answered, and every ping is in the RTT
// histogram.
func TestMetricsIdentifyAndPing(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	a := testHost(t, Transports(TCP), ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), PrometheusRegisterer(regA))
	b := testHost(t, Transports(TCP), PrometheusRegisterer(regB))
	if err := b.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: a.Addrs()}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.IdentifyWait(ctx, a.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.IdentifyWait(ctx, b.ID()); err != nil {
		t.Fatal(err)
	}
	for name, reg := range map[string]*prometheus.Registry{"A": regA, "B": regB} {
		for _, dir := range []string{"sent", "received"} {
			labels := map[string]string{"dir": dir, "kind": "identify", "result": "success"}
			waitValue(t, reg, "tachyon_identify_total", labels, 1)
			if v := promValue(t, reg, "tachyon_identify_total", map[string]string{"dir": dir, "kind": "identify", "result": "error"}); v != 0 {
				t.Errorf("%s: %v identify errors %s", name, v, dir)
			}
		}
	}

	const pings = 3
	if err := b.Ping(ctx, a.ID(), pings, 0, 5*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	if v := promValue(t, regB, "tachyon_ping_rtt_seconds", nil); v != pings {
		t.Errorf("RTT histogram holds %v pings, want %d", v, pings)
	}
	if v := promValue(t, regB, "tachyon_ping_total", map[string]string{"result": "success"}); v != pings {
		t.Errorf("%v successful pings counted, want %d", v, pings)
	}
	if v := promValue(t, regA, "tachyon_ping_rtt_seconds", nil); v != 0 {
		t.Errorf("the pinged host counted %v pings of its own", v)
	}
	// Identify counts stay exact: the pings asked nothing more.
	if v := promValue(t, regB, "tachyon_identify_total", map[string]string{"dir": "received", "kind": "identify", "result": "success"}); v != 1 {
		t.Errorf("B received %v identify answers, want 1", v)
	}
}

// TestMetricsRelayCircuit: the relay counts B's reservation and the
// circuit A opens to B, and B counts its reservation.
func TestMetricsRelayCircuit(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	regR, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	r := testHost(t, ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), RelayService(relay.DefaultConfig()), PrometheusRegisterer(regR))
	relayAddrs, _ := peer.AddrInfo{ID: r.ID(), Addrs: r.Addrs()}.P2pAddrs()
	b := testHost(t, StaticRelays(relayAddrs[0]), ForceReachability(network.ReachabilityPrivate), PrometheusRegisterer(regB))
	a := testHost(t)
	waitValue(t, regB, "tachyon_relay_client_reservations", nil, 1)
	var circuitAddr ma.Multiaddr
	for _, addr := range b.Addrs() {
		if swarm.IsRelayAddr(addr) {
			circuitAddr = addr
		}
	}
	if circuitAddr == nil {
		t.Fatalf("B holds a reservation but advertises no relayed address: %v", b.Addrs())
	}
	a.Peerstore().AddAddrs(b.ID(), []ma.Multiaddr{circuitAddr}, time.Hour)
	if err := a.Ping(ctx, b.ID(), 1, 0, 10*time.Second, nil); err != nil {
		t.Fatalf("ping through the relay: %v", err)
	}

	ok := map[string]string{"result": "ok"}
	if v := promValue(t, regR, "tachyon_relay_service_reservation_requests_total", ok); v != 1 {
		t.Errorf("relay answered %v reservations OK, want 1", v)
	}
	if v := promValue(t, regR, "tachyon_relay_service_reservations", nil); v != 1 {
		t.Errorf("relay holds %v reservations, want 1", v)
	}
	if v := promValue(t, regR, "tachyon_relay_service_circuit_requests_total", ok); v != 1 {
		t.Errorf("relay answered %v circuits OK, want 1", v)
	}
	if v := promValue(t, regR, "tachyon_relay_service_circuits", nil); v != 1 {
		t.Errorf("relay relays %v circuits, want 1", v)
	}
	if v := promValue(t, regR, "tachyon_relay_service_bytes_total", nil); v <= 0 {
		t.Errorf("relay counted %v bytes relayed", v)
	}
	if v := promValue(t, regB, "tachyon_relay_client_reservation_requests_total", ok); v < 1 {
		t.Errorf("B counted %v reservations made", v)
	}
	// A's connection through the relay ends: so does the circuit.
	a.ClosePeer(b.ID())
	waitValue(t, regR, "tachyon_relay_service_circuits", nil, 0)
	if v := promValue(t, regR, "tachyon_relay_service_circuit_duration_seconds", nil); v != 1 {
		t.Errorf("relay timed %v circuits, want 1", v)
	}
}

// TestMetricsLimitsRefusal: a connection over ConnsInbound is counted as
// refused, by scope and resource.
func TestMetricsLimitsRefusal(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	reg := prometheus.NewRegistry()
	a := testHost(t, Transports(TCP), ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), Limits(limits.Config{ConnsInbound: 1}), PrometheusRegisterer(reg))
	b1 := testHost(t, Transports(TCP))
	if err := b1.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: a.Addrs()}); err != nil {
		t.Fatal(err)
	}
	refused := map[string]string{"scope": "node", "resource": "inbound_connections"}
	if v := promValue(t, reg, "tachyon_limits_refusals_total", refused); v != 0 {
		t.Fatalf("%v refusals before any was due", v)
	}
	b2 := testHost(t, Transports(TCP))
	b2.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: a.Addrs()}) // may succeed before a refuses
	waitValue(t, reg, "tachyon_limits_refusals_total", refused, 1)
}
