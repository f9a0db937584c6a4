package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Helpers in the manner of prometheus/testutil, whose diff dependency is
// not in go.sum.

// dtoMetric holds one written metric.
type dtoMetric struct{ dto.Metric }

// collect returns what c holds, written out.
func collect(t *testing.T, c prometheus.Collector) []*dto.Metric {
	t.Helper()
	ch := make(chan prometheus.Metric, 64)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	var out []*dto.Metric
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		out = append(out, &d)
	}
	return out
}

// value sums the counters and gauges c holds.
func value(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	var v float64
	for _, m := range collect(t, c) {
		v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return v
}

// series counts the series c holds.
func series(t *testing.T, c prometheus.Collector) int {
	t.Helper()
	return len(collect(t, c))
}
