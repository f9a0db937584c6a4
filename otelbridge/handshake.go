package otelbridge

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/upgrader"
)

// The handshake span and its attributes.
const (
	SpanHandshake = "tachyon.handshake"

	AttrDirection     = attribute.Key("tachyon.direction")      // inbound|outbound
	AttrConnTransport = attribute.Key("tachyon.conn.transport") // the upgrader's: tcp, websocket, p2p-circuit
	AttrSecurity      = attribute.Key("tachyon.security")       // protocol ID, absent if none was chosen
	AttrMuxer         = attribute.Key("tachyon.muxer")          // protocol ID, absent if none was chosen
	AttrEarlyMuxer    = attribute.Key("tachyon.early_muxer")    // the muxer came inside the security handshake
	AttrResult        = attribute.Key("tachyon.handshake.result")
)

// HandshakeDone records one upgrade (security, then muxer, of a TCP,
// WebSocket or relayed connection) as a span from its start to its end.
// It implements upgrader.Tracer; QUIC, WebTransport and WebRTC-direct
// secure themselves, and their outbound handshakes are the attempts'
// spans.
func (t *Tracer) HandshakeDone(h upgrader.Handshake) {
	if t == nil {
		return
	}
	kind := trace.SpanKindClient
	if h.Dir == network.DirInbound {
		kind = trace.SpanKindServer
	}
	_, span := t.t.Start(context.Background(), SpanHandshake, trace.WithTimestamp(h.Start), trace.WithSpanKind(kind))
	end := h.Start.Add(h.Took)
	if !span.IsRecording() {
		span.End(trace.WithTimestamp(end))
		return
	}
	dir := "outbound"
	if h.Dir == network.DirInbound {
		dir = "inbound"
	}
	span.SetAttributes(
		AttrDirection.String(dir),
		AttrConnTransport.String(h.Transport),
		AttrEarlyMuxer.Bool(h.EarlyMuxer),
		AttrResult.String(h.Result()),
	)
	if h.Security != "" {
		span.SetAttributes(AttrSecurity.String(string(h.Security)))
	}
	if h.Muxer != "" {
		span.SetAttributes(AttrMuxer.String(string(h.Muxer)))
	}
	if h.Peer != "" {
		span.SetAttributes(AttrPeer.String(h.Peer.String()))
	}
	if h.RemoteAddr != nil {
		span.SetAttributes(AttrAddress.String(h.RemoteAddr.String()))
	}
	if h.Err != nil {
		span.RecordError(h.Err, trace.WithTimestamp(end))
		span.SetStatus(codes.Error, h.Err.Error())
	}
	span.End(trace.WithTimestamp(end))
}
