package metrics

import "github.com/prometheus/client_golang/prometheus"

// subsystemMetrics covers protocols and subsystems.
type subsystemMetrics struct{}

func newSubsystemMetrics() *subsystemMetrics { return &subsystemMetrics{} }

func (s *subsystemMetrics) collectors() []prometheus.Collector { return nil }
