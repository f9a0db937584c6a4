package otelbridge

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func TestMetricProducerNil(t *testing.T) {
	if _, err := MetricProducer(nil); err == nil {
		t.Fatal("MetricProducer(nil): no error")
	}
}

// TestMetricProducer registers one collector of each kind tachyon uses and
// reads them back through an OpenTelemetry ManualReader.
func TestMetricProducer(t *testing.T) {
	reg := prometheus.NewRegistry()
	counter := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tachyon_test_opened_total", Help: "h"}, []string{"dir"})
	gauge := prometheus.NewGauge(prometheus.GaugeOpts{Name: "tachyon_test_open", Help: "h"})
	hist := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tachyon_test_duration_seconds", Help: "h", Buckets: []float64{0.01, 0.1, 1}})
	reg.MustRegister(counter, gauge, hist)
	counter.WithLabelValues("outbound").Add(3)
	counter.WithLabelValues("inbound").Inc()
	gauge.Set(7)
	hist.Observe(0.05)
	hist.Observe(0.5)

	prod, err := MetricProducer(reg)
	if err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader(sdkmetric.WithProducer(prod))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := make(map[string]metricdata.Metrics)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			got[m.Name] = m
		}
	}

	c, ok := got["tachyon_test_opened_total"].Data.(metricdata.Sum[float64])
	if !ok || !c.IsMonotonic {
		t.Fatalf("counter: %T %+v, want a monotonic float sum", got["tachyon_test_opened_total"].Data, c)
	}
	byDir := make(map[string]float64)
	for _, dp := range c.DataPoints {
		v, _ := dp.Attributes.Value("dir")
		byDir[v.AsString()] = dp.Value
	}
	if byDir["outbound"] != 3 || byDir["inbound"] != 1 {
		t.Errorf("counter by dir %v, want outbound 3, inbound 1", byDir)
	}
	g, ok := got["tachyon_test_open"].Data.(metricdata.Gauge[float64])
	if !ok || len(g.DataPoints) != 1 || g.DataPoints[0].Value != 7 {
		t.Errorf("gauge: %+v, want one point of 7", got["tachyon_test_open"].Data)
	}
	h, ok := got["tachyon_test_duration_seconds"].Data.(metricdata.Histogram[float64])
	if !ok || len(h.DataPoints) != 1 {
		t.Fatalf("histogram: %+v, want one point", got["tachyon_test_duration_seconds"].Data)
	}
	if dp := h.DataPoints[0]; dp.Count != 2 || dp.Sum != 0.55 {
		t.Errorf("histogram count %d sum %v, want 2 and 0.55", dp.Count, dp.Sum)
	}
}
