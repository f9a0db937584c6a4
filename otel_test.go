package tachyon

import (
	"context"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/dialrank"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/metrics"
	"github.com/tachyon-p2p/tachyon/otelbridge"
	"github.com/tachyon-p2p/tachyon/upgrader"
)

func TestOpenTelemetryTracingNil(t *testing.T) {
	if _, err := New(OpenTelemetryTracing(nil)); err == nil {
		t.Fatal("New(OpenTelemetryTracing(nil)): no error")
	}
}

// spanAttr returns the value of key among kvs.
func spanAttr(kvs []attribute.KeyValue, key attribute.Key) attribute.Value {
	for _, kv := range kvs {
		if kv.Key == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// closedTCPAddr returns a loopback TCP address where nothing listens.
func closedTCPAddr(t *testing.T) ma.Multiaddr {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return ma.StringCast("/ip4/127.0.0.1/tcp/" + strconv.Itoa(port))
}

// TestOpenTelemetryTracing dials between two hosts, once with success
// and once to a port where nothing listens, and checks the spans the
// dialer exported: a dial span per dial with one attempt span under it.
func TestOpenTelemetryTracing(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	var userTraces int // a DialTrace given before the option still sees every dial
	server := testHost(t, ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), NoAutoNAT())
	client := testHost(t, DialTrace(func(*dialrank.Trace) { userTraces++ }), OpenTelemetryTracing(tp), NoAutoNAT())

	if err := client.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}); err != nil {
		t.Fatal(err)
	}
	absent := testHost(t, NoAutoNAT()) // a peer ID nobody answers for
	if err := client.Connect(ctx, peer.AddrInfo{ID: absent.ID(), Addrs: []ma.Multiaddr{closedTCPAddr(t)}}); err == nil {
		t.Fatal("dial to a closed port succeeded")
	}

	cases := []struct {
		peer           peer.ID
		outcome        string
		attemptOutcome string
		err            bool
	}{
		{server.ID(), "success", "success", false},
		{absent.ID(), "error", "refused", true},
	}
	spans := exp.GetSpans()
	for _, tc := range cases {
		var dial *tracetest.SpanStub
		for i := range spans {
			s := &spans[i]
			if s.Name == otelbridge.SpanDial && spanAttr(s.Attributes, otelbridge.AttrPeer).AsString() == tc.peer.String() {
				dial = s
			}
		}
		if dial == nil {
			t.Fatalf("no %s span for %s among %d spans", otelbridge.SpanDial, tc.peer, len(spans))
		}
		if got := spanAttr(dial.Attributes, otelbridge.AttrOutcome).AsString(); got != tc.outcome {
			t.Errorf("dial to %s: outcome %q, want %q", tc.peer, got, tc.outcome)
		}
		if got := dial.Status.Code == codes.Error; got != tc.err {
			t.Errorf("dial to %s: status %v, want error %v", tc.peer, dial.Status, tc.err)
		}
		var attempts []tracetest.SpanStub
		for _, s := range spans {
			if s.Parent.SpanID() == dial.SpanContext.SpanID() {
				attempts = append(attempts, s)
			}
		}
		if len(attempts) != 1 {
			t.Fatalf("dial to %s: %d child spans, want 1", tc.peer, len(attempts))
		}
		a := attempts[0]
		if a.Name != otelbridge.SpanAttempt || a.SpanContext.TraceID() != dial.SpanContext.TraceID() {
			t.Errorf("dial to %s: child %q in trace %v, want %q in %v", tc.peer, a.Name, a.SpanContext.TraceID(), otelbridge.SpanAttempt, dial.SpanContext.TraceID())
		}
		if got := spanAttr(a.Attributes, otelbridge.AttrTransport).AsString(); !strings.HasPrefix(got, "tcp") {
			t.Errorf("dial to %s: attempt transport %q, want tcp, tcp/tls or tcp/noise", tc.peer, got)
		}
		if got := spanAttr(a.Attributes, otelbridge.AttrOutcome).AsString(); got != tc.attemptOutcome {
			t.Errorf("dial to %s: attempt outcome %q, want %q", tc.peer, got, tc.attemptOutcome)
		}
		if spanAttr(a.Attributes, otelbridge.AttrAddress).AsString() == "" {
			t.Errorf("dial to %s: attempt without address", tc.peer)
		}
		if a.StartTime.Before(dial.StartTime) || a.EndTime.After(dial.EndTime) {
			t.Errorf("dial to %s: attempt %v..%v outside the dial %v..%v", tc.peer, a.StartTime, a.EndTime, dial.StartTime, dial.EndTime)
		}
	}
	if userTraces != len(cases) {
		t.Errorf("the DialTrace hook saw %d dials, want %d", userTraces, len(cases))
	}
}

// TestOpenTelemetryMetrics reads a host's Prometheus registry through
// otelbridge.MetricProducer after a connection and checks that OpenTelemetry
// sees every metric family the host registered, with the same values.
func TestOpenTelemetryMetrics(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg := prometheus.NewRegistry()
	server := testHost(t, ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), NoAutoNAT())
	client := testHost(t, PrometheusRegisterer(reg), NoAutoNAT())
	if err := client.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}); err != nil {
		t.Fatal(err)
	}

	prod, err := otelbridge.MetricProducer(reg)
	if err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader(sdkmetric.WithProducer(prod))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())

	// Close the hosts first: identify runs on after Connect, and the two
	// readings must see the same values.
	client.Close()
	server.Close()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	otel := make(map[string]metricdata.Metrics)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			otel[m.Name] = m
		}
	}
	// These changed in the scenario: the comparison below is not of zeros.
	for _, name := range []string{"tachyon_connections_opened_total", "tachyon_dials_total", "tachyon_handshake_duration_seconds"} {
		if !slices.ContainsFunc(fams, func(f *dto.MetricFamily) bool { return f.GetName() == name }) {
			t.Errorf("%s: not gathered from the host's registry", name)
		}
	}
	for _, f := range fams {
		m, ok := otel[f.GetName()]
		if !ok {
			t.Errorf("%s: not readable through OpenTelemetry", f.GetName())
			continue
		}
		var prom, got float64 // sum of the samples (counts for histograms)
		for _, s := range f.GetMetric() {
			switch {
			case s.Counter != nil:
				prom += s.Counter.GetValue()
			case s.Gauge != nil:
				prom += s.Gauge.GetValue()
			case s.Histogram != nil:
				prom += float64(s.Histogram.GetSampleCount())
			}
		}
		switch d := m.Data.(type) {
		case metricdata.Sum[float64]:
			for _, dp := range d.DataPoints {
				got += dp.Value
			}
		case metricdata.Gauge[float64]:
			for _, dp := range d.DataPoints {
				got += dp.Value
			}
		case metricdata.Histogram[float64]:
			for _, dp := range d.DataPoints {
				got += float64(dp.Count)
			}
		default:
			t.Errorf("%s: OpenTelemetry data %T", f.GetName(), m.Data)
			continue
		}
		if got != prom {
			t.Errorf("%s: %v through OpenTelemetry, %v from Prometheus", f.GetName(), got, prom)
		}
	}
}

// TestUpgraderTracer checks what the host's upgraders report to for each
// combination of metrics and spans, and that with both a handshake reaches
// both.
func TestUpgraderTracer(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	reg := prometheus.NewRegistry()
	cases := []struct {
		name      string
		opts      []Option
		wantNil   bool
		wantSpan  bool
		wantCount bool
	}{
		{"neither", nil, true, false, false},
		{"metrics", []Option{PrometheusRegisterer(prometheus.NewRegistry())}, false, false, false},
		{"spans", []Option{OpenTelemetryTracing(tp)}, false, true, false},
		{"both", []Option{PrometheusRegisterer(reg), OpenTelemetryTracing(tp)}, false, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			exp.Reset()
			cfg, err := newConfig(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.promReg != nil {
				if cfg.metrics, err = metrics.New(cfg.promReg); err != nil {
					t.Fatal(err)
				}
			}
			tr := cfg.upgraderTracer()
			if (tr == nil) != tc.wantNil {
				t.Fatalf("upgraderTracer() = %v, want nil %v", tr, tc.wantNil)
			}
			if tr == nil {
				return
			}
			tr.HandshakeDone(upgrader.Handshake{Dir: network.DirInbound, Transport: "tcp", Security: Noise,
				Muxer: "/yamux/1.0.0", Start: time.Now(), Took: time.Millisecond})
			if got := len(exp.GetSpans()) == 1; got != tc.wantSpan {
				t.Errorf("one span exported: %v, want %v", got, tc.wantSpan)
			}
			if tc.wantCount {
				fams, err := reg.Gather()
				if err != nil {
					t.Fatal(err)
				}
				var n uint64
				for _, f := range fams {
					if f.GetName() == "tachyon_handshake_duration_seconds" {
						for _, m := range f.GetMetric() {
							n += m.GetHistogram().GetSampleCount()
						}
					}
				}
				if n != 1 {
					t.Errorf("tachyon_handshake_duration_seconds: %d observations, want 1", n)
				}
			}
		})
	}
}

// TestOpenTelemetryInboundSelfSecured: the listener of a QUIC, WebTransport
// or WebRTC-direct connection gets a server handshake span, timed by the
// transport, though no upgrader ran.
func TestOpenTelemetryInboundSelfSecured(t *testing.T) {
	leakcheck.Check(t)
	for _, tc := range []struct{ transport, listen string }{
		{"quic-v1", "/ip4/127.0.0.1/udp/0/quic-v1"},
		{"webtransport", "/ip4/127.0.0.1/udp/0/quic-v1/webtransport"},
		{"webrtc-direct", "/ip4/127.0.0.1/udp/0/webrtc-direct"},
	} {
		t.Run(tc.transport, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			exp := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
			defer tp.Shutdown(context.Background())
			server := testHost(t, ListenAddrStrings(tc.listen), OpenTelemetryTracing(tp), NoAutoNAT())
			client := testHost(t, NoAutoNAT())
			before := time.Now()
			if err := client.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}); err != nil {
				t.Fatal(err)
			}
			var hs []tracetest.SpanStub
			deadline := time.Now().Add(5 * time.Second) // the listener's side may trail the dialer's
			for len(hs) == 0 && time.Now().Before(deadline) {
				for _, s := range exp.GetSpans() {
					if s.Name == otelbridge.SpanHandshake {
						hs = append(hs, s)
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
			if len(hs) != 1 {
				t.Fatalf("%d handshake spans, want 1", len(hs))
			}
			s := hs[0]
			if s.SpanKind != trace.SpanKindServer || spanAttr(s.Attributes, otelbridge.AttrConnTransport).AsString() != tc.transport ||
				spanAttr(s.Attributes, otelbridge.AttrPeer).AsString() != client.ID().String() {
				t.Errorf("span kind %v, attributes %v; want a server span of %s with the client's peer ID", s.SpanKind, s.Attributes, tc.transport)
			}
			if s.StartTime.Before(before) || !s.EndTime.After(s.StartTime) {
				t.Errorf("span %v..%v, dial started %v", s.StartTime, s.EndTime, before)
			}
		})
	}
}
