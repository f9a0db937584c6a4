package otelbridge

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tachyon-p2p/tachyon/dialrank"
	"github.com/tachyon-p2p/tachyon/internal/streamtest"
)

// attrs returns a span's attributes by key.
func attrs(kvs []attribute.KeyValue) map[attribute.Key]attribute.Value {
	m := make(map[attribute.Key]attribute.Value, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

func newRecorder(t *testing.T) (*Tracer, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	tr, err := NewTracer(tp)
	if err != nil {
		t.Fatal(err)
	}
	return tr, exp
}

func TestNewTracerNil(t *testing.T) {
	if _, err := NewTracer(nil); err == nil {
		t.Fatal("NewTracer(nil): no error")
	}
	var tr *Tracer
	tr.Dial(&dialrank.Trace{}) // a nil Tracer records nothing and does not panic
}

// TestDialSpans builds traces by hand, as the swarm fills them, and checks
// the spans: one per dial, one child per attempt with its own times,
// attributes and status, and events for what was not dialed.
func TestDialSpans(t *testing.T) {
	p := streamtest.PeerID(t, "remote")
	quic := ma.StringCast("/ip4/192.0.2.1/udp/4001/quic-v1")
	tcp := ma.StringCast("/ip4/192.0.2.1/tcp/4001")
	ws := ma.StringCast("/ip4/192.0.2.1/tcp/4002/ws")
	other := ma.StringCast("/ip4/10.9.9.9/tcp/4001")
	t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	refused := fmt.Errorf("dial tcp: %w", syscall.ECONNREFUSED)

	type attempt struct {
		transport, outcome string
		start, end         time.Time
		err                bool
	}
	cases := []struct {
		name     string
		build    func() *dialrank.Trace
		outcome  string
		err      bool
		attempts []attempt
		events   []string
	}{
		{
			name: "quic wins, tcp overtaken, ws not started, one skipped",
			build: func() *dialrank.Trace {
				tr := dialrank.NewTrace(p, dialrank.Ranking{
					Dials: []dialrank.Dial{
						{Addr: quic, Transport: dialrank.QUIC, Why: "quic first"},
						{Addr: tcp, Transport: dialrank.TCP, Delay: 5 * time.Millisecond, Why: "tcp after quic"},
						{Addr: ws, Transport: dialrank.WebSocket, Delay: 500 * time.Millisecond},
					},
					Skipped: []dialrank.Skip{{Addr: other, Reason: dialrank.NotOurNetwork, Detail: "10.0.0.0/8"}},
				}, t0)
				q := tr.Started(tr.Ranking.Dials[0], ms(0))
				tr.Started(tr.Ranking.Dials[1], ms(5))
				tr.Finished(q, ms(12), nil)
				tr.Done(ms(13), nil)
				return tr
			},
			outcome: "success",
			attempts: []attempt{
				{"quic", "success", ms(0), ms(12), false},
				{"tcp", "overtaken", ms(5), ms(13), false},
			},
			events: []string{"skipped", "not started"},
		},
		{
			name: "every address refused",
			build: func() *dialrank.Trace {
				tr := dialrank.NewTrace(p, dialrank.Ranking{Dials: []dialrank.Dial{
					{Addr: tcp, Transport: dialrank.TCP},
				}}, t0)
				i := tr.Started(tr.Ranking.Dials[0], ms(1))
				tr.Finished(i, ms(2), refused)
				tr.Done(ms(3), refused)
				return tr
			},
			outcome:  "error",
			err:      true,
			attempts: []attempt{{"tcp", "refused", ms(1), ms(2), true}},
		},
		{
			name: "caller gave up",
			build: func() *dialrank.Trace {
				tr := dialrank.NewTrace(p, dialrank.Ranking{Dials: []dialrank.Dial{
					{Addr: quic, Transport: dialrank.QUIC, Probe: true},
				}}, t0)
				tr.Started(tr.Ranking.Dials[0], ms(0))
				tr.Done(ms(40), fmt.Errorf("swarm: dialing: %w", context.Canceled))
				return tr
			},
			outcome:  "canceled",
			err:      true,
			attempts: []attempt{{"quic", "canceled", ms(0), ms(40), false}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tracer, exp := newRecorder(t)
			trace := tc.build()
			tracer.Dial(trace)
			spans := exp.GetSpans()
			if len(spans) != 1+len(tc.attempts) {
				t.Fatalf("%d spans, want %d: %v", len(spans), 1+len(tc.attempts), spans)
			}
			var dial tracetest.SpanStub
			var children []tracetest.SpanStub
			for _, s := range spans {
				switch s.Name {
				case SpanDial:
					dial = s
				case SpanAttempt:
					children = append(children, s)
				default:
					t.Fatalf("unexpected span %q", s.Name)
				}
			}
			if dial.Name == "" {
				t.Fatal("no dial span")
			}
			if dial.Parent.IsValid() {
				t.Errorf("dial span has a parent %v", dial.Parent)
			}
			if !dial.StartTime.Equal(trace.Begin) || !dial.EndTime.Equal(trace.End) {
				t.Errorf("dial span %v..%v, want %v..%v", dial.StartTime, dial.EndTime, trace.Begin, trace.End)
			}
			da := attrs(dial.Attributes)
			if got := da[AttrOutcome].AsString(); got != tc.outcome {
				t.Errorf("dial outcome %q, want %q", got, tc.outcome)
			}
			if got := da[AttrPeer].AsString(); got != p.String() {
				t.Errorf("dial peer %q, want %q", got, p)
			}
			if got := da[AttrAttempts].AsInt64(); got != int64(len(tc.attempts)) {
				t.Errorf("dial attempts attribute %d, want %d", got, len(tc.attempts))
			}
			if got := dial.Status.Code == codes.Error; got != tc.err {
				t.Errorf("dial status %v, want error %v", dial.Status, tc.err)
			}
			var events []string
			for _, e := range dial.Events {
				if e.Name != "exception" {
					events = append(events, e.Name)
				}
			}
			if fmt.Sprint(events) != fmt.Sprint(tc.events) {
				t.Errorf("dial events %v, want %v", events, tc.events)
			}
			for i, want := range tc.attempts {
				var s tracetest.SpanStub
				for _, c := range children {
					if attrs(c.Attributes)[AttrTransport].AsString() == want.transport {
						s = c
					}
				}
				if s.Name == "" {
					t.Errorf("attempt %d: no span with transport %q", i, want.transport)
					continue
				}
				if s.Parent.SpanID() != dial.SpanContext.SpanID() || s.SpanContext.TraceID() != dial.SpanContext.TraceID() {
					t.Errorf("attempt %s: parent %v, want the dial span %v", want.transport, s.Parent.SpanID(), dial.SpanContext.SpanID())
				}
				if !s.StartTime.Equal(want.start) || !s.EndTime.Equal(want.end) {
					t.Errorf("attempt %s: %v..%v, want %v..%v", want.transport, s.StartTime, s.EndTime, want.start, want.end)
				}
				sa := attrs(s.Attributes)
				if got := sa[AttrOutcome].AsString(); got != want.outcome {
					t.Errorf("attempt %s: outcome %q, want %q", want.transport, got, want.outcome)
				}
				if sa[AttrAddress].AsString() == "" {
					t.Errorf("attempt %s: no address attribute", want.transport)
				}
				if got := s.Status.Code == codes.Error; got != want.err {
					t.Errorf("attempt %s: status %v, want error %v", want.transport, s.Status, want.err)
				}
			}
		})
	}
}

// TestDialSampledOut checks that a dial the sampler drops costs no span.
func TestDialSampledOut(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.NeverSample()))
	defer tp.Shutdown(context.Background())
	tracer, err := NewTracer(tp)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tr := dialrank.NewTrace(streamtest.PeerID(t, "p"), dialrank.Ranking{Dials: []dialrank.Dial{
		{Addr: ma.StringCast("/ip4/192.0.2.1/tcp/1"), Transport: dialrank.TCP}}}, now)
	tr.Started(tr.Ranking.Dials[0], now)
	tr.Done(now.Add(time.Millisecond), nil)
	tracer.Dial(tr)
	if n := len(exp.GetSpans()); n != 0 {
		t.Fatalf("%d spans exported with NeverSample", n)
	}
}
