package dashboards

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tachyon-p2p/tachyon/internal/testproc"
)

// serveMetrics serves reg's /metrics on a loopback port until the test ends
// and returns the host:port to scrape.
func serveMetrics(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().String()
}

// promServer is a Prometheus child process and its HTTP API.
type promServer struct {
	base   string // http://127.0.0.1:port
	client *http.Client
}

// freePort returns a loopback port nobody listens on right now. Prometheus
// takes the port by flag, so there is a short window for someone else to
// take it; startPrometheus then fails with the child's log.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startPrometheus runs bin scraping targets every second, with its storage
// in a temporary directory, and waits until it is ready. The process is
// killed by its PID when the test ends.
func startPrometheus(ctx context.Context, t *testing.T, bin string, targets []string) *promServer {
	t.Helper()
	dir := t.TempDir()
	var quoted []string
	for _, a := range targets {
		quoted = append(quoted, fmt.Sprintf("%q", a))
	}
	conf := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: tachyon
    static_configs:
      - targets: [%s]
`, strings.Join(quoted, ", "))
	confPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := &promServer{base: "http://" + addr, client: &http.Client{Timeout: 10 * time.Second}}
	cmd := exec.Command(bin,
		"--config.file="+confPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	dieWithTest(cmd)
	proc, err := testproc.Start("prometheus", cmd)
	if err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		proc.Wait(context.Background())
		close(exited)
	}()
	t.Cleanup(func() {
		proc.Stop() // SIGKILL by its PID
		<-exited
		if t.Failed() {
			t.Logf("%s", proc.Output(40))
		}
	})
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/-/ready", nil)
		if resp, err := p.client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-exited:
			t.Fatalf("prometheus exited before it was ready:\n%s", proc.Output(40))
		case <-ctx.Done():
			t.Fatalf("prometheus not ready at %s: %v\n%s", addr, ctx.Err(), proc.Output(40))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// apiResponse is the envelope of every /api/v1 answer.
type apiResponse struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

// errQuery is a query Prometheus refused (bad syntax, bad arguments), as
// opposed to a transport failure.
var errQuery = errors.New("prometheus refused the query")

// get calls the API at path with the query parameters q and decodes data
// into out.
func (p *promServer) get(ctx context.Context, path string, q url.Values, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+path+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("prometheus %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("prometheus %s: reading the answer: %w", path, err)
	}
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("prometheus %s: status %s, answer %.200q: %w", path, resp.Status, body, err)
	}
	if r.Status != "success" {
		return fmt.Errorf("%w: %s: %s", errQuery, r.ErrorType, r.Error)
	}
	if err := json.Unmarshal(r.Data, out); err != nil {
		return fmt.Errorf("prometheus %s: decoding data: %w", path, err)
	}
	return nil
}

// queryResult is the data of /api/v1/query.
type queryResult struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

// sample is one series of an instant vector: its labels and [time, "value"].
type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// query evaluates expr at now and returns the series it gives (a scalar is
// one series without labels).
func (p *promServer) query(ctx context.Context, expr string) ([]sample, error) {
	var r queryResult
	if err := p.get(ctx, "/api/v1/query", url.Values{"query": {expr}}, &r); err != nil {
		return nil, err
	}
	switch r.ResultType {
	case "vector":
		var s []sample
		if err := json.Unmarshal(r.Result, &s); err != nil {
			return nil, fmt.Errorf("decoding the vector of %q: %w", expr, err)
		}
		return s, nil
	case "scalar":
		var v [2]any
		if err := json.Unmarshal(r.Result, &v); err != nil {
			return nil, fmt.Errorf("decoding the scalar of %q: %w", expr, err)
		}
		return []sample{{Value: v}}, nil
	default:
		return nil, fmt.Errorf("%q gave a %s, want a vector", expr, r.ResultType)
	}
}

// metricNames lists every metric name Prometheus holds.
func (p *promServer) metricNames(ctx context.Context) (map[string]bool, error) {
	var names []string
	if err := p.get(ctx, "/api/v1/label/__name__/values", nil, &names); err != nil {
		return nil, err
	}
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m, nil
}

// labelValues is Grafana's label_values(selector, label) through the series
// API.
func (p *promServer) labelValues(ctx context.Context, selector, label string) ([]string, error) {
	var series []map[string]string
	if err := p.get(ctx, "/api/v1/series", url.Values{"match[]": {selector}}, &series); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, s := range series {
		if v, ok := s[label]; ok && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out, nil
}

// target is one row of /api/v1/targets.
type scrapeTarget struct {
	ScrapeURL  string    `json:"scrapeUrl"`
	Health     string    `json:"health"`
	LastError  string    `json:"lastError"`
	LastScrape time.Time `json:"lastScrape"`
}

func (p *promServer) targets(ctx context.Context) ([]scrapeTarget, error) {
	var r struct {
		Active []scrapeTarget `json:"activeTargets"`
	}
	if err := p.get(ctx, "/api/v1/targets", url.Values{"state": {"active"}}, &r); err != nil {
		return nil, err
	}
	return r.Active, nil
}

// waitScrapes waits until every one of the n targets was scraped
// successfully at least k times after since.
func (p *promServer) waitScrapes(ctx context.Context, t *testing.T, n, k int, since time.Time) {
	t.Helper()
	seen := map[string]map[time.Time]bool{}
	for {
		ts, err := p.targets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		done := len(ts) == n
		for _, tg := range ts {
			if tg.Health == "up" && tg.LastScrape.After(since) {
				if seen[tg.ScrapeURL] == nil {
					seen[tg.ScrapeURL] = map[time.Time]bool{}
				}
				seen[tg.ScrapeURL][tg.LastScrape] = true
			}
			if len(seen[tg.ScrapeURL]) < k {
				done = false
			}
		}
		if done {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %d scrapes of %d targets since %s: %v; targets %+v", k, n, since.Format(time.RFC3339Nano), ctx.Err(), ts)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
