package tachyon

import (
	"fmt"

	"go.opentelemetry.io/otel/trace"

	"github.com/tachyon-p2p/tachyon/dialrank"
	"github.com/tachyon-p2p/tachyon/otelbridge"
)

// OpenTelemetryTracing records the host's dials as OpenTelemetry spans of
// tp: a span "tachyon.dial" per dial (DialPeer, and the direct dials of
// hole punching and relayed transports) with a child "tachyon.dial.attempt"
// per address tried (transport, address, outcome, error), built with their
// real times once the dial ended. otelbridge lists the attributes.
//
// A DialTrace option given before this one keeps receiving the traces; one
// given after it replaces the spans.
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
