package tachyon

import (
	"fmt"

	"go.opentelemetry.io/otel/trace"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/dialrank"
	"github.com/tachyon-p2p/tachyon/otelbridge"
	"github.com/tachyon-p2p/tachyon/swarm"
	"github.com/tachyon-p2p/tachyon/upgrader"
)

// OpenTelemetryTracing records the host's dials and handshakes as
// OpenTelemetry spans of tp: a span "tachyon.dial" per dial (DialPeer, and
// the direct dials of hole punching and relayed transports) with a child
// "tachyon.dial.attempt" per address tried (transport, address, outcome,
// error), built with their real times once the dial ended, and a span
// "tachyon.handshake" per upgrade of a TCP, WebSocket or relayed
// connection, inbound and outbound (security, muxer, early muxer, result),
// and per inbound QUIC, WebTransport or WebRTC-direct connection (timed by
// its transport; their outbound handshakes are the attempts' spans).
// docs/metrics.md lists the attributes.
//
// DialTrace options keep receiving the traces, before or after this one.
//
// For the metrics, see otelbridge.MetricProducer: it reads the registry
// given to PrometheusRegisterer.
func OpenTelemetryTracing(tp trace.TracerProvider) Option {
	return func(c *config) error {
		t, err := otelbridge.NewTracer(tp)
		if err != nil {
			return fmt.Errorf("tachyon: OpenTelemetryTracing: %w", err)
		}
		c.otel = t
		c.dialTrace = teeDialTrace(c.dialTrace, t.Dial)
		return nil
	}
}

// teeDialTrace calls a, then b, with each trace; either may be nil.
func teeDialTrace(a, b func(*dialrank.Trace)) func(*dialrank.Trace) {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	return func(tr *dialrank.Trace) {
		a(tr)
		b(tr)
	}
}

// upgraderTracer is what the host's upgraders report to: the metrics, the
// spans, both, or nothing (a nil interface, never a typed nil).
func (c *config) upgraderTracer() upgrader.Tracer {
	m := c.metrics.Upgrader()
	switch {
	case c.otel == nil:
		return m
	case m == nil:
		return c.otel
	}
	return teeUpgrader{m, c.otel}
}

// teeUpgrader hands each handshake to both tracers.
type teeUpgrader [2]upgrader.Tracer

func (t teeUpgrader) HandshakeDone(h upgrader.Handshake) {
	t[0].HandshakeDone(h)
	t[1].HandshakeDone(h)
}

// traceInboundHandshake gives the spans an inbound connection of a
// transport that secures itself: the upgrader never sees those, so only
// the transport's own timing tells when the handshake started.
func (h *Host) traceInboundHandshake(c *swarm.Conn) {
	if h.cfg.otel == nil || c.Direction() != network.DirInbound {
		return
	}
	st := c.ConnState()
	took := c.HandshakeDuration()
	if took <= 0 || !swarm.SelfSecured(st.Transport) {
		return
	}
	h.cfg.otel.HandshakeDone(upgrader.Handshake{
		Dir: network.DirInbound, Transport: st.Transport, Security: st.Security, Muxer: st.Muxer,
		EarlyMuxer: st.EarlyMuxer, Peer: c.RemotePeer(), RemoteAddr: c.RemoteMultiaddr(),
		Start: c.Opened().Add(-took), Took: took,
	})
}
