package testbed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// These tests cover what the AutoNAT scenarios need: port forwards, a NAT
// whose outside address changes, routed IPv6 behind a NAT, public address
// ranges and the check that the network is sealed.

// tcpReaches reports whether from can open a TCP connection to to; a
// refused or unreachable dial fails at once, a dropped one times out.
func tcpReaches(t *testing.T, from *Host, to netip.AddrPort) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	c, err := from.Dial(ctx, "tcp", to.String())
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// tcpSource dials to from from and returns the source address the
// listener (which sends accepted connections' peers to seen) saw.
func tcpSource(t *testing.T, from *Host, to netip.AddrPort, seen <-chan net.Addr) netip.Addr {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := from.Dial(ctx, "tcp", to.String())
	if err != nil {
		t.Fatalf("%s dialing %v: %v", from.Name(), to, err)
	}
	defer c.Close()
	select {
	case a := <-seen:
		return a.(*net.TCPAddr).AddrPort().Addr().Unmap()
	case <-ctx.Done():
		t.Fatalf("%v did not accept %s's connection", to, from.Name())
		return netip.Addr{}
	}
}

// acceptLog accepts TCP connections on port of h (IPv4 and IPv6) and
// sends each peer's address to the returned channel.
func acceptLog(t *testing.T, h *Host, port int) <-chan net.Addr {
	seen := make(chan net.Addr, 16)
	tcpAccept(t, must(h.Listen(context.Background(), "tcp", fmt.Sprintf(":%d", port))), func(c net.Conn) {
		select {
		case seen <- c.RemoteAddr():
		default:
		}
		c.Close()
	})
	return seen
}

// Waits of udpArrives: short where the datagram must not arrive, long where
// it must (a busy machine may take a while to run the reader).
const (
	notArrivedWait = 300 * time.Millisecond
	arriveWait     = 3 * time.Second
)

var udpSeq atomic.Uint64

// udpArrives sends a datagram from c to to and reports whether dst reads
// it within wait. Each datagram is numbered and only this one counts: one
// that a "must not arrive" check let through late stays in dst's buffer
// and must not pass the next check.
func udpArrives(c net.PacketConn, to netip.AddrPort, dst net.PacketConn, wait time.Duration) bool {
	msg := fmt.Sprintf("hello %d", udpSeq.Add(1))
	c.WriteTo([]byte(msg), net.UDPAddrFromAddrPort(to))
	dst.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 100)
	for {
		n, _, err := dst.ReadFrom(buf)
		if err != nil {
			return false
		}
		if string(buf[:n]) == msg {
			return true
		}
	}
}

func TestForward(t *testing.T) {
	n := ForTest(t)
	ctx := context.Background()
	pub := must(n.AddHost("pub", LinkConfig{}))
	nat := must(n.AddNAT("nat", EndpointIndependent, LinkConfig{}))
	a := must(nat.AddHost("a", LinkConfig{}))
	seen := acceptLog(t, a, 4001)
	tcpAccept(t, must(a.Listen(ctx, "tcp", ":4002")), func(c net.Conn) { c.Close() })
	ua := must(a.ListenPacket(ctx, "udp", ":4001"))
	defer ua.Close()
	if err := nat.Forward("tcp", 5001, a, 4001); err != nil {
		t.Fatal(err)
	}

	t.Run("tcp", func(t *testing.T) {
		for _, ip := range []netip.Addr{nat.IPv4(), nat.IPv6()} {
			// Only the destination is translated: a sees the real source.
			if got := tcpSource(t, pub, netip.AddrPortFrom(ip, 5001), seen); got != pub.IPv4() && got != pub.IPv6() {
				t.Errorf("forwarded connection to %v came from %v, want %s's address", ip, got, pub.Name())
			}
		}
	})
	t.Run("closed", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			port uint16
		}{{"unforwarded tcp port", 4002}, {"inside port itself", 4001}} {
			if tcpReaches(t, pub, netip.AddrPortFrom(nat.IPv4(), tc.port)) {
				t.Errorf("%s: TCP to %v:%d got in", tc.name, nat.IPv4(), tc.port)
			}
		}
		pc := must(pub.ListenPacket(ctx, "udp4", ":0"))
		defer pc.Close()
		for _, port := range []uint16{4001, 5001} {
			if udpArrives(pc, netip.AddrPortFrom(nat.IPv4(), port), ua, notArrivedWait) {
				t.Errorf("unsolicited UDP to %v:%d reached %s", nat.IPv4(), port, a.Name())
			}
		}
	})
	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			proto string
			h     *Host
		}{{"sctp", a}, {"tcp", pub}} {
			if err := nat.Forward(tc.proto, 6000, tc.h, 6000); err == nil {
				t.Errorf("Forward(%q, %s) succeeded", tc.proto, tc.h.Name())
			}
		}
	})
}

func TestChangeOutsideAddress(t *testing.T) {
	n := ForTest(t)
	ctx := context.Background()
	pub := must(n.AddHost("pub", LinkConfig{}))
	nat := must(n.AddNAT("nat", EndpointIndependent, LinkConfig{}))
	a := must(nat.AddHost("a", LinkConfig{}))
	seenPub := acceptLog(t, pub, 7)
	seenA := acceptLog(t, a, 4001)
	if err := nat.Forward("tcp", 4001, a, 4001); err != nil {
		t.Fatal(err)
	}
	// ps stands for a server a talks to over UDP: it learns a's mapping
	// from the first datagram and then sends to it.
	ps := must(pub.ListenPacket(ctx, "udp4", ":9"))
	defer ps.Close()
	ua := must(a.ListenPacket(ctx, "udp4", ":0"))
	defer ua.Close()
	psAddr := netip.AddrPortFrom(pub.IPv4(), 9)
	mapping := func() netip.AddrPort {
		t.Helper()
		ua.WriteTo([]byte("hi"), net.UDPAddrFromAddrPort(psAddr))
		ps.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, from, err := ps.ReadFrom(make([]byte, 100))
		if err != nil {
			t.Fatalf("%s's datagram did not arrive: %v", a.Name(), err)
		}
		return from.(*net.UDPAddr).AddrPort()
	}

	// Flushing conntrack alone kills a mapping.
	m0 := mapping()
	if !udpArrives(ps, m0, ua, arriveWait) {
		t.Fatalf("no reply through the mapping %v", m0)
	}
	if err := runIn(nat.ns.fd, flushConntrack); err != nil {
		t.Fatal(err)
	}
	if udpArrives(ps, m0, ua, notArrivedWait) {
		t.Errorf("the mapping %v survived flushing conntrack", m0)
	}

	old4, old6 := nat.IPv4(), nat.IPv6()
	m := mapping()
	if m.Addr() != old4 || !udpArrives(ps, m, ua, arriveWait) {
		t.Fatalf("before the change: mapping %v (want on %v) or reply through it failed", m, old4)
	}
	new4, err := nat.ChangeOutsideAddress()
	if err != nil {
		t.Fatal(err)
	}
	if new4 == old4 || nat.IPv4() != new4 || nat.IPv6() == old6 {
		t.Fatalf("after the change: returned %v, IPv4() %v, IPv6() %v; old %v %v", new4, nat.IPv4(), nat.IPv6(), old4, old6)
	}
	if udpArrives(ps, m, ua, notArrivedWait) {
		t.Errorf("the old mapping %v still reaches %s", m, a.Name())
	}
	if m2 := mapping(); m2.Addr() != new4 {
		t.Errorf("new UDP flow leaves from %v, want %v", m2, new4)
	}
	for _, tc := range []struct{ dst, want netip.Addr }{{pub.IPv4(), new4}, {pub.IPv6(), nat.IPv6()}} {
		if got := tcpSource(t, a, netip.AddrPortFrom(tc.dst, 7), seenPub); got != tc.want {
			t.Errorf("new TCP connection to %v comes from %v, want %v", tc.dst, got, tc.want)
		}
	}
	// The forward follows the address; the old address is dead.
	tcpSource(t, pub, netip.AddrPortFrom(new4, 4001), seenA)
	for _, old := range []netip.Addr{old4, old6} {
		if tcpReaches(t, pub, netip.AddrPortFrom(old, 4001)) {
			t.Errorf("the old outside address %v still forwards", old)
		}
	}
}

func TestRoutedIPv6(t *testing.T) {
	for _, public := range []bool{false, true} {
		t.Run(fmt.Sprintf("public=%v", public), func(t *testing.T) {
			var opts []Option
			if public {
				opts = append(opts, PublicAddresses())
			}
			n := ForTest(t, opts...)
			pub := must(n.AddHost("pub", LinkConfig{}))
			nat := must(n.AddNAT("nat", EndpointIndependent, LinkConfig{}, RoutedIPv6()))
			a := must(nat.AddHost("a", LinkConfig{}))
			seenPub := acceptLog(t, pub, 7)
			seenA := acceptLog(t, a, 4001)
			if !nat.RoutedIPv6() {
				t.Error("RoutedIPv6() = false")
			}
			if got := tcpSource(t, pub, netip.AddrPortFrom(a.IPv6(), 4001), seenA); got != pub.IPv6() {
				t.Errorf("inbound IPv6 connection from %v, want %v", got, pub.IPv6())
			}
			for _, ip := range []netip.Addr{a.IPv4(), nat.IPv4()} {
				if tcpReaches(t, pub, netip.AddrPortFrom(ip, 4001)) {
					t.Errorf("inbound IPv4 to %v got in", ip)
				}
			}
			if err := nat.Forward("tcp", 4001, a, 4001); err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct{ dst, want netip.Addr }{{pub.IPv4(), nat.IPv4()}, {pub.IPv6(), a.IPv6()}} {
				if got := tcpSource(t, a, netip.AddrPortFrom(tc.dst, 7), seenPub); got != tc.want {
					t.Errorf("outbound to %v seen from %v, want %v", tc.dst, got, tc.want)
				}
			}
			// IPv4 is still a NAT (forward included); IPv6 keeps its address.
			tcpSource(t, pub, netip.AddrPortFrom(nat.IPv4(), 4001), seenA)
			old6 := nat.IPv6()
			if _, err := nat.ChangeOutsideAddress(); err != nil {
				t.Fatal(err)
			}
			if nat.IPv6() != old6 {
				t.Errorf("IPv6 changed from %v to %v; only IPv4 is NATed", old6, nat.IPv6())
			}
			tcpSource(t, pub, netip.AddrPortFrom(a.IPv6(), 4001), seenA)
			if got := isPublic(a.IPv6()); got != public {
				t.Errorf("routed %v public=%v, want %v", a.IPv6(), got, public)
			}
		})
	}
}

func isPublic(a netip.Addr) bool {
	m, err := manet.FromIP(a.AsSlice())
	if err != nil {
		panic(err)
	}
	return manet.IsPublicAddr(m.Encapsulate(ma.StringCast("/tcp/1")))
}

func TestPublicAddresses(t *testing.T) {
	n := ForTest(t, PublicAddresses())
	pub := must(n.AddHost("pub", LinkConfig{}))
	pub2 := must(n.AddHost("pub2", LinkConfig{Delay: time.Millisecond}))
	nat := must(n.AddNAT("nat", EndpointIndependent, LinkConfig{}))
	a := must(nat.AddHost("a", LinkConfig{}))
	for _, tc := range []struct {
		what   string
		addr   netip.Addr
		public bool
	}{
		{"public host IPv4", pub.IPv4(), true},
		{"public host IPv6", pub.IPv6(), true},
		{"NAT outside IPv4", nat.IPv4(), true},
		{"NAT outside IPv6", nat.IPv6(), true},
		{"host behind NAT IPv4", a.IPv4(), false},
		{"host behind NAT IPv6", a.IPv6(), false},
	} {
		if got := isPublic(tc.addr); got != tc.public {
			t.Errorf("%s %v: public %v, want %v", tc.what, tc.addr, got, tc.public)
		}
	}
	seen := acceptLog(t, pub2, 7)
	for _, tc := range []struct {
		from      *Host
		dst, want netip.Addr
	}{
		{pub, pub2.IPv4(), pub.IPv4()},
		{pub, pub2.IPv6(), pub.IPv6()},
		{a, pub2.IPv4(), nat.IPv4()},
		{a, pub2.IPv6(), nat.IPv6()},
	} {
		if got := tcpSource(t, tc.from, netip.AddrPortFrom(tc.dst, 7), seen); got != tc.want {
			t.Errorf("%s -> %v seen from %v, want %v", tc.from.Name(), tc.dst, got, tc.want)
		}
	}
}

func TestCheckSealed(t *testing.T) {
	n := ForTest(t, PublicAddresses())
	a := must(n.AddHost("a", LinkConfig{Delay: time.Millisecond})) // with an emulator namespace
	nat := must(n.AddNAT("nat", Symmetric, LinkConfig{}))
	must(nat.AddHost("b", LinkConfig{}))
	start := time.Now()
	if err := n.CheckSealed(); err != nil {
		t.Fatalf("a fresh network: %v", err)
	}
	t.Logf("CheckSealed took %v", time.Since(start))
	core := n.Prefix() + "core"
	rootVeth := fmt.Sprintf("tbseal%d", os.Getpid()%100000)
	for i, tc := range []struct {
		name        string
		spoil, undo [][]string
	}{
		{"veth into the root namespace",
			[][]string{{"link", "add", rootVeth, "type", "veth", "peer", "name", "leak0", "netns", a.Namespace()}},
			[][]string{{"link", "del", rootVeth}}},
		{"default route not via the router",
			[][]string{{"-n", a.Namespace(), "route", "replace", "default", "via", a.IPv4().Next().String()}},
			[][]string{{"-n", a.Namespace(), "route", "replace", "default", "via", a.IPv4().Prev().String()}}},
		{"default route in the core",
			[][]string{{"-n", core, "-6", "route", "add", "default", "via", a.IPv6().String()}},
			[][]string{{"-n", core, "-6", "route", "del", "default"}}},
		{"bridge",
			[][]string{{"-n", nat.Namespace(), "link", "add", "br0", "type", "bridge"}},
			[][]string{{"-n", nat.Namespace(), "link", "del", "br0"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			undo := func() {
				for _, c := range tc.undo {
					if err := ipCmd(c...); err != nil {
						t.Error(err)
					}
				}
			}
			for _, c := range tc.spoil {
				if err := ipCmd(c...); err != nil {
					undo()
					t.Fatal(err)
				}
			}
			err := n.CheckSealed()
			if !errors.Is(err, ErrNotSealed) {
				t.Errorf("CheckSealed() = %v, want ErrNotSealed", err)
			} else {
				t.Log(err)
			}
			// No public address is assigned while the network leaks.
			if h, err := n.AddHost(fmt.Sprintf("x%d", i), LinkConfig{}); !errors.Is(err, ErrNotSealed) {
				t.Errorf("AddHost on a leaking network: %v, %v; want ErrNotSealed", h, err)
			}
			undo()
			if err := n.CheckSealed(); err != nil {
				t.Errorf("after undoing: %v", err)
			}
		})
	}
}
