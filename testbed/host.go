package testbed

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"syscall"
)

// Host is a network namespace with one interface, eth0, with an IPv4 and an
// IPv6 address and default routes.
type Host struct {
	name string
	ns   *netns
	net  *Network
	link *Link
	nat  *NAT // nil for a public host
}

// Name is the name the host was added with.
func (h *Host) Name() string { return h.name }

// Namespace is the name of the host's namespace, for `ip netns exec`.
func (h *Host) Namespace() string { return h.ns.name }

// IPv4 is the host's IPv4 address. It is public under PublicAddresses
// unless the host is behind a NAT.
func (h *Host) IPv4() netip.Addr { return h.link.down4 }

// IPv6 is the host's IPv6 address. It is public under PublicAddresses
// unless the host is behind a NAT that masquerades IPv6 (see RoutedIPv6).
func (h *Host) IPv6() netip.Addr { return h.link.down6 }

// Link is the link between the host and its router.
func (h *Host) Link() *Link { return h.link }

// path lists the links from the host to the core.
func (h *Host) path() []*Link {
	if h.nat != nil {
		return []*Link{h.link, h.nat.link}
	}
	return []*Link{h.link}
}

// Run runs fn on an OS thread inside the host's namespace and returns its
// error. Sockets created by fn stay in the namespace and may be used from
// any goroutine afterwards. Goroutines that fn starts do NOT run in the
// namespace; neither should fn start processes (use Command).
func (h *Host) Run(fn func() error) error { return runIn(h.ns.fd, fn) }

// Command returns a command that runs name inside the host's namespace. It
// is killed when ctx is done or the network is closed.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	ctx, cancel := context.WithCancel(ctx)
	context.AfterFunc(h.net.ctx, cancel)
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.ns.name, name}, args...)...)
	// Dies with the test process even if Close never runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// Listen is net.ListenConfig.Listen inside the host's namespace.
func (h *Host) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	var l net.Listener
	err := h.Run(func() (err error) {
		l, err = new(net.ListenConfig).Listen(ctx, network, address)
		return err
	})
	return l, err
}

// ListenPacket is net.ListenConfig.ListenPacket inside the host's namespace.
func (h *Host) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	var c net.PacketConn
	err := h.Run(func() (err error) {
		c, err = new(net.ListenConfig).ListenPacket(ctx, network, address)
		return err
	})
	return c, err
}

// Dial is net.Dialer.DialContext inside the host's namespace. Use an IP
// address, not a name: parallel dials would leave the namespace.
func (h *Host) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	var c net.Conn
	err := h.Run(func() (err error) {
		c, err = new(net.Dialer).DialContext(ctx, network, address)
		return err
	})
	return c, err
}
