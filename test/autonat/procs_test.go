package autonat

import (
	"bufio"
	"context"
	"fmt"
	"io"
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

// buildBinaries compiles the tachyon CLI and the go-libp2p peer into a temp
// dir, side by side.
func buildBinaries(t *testing.T, ctx context.Context) (tachyonBin, goBin string) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	dir := t.TempDir()
	type job struct{ out, src, pkg string }
	jobs := []job{
		{filepath.Join(dir, "tachyon"), root, "./cmd/tachyon"},
		{filepath.Join(dir, "golibp2p-peer"), filepath.Join(root, "interop", "golibp2p"), "."},
	}
	bctx, cancel := context.WithTimeout(ctx, buildLimit)
	defer cancel()
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.CommandContext(bctx, "go", "build", "-o", j.out, j.pkg)
			cmd.Dir = j.src
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("building %s in %s: %v\n%s", j.pkg, j.src, err, out)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return jobs[0].out, jobs[1].out
}

// spawn starts cmd from one OS thread that never exits: Host.Command sets
// Pdeathsig, which Linux ties to the thread that forked the child, and the
// testbed ends the locked threads it enters namespaces with.
func spawn(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	spawner <- func() { errc <- cmd.Start() }
	return <-errc
}

var spawner = func() chan func() {
	c := make(chan func())
	go func() {
		// Lives as long as the test binary; the thread is never unlocked.
		runtime.LockOSThread()
		for f := range c {
			f()
		}
	}()
	return c
}()

// stamped is one output line and when the test read it, since the
// process started.
type stamped struct {
	at   time.Duration
	text string
}

// proc is one process of the test (server, relay or client), with every
// line it wrote on stdout and stderr, time-stamped on arrival.
type proc struct {
	name    string
	started time.Time
	cancel  context.CancelFunc
	done    chan struct{}
	stdin   io.WriteCloser // the go peer runs until its stdin ends

	mu     sync.Mutex
	out    []stamped
	errOut []stamped
	more   chan struct{} // closed and replaced on every stdout line
}

// startProc starts bin in h until stop or the end of the test. A go peer
// gets a pipe on stdin, which it needs to keep running.
func startProc(t *testing.T, ctx context.Context, h *testbed.Host, name, bin string, args ...string) *proc {
	t.Helper()
	pctx, cancel := context.WithCancel(ctx)
	p := &proc{name: name, cancel: cancel, done: make(chan struct{}), more: make(chan struct{})}
	cmd := h.Command(pctx, bin, args...)
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	p.started = time.Now()
	if err := spawn(cmd); err != nil {
		cancel()
		t.Fatalf("starting %s: %v", name, err)
	}
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		p.scan(stdout, false)
	}()
	go func() {
		defer readers.Done()
		p.scan(stderr, true)
	}()
	go func() {
		defer close(p.done)
		readers.Wait()
		cmd.Wait()
	}()
	t.Cleanup(p.stop)
	return p
}

func (p *proc) scan(r io.Reader, isErr bool) {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l := stamped{at: time.Since(p.started), text: sc.Text()}
		p.mu.Lock()
		if isErr {
			p.errOut = append(p.errOut, l)
		} else {
			p.out = append(p.out, l)
			close(p.more)
			p.more = make(chan struct{})
		}
		p.mu.Unlock()
	}
}

// stop kills the process (its own handle, SIGKILL through the context)
// and waits for it.
func (p *proc) stop() {
	p.stdin.Close()
	p.cancel()
	<-p.done
}

// lines returns a copy of the stdout (or stderr) lines so far.
func (p *proc) lines(stderr bool) []stamped {
	p.mu.Lock()
	defer p.mu.Unlock()
	if stderr {
		return append([]stamped(nil), p.errOut...)
	}
	return append([]stamped(nil), p.out...)
}

// waitLine returns the first stdout line containing all of want, waiting
// up to limit.
func (p *proc) waitLine(limit time.Duration, want ...string) (string, error) {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		for _, l := range p.out {
			if containsAll(l.text, want) {
				p.mu.Unlock()
				return l.text, nil
			}
		}
		more := p.more
		p.mu.Unlock()
		select {
		case <-more:
		case <-p.done:
			return "", fmt.Errorf("%s exited without printing %q; stderr:\n%s", p.name, want, p.tail(20))
		case <-deadline.C:
			return "", fmt.Errorf("%s printed no line with %q in %s; stderr:\n%s", p.name, want, limit, p.tail(20))
		}
	}
}

// tail is the last n stderr lines, for error messages.
func (p *proc) tail(n int) string {
	l := p.lines(true)
	if len(l) > n {
		l = l[len(l)-n:]
	}
	var b strings.Builder
	for _, s := range l {
		b.WriteString(s.text)
		b.WriteByte('\n')
	}
	return b.String()
}

func containsAll(s string, subs []string) bool {
	for _, w := range subs {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}
