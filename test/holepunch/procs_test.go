package holepunch

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/testbed"
)

const buildLimit = 240 * time.Second

// build compiles the tachyon CLI and the go-libp2p peer into a temp dir, in
// parallel.
func build(t *testing.T, ctx context.Context) (tachyonBin, goBin string) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	dir := t.TempDir()
	bins := [2]string{filepath.Join(dir, "tachyon"), filepath.Join(dir, "golibp2p-peer")}
	srcs := [2]string{root, filepath.Join(root, "interop", "golibp2p")}
	pkgs := [2]string{"./cmd/tachyon", "."}
	var errs [2]error
	var wg sync.WaitGroup
	bctx, cancel := context.WithTimeout(ctx, buildLimit)
	defer cancel()
	for i := range bins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.CommandContext(bctx, "go", "build", "-o", bins[i], pkgs[i])
			cmd.Dir = srcs[i]
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("building %s in %s: %v\n%s", pkgs[i], srcs[i], err, out)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return bins[0], bins[1]
}

// startCmd starts cmd from one OS thread that never exits. Host.Command
// sets Pdeathsig, which Linux ties to the thread that forked the child, not
// to the process; the testbed ends the locked threads it enters namespaces
// with, and the runtime may have forked a child from such a thread before
// it was locked: the child would die with it.
func startCmd(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	spawnReqs <- func() { errc <- cmd.Start() }
	return <-errc
}

var spawnReqs = func() chan func() {
	c := make(chan func())
	go func() {
		// Lives as long as the test binary; locked so that no other
		// goroutine runs here and the thread never exits.
		runtime.LockOSThread()
		for f := range c {
			f()
		}
	}()
	return c
}()

// daemon is a long-running process (relay or B) whose stdout lines are
// kept for the test to search.
type daemon struct {
	name   string
	cmd    *exec.Cmd
	cancel context.CancelFunc
	done   chan struct{}
	stderr syncBuffer

	mu    sync.Mutex
	lines []string
	more  chan struct{} // closed and replaced on every new line
}

// startDaemon starts bin in h until stop or the end of the test.
func startDaemon(t *testing.T, ctx context.Context, h *testbed.Host, name, bin string, args ...string) *daemon {
	t.Helper()
	dctx, cancel := context.WithCancel(ctx)
	d := &daemon{name: name, cancel: cancel, done: make(chan struct{}), more: make(chan struct{})}
	d.cmd = h.Command(dctx, bin, args...)
	d.cmd.Stderr = &d.stderr
	d.cmd.WaitDelay = 5 * time.Second
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := startCmd(d.cmd); err != nil {
		cancel()
		t.Fatalf("%s: %v", name, err)
	}
	go func() {
		defer close(d.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			d.mu.Lock()
			d.lines = append(d.lines, sc.Text())
			close(d.more)
			d.more = make(chan struct{})
			d.mu.Unlock()
		}
		d.cmd.Wait()
	}()
	t.Cleanup(d.stop)
	return d
}

// stop kills the process (by its own handle, SIGKILL through ctx) and
// waits for it.
func (d *daemon) stop() {
	d.cancel()
	<-d.done
}

// waitLine returns the first line containing all of want, waiting up to
// limit.
func (d *daemon) waitLine(limit time.Duration, want ...string) (string, error) {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		d.mu.Lock()
		for _, l := range d.lines {
			if containsAll(l, want) {
				d.mu.Unlock()
				return l, nil
			}
		}
		more := d.more
		d.mu.Unlock()
		select {
		case <-more:
		case <-d.done:
			return "", fmt.Errorf("%s exited without printing %q; stderr:\n%s", d.name, want, lastLines(d.stderr.String(), 20))
		case <-deadline.C:
			return "", fmt.Errorf("%s printed no line with %q in %s; stdout %q; stderr:\n%s", d.name, want, limit, d.linesCopy(), lastLines(d.stderr.String(), 20))
		}
	}
}

// linesWith returns every line containing s.
func (d *daemon) linesWith(s string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, l := range d.lines {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

func (d *daemon) linesCopy() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.lines...)
}

func containsAll(s string, subs []string) bool {
	for _, w := range subs {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
