package dialing

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
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

// buildBinaries compiles the tachyon CLI and the go-libp2p peer once, in
// parallel, into a temp dir.
func buildBinaries(t *testing.T, ctx context.Context) (tachyonBin, goBin string) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	dir := t.TempDir()
	srcs := [2][2]string{{root, "./cmd/tachyon"}, {filepath.Join(root, "interop", "golibp2p"), "."}}
	outs := [2]string{filepath.Join(dir, "tachyon"), filepath.Join(dir, "golibp2p-peer")}
	bctx, cancel := context.WithTimeout(ctx, buildLimit)
	defer cancel()
	var errs [2]error
	var wg sync.WaitGroup
	for i := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.CommandContext(bctx, "go", "build", "-o", outs[i], srcs[i][1])
			cmd.Dir = srcs[i][0]
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("building %s in %s: %v\n%s", srcs[i][1], srcs[i][0], err, out)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		t.Fatal(err)
	}
	return outs[0], outs[1]
}

// startCmd starts cmd from one OS thread that never exits: Host.Command
// sets Pdeathsig, which Linux ties to the thread that forked the child,
// and the testbed ends the threads it locks to enter namespaces.
func startCmd(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	forker <- func() { errc <- cmd.Start() }
	return <-errc
}

var forker = func() chan func() {
	c := make(chan func())
	go func() {
		// Lives as long as the test binary; the thread stays locked.
		runtime.LockOSThread()
		for f := range c {
			f()
		}
	}()
	return c
}()

// daemon is a long-running process (listener, relay, tcpdump) whose
// stdout and stderr lines are kept, so the test can wait for one.
type daemon struct {
	name   string
	cmd    *exec.Cmd
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	lines []string // stdout and stderr, in arrival order per stream
	more  chan struct{}
}

// startDaemon runs bin in h until stop or the end of the test.
func startDaemon(t *testing.T, ctx context.Context, h *testbed.Host, name, bin string, args ...string) *daemon {
	t.Helper()
	d, err := launch(ctx, h, name, bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.stop)
	return d
}

// launch starts bin in h until stop or ctx ends; the caller stops it.
func launch(ctx context.Context, h *testbed.Host, name, bin string, args ...string) (*daemon, error) {
	dctx, cancel := context.WithCancel(ctx)
	d := &daemon{name: name, cancel: cancel, done: make(chan struct{}), more: make(chan struct{})}
	d.cmd = h.Command(dctx, bin, args...)
	d.cmd.WaitDelay = 5 * time.Second
	stdout, err := d.cmd.StdoutPipe()
	if err == nil {
		var stderr io.ReadCloser
		if stderr, err = d.cmd.StderrPipe(); err == nil {
			if err = startCmd(d.cmd); err == nil {
				d.read(stdout, stderr)
				return d, nil
			}
		}
	}
	cancel()
	return nil, fmt.Errorf("starting %s: %w", name, err)
}

// read keeps the lines of both streams until the process ends.
func (d *daemon) read(stdout, stderr io.Reader) {
	var readers sync.WaitGroup
	readers.Add(2)
	for _, r := range []io.Reader{stdout, stderr} {
		go func() {
			defer readers.Done()
			d.scan(r)
		}()
	}
	go func() {
		defer close(d.done)
		readers.Wait()
		d.cmd.Wait()
	}()
}

func (d *daemon) scan(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		d.mu.Lock()
		d.lines = append(d.lines, sc.Text())
		close(d.more)
		d.more = make(chan struct{})
		d.mu.Unlock()
	}
}

// stop kills the process and waits for it.
func (d *daemon) stop() {
	d.cancel()
	<-d.done
}

// interrupt asks the process to end (tcpdump then flushes its file) and
// waits for it, killing it after limit.
func (d *daemon) interrupt(limit time.Duration) {
	d.cmd.Process.Signal(os.Interrupt)
	select {
	case <-d.done:
	case <-time.After(limit):
		d.stop()
	}
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
			return "", fmt.Errorf("%s exited without printing %q:\n%s", d.name, want, d.tail(30))
		case <-deadline.C:
			return "", fmt.Errorf("%s printed no line with %q in %s:\n%s", d.name, want, limit, d.tail(30))
		}
	}
}

// matching returns every line so far that contains all of want.
func (d *daemon) matching(want ...string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, l := range d.lines {
		if containsAll(l, want) {
			out = append(out, l)
		}
	}
	return out
}

func (d *daemon) tail(n int) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	l := d.lines
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func containsAll(s string, subs []string) bool {
	for _, w := range subs {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}

// dialOutput is the JSON line of `tachyon dial` and `golibp2p-peer
// dial-time`.
type dialOutput struct {
	Event string    `json:"event"`
	OK    bool      `json:"ok"`
	Peer  string    `json:"peer"`
	Runs  []dialRun `json:"runs"`
	Error string    `json:"error"`
}

type dialRun struct {
	ConnectMillis float64   `json:"connectMillis"`
	DialsStarted  int       `json:"dialsStarted"`
	Addr          string    `json:"addr"`
	Probes        int       `json:"probes"`
	Peer          string    `json:"peer"` // -same-host over several peers: whom this run dialed
	Attempts      []attempt `json:"attempts"`
	Skipped       []skip    `json:"skipped"`
	Trace         string    `json:"trace"` // tachyon: the dial trace as text
}

type attempt struct {
	Addr        string  `json:"addr"`
	Transport   string  `json:"transport"`
	StartMillis float64 `json:"startMillis"`
	TookMillis  float64 `json:"tookMillis"`
	Outcome     string  `json:"outcome"`
	Probe       bool    `json:"probe"`
}

// skip is an address tachyon's plan left out, and why.
type skip struct {
	Addr   string `json:"addr"`
	Reason string `json:"reason"`
}

// window is when a dialer process ran, in wall-clock time (which tcpdump
// stamps packets with too).
type window struct{ from, to time.Time }

// runDial runs one dialer process in h to its end and parses its JSON
// line. The error says what went wrong, with the process's stderr.
func runDial(ctx context.Context, h *testbed.Host, limit time.Duration, bin string, args ...string) (*dialOutput, window, error) {
	rctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := h.Command(rctx, bin, args...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	w := window{from: time.Now()}
	err := startCmd(cmd)
	if err == nil {
		err = cmd.Wait()
	}
	w.to = time.Now()
	var out dialOutput
	line := strings.TrimSpace(stdout.String())
	if i := strings.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	if jerr := json.Unmarshal([]byte(line), &out); jerr != nil {
		return nil, w, fmt.Errorf("%s %s: no JSON line (%v; exit: %v); stdout %q; stderr:\n%s", filepath.Base(bin), strings.Join(args, " "), jerr, err, line, lastLines(stderr.String(), 30))
	}
	if !out.OK || err != nil {
		return &out, w, fmt.Errorf("%s %s: ok=%v, exit %v: %s; stderr:\n%s", filepath.Base(bin), strings.Join(args, " "), out.OK, err, out.Error, lastLines(stderr.String(), 30))
	}
	return &out, w, nil
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// execOutput runs a short command (10 s at most) and returns its output.
func execOutput(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// capture is tcpdump writing every packet of h's eth0 (headers and the
// first bytes of payload) to a file.
type capture struct {
	d    *daemon
	path string
}

// startCapture starts tcpdump in h and waits until it captures.
func startCapture(ctx context.Context, h *testbed.Host) (*capture, error) {
	f, err := os.CreateTemp("", "dialing-*.pcap")
	if err != nil {
		return nil, fmt.Errorf("pcap file: %w", err)
	}
	f.Close()
	c := &capture{path: f.Name()}
	// --immediate-mode -U: each packet is written as it comes (otherwise
	// packets wait in the ring, and SIGINT drops them); -s: QUIC and STUN
	// headers fit.
	c.d, err = launch(ctx, h, "tcpdump", "tcpdump", "-i", "eth0", "-n", "-U", "--immediate-mode", "-s", "256",
		"--time-stamp-precision=nano", "-w", c.path)
	if err != nil {
		os.Remove(c.path)
		return nil, err
	}
	if _, err := c.d.waitLine(10*time.Second, "listening on"); err != nil {
		c.d.stop()
		os.Remove(c.path)
		return nil, fmt.Errorf("tcpdump in %s: %w", h.Name(), err)
	}
	return c, nil
}

// stop ends tcpdump and reads what it captured.
func (c *capture) stop() ([]packet, error) {
	c.d.interrupt(5 * time.Second)
	defer os.Remove(c.path)
	b, err := os.ReadFile(c.path)
	if err != nil {
		return nil, fmt.Errorf("reading the capture: %w", err)
	}
	pkts, err := readPcap(b)
	if err != nil {
		return nil, fmt.Errorf("reading the capture: %w; tcpdump said:\n%s", err, c.d.tail(10))
	}
	return pkts, nil
}
