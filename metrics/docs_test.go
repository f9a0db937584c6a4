package metrics

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// documented returns the metric names in the first column of every table
// of docs/metrics.md.
func documented(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile("^`?(tachyon_[a-z0-9_]+)`?$")
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		cells := strings.Split(line, "|")
		if !strings.HasPrefix(strings.TrimSpace(line), "|") || len(cells) < 3 {
			continue
		}
		if m := name.FindStringSubmatch(strings.TrimSpace(cells[1])); m != nil {
			out = append(out, m[1])
		}
	}
	return out
}

// registered returns the names of the metrics New registers.
func registered(t *testing.T) []string {
	t.Helper()
	m, err := New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *prometheus.Desc, 16)
	go func() {
		for _, c := range append(m.conn.collectors(), m.sub.collectors()...) {
			c.Describe(ch)
		}
		close(ch)
	}()
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	var out []string
	for d := range ch {
		if mm := fq.FindStringSubmatch(d.String()); mm != nil {
			out = append(out, mm[1])
		}
	}
	return out
}

// TestDocsListEveryMetric: every metric New registers has a row in
// docs/metrics.md, and every row names a registered metric.
func TestDocsListEveryMetric(t *testing.T) {
	docs, reg := documented(t), registered(t)
	if len(reg) == 0 {
		t.Fatal("no metric registered")
	}
	for _, n := range reg {
		if !slices.Contains(docs, n) {
			t.Errorf("%s is registered but not in docs/metrics.md", n)
		}
	}
	for _, n := range docs {
		if !slices.Contains(reg, n) {
			t.Errorf("docs/metrics.md lists %s, which is not registered", n)
		}
	}
	slices.Sort(docs)
	if d := slices.Compact(slices.Clone(docs)); len(d) != len(docs) {
		t.Errorf("docs/metrics.md lists a metric twice: %v", docs)
	}
}
