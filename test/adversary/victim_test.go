package adversary

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/testbed"
)

const (
	tcpPort    = 4001
	quicPort   = 4001
	webrtcPort = 4002
	debugAddr  = "127.0.0.1:6060" // inside the victim's namespace
)

// bins are the programs the suite runs.
type bins struct {
	tachyon, golibp2p string
	tachyonDebug      bool // `tachyon node` has --debug-addr
}

// build compiles the tachyon CLI and the go-libp2p peer in parallel.
func build(t *testing.T, ctx context.Context) bins {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	dir := t.TempDir()
	out := [2]string{filepath.Join(dir, "tachyon"), filepath.Join(dir, "golibp2p-peer")}
	srcs := [2]string{root, filepath.Join(root, "interop", "golibp2p")}
	pkgs := [2]string{"./cmd/tachyon", "."}
	var errs [2]error
	var wg sync.WaitGroup
	for i := range out {
		wg.Go(func() {
			cmd := exec.CommandContext(ctx, "go", "build", "-o", out[i], pkgs[i])
			cmd.Dir = srcs[i]
			if b, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("building %s in %s: %w\n%s", pkgs[i], srcs[i], err, b)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// The node reports goroutines, live heap and peerstore size only if
	// it has the debug endpoint; /proc gives the rest.
	help, _ := exec.CommandContext(ctx, out[0], "node", "-h").CombinedOutput()
	return bins{tachyon: out[0], golibp2p: out[1], tachyonDebug: strings.Contains(string(help), "debug-addr")}
}

// victim is one running victim process.
type victim struct {
	impl  string // "tachyon" or "go-libp2p"
	host  *testbed.Host
	cmd   *exec.Cmd
	pid   int
	id    peer.ID
	addrs map[string]string // transport ("tcp", "quic", "webrtc") -> full multiaddr
	err   *tailBuffer       // stderr, last part
	http  *http.Client      // nil: no debug endpoint
	done  chan struct{}     // closed when the process has exited
	werr  error             // Wait's result, once done
	stop  context.CancelFunc
}

func (v *victim) ip() netip.Addr { return v.host.IPv4() }

// startVictim starts impl in h listening on transport (go-libp2p listens on
// that transport only; tachyon listens on all three).
func startVictim(ctx context.Context, b bins, impl string, h *testbed.Host, transport string) (*victim, error) {
	ip := h.IPv4().String()
	tcp := fmt.Sprintf("/ip4/%s/tcp/%d", ip, tcpPort)
	quic := fmt.Sprintf("/ip4/%s/udp/%d/quic-v1", ip, quicPort)
	rtc := fmt.Sprintf("/ip4/%s/udp/%d/webrtc-direct", ip, webrtcPort)
	var bin string
	var args []string
	debug := true
	if impl == "tachyon" {
		bin = b.tachyon
		args = []string{"node", "--echo", "--listen", tcp, "--listen", quic, "--listen", rtc}
		debug = b.tachyonDebug
	} else {
		bin = b.golibp2p
		args = []string{"listen", "--transport", map[string]string{"tcp": "tcp", "quic": "quic-v1", "webrtc": "webrtc-direct"}[transport]}
		switch transport {
		case "tcp":
			// A default go-libp2p host offers both, TLS first.
			args = append(args, "--security", "tls,noise", "--listen", tcp)
		case "quic":
			args = append(args, "--listen", quic)
		case "webrtc":
			args = append(args, "--listen", rtc)
		}
	}
	if debug {
		args = append(args, "--debug-addr", debugAddr)
	}
	vctx, cancel := context.WithCancel(ctx)
	cmd := h.Command(vctx, bin, args...)
	// SIGTERM first: a clean shutdown is part of what is checked.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	v := &victim{impl: impl, host: h, cmd: cmd, addrs: map[string]string{}, err: &tailBuffer{max: 256 << 10}, done: make(chan struct{}), stop: cancel}
	cmd.Stderr = v.err
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, err
	}
	if err := startCmd(cmd); err != nil {
		cancel()
		return nil, fmt.Errorf("starting %s victim: %w", impl, err)
	}
	// `ip netns exec` execs the program in place: same PID.
	v.pid = cmd.Process.Pid
	lines := make(chan string, 16)
	go func() {
		// Owned by the process: ends at its stdout's EOF.
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // go-libp2p prints a line per identified peer; only the first lines matter
			}
		}
	}()
	go func() {
		v.werr = cmd.Wait()
		close(v.done)
	}()
	want := map[string]string{"tcp": "/tcp/" + strconv.Itoa(tcpPort) + "/p2p/", "quic": "/quic-v1/p2p/", "webrtc": "/webrtc-direct/"}
	timer := time.NewTimer(20 * time.Second)
	defer timer.Stop()
	for v.addrs[transport] == "" || (impl == "tachyon" && len(v.addrs) < 3) {
		select {
		case l, ok := <-lines:
			if !ok {
				v.kill()
				return nil, fmt.Errorf("%s victim exited before printing its addresses: %v\n%s", impl, v.werr, v.err.String())
			}
			for k, w := range want {
				if v.addrs[k] == "" && strings.Contains(l, w) && strings.HasPrefix(l, "/ip4/") {
					v.addrs[k] = l
				}
			}
		case <-timer.C:
			v.kill()
			return nil, fmt.Errorf("%s victim printed no %s address in 20 s; stderr:\n%s", impl, transport, v.err.String())
		}
	}
	go func() {
		for range lines {
		}
	}()
	a := v.addrs[transport]
	id, err := peer.Decode(a[strings.LastIndex(a, "/")+1:])
	if err != nil {
		v.kill()
		return nil, fmt.Errorf("%s victim address %s: %w", impl, a, err)
	}
	v.id = id
	if debug {
		v.http = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return h.Dial(ctx, network, addr)
			},
			DisableKeepAlives: true,
		}}
	}
	return v, nil
}

// kill stops the process at once and waits for it.
func (v *victim) kill() {
	v.cmd.Process.Kill()
	<-v.done
	v.stop()
}

// shutdown asks the process to stop (SIGTERM) and waits; after 10 s it is
// killed. It reports an exit other than a clean one.
func (v *victim) shutdown() error {
	select {
	case <-v.done:
		return fmt.Errorf("%s victim had exited during the attack: %v", v.impl, v.werr)
	default:
	}
	v.stop()
	<-v.done
	// Wait reports the cancellation even when the process then exits 0.
	if !v.cmd.ProcessState.Success() {
		return fmt.Errorf("%s victim did not shut down cleanly on SIGTERM: %v", v.impl, v.werr)
	}
	return nil
}

// panicked reports whether the victim's stderr shows a Go panic or fatal
// error.
func (v *victim) panicked() bool {
	s := v.err.String()
	return v.err.sawPanic() || strings.Contains(s, "goroutine ") && strings.Contains(s, "[running]")
}

// stats is one sample of the victim. The debug fields are -1 when the
// victim has no debug endpoint.
type stats struct {
	rss        int64 // bytes
	fds        int
	threads    int
	goroutines int
	heap       int64 // live heap after the last GC
	conns      int
	peerstore  int
}

// sample reads /proc and, if the victim has one, its debug endpoint (gc:
// run a GC first, for a live heap that is current).
func (v *victim) sample(gc bool) (stats, error) {
	s := stats{goroutines: -1, heap: -1, conns: -1, peerstore: -1}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", v.pid))
	if err != nil {
		return s, fmt.Errorf("reading %s victim's status: %w", v.impl, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			s.rss = kb << 10
		case "Threads:":
			s.threads, _ = strconv.Atoi(f[1])
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", v.pid))
	if err != nil {
		return s, fmt.Errorf("listing %s victim's fds: %w", v.impl, err)
	}
	s.fds = len(fds)
	if v.http == nil {
		return s, nil
	}
	u := "http://" + debugAddr + "/debug/stats"
	if gc {
		u += "?gc=1"
	}
	resp, err := v.http.Get(u)
	if err != nil {
		return s, fmt.Errorf("asking the %s victim for its stats: %w", v.impl, err)
	}
	defer resp.Body.Close()
	var d struct {
		Goroutines    int   `json:"goroutines"`
		HeapLiveBytes int64 `json:"heapLiveBytes"`
		Conns         int   `json:"conns"`
		Peerstore     int   `json:"peerstore"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&d); err != nil {
		return s, fmt.Errorf("decoding the %s victim's stats: %w", v.impl, err)
	}
	s.goroutines, s.heap, s.conns, s.peerstore = d.Goroutines, d.HeapLiveBytes, d.Conns, d.Peerstore
	return s, nil
}

// tailBuffer keeps the last max bytes written, and whether a panic or fatal
// error line ever went through.
type tailBuffer struct {
	mu    sync.Mutex
	max   int
	b     []byte
	panic bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := string(p)
	if strings.Contains(s, "panic: ") || strings.Contains(s, "fatal error: ") || strings.Contains(s, "DATA RACE") {
		t.panic = true
	}
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max/2:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

func (t *tailBuffer) sawPanic() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.panic
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// startCmd starts cmd from one OS thread that never exits. Host.Command
// sets Pdeathsig, which Linux ties to the thread that forked the child, not
// the process; Host.Run (every attacker dial) ends its locked thread, and
// the runtime may have forked a child from that very thread before: the
// child would be killed mid-attack.
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
