package tachyon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/swarm"
)

// scrape reads the sum of a metric's series whose labels include want
// ("k=v" each): counter and gauge values, histogram sample counts.
func scrape(t *testing.T, reg *prometheus.Registry, name string, want ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for _, w := range want {
				k, v, _ := strings.Cut(w, "=")
				if have[k] != v {
					continue series
				}
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

// waitScrape waits until the metric reads want.
func waitScrape(t *testing.T, reg *prometheus.Registry, want float64, name string, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := scrape(t, reg, name, labels...)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const (
	metricsProto   protocol.ID = "/tachyon-test/metrics/1.0.0"
	unservedProto  protocol.ID = "/tachyon-test/unserved/1.0.0" // the client does not serve it
	metricsStreams             = 3
	metricsBytes               = 100 << 10 // per stream, both ways
)

// TestMetricsScrape connects two hosts over each transport, opens streams,
// and checks what their registries say: connections per transport,
// streams per protocol, bytes, dials, handshakes, and everything back to 0
// once closed.
func TestMetricsScrape(t *testing.T) {
	for _, tc := range []struct {
		name, listen string
		sec          protocol.ID
		transport    string
		upgraded     bool // through package upgrader, which agrees on the muxer
	}{
		{"tcp-tls", "/ip4/127.0.0.1/tcp/0", TLS, "tcp", true},
		{"tcp-noise", "/ip4/127.0.0.1/tcp/0", Noise, "tcp", true},
		{"ws", "/ip4/127.0.0.1/tcp/0/ws", Noise, "websocket", true},
		{"quic", "/ip4/127.0.0.1/udp/0/quic-v1", TLS, "quic-v1", false},
		{"webtransport", "/ip4/127.0.0.1/udp/0/quic-v1/webtransport", Noise, "webtransport", false},
		{"webrtc-direct", "/ip4/127.0.0.1/udp/0/webrtc-direct", Noise, "webrtc-direct", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			sreg, creg := prometheus.NewRegistry(), prometheus.NewRegistry()
			server := testHost(t, ListenAddrStrings(tc.listen), Security(tc.sec), PrometheusRegisterer(sreg))
			client := testHost(t, Security(tc.sec), PrometheusRegisterer(creg))
			server.SetStreamHandler(metricsProto, echo)
			server.SetStreamHandler(unservedProto, echo)
			client.SetStreamHandler(metricsProto, echo)

			if err := client.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}); err != nil {
				var de *swarm.DialError
				if errors.As(err, &de) && de.Trace != nil {
					t.Log(de.Trace)
				}
				t.Fatalf("connecting to %v: %v", server.Addrs(), err)
			}
			if _, err := client.IdentifyWait(ctx, server.ID()); err != nil {
				t.Fatal(err) // the server answered: it has registered the connection
			}
			out := []string{"dir=outbound", "transport=" + tc.transport}
			in := []string{"dir=inbound", "transport=" + tc.transport}
			expect(t, false, []metricWant{
				{creg, "tachyon_connections_opened_total", out, 1},
				{creg, "tachyon_connections_opened_total", nil, 1},
				{creg, "tachyon_connections", out, 1},
				{sreg, "tachyon_connections_opened_total", in, 1},
				{sreg, "tachyon_connections", in, 1},
				{creg, "tachyon_dials_total", []string{"outcome=success"}, 1},
				{creg, "tachyon_dial_duration_seconds", []string{"outcome=success"}, 1},
				{creg, "tachyon_dial_attempts_total", []string{"transport=" + tc.transport, "ip_version=ip4", "outcome=success"}, 1},
				{creg, "tachyon_handshake_duration_seconds", append(out, "result=success"), 1},
			})
			// The server times its handshake too: the upgrader, or the
			// self-secured transport's Conn (swarm.HandshakeTimer).
			if got := scrape(t, sreg, "tachyon_handshake_duration_seconds", append(in, "result=success", "security="+string(tc.sec))...); got != 1 {
				t.Errorf("server handshakes = %v, want 1", got)
			}
			if tc.upgraded {
				if got := scrape(t, creg, "tachyon_connections_opened_total", "security="+string(tc.sec), "muxer=/yamux/1.0.0", "early_muxer=true"); got != 1 {
					t.Errorf("client connections with %s and yamux agreed early = %v, want 1", tc.sec, got)
				}
			}

			for range metricsStreams {
				if err := echoProto(ctx, client, server.ID(), metricsProto, metricsBytes); err != nil {
					t.Fatal(err)
				}
			}
			if err := echoProto(ctx, client, server.ID(), unservedProto, 1000); err != nil {
				t.Fatal(err)
			}
			if _, err := client.NewStream(network.WithEagerNegotiation(ctx), server.ID(), "/tachyon-test/nobody/1.0.0"); err == nil {
				t.Fatal("a protocol nobody serves was negotiated")
			}
			p := "protocol=" + string(metricsProto)
			expect(t, true, []metricWant{
				{creg, "tachyon_streams_opened_total", []string{"dir=outbound", p}, metricsStreams},
				{creg, "tachyon_streams_opened_total", []string{"dir=outbound", "protocol=other"}, 1},
				{creg, "tachyon_streams_opened_total", []string{"dir=outbound", "protocol=unnegotiated"}, 1},
				{creg, "tachyon_stream_negotiation_failures_total", []string{"dir=outbound"}, 1},
				{creg, "tachyon_streams_closed_total", []string{"dir=outbound", p}, metricsStreams},
				{creg, "tachyon_streams", []string{p}, 0},
				{sreg, "tachyon_streams_opened_total", []string{"dir=inbound", p}, metricsStreams},
				{sreg, "tachyon_streams_opened_total", []string{"dir=inbound", "protocol=" + string(unservedProto)}, 1},
			})
			waitScrape(t, sreg, metricsStreams, "tachyon_streams_closed_total", "dir=inbound", p)
			waitScrape(t, sreg, 1, "tachyon_streams_closed_total", "dir=inbound", "protocol=unnegotiated")
			for _, c := range []struct {
				reg *prometheus.Registry
				dir string
			}{{creg, "in"}, {creg, "out"}, {sreg, "in"}, {sreg, "out"}} {
				if got := scrape(t, c.reg, "tachyon_protocol_bytes_total", "dir="+c.dir, p); got < metricsStreams*metricsBytes {
					t.Errorf("bytes %s = %v, want at least %d", c.dir, got, metricsStreams*metricsBytes)
				}
			}

			if err := client.Close(); err != nil {
				t.Fatal(err)
			}
			expect(t, true, []metricWant{
				{creg, "tachyon_connections_closed_total", out, 1},
				{creg, "tachyon_connection_duration_seconds", out, 1},
				{creg, "tachyon_connections", nil, 0},
				{creg, "tachyon_streams", nil, 0},
				{sreg, "tachyon_connections_closed_total", in, 1},
				{sreg, "tachyon_connections", nil, 0},
				{sreg, "tachyon_streams", nil, 0},
			})
			// Whatever ended with the connections ended everywhere: every
			// stream opened was closed.
			for _, reg := range []*prometheus.Registry{creg, sreg} {
				opened, closed := scrape(t, reg, "tachyon_streams_opened_total"), scrape(t, reg, "tachyon_streams_closed_total")
				if opened != closed {
					t.Errorf("%v streams opened, %v closed", opened, closed)
				}
			}
		})
	}
}

// metricWant is a value a registry should show.
type metricWant struct {
	reg   *prometheus.Registry
	name  string
	label []string
	want  float64
}

// expect checks every w, waiting for it to show when wait is set.
func expect(t *testing.T, wait bool, ws []metricWant) {
	t.Helper()
	for _, w := range ws {
		if wait {
			waitScrape(t, w.reg, w.want, w.name, w.label...)
		} else if got := scrape(t, w.reg, w.name, w.label...); got != w.want {
			t.Errorf("%s%v = %v, want %v", w.name, w.label, got, w.want)
		}
	}
}

// echoProto sends n bytes to p's echo handler of proto and reads them
// back.
func echoProto(ctx context.Context, h *Host, p peer.ID, proto protocol.ID, n int) error {
	s, err := h.NewStream(ctx, p, proto)
	if err != nil {
		return err
	}
	defer s.Close()
	errc := sendAll(s, make([]byte, n))
	got, err := io.Copy(io.Discard, s)
	if werr := <-errc; werr != nil {
		return fmt.Errorf("writing: %w", werr)
	}
	if err != nil || got != int64(n) {
		return fmt.Errorf("echo of %s: %d bytes back of %d, %v", proto, got, n, err)
	}
	return nil
}

// TestMetricsFailedDial: a dial to a closed TCP port counts as refused.
func TestMetricsFailedDial(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reg := prometheus.NewRegistry()
	client := testHost(t, PrometheusRegisterer(reg))
	tmp := testHost(t, ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	addr := tmp.Addrs()[0]
	tmp.Close()
	k, _ := crypto.GenerateEd25519Key(nil)
	other, _ := peer.IDFromPrivateKey(k)
	if err := client.Connect(ctx, peer.AddrInfo{ID: other, Addrs: []ma.Multiaddr{addr}}); err == nil {
		t.Fatal("connected to a closed port")
	}
	expect(t, false, []metricWant{
		{reg, "tachyon_dial_attempts_total", []string{"transport=tcp", "ip_version=ip4", "outcome=refused"}, 1},
		{reg, "tachyon_dial_attempts_total", nil, 1},
		{reg, "tachyon_dial_attempt_duration_seconds", []string{"outcome=refused"}, 1},
		{reg, "tachyon_dials_total", []string{"outcome=error"}, 1},
		{reg, "tachyon_dial_attempts_per_dial", nil, 1},
		{reg, "tachyon_connections_opened_total", nil, 0},
	})
}

// TestPrometheusRegistererTwice: a second host on the same registry gets
// an error from New, and the first keeps its metrics.
func TestPrometheusRegistererTwice(t *testing.T) {
	leakcheck.Check(t)
	reg := prometheus.NewRegistry()
	first := testHost(t, PrometheusRegisterer(reg))
	h, err := New(PrometheusRegisterer(reg))
	if err == nil {
		h.Close()
		t.Fatal("a second host registered the same metrics")
	}
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Errorf("error %v does not say the collector was registered already", err)
	}
	// The first host's collectors stay: its black-hole gauges (set from
	// the start) are still gathered.
	if got := len(mustGather(t, reg)); got == 0 {
		t.Error("the first host's metrics are gone after the second New failed")
	}
	first.Close()
}

func mustGather(t *testing.T, reg *prometheus.Registry) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	return names
}
