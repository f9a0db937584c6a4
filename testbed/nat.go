package testbed

import (
	"fmt"
	"net/netip"
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

// NAT is a router namespace that masquerades the hosts behind it (IPv4 and
// IPv6) behind its outside address and drops unsolicited inbound traffic.
type NAT struct {
	name string
	ns   *netns
	net  *Network
	link *Link
	typ  NATType
}

// AddNAT adds a NAT router attached to the core router over a link with cfg.
func (n *Network) AddNAT(name string, typ NATType, cfg LinkConfig) (*NAT, error) {
	if err := checkEnv("nft"); err != nil {
		return nil, err
	}
	k, err := n.reserve(name)
	if err != nil {
		return nil, err
	}
	ns, l, err := n.attach(n.core, k, "n-"+name, nsRouter, "wan0", cfg)
	if err != nil {
		return nil, fmt.Errorf("testbed: adding NAT %s: %w", name, err)
	}
	masq := "masquerade"
	if typ == Symmetric {
		masq = "masquerade fully-random"
	}
	rules := `table inet tb {
	chain tbforward {
		type filter hook forward priority 0; policy drop;
		ct state established,related accept
		iifname != "wan0" accept
	}
	chain tbinput {
		type filter hook input priority 0; policy accept;
		iifname "wan0" ct state established,related accept
		iifname "wan0" meta l4proto { icmp, ipv6-icmp } accept
		iifname "wan0" drop
	}
	chain tbpost {
		type nat hook postrouting priority 100;
		oifname "wan0" ` + masq + `
	}
}
`
	if err := runInput([]byte(rules), "ip", "netns", "exec", ns.name, "nft", "-f", "-"); err != nil {
		return nil, fmt.Errorf("testbed: adding NAT %s: %w", name, err)
	}
	return &NAT{name: name, ns: ns, net: n, link: l, typ: typ}, nil
}

// AddHost adds a host behind the NAT over a link with cfg.
func (r *NAT) AddHost(name string, cfg LinkConfig) (*Host, error) {
	k, err := r.net.reserve(name)
	if err != nil {
		return nil, err
	}
	ns, l, err := r.net.attach(r.ns, k, "h-"+name, nsHost, "eth0", cfg)
	if err != nil {
		return nil, fmt.Errorf("testbed: adding host %s behind %s: %w", name, r.name, err)
	}
	return &Host{name: name, ns: ns, net: r.net, link: l, nat: r}, nil
}

// Name is the name the NAT was added with.
func (r *NAT) Name() string { return r.name }

// Type is the NAT's mapping behaviour.
func (r *NAT) Type() NATType { return r.typ }

// IPv4 is the NAT's outside IPv4 address.
func (r *NAT) IPv4() netip.Addr { return r.link.down4 }

// IPv6 is the NAT's outside IPv6 address.
func (r *NAT) IPv6() netip.Addr { return r.link.down6 }

// Link is the link between the NAT and the core router.
func (r *NAT) Link() *Link { return r.link }

// Namespace is the name of the NAT router's namespace.
func (r *NAT) Namespace() string { return r.ns.name }
