package metrics

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/dialrank"
	"github.com/tachyon-p2p/tachyon/swarm"
	"github.com/tachyon-p2p/tachyon/upgrader"
)

// Swarm returns the tracer of the host's swarm (swarm.Config.Tracer); nil
// when m is nil.
func (m *Metrics) Swarm() swarm.Tracer {
	if m == nil {
		return nil
	}
	return m.conn
}

// Upgrader returns the tracer of the host's upgraders
// (upgrader.Upgrader.Tracer); nil when m is nil.
func (m *Metrics) Upgrader() upgrader.Tracer {
	if m == nil {
		return nil
	}
	return m.conn
}

// Streams returns the host's stream counter; nil when m is nil.
func (m *Metrics) Streams() swarm.StreamTracer {
	if m == nil {
		return nil
	}
	return m.conn
}

// Label values used by more than one metric.
const (
	labelNone         = "none"         // an empty security or muxer, a non-IP address
	ProtoUnnegotiated = "unnegotiated" // a stream that never agreed on a protocol
	ProtoOther        = "other"        // a protocol this host neither serves nor speaks itself
)

var (
	connLabels      = []string{"dir", "transport", "security", "muxer", "early_muxer", "ip_version"}
	handshakeLabels = []string{"dir", "transport", "security", "muxer", "early_muxer", "result"}
	attemptLabels   = []string{"transport", "ip_version", "outcome"}
	streamLabels    = []string{"dir", "protocol"}

	// From 1 ms to about 33 s: a loopback handshake to a dial timeout.
	latencyBuckets = prometheus.ExponentialBuckets(0.001, 2, 16)
	// From 1 s to about 6 days.
	lifetimeBuckets = prometheus.ExponentialBuckets(1, 4, 11)
)

// connMetrics covers connections, dials, handshakes, streams and bytes. It
// implements swarm.Tracer, upgrader.Tracer and swarm.StreamTracer.
type connMetrics struct {
	connsOpened, connsClosed *prometheus.CounterVec
	connDuration             *prometheus.HistogramVec
	conns                    *prometheus.GaugeVec
	handshake                *prometheus.HistogramVec
	attempts                 *prometheus.CounterVec
	attemptDuration          *prometheus.HistogramVec
	dials                    *prometheus.CounterVec
	dialDuration             *prometheus.HistogramVec
	attemptsPerDial          prometheus.Histogram
	skipped                  *prometheus.CounterVec
	blackHole                *prometheus.GaugeVec
	streamsOpened            *prometheus.CounterVec
	streamsClosed            *prometheus.CounterVec
	streams                  *prometheus.GaugeVec
	negFailures              *prometheus.CounterVec
	bytes                    *prometheus.CounterVec

	mu     sync.RWMutex
	meters map[streamKey]*protoMeter

	// The children each event needs, resolved once per label set.
	connSeries    *memo[connKey, *connSeries]
	hsSeries      *memo[hsKey, prometheus.Observer]
	attemptSeries *memo[attemptKey, *attemptSeries]
	dialSeries    *memo[string, *dialSeries]
	skipSeries    *memo[dialrank.Reason, prometheus.Counter]
}

// connKey is what a connection's labels come from.
type connKey struct {
	dir             network.Direction
	transport       string
	security, muxer protocol.ID
	early           bool
	ipVersion       int
}

func connKeyOf(ci swarm.ConnInfo) connKey {
	st := ci.State
	return connKey{ci.Dir, st.Transport, st.Security, st.Muxer, st.EarlyMuxer, ci.IPVersion}
}

// connSeries are one connection label set's children.
type connSeries struct {
	opened, closed prometheus.Counter
	duration       prometheus.Observer
	open           prometheus.Gauge
}

// hsKey is what a handshake's labels come from.
type hsKey struct {
	dir             string
	transport       string
	security, muxer string
	early           bool
	result          string
}

type attemptKey struct {
	transport dialrank.Transport
	ipVersion int
	outcome   dialrank.Outcome
}

type attemptSeries struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

type dialSeries struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

var (
	_ swarm.Tracer       = (*connMetrics)(nil)
	_ upgrader.Tracer    = (*connMetrics)(nil)
	_ swarm.StreamTracer = (*connMetrics)(nil)
)

func newConnMetrics() *connMetrics {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	}
	histogram := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	}
	c := &connMetrics{
		connsOpened:     counter("tachyon_connections_opened_total", "Connections that joined the swarm.", connLabels...),
		connsClosed:     counter("tachyon_connections_closed_total", "Connections that left the swarm.", connLabels...),
		connDuration:    histogram("tachyon_connection_duration_seconds", "How long connections stayed open.", lifetimeBuckets, connLabels...),
		conns:           gauge("tachyon_connections", "Connections open now.", "dir", "transport"),
		handshake:       histogram("tachyon_handshake_duration_seconds", "Security and muxer handshakes, by how they ended.", latencyBuckets, handshakeLabels...),
		attempts:        counter("tachyon_dial_attempts_total", "Addresses dialed, by outcome.", attemptLabels...),
		attemptDuration: histogram("tachyon_dial_attempt_duration_seconds", "How long the dial of one address took.", latencyBuckets, attemptLabels...),
		dials:           counter("tachyon_dials_total", "Dials of a peer (all its addresses), by outcome.", "outcome"),
		dialDuration:    histogram("tachyon_dial_duration_seconds", "How long dials of a peer took.", latencyBuckets, "outcome"),
		attemptsPerDial: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tachyon_dial_attempts_per_dial", Help: "Addresses tried per dial of a peer.",
			Buckets: []float64{0, 1, 2, 3, 4, 6, 8, 12, 16},
		}),
		skipped:       counter("tachyon_dial_skipped_total", "Addresses the dial ranking left out, by why.", "reason"),
		blackHole:     gauge("tachyon_black_hole_state", "Black-hole verdict per address class: 0 open, 2 blocked.", "class"),
		streamsOpened: counter("tachyon_streams_opened_total", "Streams whose protocol was negotiated (or that failed to).", streamLabels...),
		streamsClosed: counter("tachyon_streams_closed_total", "Streams that ended.", streamLabels...),
		streams:       gauge("tachyon_streams", "Streams open now.", streamLabels...),
		meters:        make(map[streamKey]*protoMeter),
		negFailures:   counter("tachyon_stream_negotiation_failures_total", "Streams reset because no protocol was agreed.", "dir"),
		bytes:         counter("tachyon_protocol_bytes_total", "Bytes read (in) and written (out) on streams, by protocol.", "dir", "protocol"),
	}
	for cl := dialrank.UDP4; cl <= dialrank.TCP6; cl++ {
		c.blackHole.WithLabelValues(cl.String()).Set(0)
	}
	c.connSeries = newMemo(func(k connKey) *connSeries {
		lv := []string{dirLabel(k.dir), k.transport, protoLabel(k.security), protoLabel(k.muxer), boolLabel(k.early), ipLabel(k.ipVersion)}
		return &connSeries{
			opened:   c.connsOpened.WithLabelValues(lv...),
			closed:   c.connsClosed.WithLabelValues(lv...),
			duration: c.connDuration.WithLabelValues(lv...),
			open:     c.conns.WithLabelValues(lv[0], k.transport),
		}
	})
	c.hsSeries = newMemo(func(k hsKey) prometheus.Observer {
		return c.handshake.WithLabelValues(k.dir, k.transport, k.security, k.muxer, boolLabel(k.early), k.result)
	})
	c.attemptSeries = newMemo(func(k attemptKey) *attemptSeries {
		tpt, ip, out := dialTransport(k.transport), ipLabel(k.ipVersion), attemptOutcome(k.outcome)
		return &attemptSeries{count: c.attempts.WithLabelValues(tpt, ip, out), duration: c.attemptDuration.WithLabelValues(tpt, ip, out)}
	})
	c.dialSeries = newMemo(func(out string) *dialSeries {
		return &dialSeries{count: c.dials.WithLabelValues(out), duration: c.dialDuration.WithLabelValues(out)}
	})
	c.skipSeries = newMemo(func(r dialrank.Reason) prometheus.Counter {
		l, ok := skipLabels[r]
		if !ok {
			l = "other"
		}
		return c.skipped.WithLabelValues(l)
	})
	return c
}

func (c *connMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		c.connsOpened, c.connsClosed, c.connDuration, c.conns, c.handshake,
		c.attempts, c.attemptDuration, c.dials, c.dialDuration, c.attemptsPerDial,
		c.skipped, c.blackHole, c.streamsOpened, c.streamsClosed, c.streams,
		c.negFailures, c.bytes,
	}
}

// dirLabel is the label of a connection's or stream's direction.
func dirLabel(d network.Direction) string {
	switch d {
	case network.DirInbound:
		return "inbound"
	case network.DirOutbound:
		return "outbound"
	}
	return "unknown"
}

func ipLabel(v int) string {
	switch v {
	case 4:
		return "ip4"
	case 6:
		return "ip6"
	}
	return labelNone
}

func protoLabel(id protocol.ID) string {
	if id == "" {
		return labelNone
	}
	return string(id)
}

func boolLabel(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// ConnOpened implements swarm.Tracer.
func (c *connMetrics) ConnOpened(ci swarm.ConnInfo) {
	cs := c.connSeries.get(connKeyOf(ci))
	cs.opened.Inc()
	cs.open.Inc()
	// Inbound connections of transports without the upgrader: their
	// handshake time comes from the transport (outbound ones are timed by
	// their dial attempt).
	if ci.Dir == network.DirInbound && ci.Handshake > 0 && swarm.SelfSecured(ci.State.Transport) {
		st := ci.State
		c.hsSeries.get(hsKey{dirLabel(ci.Dir), st.Transport, protoLabel(st.Security), protoLabel(st.Muxer),
			st.EarlyMuxer, "success"}).Observe(ci.Handshake.Seconds())
	}
}

// ConnClosed implements swarm.Tracer.
func (c *connMetrics) ConnClosed(ci swarm.ConnInfo, open time.Duration) {
	cs := c.connSeries.get(connKeyOf(ci))
	cs.closed.Inc()
	cs.duration.Observe(open.Seconds())
	cs.open.Dec()
}

// dialTransport names a dial's transport as its connections' ConnState
// does, so that dial and connection metrics share label values.
func dialTransport(t dialrank.Transport) string {
	switch t {
	case dialrank.QUIC:
		return "quic-v1"
	case dialrank.TCP, dialrank.TCPTLS, dialrank.TCPNoise:
		return "tcp"
	case dialrank.WebSocket, dialrank.WebSocketSecure:
		return "websocket"
	case dialrank.WebTransport:
		return "webtransport"
	case dialrank.WebRTCDirect:
		return "webrtc-direct"
	case dialrank.Relay:
		return "p2p-circuit"
	}
	return "other"
}

// selfSecurity is the security protocol of the transports that secure
// themselves, for their handshake series.
func selfSecurity(t dialrank.Transport) string {
	switch t {
	case dialrank.QUIC:
		return "/tls/1.0.0"
	case dialrank.WebTransport, dialrank.WebRTCDirect:
		return "/noise"
	}
	return labelNone
}

// attemptOutcome is the outcome label of a dial attempt.
func attemptOutcome(o dialrank.Outcome) string {
	switch o {
	case dialrank.Connected:
		return "success"
	case dialrank.Refused:
		return "refused"
	case dialrank.Timeout:
		return "timeout"
	case dialrank.PeerMismatch:
		return "peer_id_mismatch"
	case dialrank.Unreachable:
		return "unreachable"
	case dialrank.Overtaken:
		return "overtaken"
	case dialrank.Cancelled:
		return "canceled"
	}
	return "error"
}

// DialAttemptEnded implements swarm.Tracer.
func (c *connMetrics) DialAttemptEnded(a swarm.DialAttempt) {
	as := c.attemptSeries.get(attemptKey{a.Transport, a.IPVersion, a.Outcome})
	as.count.Inc()
	as.duration.Observe(a.Took.Seconds())
	if !a.SelfSecured {
		return // the upgrader reports the handshake
	}
	// The attempt of a transport without the upgrader is its handshake;
	// an attempt that got no answer, or was given up, had none to time.
	var res string
	switch a.Outcome {
	case dialrank.Connected:
		res = "success"
	case dialrank.Timeout:
		res = "timeout"
	case dialrank.PeerMismatch:
		res = "peer_id_mismatch"
	case dialrank.Failed:
		res = "error"
	default:
		return
	}
	c.hsSeries.get(hsKey{"outbound", dialTransport(a.Transport), selfSecurity(a.Transport), labelNone, false, res}).Observe(a.Took.Seconds())
}

// dialOutcome is the outcome label of a whole dial.
func dialOutcome(err error) string {
	switch {
	case err == nil:
		return "success"
	case errors.Is(err, context.Canceled), errors.Is(err, swarm.ErrClosed):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "error"
}

// DialEnded implements swarm.Tracer.
func (c *connMetrics) DialEnded(d swarm.DialEnd) {
	ds := c.dialSeries.get(dialOutcome(d.Err))
	ds.count.Inc()
	ds.duration.Observe(d.Took.Seconds())
	c.attemptsPerDial.Observe(float64(d.Attempts))
}

// skipLabels are the reason labels of dialrank's reasons.
var skipLabels = map[dialrank.Reason]string{
	dialrank.BlackHoled:     "black_hole",
	dialrank.NotOurNetwork:  "not_our_network",
	dialrank.LoopbackAddr:   "loopback",
	dialrank.RelayNotNeeded: "relay_not_needed",
	dialrank.SameSocket:     "same_socket",
	dialrank.DuplicateAddr:  "duplicate",
	dialrank.NoTransport:    "no_transport",
	dialrank.NoIP:           "no_ip",
}

// AddrSkipped implements swarm.Tracer.
func (c *connMetrics) AddrSkipped(r dialrank.Reason) {
	c.skipSeries.get(r).Inc()
}

// BlackHoleChanged implements swarm.Tracer.
func (c *connMetrics) BlackHoleChanged(cl dialrank.Class, v dialrank.Verdict) {
	val := 0.0
	if v != dialrank.Open {
		val = 2
	}
	c.blackHole.WithLabelValues(cl.String()).Set(val)
}

// HandshakeDone implements upgrader.Tracer.
func (c *connMetrics) HandshakeDone(h upgrader.Handshake) {
	c.hsSeries.get(hsKey{dirLabel(h.Dir), h.Transport, protoLabel(h.Security), protoLabel(h.Muxer),
		h.EarlyMuxer, h.Result()}).Observe(h.Took.Seconds())
}

// streamKey names one protoMeter.
type streamKey struct {
	dir   network.Direction
	proto string
}

// protoMeter is the swarm.StreamMeter of every stream of one direction
// and protocol: the label lookups are done once, when the pair first
// shows up (the host bounds the protocols).
type protoMeter struct {
	opened  prometheus.Counter
	closed  prometheus.Counter
	open    prometheus.Gauge
	in, out prometheus.Counter
}

func (p *protoMeter) AddBytes(in, out uint64) {
	if in > 0 {
		p.in.Add(float64(in))
	}
	if out > 0 {
		p.out.Add(float64(out))
	}
}

func (p *protoMeter) StreamClosed() {
	p.closed.Inc()
	p.open.Dec()
}

// StreamOpened implements swarm.StreamTracer. It takes p as its label:
// the caller bounds the protocols (the host's wrapper maps those it
// neither serves nor speaks to ProtoOther); "" is ProtoUnnegotiated.
func (c *connMetrics) StreamOpened(dir network.Direction, p protocol.ID) swarm.StreamMeter {
	proto := string(p)
	if proto == "" {
		proto = ProtoUnnegotiated
	}
	k := streamKey{dir, proto}
	c.mu.RLock()
	m := c.meters[k]
	c.mu.RUnlock()
	if m == nil {
		m = c.newMeter(k)
	}
	m.opened.Inc()
	m.open.Inc()
	return m
}

// newMeter makes, or finds made meanwhile, the meter of k.
func (c *connMetrics) newMeter(k streamKey) *protoMeter {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.meters[k]; m != nil {
		return m
	}
	d := dirLabel(k.dir)
	m := &protoMeter{
		opened: c.streamsOpened.WithLabelValues(d, k.proto),
		closed: c.streamsClosed.WithLabelValues(d, k.proto),
		open:   c.streams.WithLabelValues(d, k.proto),
		in:     c.bytes.WithLabelValues("in", k.proto),
		out:    c.bytes.WithLabelValues("out", k.proto),
	}
	c.meters[k] = m
	return m
}

// NegotiationFailed implements swarm.StreamTracer.
func (c *connMetrics) NegotiationFailed(dir network.Direction) {
	c.negFailures.WithLabelValues(dirLabel(dir)).Inc()
}
