// Package testproc runs the helper processes of end-to-end tests: it
// builds binaries, starts commands (typically testbed.Host.Command, which
// runs them in a network namespace) so that they die with the test, and
// keeps their output lines for the test to wait on and to show when it
// fails. Only tests import it.
package testproc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Root returns the directory of the tachyon module (the go.mod above this
// package's source).
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Target is one binary to build.
type Target struct {
	// Dir is where `go build` runs, relative to Root ("" is Root): a
	// directory with its own go.mod builds in its own module.
	Dir string
	// Pkg is the package to build, relative to Dir ("./cmd/tachyon", ".").
	Pkg string
	// Name is the binary's file name.
	Name string
}

// Build compiles the targets into outDir, side by side, and returns their
// paths in order. ctx bounds the builds.
func Build(ctx context.Context, outDir string, targets ...Target) ([]string, error) {
	paths := make([]string, len(targets))
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, tg := range targets {
		paths[i] = filepath.Join(outDir, tg.Name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir := filepath.Join(Root(), tg.Dir)
			cmd := exec.CommandContext(ctx, "go", "build", "-o", paths[i], tg.Pkg)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("building %s in %s: %w\n%s", tg.Pkg, dir, err, out)
			}
		}()
	}
	wg.Wait()
	return paths, errors.Join(errs...)
}

// Proc is a started process whose stdout lines are kept (and whose stderr
// is kept whole) for the test to search.
type Proc struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{} // closed once the process has exited and its output is read

	stderr lockedBuffer

	mu      sync.Mutex
	lines   []string
	more    chan struct{} // closed and replaced on every new line
	waitErr error         // the exit status, once done
}

// Start starts cmd, which must not have been started nor have its Stdin,
// Stdout or Stderr set. name is how errors refer to the process.
//
// The command is started from a goroutine locked to its OS thread that
// lives, reading the output, until the process exits: a Pdeathsig the
// command sets (testbed.Host.Command sets SIGKILL) is tied by Linux to the
// thread that forked the child, not to the process, and the runtime ends
// threads that goroutines left locked (the testbed's namespace switches
// do): a child forked from such a thread would die with it.
func Start(name string, cmd *exec.Cmd) (*Proc, error) {
	p := &Proc{name: name, cmd: cmd, done: make(chan struct{}), more: make(chan struct{})}
	cmd.Stderr = &p.stderr
	if cmd.WaitDelay == 0 {
		cmd.WaitDelay = 5 * time.Second
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	started := make(chan error, 1)
	go func() {
		defer close(p.done)
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine, after the child
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			close(p.more)
			p.more = make(chan struct{})
			p.mu.Unlock()
		}
		// Wait only after the reads: it closes the pipe.
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
	}()
	if err := <-started; err != nil {
		<-p.done
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	return p, nil
}

// Name is the name given to Start.
func (p *Proc) Name() string { return p.name }

// Stop kills the process (SIGKILL, by its own handle) and waits until it
// has exited. It may be called more than once.
func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Wait waits until the process exits (its output read) and returns its
// exit status, or ctx's error first.
func (p *Proc) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.waitErr
	case <-ctx.Done():
		return fmt.Errorf("waiting for %s to exit: %w", p.name, ctx.Err())
	}
}

// Send writes line and a newline to the process's stdin.
func (p *Proc) Send(line string) error {
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		return fmt.Errorf("writing to %s: %w", p.name, err)
	}
	return nil
}

// CloseStdin closes the process's stdin (it reads EOF).
func (p *Proc) CloseStdin() error { return p.stdin.Close() }

// WaitLine returns the first stdout line at index from or later that
// contains every string of want, and its index. It fails when ctx ends
// or the process exits first, with the process's output in the error.
func (p *Proc) WaitLine(ctx context.Context, from int, want ...string) (int, string, error) {
	for {
		p.mu.Lock()
		for i := max(from, 0); i < len(p.lines); i++ {
			if ContainsAll(p.lines[i], want...) {
				l := p.lines[i]
				p.mu.Unlock()
				return i, l, nil
			}
		}
		more := p.more
		p.mu.Unlock()
		select {
		case <-more:
		case <-p.done:
			// Lines read before the exit are in; look once more.
			if i, l, ok := p.find(from, want); ok {
				return i, l, nil
			}
			return -1, "", fmt.Errorf("%s exited (%v) without printing a line with %q; %s", p.name, p.Wait(ctx), want, p.Output(20))
		case <-ctx.Done():
			return -1, "", fmt.Errorf("%s printed no line with %q: %w; %s", p.name, want, ctx.Err(), p.Output(20))
		}
	}
}

func (p *Proc) find(from int, want []string) (int, string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := max(from, 0); i < len(p.lines); i++ {
		if ContainsAll(p.lines[i], want...) {
			return i, p.lines[i], true
		}
	}
	return -1, "", false
}

// Lines returns the stdout lines so far.
func (p *Proc) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// LinesWith returns the stdout lines so far that contain s.
func (p *Proc) LinesWith(s string) []string {
	var out []string
	for _, l := range p.Lines() {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

// Stderr returns everything the process wrote to stderr so far.
func (p *Proc) Stderr() string { return p.stderr.String() }

// Output describes the last n lines of stdout and of stderr, for failure
// messages.
func (p *Proc) Output(n int) string {
	return fmt.Sprintf("%s stdout (last %d lines):\n%s\n%s stderr (last %d lines):\n%s",
		p.name, n, LastLines(strings.Join(p.Lines(), "\n"), n), p.name, n, LastLines(p.Stderr(), n))
}

// ContainsAll reports whether s contains every string of subs.
func ContainsAll(s string, subs ...string) bool {
	for _, w := range subs {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}

// LastLines returns the last n lines of s.
func LastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// lockedBuffer is a bytes.Buffer safe for the writer goroutine of
// os/exec and readers in the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *lockedBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *lockedBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
