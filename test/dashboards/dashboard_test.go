package dashboards

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dashboardDir holds the JSON dashboards, relative to this package.
const dashboardDir = "../../dashboards"

// dashboard is the part of a Grafana dashboard JSON model the tests read.
type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource *datasourceRef  `json:"datasource"`
	GridPos    json.RawMessage `json:"gridPos"`
	Targets    []target        `json:"targets"`
	Panels     []panel         `json:"panels"` // a collapsed row's panels
}

type target struct {
	RefID      string         `json:"refId"`
	Expr       string         `json:"expr"`
	Datasource *datasourceRef `json:"datasource"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
	AllValue   string          `json:"allValue"`
}

// panelTarget is one PromQL expression of one panel.
type panelTarget struct {
	file, panel, refID, expr string
}

func (p panelTarget) String() string {
	return fmt.Sprintf("%s: panel %q target %s", p.file, p.panel, p.refID)
}

// dsUID is the datasource every panel and target must use: the dashboard's
// datasource variable, so one import works with any Prometheus.
const dsUID = "${DS_PROMETHEUS}"

// wantFiles are the dashboards the README promises.
var wantFiles = []string{
	"autonat.json", "connections-and-dials.json", "holepunch.json", "relay.json",
	"resources.json", "streams-and-protocols.json", "transports.json",
}

// loadDashboards reads every dashboard and checks the structure Grafana
// needs: unique uids and panel ids, the datasource variable on every panel
// and target, the job and instance variables, and a query on every target.
func loadDashboards(t *testing.T) (map[string]dashboard, []panelTarget) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dashboardDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in %s: %v", dashboardDir, err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	for _, w := range wantFiles {
		if !slices.Contains(names, w) {
			t.Errorf("dashboard %s missing from %s", w, dashboardDir)
		}
	}
	out := map[string]dashboard{}
	var targets []panelTarget
	uids := map[string]string{}
	for _, f := range files {
		name := filepath.Base(f)
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if d.UID == "" || d.Title == "" {
			t.Errorf("%s: uid %q, title %q: both needed", name, d.UID, d.Title)
		}
		if other, ok := uids[d.UID]; ok {
			t.Errorf("%s and %s share the uid %q", name, other, d.UID)
		}
		uids[d.UID] = name
		vars := map[string]variable{}
		for _, v := range d.Templating.List {
			vars[v.Name] = v
		}
		if v, ok := vars["DS_PROMETHEUS"]; !ok || v.Type != "datasource" {
			t.Errorf("%s: no datasource variable DS_PROMETHEUS", name)
		}
		for _, n := range []string{"job", "instance"} {
			if v, ok := vars[n]; !ok || v.Type != "query" || v.Definition == "" {
				t.Errorf("%s: no query variable %q", name, n)
			}
		}
		ids := map[int]bool{}
		var walk func(ps []panel)
		walk = func(ps []panel) {
			for _, p := range ps {
				if ids[p.ID] {
					t.Errorf("%s: panel id %d used twice", name, p.ID)
				}
				ids[p.ID] = true
				if len(p.GridPos) == 0 {
					t.Errorf("%s: panel %q has no gridPos", name, p.Title)
				}
				walk(p.Panels)
				if p.Type == "row" {
					continue
				}
				if p.Datasource == nil || p.Datasource.UID != dsUID {
					t.Errorf("%s: panel %q: datasource %+v, want uid %s", name, p.Title, p.Datasource, dsUID)
				}
				if len(p.Targets) == 0 {
					t.Errorf("%s: panel %q has no targets", name, p.Title)
				}
				for _, tg := range p.Targets {
					if tg.Datasource == nil || tg.Datasource.UID != dsUID {
						t.Errorf("%s: panel %q target %s: datasource %+v, want uid %s", name, p.Title, tg.RefID, tg.Datasource, dsUID)
					}
					if strings.TrimSpace(tg.Expr) == "" {
						t.Errorf("%s: panel %q target %s has no expr", name, p.Title, tg.RefID)
						continue
					}
					targets = append(targets, panelTarget{name, p.Title, tg.RefID, tg.Expr})
				}
			}
		}
		walk(d.Panels)
		out[name] = d
	}
	return out, targets
}

// metricName finds the metric names of ours in an expression. Histogram
// series carry their suffix (_bucket, _sum, _count) in the name.
var metricName = regexp.MustCompile(`\btachyon_[a-zA-Z0-9_]+`)

// TestDashboardsWellFormed checks the dashboards without Prometheus: their
// structure, and that each metric they name is listed in docs/metrics.md.
func TestDashboardsWellFormed(t *testing.T) {
	_, targets := loadDashboards(t)
	doc, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, line := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(line, "|") {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 2 {
			continue
		}
		if n := metricName.FindString(cells[1]); n != "" {
			documented[n] = true
		}
	}
	used := map[string]bool{}
	for _, pt := range targets {
		for _, n := range metricName.FindAllString(pt.expr, -1) {
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")
			used[base] = true
			if !documented[base] && !documented[n] {
				t.Errorf("%s: %s is not in docs/metrics.md", pt, n)
			}
		}
	}
	var unused []string
	for n := range documented {
		if !used[n] {
			unused = append(unused, n)
		}
	}
	slices.Sort(unused)
	if len(unused) > 0 {
		t.Logf("metrics on no dashboard: %s", strings.Join(unused, ", "))
	}
}
