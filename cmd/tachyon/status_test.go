package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

func TestMetricsListenAddr(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		bad      bool
	}{
		{in: "127.0.0.1:9464", want: "127.0.0.1:9464"},
		{in: ":9464", want: "127.0.0.1:9464"},
		{in: "9464", want: "127.0.0.1:9464"},
		{in: "0", want: "127.0.0.1:0"},
		{in: "[::1]:9464", want: "[::1]:9464"},
		{in: "0.0.0.0:9464", want: "0.0.0.0:9464"},
		{in: "localhost", bad: true},
		{in: "127.0.0.1:9464:1", bad: true},
	} {
		got, err := metricsListenAddr(tc.in)
		if tc.bad != (err != nil) || got != tc.want {
			t.Errorf("metricsListenAddr(%q) = %q, %v; want %q (error: %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

// bytesCounter registers the metric the bandwidth chart reads, as the
// host's metrics will.
func bytesCounter(t *testing.T, reg prometheus.Registerer) *prometheus.CounterVec {
	t.Helper()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: bytesMetric, Help: "bytes"}, []string{"dir", "protocol"})
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestBandwidth(t *testing.T) {
	t0 := time.Unix(1000, 0)
	type step struct {
		after  time.Duration
		in     map[string]float64 // added per protocol
		out    float64
		reset  bool // the counter starts over (re-registered)
		wantIn float64
		wantN  int
	}
	for _, tc := range []struct {
		name     string
		keep     int
		noMetric bool
		steps    []step
	}{
		{"absent metric", 3, true, []step{{after: 0}, {after: time.Second, wantN: 1}}},
		{"appears", 3, false, []step{
			{after: 0},
			{after: time.Second, wantN: 1},
			{after: 2 * time.Second, in: map[string]float64{"/a": 10}, wantIn: 10, wantN: 2},
		}},
		{"first reading makes no sample", 3, false, []step{{after: 0, in: map[string]float64{"/a": 100}}}},
		{"rate summed over protocols", 3, false, []step{
			{after: 0},
			{after: time.Second, in: map[string]float64{"/a": 600, "/b": 400}, out: 500, wantIn: 1000, wantN: 1},
			{after: 3 * time.Second, in: map[string]float64{"/a": 300}, wantIn: 150, wantN: 2},
		}},
		{"ring keeps the newest", 2, false, []step{
			{after: 0},
			{after: time.Second, in: map[string]float64{"/a": 1}, wantIn: 1, wantN: 1},
			{after: 2 * time.Second, in: map[string]float64{"/a": 2}, wantIn: 2, wantN: 2},
			{after: 3 * time.Second, in: map[string]float64{"/a": 3}, wantIn: 3, wantN: 2},
		}},
		{"reset is no negative rate", 3, false, []step{
			{after: 0, in: map[string]float64{"/a": 1000}},
			{after: time.Second, reset: true, in: map[string]float64{"/a": 10}, wantIn: 0, wantN: 1},
			{after: 2 * time.Second, in: map[string]float64{"/a": 20}, wantIn: 20, wantN: 2},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			var c *prometheus.CounterVec
			if !tc.noMetric {
				c = bytesCounter(t, reg)
			}
			bw := newBandwidth(reg, tc.keep)
			seen := false // a series exists: the metric shows
			for i, st := range tc.steps {
				if st.reset {
					reg.Unregister(c)
					c = bytesCounter(t, reg)
				}
				for p, v := range st.in {
					c.WithLabelValues("in", p).Add(v)
				}
				if st.out > 0 {
					c.WithLabelValues("out", "/a").Add(st.out)
				}
				bw.sample(t0.Add(st.after))
				got, ok := bw.list()
				seen = seen || len(st.in) > 0 || st.out > 0
				if ok != seen {
					t.Fatalf("step %d: available %v", i, ok)
				}
				if len(got) != st.wantN {
					t.Fatalf("step %d: %d samples, want %d: %+v", i, len(got), st.wantN, got)
				}
				if st.wantN == 0 {
					continue
				}
				last := got[len(got)-1]
				if last.In != st.wantIn || !last.Time.Equal(t0.Add(st.after)) {
					t.Errorf("step %d: newest sample %+v, want in %v/s at %v", i, last, st.wantIn, t0.Add(st.after))
				}
				if st.out > 0 && last.Out != st.out {
					t.Errorf("step %d: out %v/s, want %v", i, last.Out, st.out)
				}
				for j := 1; j < len(got); j++ {
					if !got[j-1].Time.Before(got[j].Time) {
						t.Errorf("step %d: samples not oldest first: %+v", i, got)
					}
				}
			}
		})
	}
}

// TestStatusServer serves a host's status and metrics and reads every
// route as the page and Prometheus do.
func TestStatusServer(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	reg := newMetricsRegistry()
	h, err := tachyon.New(tachyon.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), tachyon.PrometheusRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// A ping makes the host count bytes before the server starts.
	client, err := tachyon.New()
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := client.Connect(ctx, peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	if err := client.Ping(ctx, h.ID(), 1, 0, 5*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	var out, errOut syncBuffer
	sctx, stopServer := context.WithCancel(ctx)
	wait, err := serveStatus(sctx, "127.0.0.1:0", h, reg, &out, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	defer wait()
	m := regexp.MustCompile(`status page: (http://127\.0\.0\.1:\d+/)\n`).FindStringSubmatch(out.String())
	if m == nil || !strings.Contains(out.String(), "metrics: http://127.0.0.1:") || errOut.String() != "" {
		t.Fatalf("stdout %q stderr %q", out.String(), errOut.String())
	}
	base := m[1]
	get := func(path string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", base+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s %s", path, resp.Status, b)
		}
		return resp, string(b)
	}

	_, metrics := get("metrics")
	for _, want := range []string{"go_goroutines ", "process_cpu_seconds_total ", bytesMetric + `{dir="in",protocol="/ipfs/ping/1.0.0"} `} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	resp, body := get("api/status")
	var st struct {
		tachyon.Status
		Bandwidth struct {
			Metric    string     `json:"metric"`
			Available bool       `json:"available"`
			Samples   []bwSample `json:"samples"`
		} `json:"bandwidth"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/api/status: %v: %s", err, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("/api/status Content-Type %q", ct)
	}
	if st.ID != h.ID().String() || len(st.ListenAddrs) == 0 || st.Peers == nil || st.DialFailures == nil {
		t.Errorf("/api/status %s", body)
	}
	if st.Bandwidth.Metric != bytesMetric || !st.Bandwidth.Available || st.Bandwidth.Samples == nil {
		t.Errorf("/api/status bandwidth %+v", st.Bandwidth)
	}

	resp, page := get("")
	if !strings.Contains(page, `<script src="app.js"`) || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Errorf("/ page or its headers: %v\n%s", resp.Header, page)
	}
	for _, f := range []struct{ path, ctype string }{{"app.js", "text/javascript"}, {"style.css", "text/css"}} {
		resp, body := get(f.path)
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), f.ctype) || len(body) < 100 {
			t.Errorf("%s: Content-Type %q, %d bytes", f.path, resp.Header.Get("Content-Type"), len(body))
		}
	}
	// The page's script never turns data into markup.
	_, js := get("app.js")
	if regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write`).MatchString(js) {
		t.Error("app.js writes markup")
	}

	// The server stops with its context (the node's).
	stopServer()
	wait()
	if _, err := http.Get(base + "metrics"); err == nil {
		t.Error("the server still answers after its context ended")
	}
}

// TestNodeMetricsFlag runs `tachyon node --metrics` and reads /api/status.
func TestNodeMetricsFlag(t *testing.T) {
	leakcheck.Check(t)
	m, out := nodeLine(t, `status page: (http://127\.0\.0\.1:\d+/)\n`, "--listen", "/ip4/127.0.0.1/tcp/0", "--metrics", "0")
	first := strings.SplitN(out, "\n", 2)[0]
	if !strings.HasPrefix(first, "/ip4/127.0.0.1/tcp/") {
		t.Errorf("first line %q: the node's address must come first", first)
	}
	resp, err := http.Get(m[1] + "api/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st tachyon.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(first, "/p2p/"+st.ID) {
		t.Errorf("/api/status is of %s, the node is %s", st.ID, first)
	}
}

// nodeLine runs `tachyon node args...` until the test ends (it must then
// exit 0 within 10 s) and waits up to 10 s for its stdout to match re. It
// returns the match and the stdout so far.
func nodeLine(t *testing.T, re string, args ...string) (match []string, stdout string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, append([]string{"node"}, args...), &out, &errOut) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("node exit %d: %s", code, errOut.String())
			}
		case <-time.After(10 * time.Second):
			t.Error("node did not stop within 10 s")
		}
	})
	r := regexp.MustCompile(re)
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := out.String()
		if m := r.FindStringSubmatch(s); m != nil {
			return m, s
		}
		if time.Now().After(deadline) {
			t.Fatalf("node printed nothing matching %s; stdout %q stderr %q", re, s, errOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
