package otelbridge

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/tachyon-p2p/tachyon/dialrank"
)

// Span names and attribute keys. Spans, unlike metric labels, may carry
// peer IDs and addresses: a span is one event, not a time series.
const (
	SpanDial    = "tachyon.dial"
	SpanAttempt = "tachyon.dial.attempt"

	AttrPeer       = attribute.Key("tachyon.peer.id")
	AttrOutcome    = attribute.Key("tachyon.dial.outcome")    // dial: success|error|canceled; attempt: attemptOutcome
	AttrRanked     = attribute.Key("tachyon.dial.ranked")     // addresses ranked for dialing
	AttrSkipped    = attribute.Key("tachyon.dial.skipped")    // addresses ranked out
	AttrAttempts   = attribute.Key("tachyon.dial.attempts")   // attempts started
	AttrUnfiltered = attribute.Key("tachyon.dial.unfiltered") // black-hole filter off (hole punches, dial-backs, only black holes left)
	AttrTransport  = attribute.Key("tachyon.transport")       // dialrank's transport: quic, tcp/tls, tcp/noise, tcp, webtransport, ws, wss, webrtc-direct, relay, other
	AttrAddress    = attribute.Key("tachyon.address")
	AttrDelay      = attribute.Key("tachyon.dial.delay_seconds") // planned start, from the start of the dial
	AttrWhy        = attribute.Key("tachyon.dial.why")           // why the ranking put the address there
	AttrProbe      = attribute.Key("tachyon.dial.probe")         // a black-hole probe
	AttrReason     = attribute.Key("tachyon.dial.skip_reason")
)

// Tracer turns what tachyon records into spans of one TracerProvider. It
// is safe for concurrent use and never blocks beyond what the provider's
// span processors do (the SDK's batch processor does not).
type Tracer struct {
	t trace.Tracer
}

// NewTracer returns a Tracer that starts spans with tp's tracer for
// ScopeName.
func NewTracer(tp trace.TracerProvider) (*Tracer, error) {
	if tp == nil {
		return nil, errors.New("otelbridge: NewTracer: nil TracerProvider")
	}
	return &Tracer{t: tp.Tracer(ScopeName)}, nil
}

// Dial records a finished dial as a span (SpanDial, from its start to its
// end) with a child span per attempt (SpanAttempt, with the attempt's own
// times), built after the fact from the trace's timestamps. Addresses
// ranked out, or ranked but never started, are events of the dial span.
// Its signature is that of tachyon.DialTrace's hook; the swarm calls it on
// the dialing goroutine once the dial ended.
func (t *Tracer) Dial(tr *dialrank.Trace) {
	if t == nil || tr == nil {
		return
	}
	end := tr.End
	if end.IsZero() { // not ended: the hook is called after Done, but be safe
		end = time.Now()
	}
	ctx, span := t.t.Start(context.Background(), SpanDial,
		trace.WithTimestamp(tr.Begin), trace.WithSpanKind(trace.SpanKindClient))
	if !span.IsRecording() { // sampled out: skip building attributes
		span.End(trace.WithTimestamp(end))
		return
	}
	win := tr.Winner()
	outcome := dialOutcome(win != nil, tr.Err)
	span.SetAttributes(
		AttrPeer.String(tr.Peer.String()),
		AttrOutcome.String(outcome),
		AttrRanked.Int(len(tr.Ranking.Dials)),
		AttrSkipped.Int(len(tr.Ranking.Skipped)),
		AttrAttempts.Int(len(tr.Attempts)),
		AttrUnfiltered.Bool(tr.Ranking.Unfiltered),
	)
	if win != nil {
		span.SetAttributes(AttrTransport.String(win.Dial.Transport.String()), AttrAddress.String(win.Dial.Addr.String()))
	}
	for _, s := range tr.Ranking.Skipped {
		span.AddEvent("skipped", trace.WithTimestamp(tr.Begin), trace.WithAttributes(
			AttrAddress.String(s.Addr.String()), AttrReason.String(s.Reason.String()), AttrWhy.String(s.Detail)))
	}
	started := make(map[string]bool, len(tr.Attempts))
	for i := range tr.Attempts {
		a := &tr.Attempts[i]
		started[string(a.Dial.Addr.Bytes())] = true
		t.attempt(ctx, a, end)
	}
	for _, d := range tr.Ranking.Dials {
		if !started[string(d.Addr.Bytes())] {
			span.AddEvent("not started", trace.WithTimestamp(end), trace.WithAttributes(
				AttrAddress.String(d.Addr.String()), AttrTransport.String(d.Transport.String()),
				AttrDelay.Float64(d.Delay.Seconds())))
		}
	}
	if win == nil {
		// The swarm leaves Err nil when every address simply failed: the
		// attempts' spans carry the reasons.
		msg := "no address connected"
		if tr.Err != nil {
			span.RecordError(tr.Err, trace.WithTimestamp(end))
			msg = tr.Err.Error()
		}
		span.SetStatus(codes.Error, msg)
	}
	span.End(trace.WithTimestamp(end))
}

// attempt records a as a child of the dial span in ctx.
func (t *Tracer) attempt(ctx context.Context, a *dialrank.Attempt, dialEnd time.Time) {
	end := a.End
	if end.IsZero() {
		end = dialEnd
	}
	attrs := []attribute.KeyValue{
		AttrTransport.String(a.Dial.Transport.String()),
		AttrAddress.String(a.Dial.Addr.String()),
		AttrOutcome.String(attemptOutcome(a.Outcome)),
		AttrDelay.Float64(a.Dial.Delay.Seconds()),
		AttrWhy.String(a.Dial.Why),
	}
	if a.Dial.Probe {
		attrs = append(attrs, AttrProbe.Bool(true))
	}
	_, span := t.t.Start(ctx, SpanAttempt, trace.WithTimestamp(a.Start),
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	if attemptFailed(a.Outcome) {
		msg := a.Outcome.String()
		if a.Err != nil {
			span.RecordError(a.Err, trace.WithTimestamp(end))
			msg = a.Err.Error()
		}
		span.SetStatus(codes.Error, msg)
	}
	span.End(trace.WithTimestamp(end))
}

// dialOutcome names a whole dial's result as tachyon_dials_total does.
func dialOutcome(connected bool, err error) string {
	switch {
	case connected:
		return "success"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "error"
}

// attemptOutcome names an attempt's result: the outcomes of
// tachyon_dial_attempts_total where they apply (success, refused, timeout,
// peer_id_mismatch, canceled, error), plus what only a trace knows:
// unreachable, overtaken (another address won first), pending.
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
	case dialrank.Cancelled:
		return "canceled"
	case dialrank.Unreachable:
		return "unreachable"
	case dialrank.Overtaken:
		return "overtaken"
	case dialrank.Pending, dialrank.NotStarted:
		return "pending"
	}
	return "error"
}

// attemptFailed reports whether the address itself failed: an error
// status. Overtaken and cancelled attempts were stopped by the dialer.
func attemptFailed(o dialrank.Outcome) bool {
	switch o {
	case dialrank.Refused, dialrank.Timeout, dialrank.PeerMismatch, dialrank.Unreachable, dialrank.Failed:
		return true
	}
	return false
}
