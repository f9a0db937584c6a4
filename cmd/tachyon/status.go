package main

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tachyon-p2p/tachyon"
)

// The status page: plain HTML, a script and a style sheet, served as they
// are (no build step, nothing from elsewhere).
//
//go:embed statuspage
var statusPage embed.FS

const (
	// bytesMetric is the counter the bandwidth chart is drawn from, summed
	// over protocols, per direction (in, out).
	bytesMetric = "tachyon_protocol_bytes_total"
	// bandwidthEvery is how often it is sampled, and bandwidthKeep how many
	// samples are kept: five minutes.
	bandwidthEvery = time.Second
	bandwidthKeep  = 300
)

// newMetricsRegistry is the registry of `tachyon node --metrics`: the host's
// collectors (through tachyon.PrometheusRegisterer) and the Go runtime's
// and the process's.
func newMetricsRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// metricsListenAddr fills in a missing host of --metrics: loopback, so
// that the node's peers and addresses are not shown to the network unless
// asked for.
func metricsListenAddr(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// A bare port.
		if _, perr := net.LookupPort("tcp", s); perr != nil {
			return "", usagef("--metrics %q: want HOST:PORT (or PORT, on 127.0.0.1): %w", s, err)
		}
		host, port = "", s
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// serveStatus serves /metrics (reg), /api/status and the status page on
// addr until ctx ends. It returns once the listener is bound, and a
// function that stops the server and the bandwidth sampler and waits for
// them.
func serveStatus(ctx context.Context, addr string, h *tachyon.Host, reg *prometheus.Registry, stdout, stderr io.Writer) (wait func(), err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics %s: %w", addr, err)
	}
	if ip := l.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		fmt.Fprintf(stderr, "warning: --metrics %s is not a loopback address: whoever reaches it sees this node's peers and addresses\n", addr)
	}
	// Port 0 picks one: say which.
	fmt.Fprintf(stdout, "metrics: http://%s/metrics\n", l.Addr())
	fmt.Fprintf(stdout, "status page: http://%s/\n", l.Addr())

	bw := newBandwidth(reg, bandwidthKeep)
	bw.sample(time.Now()) // the first reading, before anyone asks
	srv := &http.Server{
		Handler:           statusHandler(h, reg, bw),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		bw.run(sctx, bandwidthEvery)
	}()
	go func() {
		defer wg.Done()
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(stderr, "metrics server:", err)
		}
	}()
	stop := context.AfterFunc(sctx, func() { srv.Close() })
	return func() { cancel(); stop(); srv.Close(); wg.Wait() }, nil
}

// statusResponse is what GET /api/status answers.
type statusResponse struct {
	tachyon.Status
	Bandwidth bandwidthJSON `json:"bandwidth"`
}

type bandwidthJSON struct {
	Metric string `json:"metric"`
	// Available says whether the metric was seen: the node counts bytes.
	Available       bool       `json:"available"`
	IntervalSeconds float64    `json:"intervalSeconds"`
	Samples         []bwSample `json:"samples"` // oldest first
}

// statusHandler routes the status server's requests.
func statusHandler(h *tachyon.Host, reg *prometheus.Registry, bw *bandwidth) http.Handler {
	page, err := fs.Sub(statusPage, "statuspage")
	if err != nil {
		panic(err) // the embedded directory is part of the binary
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		samples, ok := bw.list()
		resp := statusResponse{
			Status:    h.Status(),
			Bandwidth: bandwidthJSON{Metric: bytesMetric, Available: ok, IntervalSeconds: bandwidthEvery.Seconds(), Samples: samples},
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(resp)
	})
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.Handle("GET /", http.FileServerFS(page))
	return pageHeaders(mux)
}

// pageHeaders keeps the page to its own script and style and to this
// server: what peers tell us (agent versions) is shown as text, and were a
// bug to let markup through, the browser would still run nothing of it.
func pageHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

// bwSample is the bandwidth of one interval, in bytes per second.
type bwSample struct {
	Time time.Time `json:"t"` // end of the interval
	In   float64   `json:"inBps"`
	Out  float64   `json:"outBps"`
}

// bandwidth samples the byte counters into a ring of rates.
type bandwidth struct {
	g prometheus.Gatherer

	mu       sync.Mutex
	ring     []bwSample
	next, n  int
	have     bool // the metric was seen
	last     time.Time
	lastIn   float64
	lastOut  float64
	lastSeen bool // last* hold a reading
}

func newBandwidth(g prometheus.Gatherer, keep int) *bandwidth {
	return &bandwidth{g: g, ring: make([]bwSample, keep)}
}

// run samples every interval until ctx ends.
func (b *bandwidth) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			b.sample(now)
		}
	}
}

// sample reads the counters and records the rate since the last reading.
func (b *bandwidth) sample(now time.Time) {
	// A counter vector shows up only once it has a series: until then, no
	// bytes were counted, which is a rate of zero.
	in, out, ok := protocolBytes(b.g)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.have = b.have || ok
	if b.lastSeen {
		if dt := now.Sub(b.last).Seconds(); dt > 0 {
			// A counter that went down was reset (a collector re-registered):
			// that interval's rate is unknown, not negative.
			b.ring[b.next] = bwSample{Time: now, In: max(in-b.lastIn, 0) / dt, Out: max(out-b.lastOut, 0) / dt}
			b.next = (b.next + 1) % len(b.ring)
			b.n = min(b.n+1, len(b.ring))
		}
	}
	b.last, b.lastIn, b.lastOut, b.lastSeen = now, in, out, true
}

// list returns the samples, oldest first, and whether the metric was seen.
func (b *bandwidth) list() ([]bwSample, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]bwSample, 0, b.n)
	for i := b.n; i > 0; i-- {
		out = append(out, b.ring[(b.next-i+len(b.ring))%len(b.ring)])
	}
	return out, b.have
}

// protocolBytes sums bytesMetric per direction; ok is false when the
// registry does not have it.
func protocolBytes(g prometheus.Gatherer) (in, out float64, ok bool) {
	mfs, err := g.Gather()
	if err != nil && len(mfs) == 0 {
		return 0, 0, false
	}
	for _, mf := range mfs {
		if mf.GetName() != bytesMetric {
			continue
		}
		ok = true
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue()
			for _, lp := range m.GetLabel() {
				if lp.GetName() != "dir" {
					continue
				}
				switch lp.GetValue() {
				case "in":
					in += v
				case "out":
					out += v
				}
			}
		}
	}
	return in, out, ok
}
