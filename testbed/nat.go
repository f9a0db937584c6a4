package testbed

import (
	"fmt"
	"net/netip"
	"strconv"
	"sync"
)

// NATType selects how a NAT router maps inside endpoints to outside ports.
type NATType int

const (
	// EndpointIndependent keeps one outside port per inside socket,
	// whatever the destination (Linux masquerade keeps the source port
	// when it can), like most home routers. Inbound packets pass only
	// from endpoints the inside host has sent to.
	EndpointIndependent NATType = iota
	// Symmetric picks a random outside port for each destination, so
	// hole punching by guessing the port fails.
	Symmetric
)

func (t NATType) String() string {
	if t == Symmetric {
		return "symmetric"
	}
	return "endpoint-independent"
}

// NAT is a router namespace that masquerades the hosts behind it (IPv4, and
// IPv6 unless RoutedIPv6) behind its outside address and drops unsolicited
// inbound traffic, except to ports forwarded with Forward.
type NAT struct {
	name     string
	ns       *netns
	net      *Network
	link     *Link
	typ      NATType
	routed6  bool
	mu       sync.Mutex // guards link.down4, link.down6, nextHost
	nextHost byte       // last byte of the next outside address
}

// NATOption configures a NAT router.
type NATOption func(*NAT)

// RoutedIPv6 makes the NAT masquerade IPv4 only: hosts behind it get IPv6
// addresses from prefixes the core routes to the NAT (public ones under
// PublicAddresses), and inbound IPv6 to them is allowed, like a home router
// with a native IPv6 prefix and no IPv6 firewall.
func RoutedIPv6() NATOption { return func(r *NAT) { r.routed6 = true } }

// AddNAT adds a NAT router attached to the core router over a link with cfg.
func (n *Network) AddNAT(name string, typ NATType, cfg LinkConfig, opts ...NATOption) (*NAT, error) {
	if err := checkEnv("nft"); err != nil {
		return nil, err
	}
	r := &NAT{name: name, net: n, typ: typ, nextHost: 3}
	for _, o := range opts {
		o(r)
	}
	k, err := n.reserve(name)
	if err != nil {
		return nil, err
	}
	ns, l, err := n.attach(n.core, k, "n-"+name, nsRouter, "wan0", cfg, n.public, n.public)
	if err != nil {
		return nil, fmt.Errorf("testbed: adding NAT %s: %w", name, err)
	}
	r.ns, r.link = ns, l
	masq := "masquerade"
	if typ == Symmetric {
		masq = "masquerade fully-random"
	}
	inbound6 := ""
	if r.routed6 {
		masq = "meta nfproto ipv4 " + masq
		inbound6 = `iifname "wan0" meta nfproto ipv6 accept`
	}
	// Forwarded ports: tbpre DNATs them (see Forward) and "ct status dnat"
	// lets the translated flows through. "fib daddr type local" in those
	// rules keeps them to the current outside address.
	rules := `table inet tb {
	chain tbforward {
		type filter hook forward priority 0; policy drop;
		ct state established,related accept
		iifname != "wan0" accept
		ct status dnat accept
		` + inbound6 + `
	}
	chain tbinput {
		type filter hook input priority 0; policy accept;
		iifname "wan0" ct state established,related accept
		iifname "wan0" meta l4proto { icmp, ipv6-icmp } accept
		iifname "wan0" drop
	}
	chain tbpre {
		type nat hook prerouting priority -100;
	}
	chain tbpost {
		type nat hook postrouting priority 100;
		oifname "wan0" ` + masq + `
	}
}
`
	if err := r.nft(rules); err != nil {
		return nil, fmt.Errorf("testbed: adding NAT %s: %w", name, err)
	}
	return r, nil
}

func (r *NAT) nft(rules string) error {
	return runInput([]byte(rules), "ip", "netns", "exec", r.ns.name, "nft", "-f", "-")
}

// AddHost adds a host behind the NAT over a link with cfg.
func (r *NAT) AddHost(name string, cfg LinkConfig) (*Host, error) {
	k, err := r.net.reserve(name)
	if err != nil {
		return nil, err
	}
	ns, l, err := r.net.attach(r.ns, k, "h-"+name, nsHost, "eth0", cfg, false, r.routed6 && r.net.public)
	if err == nil && r.routed6 {
		err = ipCmd("-n", r.net.core.name, "-6", "route", "add",
			netip.PrefixFrom(l.down6, 64).Masked().String(), "via", r.IPv6().String())
	}
	if err != nil {
		return nil, fmt.Errorf("testbed: adding host %s behind %s: %w", name, r.name, err)
	}
	return &Host{name: name, ns: ns, net: r.net, link: l, nat: r}, nil
}

// Forward forwards proto ("tcp" or "udp") port outsidePort of the NAT's
// outside address to insidePort of h, a host behind the NAT, for IPv4 and,
// if the NAT masquerades IPv6, for IPv6. It follows the outside address
// when that changes. Other unsolicited traffic stays dropped.
func (r *NAT) Forward(proto string, outsidePort uint16, h *Host, insidePort uint16) error {
	if proto != "tcp" && proto != "udp" {
		return fmt.Errorf("testbed: forwarding on NAT %s: protocol %q, want tcp or udp", r.name, proto)
	}
	if h.nat != r {
		return fmt.Errorf("testbed: forwarding on NAT %s: host %s is not behind it", r.name, h.name)
	}
	match := fmt.Sprintf(`iifname "wan0" fib daddr type local %s dport %d`, proto, outsidePort)
	rules := fmt.Sprintf("add rule inet tb tbpre %s meta nfproto ipv4 dnat ip to %s\n", match, netip.AddrPortFrom(h.IPv4(), insidePort))
	if !r.routed6 {
		rules += fmt.Sprintf("add rule inet tb tbpre %s meta nfproto ipv6 dnat ip6 to %s\n", match, netip.AddrPortFrom(h.IPv6(), insidePort))
	}
	if err := r.nft(rules); err != nil {
		return fmt.Errorf("testbed: forwarding %s port %d on NAT %s to %s: %w", proto, outsidePort, r.name, h.name, err)
	}
	return nil
}

// ChangeOutsideAddress moves the NAT to a new outside IPv4 address on its
// link's subnet (and a new IPv6 address unless RoutedIPv6), as when an ISP
// renumbers a home router. Every mapping dies: the NAT's connection
// tracking is flushed, so established flows and port mappings are gone,
// new connections leave from the new address, and packets to the old
// address are dropped. Port forwards move along. It returns the new IPv4
// address.
func (r *NAT) ChangeOutsideAddress() (netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.nextHost == 255 {
		return netip.Addr{}, fmt.Errorf("testbed: changing the outside address of NAT %s: no addresses left", r.name)
	}
	l, host := r.link, r.nextHost
	old4, old6 := l.down4, l.down6
	new4, new6 := addr4(l.k, host, r.net.public), old6
	if !r.routed6 {
		new6 = addr6(l.k, host, r.net.public)
	}
	if r.net.public {
		if err := r.net.CheckSealed(); err != nil {
			return netip.Addr{}, fmt.Errorf("testbed: changing the outside address of NAT %s: %w", r.name, err)
		}
	}
	ns, core := r.ns.name, r.net.core.name
	// The old IPv4 address goes first: the new one added while it is there
	// would become a secondary address and be deleted with it. Removing the
	// last address on wan0 takes the default route along, so it comes back.
	cmds := [][]string{
		{"-n", ns, "addr", "del", old4.String() + "/24", "dev", "wan0"},
		{"-n", ns, "addr", "add", new4.String() + "/24", "dev", "wan0"},
		{"-n", ns, "route", "replace", "default", "via", l.up4.String()},
	}
	if new6 != old6 {
		cmds = append(cmds,
			[]string{"-n", ns, "-6", "addr", "add", new6.String() + "/64", "dev", "wan0", "nodad"},
			[]string{"-n", ns, "-6", "addr", "del", old6.String() + "/64", "dev", "wan0"},
			[]string{"-n", ns, "-6", "route", "replace", "default", "via", l.up6.String()})
	}
	for _, c := range cmds {
		if err := ipCmd(c...); err != nil {
			return netip.Addr{}, fmt.Errorf("testbed: changing the outside address of NAT %s: %w", r.name, err)
		}
	}
	r.nextHost++
	l.down4, l.down6 = new4, new6
	// Masquerade forgets mappings of a removed address by itself, but not
	// forwarded flows or mappings of the other family: flush everything.
	if err := runIn(r.ns.fd, flushConntrack); err != nil {
		return netip.Addr{}, fmt.Errorf("testbed: changing the outside address of NAT %s: %w", r.name, err)
	}
	// The core forgets the old neighbour, so packets to the old address
	// die there (no one answers its ARP) instead of reaching the NAT.
	upIf := "l" + strconv.Itoa(l.k)
	_ = ipCmd("-n", core, "neigh", "del", old4.String(), "dev", upIf)
	if new6 != old6 {
		_ = ipCmd("-n", core, "-6", "neigh", "del", old6.String(), "dev", upIf)
	}
	return new4, nil
}

// Name is the name the NAT was added with.
func (r *NAT) Name() string { return r.name }

// Type is the NAT's mapping behaviour.
func (r *NAT) Type() NATType { return r.typ }

// IPv4 is the NAT's current outside IPv4 address.
func (r *NAT) IPv4() netip.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.link.down4
}

// IPv6 is the NAT's current outside IPv6 address.
func (r *NAT) IPv6() netip.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.link.down6
}

// RoutedIPv6 reports whether the NAT was added with RoutedIPv6.
func (r *NAT) RoutedIPv6() bool { return r.routed6 }

// Link is the link between the NAT and the core router.
func (r *NAT) Link() *Link { return r.link }

// Namespace is the name of the NAT router's namespace.
func (r *NAT) Namespace() string { return r.ns.name }
