package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseKnown(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		bad  bool
	}{
		{"", 0, false},
		{"# only a comment\n\n", 0, false},
		{"go-v0.4[6-9].0 go-v0.3* webtransport draft 9 vs draft 2\n", 1, false},
		{"* * tcp/*/yamux reason\ntachyon js-3 ws/noise/yamux another\n", 2, false},
		{"go-v0.51.0 tachyon webtransport\n", 0, true}, // no reason
		{"[ tachyon tcp reason\n", 0, true},            // bad pattern
	} {
		ks, err := parseKnown(strings.NewReader(tc.in))
		if (err != nil) != tc.bad || len(ks) != tc.want {
			t.Errorf("%q: %d entries, %v", tc.in, len(ks), err)
		}
	}
}

func TestJudge(t *testing.T) {
	ks, err := parseKnown(strings.NewReader("go-v0.4[6-9].0 go-v0.3?.0 webtransport draft mismatch\n* js-* tcp/*/yamux made up\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		d, l, tr, sec, status string
		want                  string
	}{
		{"go-v0.48.0", "go-v0.36.0", "webtransport", "", "fail", "known"},
		{"go-v0.48.0", "go-v0.36.0", "webtransport", "", "pass", "unexpected-pass"},
		{"go-v0.51.0", "go-v0.36.0", "webtransport", "", "fail", "fail"},
		{"go-v0.48.0", "go-v0.36.0", "quic-v1", "", "pass", "pass"},
		{"tachyon", "js-3", "tcp", "noise", "fail", "known"},
		{"tachyon", "js-3", "ws", "noise", "fail", "fail"},
		{"tachyon", "tachyon", "tcp", "noise", "pass", "pass"},
	} {
		c := cell{Dialer: tc.d, Listener: tc.l, Transport: tc.tr, Security: tc.sec, Outcome: tc.status, Detail: "x"}
		if tc.sec != "" {
			c.Muxer = "yamux"
		}
		judge(&c, ks)
		if c.Status != tc.want {
			t.Errorf("%s -> %s %s (%s): got %s, want %s", tc.d, tc.l, c.variant(), tc.status, c.Status, tc.want)
		}
		if c.failed() != (tc.want == "fail" || tc.want == "unexpected-pass") {
			t.Errorf("%s -> %s: failed() = %v for %s", tc.d, tc.l, c.failed(), c.Status)
		}
	}
}

func TestResultLine(t *testing.T) {
	for _, tc := range []struct {
		out string
		ok  bool
		hs  float64
	}{
		{`{"handshakePlusOneRTTMillis":12.5,"pingRTTMilllis":0.4}` + "\n", true, 12.5},
		{"log line {}\n" + `{"pingRTTMilllis":1,"handshakePlusOneRTTMillis":3}`, true, 3},
		{`{"handshakePlusOneRTTMillis":12.5,"pingRTTMillis":0.4}`, false, 0}, // two l's: not the contract
		{`{"handshakePlusOneRTTMillis":"x","pingRTTMilllis":1}`, false, 0},
		{"", false, 0},
	} {
		res, ok := resultLine(tc.out)
		if ok != tc.ok || res.Handshake != tc.hs {
			t.Errorf("%q: %v %v", tc.out, res, ok)
		}
	}
}

func TestSemverLess(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"v0.30.0", "v0.33.0", true}, {"v0.45.0", "v0.46.0", true}, {"v0.46.0", "v0.46.0", false},
		{"v0.51.0", "v0.46.0", false}, {"v0.9.0", "v0.10.0", true},
	} {
		if got := semverLess(tc.a, tc.b); got != tc.want {
			t.Errorf("%s < %s: %v", tc.a, tc.b, got)
		}
	}
}

func TestMarkdownAndSection(t *testing.T) {
	r := results{Set: "slice", Date: "today", Go: "go1.26", Impls: []implInfo{{Name: "tachyon"}, {Name: "go-v0.51.0"}, {Name: "js-3"}}}
	r.Cells = []cell{
		{Dialer: "tachyon", Listener: "js-3", Transport: "tcp", Security: "noise", Muxer: "yamux", Status: "pass", Handshake: 30},
		{Dialer: "go-v0.51.0", Listener: "js-3", Transport: "tcp", Security: "noise", Muxer: "yamux", Status: "pass", Handshake: 20},
		{Dialer: "tachyon", Listener: "go-v0.51.0", Transport: "tcp", Security: "tls", Muxer: "yamux", Status: "fail", Reason: "dialer exit 1 | boom"},
		{Dialer: "js-3", Listener: "tachyon", Transport: "quic-v1", Status: "n/a", Reason: "js-3: js-libp2p has no QUIC transport"},
		{Dialer: "js-3", Listener: "go-v0.51.0", Transport: "quic-v1", Status: "n/a", Reason: "js-3: js-libp2p has no QUIC transport"},
	}
	md := r.markdown()
	for _, want := range []string{
		"1 fail", "**tcp/noise/yamux**", "| tachyon | ✓ 30 |", "**FAIL**[1]", "–[2] | –[2] |",
		"1. dialer exit 1 \\| boom", "2. js-3: js-libp2p has no QUIC transport", "make interop-latency",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Count(md, "js-libp2p has no QUIC") != 1 {
		t.Errorf("a repeated reason is not one note:\n%s", md)
	}

	f := filepath.Join(t.TempDir(), "COMPATIBILITY.md")
	os.WriteFile(f, []byte("# C\n<!-- transport-interop slice begin -->\nold\n<!-- transport-interop slice end -->\ntail\n"), 0o644)
	if err := writeSection(f, "slice", "new\n"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(f); string(b) != "# C\n<!-- transport-interop slice begin -->\nnew\n<!-- transport-interop slice end -->\ntail\n" {
		t.Fatalf("section: %q", b)
	}
	if err := writeSection(f, "full", "x"); err == nil {
		t.Fatal("missing markers: no error")
	}
}

func FuzzParseKnown(f *testing.F) {
	b, err := os.ReadFile("known.txt")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(b))
	f.Add("* * tcp/*/yamux reason\n")
	f.Fuzz(func(t *testing.T, s string) {
		ks, err := parseKnown(strings.NewReader(s))
		if err != nil {
			return
		}
		c := cell{Dialer: "a", Listener: "b", Transport: "tcp", Security: "noise", Muxer: "yamux", Outcome: "pass"}
		judge(&c, ks)
	})
}

func TestOneLine(t *testing.T) {
	in := "dialer exit 1: connecting to /ip4/127.0.0.1/udp/4/quic-v1/webtransport/certhash/uEiA/p2p/12D3KooWHshzCcWnbqGvv4kLdCxNs47d9dobpW9UGmvmttTopL1Y: swarm: dialing 12D3KooWHshzCcWnbqGvv4kLdCxNs47d9dobpW9UGmvmttTopL1Y:\n  server didn't enable it"
	want := "dialer exit 1: connecting to ADDR: swarm: dialing PEER: server didn't enable it"
	if got := oneLine(in); got != want {
		t.Fatalf("got %q", got)
	}
}
