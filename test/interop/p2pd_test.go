package interop

// This file runs the published @libp2p/interop daemon suite (14.x) with
// `tachyon daemon` in the suite's 'go' slot and js-libp2p daemons in the
// 'js' slot; the runner is the npm project in interop/p2pd. The connect
// (tcp), streams and relay groups run; the dht and pubsub groups need
// features tachyon does not have yet (see COMPATIBILITY.md).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

const (
	// p2pdGrep selects the tests of the connect (tcp) and streams groups
	// that have tachyon in the 'go' slot, and the whole relay group (its
	// js-js-js pair checks the runner's js nodes at a cost of about 1 s).
	p2pdGrep    = `^connection\.tcp (go peer to js|js peer to go) peer over tcp$|echo (go sender to js|js sender to go) listener$|^(go|js) to (go|js) over relay (go|js) (connects|fails to connect without a reservation)$`
	npmLimit    = 10 * time.Minute
	mochaLimit  = 5 * time.Minute
	p2pdBinName = "tachyon"
)

// p2pdSelected lists the 54 test titles p2pdGrep selects: connect over tcp
// both ways (2); echo for keys {ed25519, rsa, secp256k1} x directions
// {go->js, js->go} x encryption {noise, tls, plaintext} x muxer {mplex,
// yamux} (36); and relay, A, B and the relay each go or js, x {connects,
// fails without a reservation} (16). The muxer is only part of the echo
// test names: the suite never passes it to the daemons, so every echo test
// runs on yamux.
func p2pdSelected() []string {
	sel := []string{
		"connection.tcp go peer to js peer over tcp",
		"connection.tcp js peer to go peer over tcp",
	}
	for _, key := range []string{"ed25519", "rsa", "secp256k1"} {
		for _, enc := range []string{"noise", "tls", "plaintext"} {
			for _, mux := range []string{"mplex", "yamux"} {
				for _, dir := range []string{"go sender to js listener", "js sender to go listener"} {
					sel = append(sel, fmt.Sprintf("%s/%s/%s echo %s", key, enc, mux, dir))
				}
			}
		}
	}
	types := []string{"go", "js"}
	for _, a := range types {
		for _, b := range types {
			for _, r := range types {
				for _, test := range []string{"connects", "fails to connect without a reservation"} {
					sel = append(sel, fmt.Sprintf("%s to %s over relay %s %s", a, b, r, test))
				}
			}
		}
	}
	slices.Sort(sel)
	return sel
}

// p2pdKnownFailures are selected tests that fail because of a bug outside
// the daemon, each with a text its failure must contain. Fix the bug, then
// remove the entry: a known failure that passes fails the test.
var p2pdKnownFailures = map[string]string{}

// mochaReport is the part of mocha's json reporter output we read.
type mochaReport struct {
	Stats struct {
		Tests    int `json:"tests"`
		Passes   int `json:"passes"`
		Failures int `json:"failures"`
		Pending  int `json:"pending"`
	} `json:"stats"`
	Passes   []mochaTest `json:"passes"`
	Failures []mochaTest `json:"failures"`
	Pending  []mochaTest `json:"pending"`
}

type mochaTest struct {
	FullTitle string `json:"fullTitle"`
	Err       struct {
		Message string `json:"message"`
	} `json:"err"`
}

// runLogged runs cmd in its own process group, killed whole when ctx ends,
// and returns its combined output.
func runLogged(ctx context.Context, dir string, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	return out.Bytes(), err
}

func TestP2PDSuite(t *testing.T) {
	leakcheck.Check(t)
	for _, tool := range []string{"node", "npm", "unshare", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the @libp2p/interop suite needs %s on PATH (node >= 20 and npm for the runner in interop/p2pd, unshare and ip to run it in a private network namespace): %v", tool, err)
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(wd, "..", "..")
	runner := filepath.Join(root, "interop", "p2pd")

	// Build the daemon.
	bin := filepath.Join(t.TempDir(), p2pdBinName)
	ctx, cancel := context.WithTimeout(context.Background(), buildLimit)
	out, err := runLogged(ctx, root, nil, "go", "build", "-o", bin, "./cmd/tachyon")
	cancel()
	if err != nil {
		t.Fatalf("building tachyon: %v\n%s", err, out)
	}

	// Install the runner's packages from its lockfile.
	if _, err := os.Stat(filepath.Join(runner, "node_modules", "@libp2p", "interop")); err != nil {
		t.Logf("installing the runner's npm packages in %s", runner)
		ctx, cancel := context.WithTimeout(context.Background(), npmLimit)
		out, err := runLogged(ctx, runner, nil, "npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--legacy-peer-deps")
		cancel()
		if err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", runner, err, out)
		}
	}

	// Run the suite in a private network namespace with only loopback up.
	report := filepath.Join(t.TempDir(), "mocha.json")
	script := `ip link set lo up && exec node_modules/.bin/mocha --reporter json --reporter-option "output=$MOCHA_REPORT" --grep "$MOCHA_GREP"`
	ctx, cancel = context.WithTimeout(context.Background(), mochaLimit)
	defer cancel()
	start := time.Now()
	out, err = runLogged(ctx, runner, []string{"TACHYON_BIN=" + bin, "MOCHA_REPORT=" + report, "MOCHA_GREP=" + p2pdGrep},
		"unshare", "-n", "sh", "-c", script)
	t.Logf("mocha ran for %s", time.Since(start).Round(time.Second))
	b, rerr := os.ReadFile(report)
	if rerr != nil {
		t.Fatalf("mocha wrote no report (%v, exit %v):\n%s", rerr, err, out)
	}
	var r mochaReport
	if jerr := json.Unmarshal(b, &r); jerr != nil {
		t.Fatalf("mocha report: %v\n%s", jerr, out)
	}
	for _, f := range r.Failures {
		if want, ok := p2pdKnownFailures[f.FullTitle]; ok && strings.Contains(f.Err.Message, want) {
			t.Logf("known failure %s: %s", f.FullTitle, f.Err.Message)
			continue
		}
		t.Errorf("FAIL %s: %s", f.FullTitle, f.Err.Message)
	}
	for _, p := range r.Pending {
		t.Errorf("PENDING %s", p.FullTitle)
	}
	if err != nil && r.Stats.Failures == 0 {
		t.Errorf("mocha exited with %v although it reports no failure:\n%s", err, out)
	}
	var passed, want []string
	for _, p := range r.Passes {
		passed = append(passed, p.FullTitle)
		if _, ok := p2pdKnownFailures[p.FullTitle]; ok {
			t.Errorf("known failure %s passes now: remove it from p2pdKnownFailures", p.FullTitle)
		}
	}
	slices.Sort(passed)
	for _, title := range p2pdSelected() {
		if _, ok := p2pdKnownFailures[title]; !ok {
			want = append(want, title)
		}
	}
	if !slices.Equal(passed, want) {
		t.Errorf("passing tests:\n%q\nwant (%d):\n%q", passed, len(want), want)
	}
	t.Logf("@libp2p/interop: %d passing, %d failing, %d pending (of %d selected)", r.Stats.Passes, r.Stats.Failures, r.Stats.Pending, r.Stats.Tests)
	if r.Stats.Tests != len(p2pdSelected()) || r.Stats.Passes != len(want) || r.Stats.Failures != len(p2pdKnownFailures) || r.Stats.Pending != 0 {
		t.Errorf("stats %+v, want %d selected: %d passing, %d known failures, 0 pending", r.Stats, len(p2pdSelected()), len(want), len(p2pdKnownFailures))
	}
	if t.Failed() {
		t.Logf("mocha output:\n%s", out)
	}
}
