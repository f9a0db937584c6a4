package main

// The listener side of many idle inbound connections (up to 10 000).
// Unlike idle.go, which keeps both ends in this process, every
// party is a child process (p2pbench itself, hidden flags): one listener,
// a tachyon host built as `tachyon node` builds it or a default go-libp2p
// host, and a few client processes of go-libp2p hosts, one connection
// each. The parent reads the listener's VmRSS and CPU time from /proc, so
// the figures are the listener's alone.

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p"
	gconnmgr "github.com/libp2p/go-libp2p/core/connmgr"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/limits"
)

var (
	inboundN       = flag.Int("inbound", 0, "measure only the listener side of `N` idle inbound connections from go-libp2p client processes, tachyon against go-libp2p; a Markdown table on stdout")
	inboundStacks  = flag.String("inbound-stacks", "TLS,Noise,QUIC", "comma-separated `stacks` of -inbound (TLS, Noise, QUIC)")
	inboundImpls   = flag.String("inbound-impls", implTachyon+","+implGo, "comma-separated listeners of -inbound; \""+implFloor+"\" adds the floor (each stack's secure channel alone, with bare clients that keep alive as go-libp2p's do)")
	inboundClients = flag.Int("inbound-clients", 0, "client processes of -inbound, each holding N/k connections (0: one per 2500 connections, at least 4)")
	inboundRounds  = flag.Int("inbound-rounds", 1, "rounds of -inbound (the listeners take turns in each; medians are reported)")
	inboundIdle    = flag.Duration("inbound-idle", 30*time.Second, "idle window of -inbound over which idle CPU is measured (30 s holds one yamux keepalive period and two of QUIC)")
	inboundProfile = flag.String("inbound-profile", "", "write each listener's CPU profiles of the accepts and of the idle window, and heap and goroutine profiles of the idle connections, into `dir`")
	inboundSteps   = flag.String("inbound-steps", "", "comma-separated connection `counts` at which -inbound samples the listener's RSS and heap, ending at N (default: 0 and N)")
	inboundChart   = flag.String("inbound-chart", "", "write a PNG chart of the listener's RSS against the -inbound-steps counts to `file`")
	inboundLog     = flag.String("inbound-log", "", "log `level` (debug, info, warn) of a tachyon listener of -inbound, on stderr: why it refuses or drops connections")
	inboundMinFree = flag.Int("inbound-min-free", 2048, "stop -inbound, killing its children, once the machine's available memory falls below `MiB`")
	inboundAllIfs  = flag.Bool("inbound-node-listen", false, "listeners of -inbound listen as a default node does: tachyon on `tachyon node`'s ten default addresses, go-libp2p on libp2p.DefaultListenAddrs (every transport, 0.0.0.0 and ::, port 0); clients dial the 127.0.0.1 address of the stack")

	inboundListen = flag.String("inbound-listen", "", "internal: listen as `impl/sec`, print the address and obey commands on stdin")
	inboundMax    = flag.Int("inbound-max", 0, "internal: connections the -inbound-listen listener must admit")
	inboundDial   = flag.String("inbound-dial", "", "internal: connect -inbound-conns go-libp2p hosts over `sec` to -wan-peer once told to")
	inboundConns  = flag.Int("inbound-conns", 0, "internal: connections of -inbound-dial")
)

// inboundTimeout bounds one listener's whole measurement, and
// inboundStepTimeout the listener's wait for one step's connections.
const (
	inboundTimeout     = 15 * time.Minute
	inboundStepTimeout = 5 * time.Minute
)

// inboundResult is what one listener spent on its inbound connections.
type inboundResult struct {
	conns      int
	rss        float64       // VmRSS bytes per connection (after GC in the listener)
	heap       float64       // HeapInuse bytes per connection
	stack      float64       // StackInuse bytes per connection
	goroutines float64       // per connection
	acceptCPU  time.Duration // listener CPU per connection, first dial to all identified
	idleCPU    float64       // listener CPU µs per second per connection while idle
	accept     time.Duration // wall time, first dial to all identified
	load       string        // 1-minute load average at the start
	redials    int           // connections lost before identify and dialled again
	steps      []inboundSample
	failed     string // why the measurement stopped early, if it did
}

// inboundChild runs the hidden listener and client modes; ok is false if
// neither was asked for.
func inboundChild() (code int, ok bool) {
	var err error
	switch {
	case *inboundListen != "":
		err = inboundListenMain(*inboundListen, *inboundMax)
	case *inboundDial != "":
		err = inboundDialMain(*inboundDial, *wanPeer, *inboundConns)
	default:
		return 0, false
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "p2pbench inbound child:", err)
		return 1, true
	}
	return 0, true
}

// raiseNoFile lifts the soft open-file limit to the hard one (Go does this
// at start-up too; explicit, since 10 000 sockets depend on it).
func raiseNoFile() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

// nodeListenAddrs are `tachyon node`'s default listen addresses (see
// cmd/tachyon/node.go) on port 0, for -inbound-node-listen.
var nodeListenAddrs = []string{
	"/ip4/0.0.0.0/tcp/0", "/ip6/::/tcp/0",
	"/ip4/0.0.0.0/tcp/0/ws", "/ip6/::/tcp/0/ws",
	"/ip4/0.0.0.0/udp/0/quic-v1", "/ip6/::/udp/0/quic-v1",
	"/ip4/0.0.0.0/udp/0/quic-v1/webtransport", "/ip6/::/udp/0/quic-v1/webtransport",
	"/ip4/0.0.0.0/udp/0/webrtc-direct", "/ip6/::/udp/0/webrtc-direct",
}

// inboundListenAddr is the listen address of stack sec and the suffix that
// picks it out of a tachyon host's addresses.
func inboundListenAddr(sec string) (addr, suffix string, err error) {
	switch sec {
	case secTLS, secNoise:
		return loopbackListen, "/tcp/", nil
	case secQUIC:
		return loopbackListenQUIC, "/quic-v1", nil
	}
	return "", "", fmt.Errorf("inbound: unknown stack %q (want %s, %s or %s)", sec, secTLS, secNoise, secQUIC)
}

// newInboundListener builds the listener of impl: tachyon with the
// defaults of `tachyon node` (every security protocol, identify, ping,
// AutoNAT server, relay client, hole punching, limits), go-libp2p with
// libp2p.New's defaults. Both listen on sec's address only, and neither
// has a connection manager, which would trim the idle connections past
// its high watermark (192 in both). go-libp2p's resource manager gets
// infinite limits (its autoscaled default admits 256 inbound connections
// on this machine); tachyon's limits are raised only beyond their
// defaults (2304 inbound).
func newInboundListener(impl, sec string, maxConns int) (endpoint, error) {
	addr, suffix, err := inboundListenAddr(sec)
	if err != nil {
		return nil, err
	}
	switch impl {
	case implTachyon:
		listen := []string{addr}
		if *inboundAllIfs {
			listen = nodeListenAddrs
		}
		opts := []tachyon.Option{tachyon.ListenAddrStrings(listen...), tachyon.NoConnManager()}
		if *inboundLog != "" {
			var level slog.Level
			if err := level.UnmarshalText([]byte(*inboundLog)); err != nil {
				return nil, fmt.Errorf("inbound log level: %w", err)
			}
			opts = append(opts, tachyon.Logger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))))
		}
		if maxConns > 2000 {
			opts = append(opts, tachyon.Limits(limits.Config{Conns: 2 * maxConns, ConnsInbound: 2 * maxConns}))
		}
		h, err := tachyon.New(opts...)
		if err != nil {
			return nil, fmt.Errorf("tachyon listener: %w", err)
		}
		return &tachyonHost{h: h, suffix: suffix}, nil
	case implFloor:
		return newFloor(sec, true)
	case implGo:
		rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.InfiniteLimits))
		if err != nil {
			return nil, fmt.Errorf("go-libp2p resource manager: %w", err)
		}
		listen := libp2p.ListenAddrStrings(addr)
		if *inboundAllIfs {
			listen = libp2p.DefaultListenAddrs
		}
		h, err := libp2p.New(listen, libp2p.ResourceManager(rm), libp2p.ConnectionManager(gconnmgr.NullConnMgr{}))
		if err != nil {
			return nil, fmt.Errorf("go-libp2p listener: %w", err)
		}
		return &goHost{h}, nil
	}
	return nil, fmt.Errorf("inbound: unknown implementation %q", impl)
}

// identifiedConns counts the connections whose peer has finished identify.
func (t *tachyonHost) identifiedConns() int {
	n := 0
	for _, c := range t.h.Network().Conns() {
		if agent, _ := t.h.Peerstore().Agent(c.RemotePeer()); agent != "" {
			n++
		}
	}
	return n
}

func (g *goHost) identifiedConns() int {
	n := 0
	for _, c := range g.h.Network().Conns() {
		if v, err := g.h.Peerstore().Get(c.RemotePeer(), "AgentVersion"); err == nil && v != nil {
			n++
		}
	}
	return n
}

// inboundListenMain serves one listener: it prints its address as JSON,
// then answers one line per command line on stdin until stdin closes:
//
//	gc               collect, return free memory to the OS; reply "goroutines heapInuse stackInuse"
//	wait N           reply "ok" once N connections are up and identified (at most inboundStepTimeout)
//	cpu-start PATH   start the CPU profiler into PATH; cpu-stop stops it
//	heap PATH        write a heap profile of live objects (after gc)
//	goroutine PATH   write a goroutine profile
//	stacks PATH      write the goroutines' stacks as text, alike ones counted once
func inboundListenMain(stack string, maxConns int) error {
	raiseNoFile()
	if *inboundProfile != "" {
		// Finer heap samples: the default (512 KiB) leaves a few hundred
		// samples for 1000 connections. Costs some accept CPU.
		runtime.MemProfileRate = 4096
	}
	impl, sec, _ := strings.Cut(stack, "/")
	h, err := newInboundListener(impl, sec, maxConns)
	if err != nil {
		return err
	}
	defer h.close()
	counter, ok := h.(interface{ identifiedConns() int })
	if !ok {
		return fmt.Errorf("inbound: %s cannot count identified connections", impl)
	}
	r := h.ref()
	a := wanAddr{ID: r.id}
	for _, m := range r.addrs {
		// Listening on every interface, it has addresses off loopback,
		// where the clients must not go.
		if s := m.String(); !*inboundAllIfs || strings.HasPrefix(s, "/ip4/127.0.0.1/") {
			a.Addrs = append(a.Addrs, s)
		}
	}
	b, _ := json.Marshal(a)
	fmt.Printf("%s\n", b)
	var cpuOut *os.File
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		var reply string
		var err error
		switch cmd {
		case "gc":
			runtime.GC()
			debug.FreeOSMemory()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			reply = fmt.Sprintf("%d %d %d", runtime.NumGoroutine(), ms.HeapInuse, ms.StackInuse)
		case "wait":
			n, _ := strconv.Atoi(arg)
			deadline := time.Now().Add(inboundStepTimeout)
			// Connections first (cheap), identify only at the tail.
			for h.numConns() < n || counter.identifiedConns() < n {
				if time.Now().After(deadline) {
					err = fmt.Errorf("%d of %d connections identified after %v", counter.identifiedConns(), n, inboundStepTimeout)
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			reply = "ok"
		case "cpu-start":
			if cpuOut, err = os.Create(arg); err == nil {
				err = pprof.StartCPUProfile(cpuOut)
			}
			reply = "ok"
		case "cpu-stop":
			pprof.StopCPUProfile()
			if cpuOut != nil {
				err = cpuOut.Close()
			}
			reply = "ok"
		case "heap":
			err, reply = writeHeapProfile(arg), "ok"
		case "goroutine":
			err, reply = writeProfile("goroutine", arg), "ok"
		case "stacks":
			err, reply = writeStacks(arg), "ok"
		default:
			err = fmt.Errorf("unknown command %q", cmd)
		}
		if err != nil {
			reply = "ERR " + err.Error()
		}
		fmt.Println(reply)
	}
	return in.Err()
}

func writeStacks(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("stacks: %w", err)
	}
	if err := pprof.Lookup("goroutine").WriteTo(f, 1); err != nil {
		f.Close()
		return fmt.Errorf("stacks: %w", err)
	}
	return f.Close()
}

func writeProfile(name, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("%s profile: %w", name, err)
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("%s profile: %w", name, err)
	}
	return f.Close()
}

// inboundDialMain builds n go-libp2p client hosts, prints READY, and then
// obeys one command a line on stdin until stdin closes:
//
//	GO M    connect the next M hosts (all that are left without M) to peer,
//	        wait until each has identified it, reply "DONE redials"
//
// It holds the connections until stdin closes.
func inboundDialMain(sec, peer string, n int) error {
	raiseNoFile()
	ref, err := parseWanAddr(peer)
	if err != nil {
		return err
	}
	hosts := make([]endpoint, 0, n)
	defer func() {
		var wg sync.WaitGroup
		for _, h := range hosts {
			wg.Go(func() { h.close() })
		}
		wg.Wait()
	}()
	for range n {
		var h endpoint
		var err error
		if fsec, ok := strings.CutPrefix(sec, floorPrefix); ok {
			h, err = newFloor(fsec, false)
		} else {
			h, err = newInboundClient(sec)
		}
		if err != nil {
			return err
		}
		hosts = append(hosts, h)
	}
	fmt.Println("READY")
	ctx, cancel := context.WithTimeout(context.Background(), inboundTimeout)
	defer cancel()
	in := bufio.NewScanner(os.Stdin)
	next := 0
	for in.Scan() {
		cmd, arg, _ := strings.Cut(strings.TrimSpace(in.Text()), " ")
		if cmd != "GO" {
			return fmt.Errorf("unknown command %q", in.Text())
		}
		m := len(hosts) - next
		if arg != "" {
			if m, err = strconv.Atoi(arg); err != nil || m < 0 || next+m > len(hosts) {
				return fmt.Errorf("GO %q: want a count up to the %d hosts left", arg, len(hosts)-next)
			}
		}
		redials, err := dialIdentified(ctx, hosts[next:next+m], ref)
		if err != nil {
			return err
		}
		next += m
		fmt.Println("DONE", redials)
	}
	return in.Err()
}

// dialIdentified connects hosts to ref and waits until each has
// identified it. A connection lost before identify finished (seen with
// go-libp2p over QUIC at 1000 connections) is dialled again, and counted.
func dialIdentified(ctx context.Context, hosts []endpoint, ref peerRef) (redials int, err error) {
	if err := connectAll(ctx, hosts, ref); err != nil {
		return 0, err
	}
	for _, h := range hosts {
		deadline := time.Now().Add(30 * time.Second)
		for !h.identified(ref) {
			switch {
			case time.Now().After(deadline):
				return redials, fmt.Errorf("identify with the listener unfinished after 30 s (%d connections)", h.numConns())
			case h.numConns() == 0:
				redials++
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				err := h.connect(cctx, ref)
				cancel()
				if err != nil {
					return redials, fmt.Errorf("redial: %w", err)
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return redials, nil
}

func parseWanAddr(s string) (peerRef, error) {
	var a wanAddr
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		return peerRef{}, fmt.Errorf("peer address %q: %w", s, err)
	}
	ref := peerRef{id: a.ID}
	for _, s := range a.Addrs {
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			return peerRef{}, fmt.Errorf("peer address %q: %w", s, err)
		}
		ref.addrs = append(ref.addrs, m)
	}
	return ref, nil
}

// child is a p2pbench child process spoken to in lines.
type child struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func startChild(ctx context.Context, args ...string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %v: %w", args, err)
	}
	return &child{cmd: cmd, in: in, out: bufio.NewReader(out)}, nil
}

// line reads the child's next line; the context of startChild bounds it
// (a killed child closes its stdout).
func (c *child) line() (string, error) {
	s, err := c.out.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("child %s: %w", c.cmd.Args[1:3], err)
	}
	s = strings.TrimSpace(s)
	if e, ok := strings.CutPrefix(s, "ERR "); ok {
		return "", fmt.Errorf("child %s: %s", c.cmd.Args[1:3], e)
	}
	return s, nil
}

func (c *child) ask(cmd string) (string, error) {
	if _, err := fmt.Fprintln(c.in, cmd); err != nil {
		return "", fmt.Errorf("child %s: %w", c.cmd.Args[1:3], err)
	}
	return c.line()
}

// stop closes the child's stdin, which ends it, and reaps it.
func (c *child) stop() {
	c.in.Close()
	c.cmd.Wait()
}

// procUsage is a process's VmRSS in bytes and user plus system CPU time.
func procUsage(pid int) (rss uint64, cpu time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	if rss, err = parseVmRSS(string(b)); err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/status: %w", pid, err)
	}
	b, err = os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	if cpu, err = parseStatCPU(string(b)); err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return rss, cpu, nil
}

// parseVmRSS reads VmRSS, in bytes, from /proc/PID/status's text.
func parseVmRSS(status string) (uint64, error) {
	for line := range strings.Lines(status) {
		v, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("VmRSS line %q", strings.TrimSpace(line))
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmRSS: %w", err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("no VmRSS")
}

// parseStatCPU reads utime plus stime from /proc/PID/stat's text.
func parseStatCPU(stat string) (time.Duration, error) {
	// The command name may hold spaces and parentheses: fields start
	// after its last ')'.
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("no command name")
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields", len(f))
	}
	ut, err := strconv.ParseUint(f[11], 10, 64) // field 14, utime
	if err != nil {
		return 0, fmt.Errorf("utime: %w", err)
	}
	st, err := strconv.ParseUint(f[12], 10, 64) // field 15, stime
	if err != nil {
		return 0, fmt.Errorf("stime: %w", err)
	}
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / clkTck, nil
}

// gcStats asks the listener to collect and returns its goroutines, heap
// and stack in use.
func gcStats(l *child) (g, heap, stack float64, err error) {
	s, err := l.ask("gc")
	if err != nil {
		return 0, 0, 0, err
	}
	if _, err := fmt.Sscan(s, &g, &heap, &stack); err != nil {
		return 0, 0, 0, fmt.Errorf("listener gc reply %q: %w", s, err)
	}
	return g, heap, stack, nil
}

// sampleListener collects in the listener and reads its figures at
// conns connections.
func sampleListener(l *child, conns int) (inboundSample, error) {
	g, heap, stack, err := gcStats(l)
	if err != nil {
		return inboundSample{}, err
	}
	rss, _, err := procUsage(l.cmd.Process.Pid)
	if err != nil {
		return inboundSample{}, err
	}
	return inboundSample{conns: conns, rss: float64(rss), heap: heap, stack: stack, goroutines: g}, nil
}

// measureInbound measures one listener of impl on sec, its connections
// added in steps (ascending, from 0; the last is the total) by k client
// processes. The listener is sampled at each step once every connection
// of it is identified; idle CPU is measured at the last.
func measureInbound(ctx context.Context, impl, sec string, steps []int, k int, idle time.Duration, profDir string) (inboundResult, error) {
	ctx, cancel := context.WithTimeout(ctx, inboundTimeout)
	defer cancel()
	n := steps[len(steps)-1]
	res := inboundResult{conns: n, load: loadAvg()}
	args := []string{"-inbound-listen", impl + "/" + sec, "-inbound-max", strconv.Itoa(n)}
	if *inboundAllIfs {
		args = append(args, "-inbound-node-listen")
	}
	if *inboundLog != "" {
		args = append(args, "-inbound-log", *inboundLog)
	}
	if profDir != "" {
		args = append(args, "-inbound-profile", profDir)
	}
	l, err := startChild(ctx, args...)
	if err != nil {
		return res, err
	}
	defer l.stop()
	addr, err := l.line()
	if err != nil {
		return res, err
	}
	pid := l.cmd.Process.Pid
	var clients []*child
	defer func() {
		for _, c := range clients {
			c.stop()
		}
	}()
	clientSec := sec
	if impl == implFloor {
		clientSec = floorPrefix + sec
	}
	for i := range k {
		c, err := startChild(ctx, "-inbound-dial", clientSec, "-wan-peer", addr, "-inbound-conns", strconv.Itoa(clientShare(n, k, i)))
		if err != nil {
			return res, err
		}
		clients = append(clients, c)
	}
	for _, c := range clients {
		if _, err := c.line(); err != nil { // READY
			return res, err
		}
	}
	time.Sleep(settle)
	s0, err := sampleListener(l, 0)
	if err != nil {
		return res, err
	}
	res.steps = append(res.steps, s0)
	name := func(kind string) string {
		return filepath.Join(profDir, fmt.Sprintf("inbound-%s-%s-%d.%s.pprof", impl, sec, n, kind))
	}
	if profDir != "" {
		if _, err := l.ask("cpu-start " + name("cpu")); err != nil {
			return res, err
		}
	}

	// Each step: every client dials its share of the new connections at
	// once; the clock and the listener's CPU run from the first dial until
	// the listener has identified them all.
	var acceptCPU time.Duration
	for si, target := range steps[1:] {
		prev := steps[si]
		// The samples so far stay in res: a listener that fails a step
		// still has its staircase up to there.
		stepErr := func(err error) error {
			err = fmt.Errorf("going from %d to %d connections: %w", prev, target, err)
			// Where the listener stands, for whoever looks into it.
			path := filepath.Join(os.TempDir(), fmt.Sprintf("p2pbench-inbound-%s-%s-stacks.txt", impl, sec))
			if _, serr := l.ask("stacks " + path); serr == nil {
				err = fmt.Errorf("%w (the listener's goroutines: %s)", err, path)
			}
			return err
		}
		_, cpu0, err := procUsage(pid)
		if err != nil {
			return res, stepErr(err)
		}
		t0 := time.Now()
		for i, c := range clients {
			if _, err := fmt.Fprintf(c.in, "GO %d\n", clientShare(target, k, i)-clientShare(prev, k, i)); err != nil {
				return res, stepErr(fmt.Errorf("start clients: %w", err))
			}
		}
		for _, c := range clients {
			s, err := c.line() // DONE redials
			if err != nil {
				return res, stepErr(err)
			}
			var r int
			fmt.Sscanf(s, "DONE %d", &r)
			res.redials += r
		}
		if _, err := l.ask("wait " + strconv.Itoa(target)); err != nil {
			return res, stepErr(err)
		}
		res.accept += time.Since(t0)
		_, cpu1, err := procUsage(pid)
		if err != nil {
			return res, stepErr(err)
		}
		acceptCPU += cpu1 - cpu0
		if target == n {
			break
		}
		time.Sleep(settle)
		s, err := sampleListener(l, target)
		if err != nil {
			return res, stepErr(err)
		}
		res.steps = append(res.steps, s)
		logf("inbound: %s/%s at %d: %.1f MiB RSS, %.1f MiB heap (available memory %s)", impl, sec, target, s.rss/(1<<20), s.heap/(1<<20), availMiB())
	}
	res.acceptCPU = acceptCPU / time.Duration(n)
	if profDir != "" {
		if _, err := l.ask("cpu-stop"); err != nil {
			return res, err
		}
	}

	// Idle: after the first identify pushes and timers have settled.
	time.Sleep(2 * settle)
	if profDir != "" {
		if _, err := l.ask("cpu-start " + name("idle-cpu")); err != nil {
			return res, err
		}
	}
	_, cpu2, err := procUsage(pid)
	if err != nil {
		return res, err
	}
	select {
	case <-time.After(idle):
	case <-ctx.Done():
		return res, context.Cause(ctx)
	}
	_, cpu3, err := procUsage(pid)
	if err != nil {
		return res, err
	}
	if profDir != "" {
		if _, err := l.ask("cpu-stop"); err != nil {
			return res, err
		}
	}
	res.idleCPU = float64((cpu3-cpu2)/time.Microsecond) / idle.Seconds() / float64(n)

	s1, err := sampleListener(l, n)
	if err != nil {
		return res, err
	}
	res.steps = append(res.steps, s1)
	logf("inbound: %s/%s at %d: %.1f MiB RSS, %.1f MiB heap (available memory %s)", impl, sec, n, s1.rss/(1<<20), s1.heap/(1<<20), availMiB())
	if profDir != "" {
		for _, kind := range []string{"heap", "goroutine"} {
			if _, err := l.ask(kind + " " + name(kind)); err != nil {
				return res, err
			}
		}
	}
	per := float64(n)
	res.rss = (s1.rss - s0.rss) / per
	res.heap = (s1.heap - s0.heap) / per
	res.stack = (s1.stack - s0.stack) / per
	res.goroutines = (s1.goroutines - s0.goroutines) / per
	return res, nil
}

// availMiB is the machine's available memory for the log, or "?".
func availMiB() string {
	a, err := memAvailable()
	if err != nil {
		return "?"
	}
	return fmt.Sprintf("%d MiB", a>>20)
}

type inboundKey struct{ impl, sec string }

// runInbound measures every stack of -inbound-stacks, both listeners in
// turns, prints the tables and draws the chart.
func runInbound(ctx context.Context) error {
	n := *inboundN
	k := inboundClientCount(*inboundClients, n)
	steps, err := parseSteps(*inboundSteps, n)
	if err != nil {
		return err
	}
	if err := checkNoFile(n); err != nil {
		return err
	}
	if *inboundProfile != "" {
		if err := os.MkdirAll(*inboundProfile, 0o755); err != nil {
			return fmt.Errorf("profile dir: %w", err)
		}
	}
	var stacks []string
	for s := range strings.SplitSeq(*inboundStacks, ",") {
		s = strings.TrimSpace(s)
		if _, _, err := inboundListenAddr(s); err != nil {
			return err
		}
		stacks = append(stacks, s)
	}
	ctx, stop := watchMemory(ctx, uint64(*inboundMinFree)<<20)
	defer stop()
	listeners := strings.Split(*inboundImpls, ",")
	out := make(map[inboundKey][]inboundResult)
	for round := range max(1, *inboundRounds) {
		for _, sec := range stacks {
			for _, impl := range listeners {
				logf("inbound: round %d, %s/%s x %d in steps %v from %d processes (load %s, available memory %s)", round+1, impl, sec, n, steps[1:], k, loadAvg(), availMiB())
				prof := ""
				if round == 0 {
					prof = *inboundProfile
				}
				r, err := measureInbound(ctx, impl, sec, steps, k, *inboundIdle, prof)
				if cause := context.Cause(ctx); cause != nil {
					// Out of memory: what was measured so far is still
					// worth a table.
					if len(out) > 0 {
						fmt.Print(inboundMarkdown(stacks, out, k, *inboundIdle))
						fmt.Print(stepsMarkdown(stacks, out))
					}
					return fmt.Errorf("inbound %s/%s: %w", impl, sec, cause)
				}
				if err != nil {
					// One listener failing is a result: its staircase up
					// to there and why, and the others still run.
					logf("inbound: %s/%s FAILED: %v", impl, sec, err)
					r.failed = err.Error()
					out[inboundKey{impl, sec}] = append(out[inboundKey{impl, sec}], r)
					time.Sleep(settle)
					continue
				}
				logf("inbound: %s/%s: %.1f KiB RSS, %.1f KiB heap, %.2f goroutines, %s ms accept CPU, %.1f µs/s idle CPU per conn; all in %v, %d redials",
					impl, sec, r.rss/1024, r.heap/1024, r.goroutines, ms(r.acceptCPU), r.idleCPU, r.accept.Round(time.Millisecond), r.redials)
				out[inboundKey{impl, sec}] = append(out[inboundKey{impl, sec}], r)
				time.Sleep(settle)
			}
		}
	}
	fmt.Print(inboundMarkdown(stacks, out, k, *inboundIdle))
	if len(steps) > 2 {
		fmt.Print(stepsMarkdown(stacks, out))
	}
	if *inboundChart != "" {
		if err := os.MkdirAll(filepath.Dir(*inboundChart), 0o755); err != nil {
			return fmt.Errorf("chart dir: %w", err)
		}
		title := "Listener RSS against idle inbound connections (go-libp2p v0.51 clients)"
		if r := *inboundRounds; r > 1 {
			title += fmt.Sprintf(", median of %d rounds", r)
		}
		if err := drawLines(*inboundChart, title, "connections", "RSS MiB", chartPanels(stacks, out)); err != nil {
			return err
		}
	}
	return nil
}

// inboundMedian is the median of each figure over the rounds.
func inboundMedian(rs []inboundResult) inboundResult {
	med := func(f func(inboundResult) float64) float64 { return medianBy(rs, f) }
	loads := make([]string, len(rs))
	for i, r := range rs {
		loads[i] = r.load
	}
	return inboundResult{
		conns:      rs[0].conns,
		rss:        med(func(r inboundResult) float64 { return r.rss }),
		heap:       med(func(r inboundResult) float64 { return r.heap }),
		stack:      med(func(r inboundResult) float64 { return r.stack }),
		goroutines: med(func(r inboundResult) float64 { return r.goroutines }),
		acceptCPU:  time.Duration(med(func(r inboundResult) float64 { return float64(r.acceptCPU) })),
		idleCPU:    med(func(r inboundResult) float64 { return r.idleCPU }),
		accept:     time.Duration(med(func(r inboundResult) float64 { return float64(r.accept) })),
		load:       strings.Join(slices.Compact(loads), "; "),
		redials:    int(med(func(r inboundResult) float64 { return float64(r.redials) })),
		steps:      medianSteps(stepsOf(rs)),
	}
}

func inboundMarkdown(stacks []string, out map[inboundKey][]inboundResult, clients int, idle time.Duration) string {
	var b strings.Builder
	rounds, n := 0, 0
	floor := false
	for k, rs := range out {
		rounds, n = len(rs), rs[0].conns
		floor = floor || k.impl == implFloor
	}
	who := "go-libp2p v0.51 client processes"
	if floor {
		who += " (the floor's: bare clients of its own kind)"
	}
	fmt.Fprintf(&b, "Listener side, %d idle inbound connections from %d %s, idle CPU over %v, median of %d round(s); per connection unless noted.\n\n",
		n, clients, who, idle, rounds)
	if *inboundAllIfs {
		b.WriteString("The listeners listen as default nodes do (-inbound-node-listen): tachyon on `tachyon node`'s ten default addresses, go-libp2p on libp2p.DefaultListenAddrs, all interfaces.\n\n")
	}
	b.WriteString("| stack | listener | RSS KiB | heap KiB | stack KiB | goroutines | accept CPU ms | idle CPU µs/s | accept all s | load avg |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	var notes []string
	// row writes impl's median row (or a failed row) and returns the
	// median, ok false when no round succeeded.
	row := func(sec, impl string) (inboundResult, bool) {
		ok, failed := splitFailed(out[inboundKey{impl, sec}])
		for _, f := range failed {
			notes = append(notes, fmt.Sprintf("%s/%s failed (load %s): %s", impl, sec, f.load, f.failed))
		}
		if len(ok) == 0 {
			if len(failed) > 0 {
				fmt.Fprintf(&b, "| %s | %s | failed |%s %s |\n", sec, impl, strings.Repeat(" – |", 6), failed[0].load)
			}
			return inboundResult{}, false
		}
		r := inboundMedian(ok)
		fmt.Fprintf(&b, "| %s | %s | %.1f | %.1f | %.1f | %.2f | %s | %.1f | %.2f | %s |\n",
			sec, impl, r.rss/1024, r.heap/1024, r.stack/1024, r.goroutines, ms(r.acceptCPU), r.idleCPU, r.accept.Seconds(), r.load)
		return r, true
	}
	ratioRow := func(sec, name string, a, g inboundResult) {
		fmt.Fprintf(&b, "| %s | %s / go-libp2p | %s | %s | %s | %s | %s | %s | %s | |\n", sec, name,
			ratio(a.rss, g.rss), ratio(a.heap, g.heap), ratio(a.stack, g.stack), ratio(a.goroutines, g.goroutines),
			ratio(float64(a.acceptCPU), float64(g.acceptCPU)), ratio(a.idleCPU, g.idleCPU), ratio(a.accept.Seconds(), g.accept.Seconds()))
	}
	for _, sec := range stacks {
		t, tok := row(sec, implTachyon)
		g, gok := row(sec, implGo)
		if tok && gok {
			ratioRow(sec, implTachyon, t, g)
		}
		// The floor (the secure channel alone, with its own bare clients):
		// what any listener holds and spends, as a share of go-libp2p's.
		if f, fok := row(sec, implFloor); fok && gok {
			ratioRow(sec, implFloor, f, g)
		}
	}
	for _, note := range notes {
		fmt.Fprintf(&b, "\n- %s", note)
	}
	if len(notes) > 0 {
		b.WriteString("\n")
	}
	return b.String()
}
