package webrtcnat

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/internal/testproc"
	"github.com/tachyon-p2p/tachyon/testbed"
)

// jsAttempt is one dial result of the js-libp2p endpoint (b2b-peer.js).
type jsAttempt struct {
	Connected          bool    `json:"connected"`
	Error              string  `json:"error"`
	RemoteAddr         string  `json:"remoteAddr"`
	RelayedAtMs        float64 `json:"relayedAtMs"`
	RelayToDirectMs    float64 `json:"relayToDirectMs"`
	RelayToFirstEchoMs float64 `json:"relayToFirstEchoMs"`
	FirstEchoError     string  `json:"firstEchoError"`
	raw                string
}

func (a jsAttempt) ok() bool {
	return a.Connected && a.FirstEchoError == "" && a.RelayToFirstEchoMs > 0
}

func (a jsAttempt) relayToReply() time.Duration { return msDur(a.RelayToFirstEchoMs) }

func jsOKValues(as []jsAttempt, f func(jsAttempt) float64) []float64 {
	var out []float64
	for _, a := range as {
		if a.ok() {
			out = append(out, f(a))
		}
	}
	return out
}

func jsOKCount(as []jsAttempt) int { return len(jsOKValues(as, func(jsAttempt) float64 { return 0 })) }

// runJS runs the js-libp2p reference on the EIM pair: js-libp2p in Node
// (node-datachannel) on both ends, through R over WebSocket, with R's STUN
// server. It needs node and interop/js's node_modules (npm ci there); the
// full run fails without them, CI only notes why it did not run.
func (e *env) runJS(ctx context.Context, res *results) {
	jsDir := filepath.Join(testproc.Root(), "interop", "js")
	if _, err := exec.LookPath("node"); err != nil {
		res.jsSkipped = "no node on PATH (Node.js 20)"
		return
	}
	if _, err := os.Stat(filepath.Join(jsDir, "node_modules", "@libp2p", "webrtc")); err != nil {
		res.jsSkipped = "no node_modules in interop/js (run npm ci there)"
		return
	}
	// nat-peer.mjs beside a link to interop/js's node_modules: its bare
	// imports then resolve to the modules b2b-peer.js uses.
	dir := e.t.TempDir()
	script, err := os.ReadFile(filepath.Join(testproc.Root(), "test", "webrtcnat", "js", "nat-peer.mjs"))
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "nat-peer.mjs"), script, 0o644)
	}
	if err == nil {
		err = os.Symlink(filepath.Join(jsDir, "node_modules"), filepath.Join(dir, "node_modules"))
	}
	if err != nil {
		e.t.Fatal(err)
	}
	start := func(h *testbed.Host, name string) (*testproc.Proc, string, error) {
		cmd := h.Command(ctx, "node", "--experimental-websocket", "nat-peer.mjs", filepath.Join(jsDir, "src"), e.stun, e.relayWS)
		cmd.Dir = dir
		p, err := testproc.Start(name, cmd)
		if err != nil {
			return nil, "", err
		}
		e.t.Cleanup(p.Stop)
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		_, l, err := p.WaitLine(wctx, 0, `"event":"ready"`)
		if err != nil {
			p.Stop()
			return nil, "", err
		}
		var ready struct {
			WebRTC string `json:"webrtc"`
		}
		if err := json.Unmarshal([]byte(l), &ready); err != nil || ready.WebRTC == "" {
			p.Stop()
			return nil, "", fmt.Errorf("%s: no /webrtc address in %q (%v)", name, l, err)
		}
		return p, ready.WebRTC, nil
	}
	b, target, err := start(e.eimB, "js-libp2p B (EIM)")
	if err != nil {
		e.t.Errorf("js-libp2p reference: %v", err)
		res.jsSkipped = "B did not start"
		return
	}
	defer b.Stop()
	cmd, _ := json.Marshal(map[string]string{"cmd": "dial", "target": target})
	// A new A for each dial, as for tachyon: a second dial from the same
	// node would reuse its WebRTC connection.
	for i := 0; i < e.settings.dials; i++ {
		r := e.jsDial(ctx, start, string(cmd))
		if testing.Verbose() {
			e.t.Logf("js-libp2p EIM /webrtc #%d: %s", i+1, r.raw)
		}
		res.js = append(res.js, r)
	}
}

// jsDial starts a js A, has it dial once and stops it.
func (e *env) jsDial(ctx context.Context, start func(*testbed.Host, string) (*testproc.Proc, string, error), cmd string) jsAttempt {
	a, _, err := start(e.eimA, "js-libp2p A (EIM)")
	if err != nil {
		return jsAttempt{Error: err.Error(), raw: err.Error()}
	}
	defer a.Stop()
	next := len(a.Lines())
	if err := a.Send(cmd); err != nil {
		return jsAttempt{Error: err.Error(), raw: err.Error()}
	}
	wctx, cancel := context.WithTimeout(ctx, dialLimit)
	defer cancel()
	_, l, err := a.WaitLine(wctx, next, `"event":"`)
	if err != nil {
		return jsAttempt{Error: err.Error(), raw: err.Error()}
	}
	r := jsAttempt{raw: l}
	if err := json.Unmarshal([]byte(l), &r); err != nil || !strings.Contains(l, `"event":"result"`) {
		r.Error = "unexpected line: " + l
	}
	return r
}
