package metrics

import (
	"context"
	"errors"
	"os"
	"reflect"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tachyon-p2p/tachyon/connmgr"
	"github.com/tachyon-p2p/tachyon/core/circuit"
	"github.com/tachyon-p2p/tachyon/event"
	"github.com/tachyon-p2p/tachyon/limits"
	"github.com/tachyon-p2p/tachyon/protocol/autonatv1"
	"github.com/tachyon-p2p/tachyon/protocol/autonatv2"
	"github.com/tachyon-p2p/tachyon/protocol/holepunch"
	"github.com/tachyon-p2p/tachyon/protocol/identify"
	"github.com/tachyon-p2p/tachyon/protocol/perf"
	"github.com/tachyon-p2p/tachyon/protocol/ping"
	"github.com/tachyon-p2p/tachyon/protocol/relay"
	"github.com/tachyon-p2p/tachyon/reachability"
	"github.com/tachyon-p2p/tachyon/transport/quic"
	"github.com/tachyon-p2p/tachyon/transport/relayed"
	"github.com/tachyon-p2p/tachyon/transport/udpmux"
	"github.com/tachyon-p2p/tachyon/transport/webrtc"
	"github.com/tachyon-p2p/tachyon/transport/webtransport"
)

// subsystemMetrics covers protocols and subsystems. Each tracer below
// implements one package's Tracer; those called often hold their label
// children resolved up front, so a call is a map-free atomic add.
type subsystemMetrics struct {
	identifyTotal *prometheus.CounterVec

	pingRTT   prometheus.Histogram
	pingTotal *prometheus.CounterVec

	perfBytes *prometheus.CounterVec
	perfRuns  *prometheus.CounterVec

	quicHandshakes   *prometheus.GaugeVec
	webrtcHandshakes *prometheus.GaugeVec
	iceFailures      *prometheus.CounterVec
	udpSockets       *prometheus.GaugeVec

	relaySvcReservations   prometheus.Gauge
	relaySvcReservationReq *prometheus.CounterVec
	relaySvcCircuits       prometheus.Gauge
	relaySvcCircuitReq     *prometheus.CounterVec
	relaySvcBytes          prometheus.Counter
	relaySvcCircuitDur     prometheus.Histogram

	relayClientReservations   prometheus.Gauge
	relayClientReservationReq *prometheus.CounterVec

	holePunchAttempts *prometheus.CounterVec
	holePunchDuration *prometheus.HistogramVec

	autonatRequests *prometheus.CounterVec

	reachAddrs   *prometheus.GaugeVec
	reachChanges *prometheus.CounterVec
	advertised   *prometheus.GaugeVec

	limitsRefusals *prometheus.CounterVec
	connmgrTrimmed prometheus.Counter
	eventDrops     *prometheus.CounterVec
	daemonRequests *prometheus.CounterVec

	// The tracers handed out.
	identify     *identifyTracer
	ping         *pingTracer
	perf         *perfTracer
	quic         handshakeTracer
	webtransport handshakeTracer
	webrtcDirect *webrtcTracer
	webrtc       *webrtcTracer
	udpmux       *udpmuxTracer
	relayService *relayServiceTracer
	relayClient  *relayClientTracer
	holePunch    *holePunchTracer
	autonatV2    *autonatV2Tracer
	autonatV1    *autonatV1Tracer
	reachability *reachabilityTracer
	advertisedT  *advertisedTracer
	limits       *limitsTracer
	connmgr      *connmgrTracer
	events       *eventTracer
	daemon       *daemonTracer
}

func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

func gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
}

func newSubsystemMetrics() *subsystemMetrics {
	s := &subsystemMetrics{
		identifyTotal: counterVec("tachyon_identify_total",
			"Identify messages sent or received, by kind (identify, push) and result.", "dir", "kind", "result"),
		pingRTT: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tachyon_ping_rtt_seconds",
			Help: "Round trips measured by the host's pings.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		pingTotal: counterVec("tachyon_ping_total", "Pings sent by the host, by result.", "result"),
		perfBytes: counterVec("tachyon_perf_bytes_total", "Bytes moved by perf runs, by direction.", "dir"),
		perfRuns:  counterVec("tachyon_perf_runs_total", "Perf runs ended, served or run, by result.", "result"),
		quicHandshakes: gaugeVec("tachyon_quic_handshakes_in_flight",
			"QUIC and WebTransport handshakes in progress, both directions.", "transport"),
		webrtcHandshakes: gaugeVec("tachyon_webrtc_handshakes_in_flight",
			"WebRTC-direct and /webrtc handshakes in progress, both directions.", "transport"),
		iceFailures: counterVec("tachyon_webrtc_ice_failures_total",
			"WebRTC handshakes that failed before ICE connected.", "transport"),
		udpSockets: gaugeVec("tachyon_udp_sockets",
			"UDP sockets of the QUIC-based transports, by the transports sharing each (none: dials only).", "shared_by"),
		relaySvcReservations: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tachyon_relay_service_reservations",
			Help: "Reservations the relay service holds."}),
		relaySvcReservationReq: counterVec("tachyon_relay_service_reservation_requests_total",
			"RESERVE requests answered by the relay service, by the status answered.", "result"),
		relaySvcCircuits: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tachyon_relay_service_circuits",
			Help: "Circuits the relay service relays now."}),
		relaySvcCircuitReq: counterVec("tachyon_relay_service_circuit_requests_total",
			"CONNECT requests answered by the relay service, by the status answered.", "result"),
		relaySvcBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "tachyon_relay_service_bytes_total",
			Help: "Bytes relayed by the relay service, both directions."}),
		relaySvcCircuitDur: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tachyon_relay_service_circuit_duration_seconds",
			Help: "How long relayed circuits lasted.", Buckets: prometheus.ExponentialBuckets(0.5, 4, 9)}),
		relayClientReservations: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tachyon_relay_client_reservations",
			Help: "Reservations the host holds on relays."}),
		relayClientReservationReq: counterVec("tachyon_relay_client_reservation_requests_total",
			"Reservations asked of relays, by the relay's answer (error: none came).", "result"),
		holePunchAttempts: counterVec("tachyon_holepunch_attempts_total",
			"Hole punching attempts (0: the connection reversal), by our side, the direct connection's transport and outcome.",
			"side", "transport", "outcome"),
		holePunchDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "tachyon_holepunch_duration_seconds",
			Help: "How long hole punching attempts took, by result.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 12)}, []string{"result"}),
		autonatRequests: counterVec("tachyon_autonat_requests_total",
			"AutoNAT requests served (server) and checks made (client), by protocol version and result.", "version", "side", "result"),
		reachAddrs: gaugeVec("tachyon_reachability_addresses",
			"Candidate addresses by the reachability verdict on them.", "state"),
		reachChanges: counterVec("tachyon_reachability_changes_total",
			"Reachability verdict changes of candidate addresses.", "from", "to"),
		advertised: gaugeVec("tachyon_advertised_addresses",
			"Addresses the host advertises, by transport.", "transport"),
		limitsRefusals: counterVec("tachyon_limits_refusals_total",
			"Resource limit refusals, by the scope of the limit and the resource.", "scope", "resource"),
		connmgrTrimmed: prometheus.NewCounter(prometheus.CounterOpts{Name: "tachyon_connmgr_trimmed_connections_total",
			Help: "Connections closed by the connection manager's trims."}),
		eventDrops: counterVec("tachyon_event_bus_dropped_total",
			"Event deliveries missed by full subscriptions, by event type.", "event"),
		daemonRequests: counterVec("tachyon_daemon_requests_total",
			"Daemon control requests, by type and result.", "type", "result"),
	}
	s.identify = newIdentifyTracer(s.identifyTotal)
	s.ping = &pingTracer{rtt: s.pingRTT, results: resolve(s.pingTotal, pingResults[:])}
	s.perf = &perfTracer{in: s.perfBytes.WithLabelValues("in"), out: s.perfBytes.WithLabelValues("out"),
		ok: s.perfRuns.WithLabelValues("success"), failed: s.perfRuns.WithLabelValues("error")}
	s.quic = handshakeTracer{s.quicHandshakes.WithLabelValues("quic-v1")}
	s.webtransport = handshakeTracer{s.quicHandshakes.WithLabelValues("webtransport")}
	s.webrtcDirect = &webrtcTracer{handshakeTracer{s.webrtcHandshakes.WithLabelValues("webrtc-direct")}, s.iceFailures.WithLabelValues("webrtc-direct")}
	s.webrtc = &webrtcTracer{handshakeTracer{s.webrtcHandshakes.WithLabelValues("webrtc")}, s.iceFailures.WithLabelValues("webrtc")}
	s.udpmux = &udpmuxTracer{sockets: s.udpSockets,
		quicV1: s.quicHandshakes.WithLabelValues("quic-v1"), webtransport: s.quicHandshakes.WithLabelValues("webtransport")}
	s.relayService = &relayServiceTracer{s}
	s.relayClient = &relayClientTracer{s}
	s.holePunch = &holePunchTracer{s}
	// The attempt series exist from the start, at zero: one born at its
	// first increment shows no increase to rate(), and a success ratio
	// over a window would read 0/0.
	for _, side := range []string{"initiator", "responder"} {
		for _, tr := range []string{"tcp", "quic-v1"} {
			s.holePunchAttempts.WithLabelValues(side, tr, "success")
		}
		for _, o := range []string{"no_own_addrs", "no_peer_addrs", "protocol_error", "timeout", "dial_error", "not_supported", "no_stream", "already_direct"} {
			s.holePunchAttempts.WithLabelValues(side, "none", o)
		}
	}
	s.holePunchDuration.WithLabelValues("success")
	s.holePunchDuration.WithLabelValues("failure")
	s.autonatV2 = &autonatV2Tracer{s.autonatRequests}
	s.autonatV1 = &autonatV1Tracer{s.autonatRequests}
	s.reachability = newReachabilityTracer(s)
	s.advertisedT = newAdvertisedTracer(s.advertised)
	s.limits = &limitsTracer{s.limitsRefusals}
	s.connmgr = &connmgrTracer{s.connmgrTrimmed}
	s.events = newEventTracer(s.eventDrops)
	s.daemon = &daemonTracer{s.daemonRequests}
	return s
}

func (s *subsystemMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		s.identifyTotal, s.pingRTT, s.pingTotal, s.perfBytes, s.perfRuns,
		s.quicHandshakes, s.webrtcHandshakes, s.iceFailures, s.udpSockets,
		s.relaySvcReservations, s.relaySvcReservationReq, s.relaySvcCircuits, s.relaySvcCircuitReq,
		s.relaySvcBytes, s.relaySvcCircuitDur, s.relayClientReservations, s.relayClientReservationReq,
		s.holePunchAttempts, s.holePunchDuration, s.autonatRequests,
		s.reachAddrs, s.reachChanges, s.advertised,
		s.limitsRefusals, s.connmgrTrimmed, s.eventDrops, s.daemonRequests,
	}
}

// resolve returns the children of v for each label value, in order.
func resolve(v *prometheus.CounterVec, values []string) []prometheus.Counter {
	out := make([]prometheus.Counter, len(values))
	for i, l := range values {
		out[i] = v.WithLabelValues(l)
	}
	return out
}

// result is the label of an outcome that is only a success or a failure.
func result(err error) string {
	if err == nil {
		return "success"
	}
	return "error"
}

// ---- accessors: nil-safe, a nil interface when m is nil ----

// Identify is the identify service's tracer.
func (m *Metrics) Identify() identify.Tracer {
	if m == nil {
		return nil
	}
	return m.sub.identify
}

// Ping is the tracer of the host's pings.
func (m *Metrics) Ping() ping.Tracer {
	if m == nil {
		return nil
	}
	return m.sub.ping
}

// Perf is the tracer of perf runs, served (perf.Server) or run
// (perf.RunTraced).
func (m *Metrics) Perf() perf.Tracer {
	if m == nil {
		return nil
	}
	return m.sub.perf
}

// QUIC is the QUIC transport's tracer.
func (m *Metrics) QUIC() quic.Tracer {
	if m == nil {
		return nil
	}
	return m.sub.quic
}

// WebTransport is the WebTransport transport's tracer.
func (m *Metrics) WebTransport() webtransport.Tracer {
	if m == nil {
		return nil
	}
	return m.sub.webtransport
}

// WebRTCDirect is the tracer of the WebRTC-direct transport (webrtc.Config).
func (m *Metrics) WebRTCDirect() webrtc.Tracer {
	if m == nil {
		return nil
	}
	return m.sub.webrtcDirect
}

// WebRTC is the tracer of the /webrtc transport (webrtc.PrivateConfig).
func (m *Metrics) WebRTC() webrtc.Tracer {
	if m == nil {
		return nil
	}
	return m.sub.webrtc
}

// UDPMux is the tracer of the UDP sockets the QUIC-based transports share.
func (m *Metrics) UDPMux() udpmux.Tracer {
	if m == nil {
		return nil
	}
	return m.sub.udpmux
}

// RelayService is the relay service's tracer.
func (m *Metrics) RelayService() relay.Tracer {
	if m == nil {
		return nil
	}
	return m.sub.relayService
}

// RelayClient is the tracer of the relay reservations keeper.
func (m *Metrics) RelayClient() relayed.Tracer {
	if m == nil {
		return nil
	}
	return m.sub.relayClient
}

// HolePunch is the hole punching service's tracer.
func (m *Metrics) HolePunch() holepunch.Tracer {
	if m == nil {
		return nil
	}
	return m.sub.holePunch
}

// AutoNATv2 is the tracer of the AutoNAT v2 client and server.
func (m *Metrics) AutoNATv2() autonatv2.Tracer {
	if m == nil {
		return nil
	}
	return m.sub.autonatV2
}

// AutoNATv1 is the AutoNAT v1 server's tracer.
func (m *Metrics) AutoNATv1() autonatv1.Tracer {
	if m == nil {
		return nil
	}
	return m.sub.autonatV1
}

// Reachability is the reachability manager's tracer.
func (m *Metrics) Reachability() reachability.Tracer {
	if m == nil {
		return nil
	}
	return m.sub.reachability
}

// AdvertisedTracer is told the addresses the host advertises whenever they
// may have changed. It must not block.
type AdvertisedTracer interface {
	Advertised(addrs []ma.Multiaddr)
}

// Advertised is the tracer of the host's advertised addresses.
func (m *Metrics) Advertised() AdvertisedTracer {
	if m == nil {
		return nil
	}
	return m.sub.advertisedT
}

// Limits is the resource limits' tracer.
func (m *Metrics) Limits() limits.Tracer {
	if m == nil {
		return nil
	}
	return m.sub.limits
}

// ConnMgr is the connection manager's tracer.
func (m *Metrics) ConnMgr() connmgr.Tracer {
	if m == nil {
		return nil
	}
	return m.sub.connmgr
}

// EventBus is the event bus's tracer (event.NewTracedBus).
func (m *Metrics) EventBus() event.Tracer {
	if m == nil {
		return nil
	}
	return m.sub.events
}

// DaemonTracer is daemon.Tracer, declared here because package daemon
// imports the root package, which imports this one; daemon.Config.Tracer
// takes it as is.
type DaemonTracer interface {
	Request(typ string, err error)
}

// Daemon is the daemon's tracer.
func (m *Metrics) Daemon() DaemonTracer {
	if m == nil {
		return nil
	}
	return m.sub.daemon
}

// ---- tracers ----

type identifyTracer struct {
	// counts by [dir][kind][err != nil]
	c [2][2][2]prometheus.Counter
}

func newIdentifyTracer(v *prometheus.CounterVec) *identifyTracer {
	t := &identifyTracer{}
	for d, dir := range [2]string{"sent", "received"} {
		for k, kind := range [2]string{"identify", "push"} {
			for f, res := range [2]string{"success", "error"} {
				t.c[d][k][f] = v.WithLabelValues(dir, kind, res)
			}
		}
	}
	return t
}

func (t *identifyTracer) Message(dir identify.Direction, kind identify.Kind, err error) {
	f := 0
	if err != nil {
		f = 1
	}
	t.c[dir&1][kind&1][f].Inc()
}

var pingResults = [...]string{"success", "timeout", "canceled", "error"}

type pingTracer struct {
	rtt     prometheus.Histogram
	results []prometheus.Counter // by pingResults
}

func (t *pingTracer) Ping(rtt time.Duration, err error) {
	switch {
	case err == nil:
		t.rtt.Observe(rtt.Seconds())
		t.results[0].Inc()
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
		t.results[1].Inc()
	case errors.Is(err, context.Canceled):
		t.results[2].Inc()
	default:
		t.results[3].Inc()
	}
}

type perfTracer struct {
	in, out, ok, failed prometheus.Counter
}

func (t *perfTracer) Run(sent, received uint64, err error) {
	t.out.Add(float64(sent))
	t.in.Add(float64(received))
	if err == nil {
		t.ok.Inc()
	} else {
		t.failed.Inc()
	}
}

// handshakeTracer keeps a handshakes-in-flight gauge.
type handshakeTracer struct{ g prometheus.Gauge }

func (t handshakeTracer) Handshakes(delta int) { t.g.Add(float64(delta)) }

type webrtcTracer struct {
	handshakeTracer
	ice prometheus.Counter
}

func (t *webrtcTracer) ICEFailed() { t.ice.Inc() }

type udpmuxTracer struct {
	sockets              *prometheus.GaugeVec
	quicV1, webtransport prometheus.Gauge
}

func (t *udpmuxTracer) Socket(from, to string) {
	if from != "" {
		t.sockets.WithLabelValues(from).Dec()
	}
	if to != "" {
		t.sockets.WithLabelValues(to).Inc()
	}
}

func (t *udpmuxTracer) InboundHandshake(alpn string, delta int) {
	switch alpn {
	case udpmux.ALPNLibp2p:
		t.quicV1.Add(float64(delta))
	case udpmux.ALPNH3:
		t.webtransport.Add(float64(delta))
	}
}

// statusLabel names a circuit relay status, from a fixed set; StatusUnused
// (no answer) is "error".
func statusLabel(s circuit.Status) string {
	switch s {
	case circuit.StatusOK:
		return "ok"
	case circuit.StatusReservationRefused:
		return "reservation_refused"
	case circuit.StatusResourceLimitExceeded:
		return "resource_limit_exceeded"
	case circuit.StatusPermissionDenied:
		return "permission_denied"
	case circuit.StatusConnectionFailed:
		return "connection_failed"
	case circuit.StatusNoReservation:
		return "no_reservation"
	case circuit.StatusMalformedMessage:
		return "malformed_message"
	case circuit.StatusUnexpectedMessage:
		return "unexpected_message"
	case circuit.StatusUnused:
		return "error"
	}
	return "other"
}

type relayServiceTracer struct{ s *subsystemMetrics }

func (t *relayServiceTracer) Request(req relay.Request, status circuit.Status) {
	switch req {
	case relay.ReqReserve:
		t.s.relaySvcReservationReq.WithLabelValues(statusLabel(status)).Inc()
	case relay.ReqConnect:
		t.s.relaySvcCircuitReq.WithLabelValues(statusLabel(status)).Inc()
	}
}

func (t *relayServiceTracer) Reservations(n int) { t.s.relaySvcReservations.Set(float64(n)) }
func (t *relayServiceTracer) Circuits(n int)     { t.s.relaySvcCircuits.Set(float64(n)) }
func (t *relayServiceTracer) CircuitClosed(d time.Duration) {
	t.s.relaySvcCircuitDur.Observe(d.Seconds())
}
func (t *relayServiceTracer) BytesRelayed(n int) { t.s.relaySvcBytes.Add(float64(n)) }

type relayClientTracer struct{ s *subsystemMetrics }

func (t *relayClientTracer) ReservationRequest(status circuit.Status) {
	t.s.relayClientReservationReq.WithLabelValues(statusLabel(status)).Inc()
}
func (t *relayClientTracer) Reservations(n int) { t.s.relayClientReservations.Set(float64(n)) }

type holePunchTracer struct{ s *subsystemMetrics }

func (t *holePunchTracer) Attempt(side holepunch.Side, transport, reason string, took time.Duration) {
	outcome := holePunchOutcome(reason)
	res := "success"
	if reason != "" {
		res = "failure"
		transport = "none"
	}
	t.s.holePunchAttempts.WithLabelValues(sideLabel(side), transportLabel(transport), outcome).Inc()
	t.s.holePunchDuration.WithLabelValues(res).Observe(took.Seconds())
}

func sideLabel(s holepunch.Side) string {
	switch s {
	case holepunch.SideInitiator:
		return "initiator"
	case holepunch.SideResponder:
		return "responder"
	}
	return "other"
}

// transportLabel bounds a transport name to the ones tachyon speaks.
func transportLabel(t string) string {
	switch t {
	case "none", "tcp", "ws", "wss", "websocket", "quic-v1", "webtransport", "webrtc-direct", "webrtc", "p2p-circuit":
		return t
	}
	return "other"
}

// holePunchOutcome names a failure reason; "" is a success.
func holePunchOutcome(reason string) string {
	switch reason {
	case "":
		return "success"
	case holepunch.ReasonNoOwnAddrs:
		return "no_own_addrs"
	case holepunch.ReasonNoPeerAddrs:
		return "no_peer_addrs"
	case holepunch.ReasonProtocol:
		return "protocol_error"
	case holepunch.ReasonTimeout:
		return "timeout"
	case holepunch.ReasonDialError:
		return "dial_error"
	case holepunch.ReasonNotSupported:
		return "not_supported"
	case holepunch.ReasonNoStream:
		return "no_stream"
	case holepunch.ReasonAlreadyDirect:
		return "already_direct"
	}
	return "other"
}

type autonatV2Tracer struct{ v *prometheus.CounterVec }

func (t *autonatV2Tracer) ServerRequest(res string) { t.v.WithLabelValues("v2", "server", res).Inc() }
func (t *autonatV2Tracer) ClientCheck(res string)   { t.v.WithLabelValues("v2", "client", res).Inc() }

type autonatV1Tracer struct{ v *prometheus.CounterVec }

func (t *autonatV1Tracer) ServerRequest(res string) { t.v.WithLabelValues("v1", "server", res).Inc() }

// reachabilityTracer holds the address-count gauges resolved once: Addrs
// runs at every address update, which a busy node has per connection.
type reachabilityTracer struct {
	s                        *subsystemMetrics
	public, private, unknown prometheus.Gauge
}

func newReachabilityTracer(s *subsystemMetrics) *reachabilityTracer {
	return &reachabilityTracer{s: s,
		public:  s.reachAddrs.WithLabelValues("public"),
		private: s.reachAddrs.WithLabelValues("private"),
		unknown: s.reachAddrs.WithLabelValues("unknown"),
	}
}

func (t *reachabilityTracer) Changed(from, to reachability.Verdict) {
	t.s.reachChanges.WithLabelValues(from.String(), to.String()).Inc()
}

func (t *reachabilityTracer) Addrs(public, private, unknown int) {
	t.public.Set(float64(public))
	t.private.Set(float64(private))
	t.unknown.Set(float64(unknown))
}

// advertisedTransports are the labels of tachyon_advertised_addresses;
// every one is set at each update, to 0 when none is advertised.
var advertisedTransports = [...]string{"tcp", "ws", "wss", "quic-v1", "webtransport", "webrtc-direct", "webrtc", "p2p-circuit", "other"}

// advertisedTracer holds one gauge per transport label, resolved once.
type advertisedTracer struct {
	g [len(advertisedTransports)]prometheus.Gauge
}

func newAdvertisedTracer(v *prometheus.GaugeVec) *advertisedTracer {
	t := &advertisedTracer{}
	for i, l := range advertisedTransports {
		t.g[i] = v.WithLabelValues(l)
	}
	return t
}

func (t *advertisedTracer) Advertised(addrs []ma.Multiaddr) {
	var n [len(advertisedTransports)]int
	for _, a := range addrs {
		n[addrTransport(a)]++
	}
	for i, g := range t.g {
		g.Set(float64(n[i]))
	}
}

// addrTransport is the index in advertisedTransports of a's transport:
// the one over all others its protocols name (/webrtc over the
// /p2p-circuit it runs through, /webtransport over its QUIC).
func addrTransport(a ma.Multiaddr) int {
	var has [len(advertisedTransports)]bool
	tls := false
	for _, c := range a {
		switch c.Protocol().Code {
		case ma.P_TCP:
			has[0] = true
		case ma.P_WS:
			has[1] = true
		case ma.P_WSS:
			has[2] = true
		case ma.P_TLS:
			tls = true
		case ma.P_QUIC_V1:
			has[3] = true
		case ma.P_WEBTRANSPORT:
			has[4] = true
		case ma.P_WEBRTC_DIRECT:
			has[5] = true
		case ma.P_WEBRTC:
			has[6] = true
		case ma.P_CIRCUIT:
			has[7] = true
		}
	}
	if has[1] && tls {
		has[2] = true
	}
	for _, i := range [...]int{6, 7, 5, 4, 3, 2, 1, 0} {
		if has[i] {
			return i
		}
	}
	return len(advertisedTransports) - 1
}

type limitsTracer struct{ v *prometheus.CounterVec }

func (t *limitsTracer) Refused(scope, resource string) { t.v.WithLabelValues(scope, resource).Inc() }

type connmgrTracer struct{ c prometheus.Counter }

func (t *connmgrTracer) Trimmed(n int) { t.c.Add(float64(n)) }

// eventTracer counts drops by event type; types that are not tachyon's
// own events (a user's, emitted on the host's bus) count as "other".
type eventTracer struct {
	v     *prometheus.CounterVec
	known map[string]bool
}

func newEventTracer(v *prometheus.CounterVec) *eventTracer {
	t := &eventTracer{v: v, known: map[string]bool{}}
	for _, e := range []any{
		event.EvtPeerConnectedness{}, event.EvtConnOpened{}, event.EvtConnClosed{}, event.EvtPeerIdentified{},
		event.EvtPeerIdentificationFailed{}, event.EvtPeerProtocolsUpdated{}, event.EvtLocalAddrsUpdated{},
		event.EvtLocalProtocolsUpdated{}, event.EvtAdvertisedAddrsUpdated{}, event.EvtAddrReachability{}, event.EvtHolePunch{},
	} {
		t.known[reflect.TypeOf(e).Name()] = true
	}
	return t
}

func (t *eventTracer) Dropped(name string) {
	if !t.known[name] {
		name = "other"
	}
	t.v.WithLabelValues(name).Inc()
}

type daemonTracer struct{ v *prometheus.CounterVec }

func (t *daemonTracer) Request(typ string, err error) { t.v.WithLabelValues(typ, result(err)).Inc() }
