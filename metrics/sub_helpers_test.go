package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// subSeries names one time series: a metric name and its labels as name,
// value pairs.
type subSeries struct {
	name   string
	labels []string
}

func ser(name string, labels ...string) subSeries { return subSeries{name, labels} }

// sample returns the value of s in reg: a counter's or gauge's value, a
// histogram's sample count; ok is false when reg has no such series.
func sample(t testing.TB, reg *prometheus.Registry, s subSeries) (v float64, ok bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != s.name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel())*2 != len(s.labels) {
				continue
			}
			for i, lp := range m.GetLabel() {
				// Gather sorts labels by name; so must the caller.
				if lp.GetName() != s.labels[2*i] || lp.GetValue() != s.labels[2*i+1] {
					continue metrics
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}
