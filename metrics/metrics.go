// Package metrics implements the tracer interfaces of tachyon's packages
// with Prometheus collectors. A host built with tachyon.PrometheusRegisterer
// creates one Metrics and hands each package its tracer; without it the
// packages' tracers are nil and cost nothing.
//
// Names follow Prometheus conventions: a tachyon_ prefix, the unit in the
// name, _total on counters, and labels from small fixed sets (never peer IDs
// or addresses). docs/metrics.md lists every metric.
package metrics

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds the collectors of one host.
type Metrics struct {
	conn *connMetrics      // connections, dials, handshakes, streams, bytes (conn.go)
	sub  *subsystemMetrics // protocols and subsystems (subsystems.go)
}

// New creates the collectors and registers them with reg.
func New(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{conn: newConnMetrics(), sub: newSubsystemMetrics()}
	cs := append(m.conn.collectors(), m.sub.collectors()...)
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			// Leave reg as it was: a caller may retry with another one.
			for _, r := range cs[:i] {
				reg.Unregister(r)
			}
			return nil, fmt.Errorf("metrics: registering collector: %w", err)
		}
	}
	return m, nil
}
