package testproc

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

func TestProc(t *testing.T) {
	leakcheck.Check(t)
	tests := []struct {
		name    string
		script  string
		send    string // written to stdin after the first line
		from    int
		want    []string
		limit   time.Duration
		wantErr string // "" for success
		line    string
		index   int
	}{
		{name: "first line", script: "echo hello world; sleep 5", want: []string{"world", "hello"}, limit: 5 * time.Second, line: "hello world"},
		{name: "later line", script: "echo a; sleep 0.1; echo b x; sleep 5", want: []string{"x"}, limit: 5 * time.Second, line: "b x", index: 1},
		{name: "from skips earlier", script: "echo x1; echo x2; sleep 5", from: 1, want: []string{"x"}, limit: 5 * time.Second, line: "x2", index: 1},
		{name: "stdin", script: "echo ready; read l; echo got $l; sleep 5", send: "ping", want: []string{"got ping"}, limit: 5 * time.Second, line: "got ping", index: 1},
		{name: "exits first", script: "echo nope; echo oops >&2; exit 3", want: []string{"never"}, limit: 5 * time.Second, wantErr: "exited (exit status 3)"},
		{name: "times out", script: "echo nope; sleep 5", want: []string{"never"}, limit: 100 * time.Millisecond, wantErr: "context deadline exceeded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Start("sh", exec.Command("sh", "-c", tc.script))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Stop()
			ctx, cancel := context.WithTimeout(context.Background(), tc.limit)
			defer cancel()
			if tc.send != "" {
				if _, _, err := p.WaitLine(ctx, 0, "ready"); err != nil {
					t.Fatal(err)
				}
				if err := p.Send(tc.send); err != nil {
					t.Fatal(err)
				}
			}
			i, l, err := p.WaitLine(ctx, tc.from, tc.want...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				if tc.name == "exits first" && !strings.Contains(err.Error(), "oops") {
					t.Fatalf("err %v: want the stderr tail in it", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l != tc.line || i != tc.index {
				t.Fatalf("got line %d %q, want %d %q", i, l, tc.index, tc.line)
			}
		})
	}
}

func TestStopAndWait(t *testing.T) {
	leakcheck.Check(t)
	p, err := Start("sleeper", exec.Command("sleep", "30"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := p.Wait(ctx); err == nil {
		t.Fatal("Wait returned before the process exited")
	}
	p.Stop()
	p.Stop() // again: no effect
	if err := p.Wait(context.Background()); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("Wait after Stop: %v, want killed", err)
	}
	if _, err := Start("missing", exec.Command("/nonexistent/binary")); err == nil {
		t.Fatal("Start of a missing binary succeeded")
	}
}

func TestBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	paths, err := Build(ctx, dir, Target{Pkg: "./internal/testproc/testdata/hello", Name: "hello"}, Target{Pkg: "./nonexistent", Name: "bad"})
	if err == nil || !strings.Contains(err.Error(), "nonexistent") {
		t.Fatalf("Build error %v, want one naming the missing package", err)
	}
	out, err := exec.Command(paths[0]).Output()
	if err != nil || string(out) != "hello\n" {
		t.Fatalf("built binary: %q, %v", out, err)
	}
}
