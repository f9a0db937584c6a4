package testbed

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNotSealed is wrapped by CheckSealed's error, and by the errors of New,
// AddHost and AddNAT when they refuse to assign public addresses.
var ErrNotSealed = errors.New("testbed: network is not sealed")

// fallbackTunnels are the devices the kernel puts into every new namespace
// when a tunnel module is loaded; down, they carry nothing.
var fallbackTunnels = []string{"ipip", "sit", "ip6tnl", "gre", "gretap", "erspan", "ip6gre", "ip6gretap", "ip6erspan", "vti", "vti6"}

// CheckSealed checks that no packet can leave the network's namespaces:
// every interface is loopback, a veth whose peer is in one of the
// network's namespaces, or a fallback tunnel device that is down (so no
// bridge, macvlan, physical device or veth into the root namespace), and
// the only default routes are those of hosts and NAT routers towards their
// upstream router (the core and the emulators' namespaces have none).
// Public addresses on the testbed are safe only while this holds, so New,
// AddHost and AddNAT check it before assigning them.
func (n *Network) CheckSealed() error {
	n.mu.Lock()
	nss, closed := slices.Clone(n.nss), n.closed
	n.mu.Unlock()
	if closed {
		return errors.New("testbed: network is closed")
	}
	var errs []error
	for _, ns := range nss {
		if err := runIn(ns.fd, func() error { return checkSealedNS(ns, nss) }); err != nil {
			errs = append(errs, fmt.Errorf("namespace %s: %w", ns.name, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrNotSealed, errors.Join(errs...))
	}
	return nil
}

// checkSealedNS checks ns from inside it; all are the network's namespaces.
func checkSealedNS(ns *netns, all []*netns) error {
	s, err := openNetlink(unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer s.close()
	var errs []error

	// Links first: dumping a veth assigns the id of its peer's namespace,
	// which the lookup below then finds.
	names := map[int32]string{}
	peers := map[string]int32{} // veth name -> namespace id of its peer
	err = s.request(unix.RTM_GETLINK, unix.NLM_F_DUMP, make([]byte, unix.SizeofIfInfomsg), func(m nlMsg) error {
		if m.typ != unix.RTM_NEWLINK || len(m.data) < unix.SizeofIfInfomsg {
			return nil
		}
		index := int32(binary.NativeEndian.Uint32(m.data[4:]))
		flags := binary.NativeEndian.Uint32(m.data[8:])
		attrs, err := nlAttrs(m.data[unix.SizeofIfInfomsg:])
		if err != nil {
			return err
		}
		name := cString(attrs[unix.IFLA_IFNAME])
		names[index] = name
		var kind string
		if info, err := nlAttrs(attrs[unix.IFLA_LINKINFO]); err == nil {
			kind = cString(info[unix.IFLA_INFO_KIND])
		}
		switch {
		case attrs[unix.IFLA_MASTER] != nil:
			errs = append(errs, fmt.Errorf("interface %s is enslaved to another device", name))
		case flags&unix.IFF_LOOPBACK != 0:
		case kind == "veth":
			if id, ok := attrs[unix.IFLA_LINK_NETNSID]; ok && len(id) == 4 {
				peers[name] = int32(binary.NativeEndian.Uint32(id))
			} // else its peer is in this namespace
		case slices.Contains(fallbackTunnels, kind) && flags&unix.IFF_UP == 0:
		default:
			errs = append(errs, fmt.Errorf("interface %s (kind %q) may lead out of the testbed", name, kind))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing interfaces: %w", err)
	}

	ours := map[int32]bool{}
	for _, o := range all {
		body := []byte{unix.AF_UNSPEC, 0, 0, 0, 8, 0, unix.NETNSA_FD, 0, 0, 0, 0, 0}
		binary.NativeEndian.PutUint32(body[8:], uint32(o.fd))
		err := s.request(unix.RTM_GETNSID, 0, body, func(m nlMsg) error {
			attrs, err := nlAttrs(m.data[min(4, len(m.data)):])
			if err != nil {
				return err
			}
			if id := attrs[unix.NETNSA_NSID]; len(id) == 4 {
				ours[int32(binary.NativeEndian.Uint32(id))] = true
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("looking up the id of namespace %s: %w", o.name, err)
		}
	}
	for name, id := range peers {
		if id < 0 || !ours[id] {
			errs = append(errs, fmt.Errorf("veth %s has its peer outside the testbed (namespace id %d)", name, id))
		}
	}

	for _, fam := range []byte{unix.AF_INET, unix.AF_INET6} {
		body := make([]byte, unix.SizeofRtMsg)
		body[0] = fam
		err := s.request(unix.RTM_GETROUTE, unix.NLM_F_DUMP, body, func(m nlMsg) error {
			if m.typ != unix.RTM_NEWROUTE || len(m.data) < unix.SizeofRtMsg {
				return nil
			}
			// Only unicast default routes lead anywhere.
			if m.data[1] != 0 || m.data[7] != unix.RTN_UNICAST {
				return nil
			}
			attrs, err := nlAttrs(m.data[unix.SizeofRtMsg:])
			if err != nil {
				return err
			}
			gw, _ := netip.AddrFromSlice(attrs[unix.RTA_GATEWAY])
			var dev string
			if oif := attrs[unix.RTA_OIF]; len(oif) == 4 {
				dev = names[int32(binary.NativeEndian.Uint32(oif))]
			}
			want := ns.gw4
			if fam == unix.AF_INET6 {
				want = ns.gw6
			}
			switch {
			case !want.IsValid():
				errs = append(errs, fmt.Errorf("default route via %v dev %q; this namespace must have none", gw, dev))
			case attrs[unix.RTA_MULTIPATH] != nil || attrs[rtaNHID] != nil || attrs[unix.RTA_VIA] != nil:
				errs = append(errs, errors.New("default route with several or indirect next hops"))
			case gw != want || dev != ns.gwIf:
				errs = append(errs, fmt.Errorf("default route via %v dev %q, want via %v dev %s", gw, dev, want, ns.gwIf))
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("listing routes: %w", err)
		}
	}
	return errors.Join(errs...)
}

func cString(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\x00")
	return s
}
