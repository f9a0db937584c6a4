// Package statuspage loads the status page of `tachyon node --metrics` in
// Debian's headless Chromium and checks that what it shows is what the
// nodes say: three nodes connected over QUIC, WebSocket and TCP, pinging
// each other (the --bootstrap keep-alive), one of them failing to dial a
// closed port and serving a perf run. It keeps a screenshot of the page: in $TACHYON_ARTIFACTS,
// or the test's temporary directory, and with TACHYON_UPDATE_SCREENSHOT=1
// also in docs/status-page.png.
//
//	go test ./test/statuspage -v
package statuspage

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/internal/streamtest"
	"github.com/tachyon-p2p/tachyon/internal/testproc"
)

const (
	testLimit   = 4 * time.Minute // the whole test, the build included
	browseLimit = 60 * time.Second
	// pageBudget is the virtual time Chromium gives the page's script
	// before dumping the DOM: a few of its one-second refreshes.
	pageBudget = 4000
)

// chromium finds Debian's chromium or skips the test, naming what is
// missing.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium is not installed: no `chromium` in PATH (apt-get install chromium; scripts/setup.sh does)")
	return ""
}

// browse runs headless Chromium on url with extra flags (--dump-dom or
// --screenshot=...) and returns its stdout. Chromium and the processes it
// forks are killed, as a group, if it outlives ctx.
func browse(ctx context.Context, t *testing.T, bin, url string, extra ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, browseLimit)
	defer cancel()
	args := []string{
		"--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
		"--user-data-dir=" + t.TempDir(),
		"--virtual-time-budget=" + strconv.Itoa(pageBudget),
	}
	args = append(append(args, extra...), url)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", extra, err, tail(stderr.String(), 2000))
	}
	return stdout.Bytes()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// node is a started `tachyon node`.
type node struct {
	name   string
	proc   *testproc.Proc
	id     string
	addrs  []string // as printed, with /p2p/<id>
	status string   // the status page's URL
}

func startNode(ctx context.Context, t *testing.T, bin, name string, args ...string) *node {
	t.Helper()
	args = append([]string{"node", "--metrics", "127.0.0.1:0", "--no-autonat", "--log-level", "warn"}, args...)
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p, err := testproc.Start(name, cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	n := &node{name: name, proc: p}
	// The addresses come first, then the status page's URL.
	i, line, err := p.WaitLine(ctx, 0, "status page: http://")
	if err != nil {
		t.Fatal(err)
	}
	n.status = strings.TrimPrefix(line, "status page: ")
	for _, l := range p.Lines()[:i] {
		if strings.Contains(l, "/p2p/") {
			n.addrs = append(n.addrs, l)
		}
	}
	if len(n.addrs) == 0 {
		t.Fatalf("%s printed no address; %s", name, p.Output(20))
	}
	n.id = n.addrs[0][strings.LastIndex(n.addrs[0], "/p2p/")+len("/p2p/"):]
	return n
}

// addr returns the node's first printed address that matches re (the
// plain forms: /tcp/P/tls and /tcp/P/noise name the same socket).
func (n *node) addr(t *testing.T, re string) string {
	t.Helper()
	r := regexp.MustCompile(re)
	for _, a := range n.addrs {
		if r.MatchString(a) {
			return a
		}
	}
	t.Fatalf("%s has no address matching %s: %v", n.name, re, n.addrs)
	return ""
}

// apiStatus is what /api/status answers.
type apiStatus struct {
	tachyon.Status
	Bandwidth struct {
		Metric    string `json:"metric"`
		Available bool   `json:"available"`
		Samples   []struct {
			In  float64 `json:"inBps"`
			Out float64 `json:"outBps"`
		} `json:"samples"`
	} `json:"bandwidth"`
}

func (n *node) apiStatus(ctx context.Context, t *testing.T) apiStatus {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", n.status+"api/status", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", n.name, err)
	}
	defer resp.Body.Close()
	var st apiStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("%s /api/status: %v", n.name, err)
	}
	return st
}

// peer finds p in st.
func peerIn(st apiStatus, p string) *tachyon.PeerStatus {
	for i := range st.Peers {
		if st.Peers[i].ID == p {
			return &st.Peers[i]
		}
	}
	return nil
}

// closedPort returns a TCP port on 127.0.0.1 that nothing listens on.
func closedPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func TestStatusPage(t *testing.T) {
	browser := chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), testLimit)
	defer cancel()
	bins, err := testproc.Build(ctx, t.TempDir(), testproc.Target{Pkg: "./cmd/tachyon", Name: "tachyon"})
	if err != nil {
		t.Fatal(err)
	}
	bin := bins[0]

	// c <-tcp- b, and a dials b over QUIC, c over WebSocket and a peer at
	// a closed port. --bootstrap keeps the connections and pings them.
	c := startNode(ctx, t, bin, "c", "--listen", "/ip4/127.0.0.1/tcp/0", "--listen", "/ip4/127.0.0.1/tcp/0/ws")
	b := startNode(ctx, t, bin, "b", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--echo",
		"--bootstrap", c.addr(t, `/tcp/\d+/p2p/`))
	nobody := streamtest.PeerID(t, "nobody")
	bad := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", closedPort(t), nobody)
	a := startNode(ctx, t, bin, "a", "--listen", "/ip4/127.0.0.1/tcp/0", "--perf",
		"--bootstrap", b.addr(t, `/quic-v1/p2p/`), "--bootstrap", c.addr(t, `/tcp/\d+/ws/p2p/`), "--bootstrap", bad)

	// Some traffic for the bandwidth chart: a perf run against a, from a
	// process that is gone before the page loads.
	perf := exec.CommandContext(ctx, bin, "perf", "--server-address", a.addr(t, `/tcp/\d+/p2p/`),
		"--upload-bytes", "4000000", "--download-bytes", "4000000")
	if out, err := perf.CombinedOutput(); err != nil {
		t.Fatalf("perf against a: %v\n%s", err, out)
	}

	// Wait until a has identified both, pinged them, and failed its dial.
	want := map[string]string{b.id: "quic-v1", c.id: "websocket"}
	var st apiStatus
	ready := func() bool {
		st = a.apiStatus(ctx, t)
		if len(st.Peers) != len(want) || len(st.DialFailures) == 0 {
			return false
		}
		for id := range want {
			p := peerIn(st, id)
			if p == nil || p.Agent == "" || p.RTT == 0 {
				return false
			}
		}
		bs := b.apiStatus(ctx, t)
		return peerIn(bs, c.id) != nil && peerIn(bs, c.id).RTT > 0
	}
	for !ready() {
		select {
		case <-ctx.Done():
			t.Fatalf("a never had both peers identified and pinged and a dial failure: %+v", st)
		case <-time.After(200 * time.Millisecond):
		}
	}

	dom := string(browse(ctx, t, browser, a.status, "--dump-dom"))
	after := a.apiStatus(ctx, t)
	if t.Failed() {
		return
	}
	checkPage(t, dom, a, st, after, want)

	// Each side's own view: b and c see a inbound over the same transport.
	for _, n := range []*node{b, c} {
		ns := n.apiStatus(ctx, t)
		p := peerIn(ns, a.id)
		if p == nil || len(p.Conns) != 1 || p.Conns[0].Transport != want[n.id] || p.Conns[0].Direction != "inbound" {
			t.Errorf("%s's view of a: %+v, want one inbound %s connection", n.name, p, want[n.id])
		}
		if ns.ID != n.id {
			t.Errorf("%s's /api/status is of %s", n.name, ns.ID)
		}
	}
	bs := b.apiStatus(ctx, t)
	if p := peerIn(bs, c.id); p == nil || p.Conns[0].Transport != "tcp" || p.Conns[0].Direction != "outbound" {
		t.Errorf("b's view of c: %+v, want an outbound tcp connection", p)
	}

	screenshot(ctx, t, browser, a.status)
}

// rowAttrs returns the attributes of every <tr> in the tbody with id.
func rowAttrs(t *testing.T, dom, id string) []map[string]string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<tbody id="` + id + `">(.*?)</tbody>`).FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("no tbody %s in the DOM", id)
	}
	var rows []map[string]string
	for _, tr := range regexp.MustCompile(`<tr([^>]*)>`).FindAllStringSubmatch(m[1], -1) {
		attrs := map[string]string{}
		for _, kv := range regexp.MustCompile(`([\w-]+)="([^"]*)"`).FindAllStringSubmatch(tr[1], -1) {
			attrs[kv[1]] = html.UnescapeString(kv[2])
		}
		rows = append(rows, attrs)
	}
	return rows
}

// textOf returns the unescaped text of the element with id (no nested
// elements).
func textOf(t *testing.T, dom, id string) string {
	t.Helper()
	m := regexp.MustCompile(`id="` + id + `"[^>]*>([^<]*)<`).FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("no element %s in the DOM", id)
	}
	return html.UnescapeString(m[1])
}

// listAddrs returns the data-addr of every item of the list with id.
func listAddrs(dom, id string) []string {
	m := regexp.MustCompile(`(?s)<ul id="` + id + `"[^>]*>(.*?)</ul>`).FindStringSubmatch(dom)
	if m == nil {
		return nil
	}
	var out []string
	for _, li := range regexp.MustCompile(`data-addr="([^"]*)"`).FindAllStringSubmatch(m[1], -1) {
		out = append(out, html.UnescapeString(li[1]))
	}
	return out
}

// checkPage compares the DOM of a's page with a's /api/status before and
// after it was loaded (connections are stable: the same both times) and
// with what the nodes printed.
func checkPage(t *testing.T, dom string, a *node, before, after apiStatus, want map[string]string) {
	t.Helper()
	if m := regexp.MustCompile(`<body data-refreshes="(\d+)"`).FindStringSubmatch(dom); m == nil {
		t.Fatalf("the page's script never rendered: %s", tail(dom, 3000))
	}
	if s := regexp.MustCompile(`id="state" class="state" data-state="(\w+)"`).FindStringSubmatch(dom); s == nil || s[1] != "live" {
		t.Errorf("page state %v, want live", s)
	}
	if got := textOf(t, dom, "peer-id"); got != a.id {
		t.Errorf("page shows peer ID %q, a is %s", got, a.id)
	}

	// Connections: one row each, as the API and the nodes have them.
	type conn struct{ peer, transport, direction, remote string }
	var shown []conn
	for _, r := range rowAttrs(t, dom, "peer-rows") {
		shown = append(shown, conn{r["data-peer"], r["data-transport"], r["data-direction"], r["data-remote"]})
	}
	var api []conn
	for _, p := range after.Peers {
		for _, c := range p.Conns {
			api = append(api, conn{p.ID, c.Transport, c.Direction, c.RemoteAddr})
		}
	}
	var wantConns []conn
	for id, tr := range want {
		wantConns = append(wantConns, conn{peer: id, transport: tr, direction: "outbound"})
	}
	cmpConn := func(x, y conn) int { return strings.Compare(x.peer+x.transport, y.peer+y.transport) }
	slices.SortFunc(shown, cmpConn)
	slices.SortFunc(api, cmpConn)
	slices.SortFunc(wantConns, cmpConn)
	if !slices.Equal(shown, api) {
		t.Errorf("page shows connections\n%v\n/api/status has\n%v", shown, api)
	}
	if len(shown) != len(wantConns) {
		t.Fatalf("page shows %d connections, want %d: %v", len(shown), len(wantConns), shown)
	}
	for i, w := range wantConns {
		if s := shown[i]; s.peer != w.peer || s.transport != w.transport || s.direction != w.direction || s.remote == "" {
			t.Errorf("page row %+v, want %+v", s, w)
		}
	}
	for _, p := range before.Peers {
		if !strings.Contains(dom, html.EscapeString(p.Agent)) {
			t.Errorf("page lacks %s's agent %q", p.ID, p.Agent)
		}
	}

	// Addresses: the API's, which include what the node printed.
	listen := listAddrs(dom, "listen-addrs")
	if !slices.Equal(listen, after.ListenAddrs) {
		t.Errorf("page lists listen addresses %v, /api/status %v", listen, after.ListenAddrs)
	}
	for _, printed := range a.addrs {
		bare := printed[:strings.LastIndex(printed, "/p2p/")]
		if !slices.Contains(listen, bare) {
			t.Errorf("a printed %s, the page does not list %s", printed, bare)
		}
	}
	if adv := listAddrs(dom, "advertised-addrs"); !slices.Equal(adv, after.AdvertisedAddrs) && !(len(adv) == 0 && len(after.AdvertisedAddrs) == 0) {
		t.Errorf("page lists advertised addresses %v, /api/status %v", adv, after.AdvertisedAddrs)
	}

	// Dial failures: the closed port, refused.
	fails := rowAttrs(t, dom, "failure-rows")
	nobody := before.DialFailures[0].Peer
	if len(fails) == 0 || fails[0]["data-peer"] != nobody {
		t.Errorf("page's dial failures %v, want %s first", fails, nobody)
	}
	if !strings.Contains(dom, "refused") {
		t.Error("page does not say the dial was refused")
	}

	// Bandwidth: a chart once the node counts bytes, else a note.
	samples := regexp.MustCompile(`id="bw-chart" class="chart" data-samples="(\d+)"`).FindStringSubmatch(dom)
	switch {
	case samples == nil:
		t.Error("no bandwidth chart element")
	case after.Bandwidth.Available:
		if samples[1] == "0" || !strings.Contains(dom, `<polyline class="in"`) {
			t.Errorf("the node counts bytes but the chart shows %s samples", samples[1])
		}
	default:
		t.Logf("the node does not export %s yet: the chart is a note", after.Bandwidth.Metric)
		if !strings.Contains(dom, "does not export "+after.Bandwidth.Metric) {
			t.Error("no note that the byte counter is missing")
		}
	}
}

// screenshot saves the page as a PNG artifact, and in docs/ if asked.
func screenshot(ctx context.Context, t *testing.T, browser, url string) {
	t.Helper()
	dir := os.Getenv("TACHYON_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "status-page.png")
	browse(ctx, t, browser, url, "--screenshot="+file, "--window-size=1280,900", "--hide-scrollbars")
	png, err := os.ReadFile(file)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 10_000 {
		t.Fatalf("screenshot %s: %d bytes, %v", file, len(png), err)
	}
	t.Logf("screenshot: %s", file)
	if os.Getenv("TACHYON_UPDATE_SCREENSHOT") == "1" {
		docs := filepath.Join(testproc.Root(), "docs", "status-page.png")
		if err := os.WriteFile(docs, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("updated %s", docs)
	}
}

// TestStatusPageEscapes serves the page's files with a status whose
// network-supplied fields carry markup, and checks that the browser shows
// it as text: no element comes of it.
func TestStatusPageEscapes(t *testing.T) {
	browser := chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*browseLimit)
	defer cancel()
	const evil = `<img id="pwned" src=x onerror="document.title='pwned'">`
	st := map[string]any{
		"time": time.Now(), "id": "12D3KooWSelf", "agent": "tachyon/0.1.0",
		"listenAddrs": []string{"/ip4/127.0.0.1/tcp/1"}, "advertisedAddrs": []string{},
		"peers": []map[string]any{{
			"id": "12D3KooW\"><b id=\"pwned2\">x</b>", "agent": evil, "rttNs": 1e6,
			"conns": []map[string]any{{"id": 1, "transport": "tcp" + evil, "security": "/noise", "muxer": "/yamux/1.0.0",
				"direction": "inbound", "localAddr": "/ip4/127.0.0.1/tcp/1", "remoteAddr": evil, "ageNs": 5e9, "streams": 1,
				"streamsByProtocol": map[string]int{evil: 1}}},
		}},
		"dialFailures": []map[string]any{{"time": time.Now(), "peer": evil, "error": evil, "addrs": []string{evil}}},
		"bandwidth":    map[string]any{"metric": "tachyon_protocol_bytes_total", "available": true, "intervalSeconds": 1, "samples": []any{}},
	}
	page := http.FileServer(http.Dir(filepath.Join(testproc.Root(), "cmd", "tachyon", "statuspage")))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/status" {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(st)
			return
		}
		page.ServeHTTP(w, r)
	}))
	defer srv.Close()
	dom := string(browse(ctx, t, browser, srv.URL+"/", "--dump-dom"))
	if !strings.Contains(dom, `data-refreshes="`) {
		t.Fatalf("the page's script never rendered: %s", tail(dom, 3000))
	}
	if strings.Contains(dom, `<img id=`) || strings.Contains(dom, `<b id=`) || strings.Contains(dom, "<title>pwned") {
		t.Errorf("markup from the status became elements:\n%s", dom)
	}
	if n := strings.Count(dom, html.EscapeString(`<img id=`)); n < 5 {
		t.Errorf("the markup is shown as text %d times, want at least 5 (agent, transport, address, protocol, failure)", n)
	}
}
