// Package otelbridge shows a tachyon host to OpenTelemetry: its dials (and,
// once the upgrader reports them, its handshakes) as trace spans, and its
// Prometheus metrics through an OpenTelemetry metric producer.
//
// The metrics are not instrumented twice: tachyon keeps one set of
// Prometheus collectors (package metrics), and MetricProducer reads them
// with the OpenTelemetry contrib Prometheus bridge whenever an OpenTelemetry
// reader collects. docs/metrics.md ("OpenTelemetry") shows the wiring.
package otelbridge

import (
	"errors"

	promclient "github.com/prometheus/client_golang/prometheus"
	prombridge "go.opentelemetry.io/contrib/bridges/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// ScopeName is the instrumentation scope of tachyon's spans.
const ScopeName = "github.com/tachyon-p2p/tachyon/otelbridge"

// MetricProducer returns a producer that hands an OpenTelemetry reader
// everything g gathers, converted at each collection: give it the registry
// the host got through tachyon.PrometheusRegisterer, and the producer to
// the reader with sdkmetric.WithProducer. Counters become monotonic sums,
// gauges gauges, histograms explicit-bucket histograms; names and labels
// are kept. g is read whole: metrics of other code registered with it come
// along.
func MetricProducer(g promclient.Gatherer) (sdkmetric.Producer, error) {
	if g == nil {
		// The bridge would fall back to the process-wide default registry,
		// where a host's metrics are not unless the user put them there.
		return nil, errors.New("otelbridge: MetricProducer: nil gatherer")
	}
	return prombridge.NewMetricProducer(prombridge.WithGatherer(g)), nil
}
