package metrics

import "github.com/prometheus/client_golang/prometheus"

// connMetrics covers connections, dials, handshakes, streams and bytes.
type connMetrics struct{}

func newConnMetrics() *connMetrics { return &connMetrics{} }

func (c *connMetrics) collectors() []prometheus.Collector { return nil }
