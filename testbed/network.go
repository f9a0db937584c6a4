package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Network is a set of namespaces, links and emulators. Close removes all of
// them; a Network is not usable after Close.
type Network struct {
	prefix string // tb<pid>-<seq>-
	core   *netns

	// ctx is cancelled by Close; it bounds Host.Command processes.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	closed bool
	nss    []*netns // in creation order
	names  map[string]bool
	links  []*Link
	nextK  int

	public bool // links to the core get public addresses
}

// netns is one named network namespace and an open handle to it.
type netns struct {
	name string
	fd   int
	// The only default routes CheckSealed allows: via gw4 and gw6 on
	// interface gwIf (none if invalid).
	gw4, gw6 netip.Addr
	gwIf     string
}

// Option configures a Network.
type Option func(*Network)

// PublicAddresses gives every link attached to the core (public hosts and
// the outside links of NATs) addresses that libp2p implementations consider
// public: link k gets 11.k.0.0/24 and 2a0c:k::/64 instead of 10.k.0.0/24
// and fd00:k::/64. Links behind NATs keep private addresses, except routed
// IPv6 (see RoutedIPv6). Neither range is special-purpose, so they would be
// routable on the Internet: New, AddHost and AddNAT check with CheckSealed
// that nothing leads out of the testbed before assigning one.
func PublicAddresses() Option { return func(n *Network) { n.public = true } }

var seq atomic.Int64

// validName keeps names usable inside namespace and interface names.
var validName = regexp.MustCompile(`^[a-z0-9]{1,16}$`)

// New creates an empty network: just the core router namespace. It first
// removes namespaces left behind by dead processes (see Sweep).
func New(opts ...Option) (*Network, error) {
	if err := checkEnv("ip", "ethtool"); err != nil {
		return nil, err
	}
	_ = Sweep() // best effort: stale namespaces only cost memory
	ctx, cancel := context.WithCancel(context.Background())
	n := &Network{
		prefix: fmt.Sprintf("tb%d-%d-", os.Getpid(), seq.Add(1)),
		ctx:    ctx,
		cancel: cancel,
		names:  map[string]bool{},
	}
	for _, o := range opts {
		o(n)
	}
	register(n)
	core, err := n.newNS("core", nsRouter, netns{})
	if err != nil {
		n.Close()
		return nil, fmt.Errorf("testbed: creating core router: %w", err)
	}
	n.core = core
	if n.public {
		if err := n.CheckSealed(); err != nil {
			n.Close()
			return nil, err
		}
	}
	return n, nil
}

// Prefix is the prefix of every namespace name of this network.
func (n *Network) Prefix() string { return n.prefix }

// Close stops every emulator, kills the processes left in the namespaces and
// deletes the namespaces (which removes their links). It is idempotent.
func (n *Network) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	links, nss := n.links, n.nss
	n.mu.Unlock()

	n.cancel()
	var errs []error
	for _, l := range links {
		l.stop()
	}
	for i := len(nss) - 1; i >= 0; i-- {
		if err := removeNS(nss[i].name); err != nil {
			errs = append(errs, err)
		}
		unix.Close(nss[i].fd)
	}
	unregister(n)
	return errors.Join(errs...)
}

type nsKind int

const (
	nsHost nsKind = iota
	nsRouter
	nsLink
)

// newNS creates namespace prefix+name and applies the sysctls of its kind.
// The default routes it will have are those of gw.
func (n *Network) newNS(name string, kind nsKind, gw netns) (*netns, error) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, errors.New("testbed: network is closed")
	}
	n.mu.Unlock()
	full := n.prefix + name
	if err := ipCmd("netns", "add", full); err != nil {
		return nil, err
	}
	fd, err := unix.Open("/run/netns/"+full, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = removeNS(full)
		return nil, fmt.Errorf("testbed: opening namespace %s: %w", full, err)
	}
	ns := &netns{name: full, fd: fd, gw4: gw.gw4, gw6: gw.gw6, gwIf: gw.gwIf}
	n.mu.Lock()
	n.nss = append(n.nss, ns)
	n.mu.Unlock()

	sysctls := [][2]string{
		// Addresses must be usable at once, not tentative for a second.
		{"net/ipv6/conf/all/accept_dad", "0"},
		{"net/ipv6/conf/default/accept_dad", "0"},
		// Room for the bandwidth-delay product of 1 Gbit/s x 200 ms.
		{"net/ipv4/tcp_rmem", "4096 131072 67108864"},
		{"net/ipv4/tcp_wmem", "4096 16384 67108864"},
	}
	switch kind {
	case nsRouter:
		sysctls = append(sysctls,
			[2]string{"net/ipv4/ip_forward", "1"},
			[2]string{"net/ipv6/conf/all/forwarding", "1"})
	case nsLink:
		// The emulator's own interfaces must stay silent.
		sysctls = append(sysctls,
			[2]string{"net/ipv6/conf/all/disable_ipv6", "1"},
			[2]string{"net/ipv6/conf/default/disable_ipv6", "1"})
	}
	err = runIn(ns.fd, func() error {
		for _, s := range sysctls {
			if err := os.WriteFile("/proc/sys/"+s[0], []byte(s[1]), 0); err != nil {
				return fmt.Errorf("setting %s: %w", s[0], err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("testbed: configuring namespace %s: %w", full, err)
	}
	if err := ipCmd("-n", full, "link", "set", "lo", "up"); err != nil {
		return nil, err
	}
	return ns, nil
}

func (n *Network) reserve(name string) (int, error) {
	if !validName.MatchString(name) {
		return 0, fmt.Errorf("testbed: bad name %q: want 1-16 of [a-z0-9]", name)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return 0, errors.New("testbed: network is closed")
	}
	if n.names[name] {
		return 0, fmt.Errorf("testbed: name %q already used", name)
	}
	if n.nextK >= 250 {
		return 0, errors.New("testbed: too many links (max 250)")
	}
	n.names[name] = true
	n.nextK++
	return n.nextK, nil
}

// attach creates node namespace nsName of the given kind and links it to up
// over link number k. The node's interface is called downIf. The link's
// IPv4 and IPv6 addresses are public if pub4 and pub6 say so.
func (n *Network) attach(up *netns, k int, nsName string, kind nsKind, downIf string, cfg LinkConfig, pub4, pub6 bool) (*netns, *Link, error) {
	if err := cfg.validate(); err != nil {
		return nil, nil, err
	}
	l := &Link{k: k}
	l.up4, l.up6 = addr4(k, 1, pub4), addr6(k, 1, pub6)
	l.down4, l.down6 = addr4(k, 2, pub4), addr6(k, 2, pub6)
	down, err := n.newNS(nsName, kind, netns{gw4: l.up4, gw6: l.up6, gwIf: downIf})
	if err != nil {
		return nil, nil, err
	}
	upIf := "l" + strconv.Itoa(k)
	l.cfg.Store(&cfg)
	n.mu.Lock()
	n.links = append(n.links, l)
	n.mu.Unlock()

	type ifc struct{ ns, name string }
	var all []ifc
	if !cfg.emulated() {
		if err := ipCmd("-n", up.name, "link", "add", upIf, "type", "veth", "peer", "name", downIf, "netns", down.name); err != nil {
			return nil, nil, err
		}
		all = []ifc{{up.name, upIf}, {down.name, downIf}}
	} else {
		lns, err := n.newNS("l"+strconv.Itoa(k), nsLink, netns{})
		if err != nil {
			return nil, nil, err
		}
		l.ns = lns
		if err := ipCmd("-n", lns.name, "link", "add", "name", "em-up", "type", "veth", "peer", "name", upIf, "netns", up.name); err != nil {
			return nil, nil, err
		}
		if err := ipCmd("-n", lns.name, "link", "add", "name", "em-down", "type", "veth", "peer", "name", downIf, "netns", down.name); err != nil {
			return nil, nil, err
		}
		all = []ifc{{up.name, upIf}, {down.name, downIf}, {lns.name, "em-up"}, {lns.name, "em-down"}}
		for _, i := range all {
			// Without this the emulator sees 64 KiB GSO frames and frames
			// with checksums left to hardware that does not exist.
			if err := run("ip", "netns", "exec", i.ns, "ethtool", "-K", i.name,
				"tx", "off", "rx", "off", "sg", "off", "tso", "off", "gso", "off", "gro", "off"); err != nil {
				return nil, nil, err
			}
		}
	}
	for _, i := range all {
		if err := ipCmd("-n", i.ns, "link", "set", i.name, "mtu", strconv.Itoa(cfg.mtu()), "up"); err != nil {
			return nil, nil, err
		}
	}
	if pub4 || pub6 {
		// Checked once the link exists, before any address is on it.
		if err := n.CheckSealed(); err != nil {
			return nil, nil, err
		}
	}
	for _, c := range [][]string{
		{"-n", up.name, "addr", "add", l.up4.String() + "/24", "dev", upIf},
		{"-n", up.name, "-6", "addr", "add", l.up6.String() + "/64", "dev", upIf, "nodad"},
		{"-n", down.name, "addr", "add", l.down4.String() + "/24", "dev", downIf},
		{"-n", down.name, "-6", "addr", "add", l.down6.String() + "/64", "dev", downIf, "nodad"},
		{"-n", down.name, "route", "add", "default", "via", l.up4.String()},
		{"-n", down.name, "-6", "route", "add", "default", "via", l.up6.String()},
	} {
		if err := ipCmd(c...); err != nil {
			return nil, nil, err
		}
	}
	if l.ns != nil {
		if err := l.start(); err != nil {
			return nil, nil, err
		}
	}
	return down, l, nil
}

// addr4 is address host of link k: 10.k.0.host, or 11.k.0.host if public
// (11/8 is not special-purpose, so libp2p counts it as public).
func addr4(k int, host byte, public bool) netip.Addr {
	if public {
		return netip.AddrFrom4([4]byte{11, byte(k), 0, host})
	}
	return netip.AddrFrom4([4]byte{10, byte(k), 0, host})
}

// addr6 is address host of link k: fd00:k::host (unique local), or
// 2a0c:k::host if public (global unicast, not special-purpose).
func addr6(k int, host byte, public bool) netip.Addr {
	if public {
		return netip.AddrFrom16([16]byte{0: 0x2a, 1: 0x0c, 3: byte(k), 15: host})
	}
	return netip.AddrFrom16([16]byte{0: 0xfd, 3: byte(k), 15: host})
}

// AddHost adds a public host attached to the core router over a link with
// cfg. A zero cfg makes a plain veth without emulator.
func (n *Network) AddHost(name string, cfg LinkConfig) (*Host, error) {
	k, err := n.reserve(name)
	if err != nil {
		return nil, err
	}
	ns, l, err := n.attach(n.core, k, "h-"+name, nsHost, "eth0", cfg, n.public, n.public)
	if err != nil {
		return nil, fmt.Errorf("testbed: adding host %s: %w", name, err)
	}
	return &Host{name: name, ns: ns, net: n, link: l}, nil
}

// RTT is the configured round-trip time between two hosts: twice the sum of
// the one-way delays of the links on the path (jitter and serialisation
// time are not included).
func (n *Network) RTT(a, b *Host) time.Duration {
	pa, pb := a.path(), b.path()
	if a.nat != nil && a.nat == b.nat {
		pa, pb = pa[:1], pb[:1]
	}
	var d time.Duration
	for _, l := range append(pa, pb...) {
		d += 2 * l.Config().Delay
	}
	return d
}

// RoundTrips converts the time until a first reply into round trips of a
// link with the given RTT, rounded to tenths, so tests can assert "one round
// trip" rather than milliseconds.
func RoundTrips(elapsed, rtt time.Duration) float64 {
	if rtt <= 0 {
		return 0
	}
	return float64(int64(float64(elapsed)/float64(rtt)*10+0.5)) / 10
}

// runIn runs fn on a fresh OS thread that has entered the namespace fd.
func runIn(fd int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread dies with this goroutine, so no
		// other goroutine ever runs in the foreign namespace.
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("testbed: entering namespace: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

func ipCmd(args ...string) error { return run("ip", args...) }

// run runs a setup command and returns its output in the error.
func run(name string, args ...string) error {
	return runInput(nil, name, args...)
}

func runInput(stdin []byte, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("running %s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// removeNS kills the processes in namespace name (all started by this
// package) and deletes it.
func removeNS(name string) error {
	out, _ := exec.Command("ip", "netns", "pids", name).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
	return ipCmd("netns", "del", name)
}

var staleName = regexp.MustCompile(`^tb([0-9]+)-[0-9]+-`)

// Sweep deletes the namespaces (and kills the processes in them) that a
// testbed of a process that no longer exists left behind, for example after
// a test binary was killed by a timeout.
func Sweep() error {
	entries, err := os.ReadDir("/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("testbed: listing namespaces: %w", err)
	}
	var errs []error
	for _, e := range entries {
		m := staleName.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() || unix.Kill(pid, 0) != unix.ESRCH {
			continue
		}
		if err := removeNS(e.Name()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// aptPackage says which Debian package provides a tool.
var aptPackage = map[string]string{
	"ip": "iproute2", "ethtool": "ethtool", "nft": "nftables", "tcpdump": "tcpdump",
}

// ErrNotSupported is wrapped by errors about a machine that cannot run the
// testbed: not root, or a tool missing.
var ErrNotSupported = errors.New("testbed: not supported on this machine")

func checkEnv(tools ...string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: network namespaces need root (run as root, or set TACHYON_SKIP_NETNS=1 to skip these tests)", ErrNotSupported)
	}
	var missing []string
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, aptPackage[t])
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: missing tools; apt-get install -y %s", ErrNotSupported, strings.Join(missing, " "))
	}
	return nil
}

// live tracks open networks so an interrupt (SIGINT, SIGTERM) removes them
// before the process dies. The watcher goroutine runs while any is open.
var live struct {
	sync.Mutex
	nets map[*Network]bool
	stop chan struct{}
	done chan struct{}
}

func register(n *Network) {
	live.Lock()
	defer live.Unlock()
	if live.nets == nil {
		live.nets = map[*Network]bool{}
	}
	live.nets[n] = true
	if live.stop != nil {
		return
	}
	stop, done := make(chan struct{}), make(chan struct{})
	live.stop, live.done = stop, done
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		defer close(done)
		defer signal.Stop(sigc)
		select {
		case <-stop:
		case sig := <-sigc:
			live.Lock()
			nets := live.nets
			live.nets, live.stop, live.done = nil, nil, nil
			live.Unlock()
			for n := range nets {
				n.Close()
			}
			signal.Reset(sig)
			_ = unix.Kill(os.Getpid(), sig.(syscall.Signal))
		}
	}()
}

func unregister(n *Network) {
	live.Lock()
	delete(live.nets, n)
	var stop, done chan struct{}
	if len(live.nets) == 0 && live.stop != nil {
		stop, done = live.stop, live.done
		live.stop, live.done = nil, nil
	}
	live.Unlock()
	if stop != nil {
		close(stop)
		// On the signal path Close runs on the watcher itself.
		select {
		case <-done:
		case <-time.After(time.Second):
		}
	}
}
