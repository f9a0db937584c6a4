package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cell is one dialer x listener x variant of the matrix.
type cell struct {
	Dialer    string `json:"dialer"`
	Listener  string `json:"listener"`
	Transport string `json:"transport"`
	Security  string `json:"security,omitempty"`
	Muxer     string `json:"muxer,omitempty"`
	Status    string `json:"status"` // pass, fail, known, unexpected-pass, n/a
	Reason    string `json:"reason,omitempty"`
	// Outcome and Detail are what running the cell gave (pass or fail, and
	// the failure); Status and Reason are that judged against known.txt.
	Outcome   string  `json:"outcome,omitempty"`
	Detail    string  `json:"detail,omitempty"`
	Handshake float64 `json:"handshakePlusOneRTTMillis,omitempty"`
	Ping      float64 `json:"pingRTTMilllis,omitempty"`
	Seconds   float64 `json:"seconds,omitempty"` // wall time of the cell
}

func (c *cell) variant() variant { return variant{c.Transport, c.Security, c.Muxer} }

// failed says whether the cell fails the run.
func (c *cell) failed() bool { return c.Status == "fail" || c.Status == "unexpected-pass" }

// redis is the one redis-server of a run.
type redis struct {
	addr string
	cmd  *exec.Cmd
}

func startRedis(ctx context.Context, dir string) (*redis, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server not installed (Debian package redis-server)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("finding a port for redis: %w", err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting redis-server: %w", err)
	}
	r := &redis{addr: addr, cmd: cmd}
	for {
		if err := r.del(); err == nil {
			return r, nil
		}
		select {
		case <-ctx.Done():
			r.stop()
			return nil, fmt.Errorf("redis-server on %s did not answer: %w", addr, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (r *redis) stop() {
	r.cmd.Process.Kill()
	r.cmd.Wait()
}

// del empties the rendezvous list between cells, so that a listener that
// published and died cannot hand its address to the next dialer.
func (r *redis) del() error {
	c, err := net.DialTimeout("tcp", r.addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("*2\r\n$3\r\nDEL\r\n$12\r\nlistenerAddr\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, ":") {
		return fmt.Errorf("redis DEL: %q", line)
	}
	return nil
}

// runner runs cells one at a time.
type runner struct {
	redis   *redis
	logs    string // failed cells' full stderr go here
	timeout int    // test_timeout_seconds given to the peers
	ip      string
}

// proc is a started peer.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan struct{}
	err            error
}

func (r *runner) start(im *impl, v variant, dialer bool) (*proc, error) {
	cmd := exec.Command(im.argv[0], im.argv[1:]...)
	cmd.Dir = im.dir
	cmd.Env = append(os.Environ(), im.env...)
	cmd.Env = append(cmd.Env,
		"transport="+v.Transport, "security="+v.Security, "muxer="+v.Muxer,
		"is_dialer="+strconv.FormatBool(dialer), "ip="+r.ip, "redis_addr="+r.redis.addr,
		"test_timeout_seconds="+strconv.Itoa(r.timeout))
	// Its own process group: a browser wrapper's children die with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.stdout, &p.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", im.Name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// kill ends the process group and waits for it.
func (p *proc) kill() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// runCell runs one executable cell and fills in its outcome (pass or fail;
// the known-incompatibility verdict is applied afterwards).
func (r *runner) runCell(ctx context.Context, c *cell, d, l *impl) {
	start := time.Now()
	defer func() { c.Seconds = time.Since(start).Round(time.Millisecond).Seconds() }()
	fail := func(format string, args ...any) { c.Outcome, c.Detail = "fail", oneLine(fmt.Sprintf(format, args...)) }
	if err := r.redis.del(); err != nil {
		fail("redis: %v", err)
		return
	}
	lp, err := r.start(l, c.variant(), false)
	if err != nil {
		fail("%v", err)
		return
	}
	defer lp.kill()
	dp, err := r.start(d, c.variant(), true)
	if err != nil {
		fail("%v", err)
		return
	}
	// The peers stop by themselves at test_timeout_seconds; this is the
	// backstop for one that does not.
	deadline := time.NewTimer(time.Duration(r.timeout+5) * time.Second)
	defer deadline.Stop()
	select {
	case <-dp.done:
	case <-lp.done:
		// A listener that exits first has failed; give the dialer a moment
		// to report its side.
		select {
		case <-dp.done:
		case <-time.After(2 * time.Second):
			dp.kill()
		}
	case <-deadline.C:
		dp.kill()
	case <-ctx.Done():
		dp.kill()
	}
	<-dp.done
	res, ok := resultLine(dp.stdout.String())
	defer func() {
		if c.Outcome == "fail" && r.logs != "" {
			name := strings.ReplaceAll(c.Dialer+"_"+c.Listener+"_"+c.variant().String(), "/", "-")
			os.WriteFile(filepath.Join(r.logs, name+".log"), []byte("== dialer stdout\n"+dp.stdout.String()+
				"== dialer stderr\n"+dp.stderr.String()+"== listener stderr\n"+lp.stderr.String()), 0o644)
		}
	}()
	switch {
	case dp.err == nil && ok:
		c.Outcome, c.Handshake, c.Ping = "pass", res.Handshake, res.Ping
	case ctx.Err() != nil:
		fail("interrupted")
	case dp.err != nil:
		fail("dialer %s: %s%s", describeExit(dp.err), lastLine(dp.stderr.String()), listenerExit(lp))
	default:
		fail("dialer exited 0 without the JSON line; stdout %q", tail(dp.stdout.String(), 200))
	}
}

// resultLine finds the first JSON object with both keys, as the test-plans
// runner does.
func resultLine(out string) (res struct {
	Handshake float64 `json:"handshakePlusOneRTTMillis"`
	Ping      float64 `json:"pingRTTMilllis"`
}, ok bool) {
	for _, line := range strings.Split(out, "\n") {
		var m map[string]json.RawMessage
		if json.Unmarshal([]byte(strings.TrimSpace(line)), &m) != nil {
			continue
		}
		if m["handshakePlusOneRTTMillis"] != nil && m["pingRTTMilllis"] != nil && json.Unmarshal([]byte(line), &res) == nil {
			return res, true
		}
	}
	return res, false
}

// listenerExit says how the listener ended if it did before the dialer
// (a listener still running has nothing to add).
func listenerExit(lp *proc) string {
	select {
	case <-lp.done:
		return fmt.Sprintf("; the listener ended first (%s): %s", describeExit(lp.err), lastLine(lp.stderr.String()))
	default:
		return ""
	}
}

func describeExit(err error) string {
	if err == nil {
		return "exit 0"
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "killed after the timeout"
		}
		return fmt.Sprintf("exit %d", ee.ExitCode())
	}
	return err.Error()
}

// lastLine is the last non-empty line of a log, cut to a table's width.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	l := strings.TrimSpace(lines[len(lines)-1])
	// A JavaScript stack ends in frames: say the error instead.
	for i := len(lines) - 1; i >= 0 && strings.HasPrefix(l, "at "); i-- {
		l = strings.TrimSpace(lines[i])
	}
	if l == "" {
		return "(no output)"
	}
	l = oneLine(l)
	if len(l) > 300 {
		l = l[:300] + "…"
	}
	return l
}

// Multiaddrs and peer IDs differ in every cell; a reason without them
// reads better and groups into one note.
var (
	maddrRE  = regexp.MustCompile(`/ip[46]/[^\s:;,)]+`)
	peerIDRE = regexp.MustCompile(`\b(12D3KooW|Qm)[1-9A-HJ-NP-Za-km-z]{40,}`)
)

func oneLine(s string) string {
	s = peerIDRE.ReplaceAllString(maddrRE.ReplaceAllString(s, "ADDR"), "PEER")
	return strings.Join(strings.Fields(s), " ")
}

// enterNetns re-runs this program in a private network namespace holding
// lo and a veth pair with a 198.18.0.0/15 address (see the shared recipe:
// Chromium gathers no ICE candidates with lo alone, and go-libp2p dialers
// from v0.36 send STUN between the machine's own addresses), so that no
// packet of the run leaves the test. Builds happen before, outside.
func enterNetns(args []string) (int, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	setup := "ip link set lo up && ip link add wrtc0 type veth peer name wrtc1 && " +
		"ip addr add 198.18.0.1/32 dev wrtc0 && ip link set wrtc0 up && ip link set wrtc1 up && exec \"$0\" \"$@\""
	cmd := exec.Command("unshare", append([]string{"-n", "--", "sh", "-c", setup, self, "-in-netns"}, args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	return 0, err
}
