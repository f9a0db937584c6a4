package gater

import (
	"net/netip"
	"testing"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
)

func TestRules(t *testing.T) {
	l := &List{}
	l.DenySubnet(netip.MustParsePrefix("0.0.0.0/0"))
	l.AllowSubnet(netip.MustParsePrefix("10.0.0.0/8"))
	l.DenySubnet(netip.MustParsePrefix("2001:db8::1/128"))
	l.DenyPeer("bad")
	l.AllowPeer("friend")
	addr := func(s string) ma.Multiaddr { return ma.StringCast(s) }
	cases := []struct {
		p    peer.ID
		addr string
		want bool
	}{
		{"", "/ip4/10.1.2.3/tcp/1", true},              // allowed subnet
		{"", "/ip4/192.0.2.1/tcp/1", false},            // denied by 0/0
		{"friend", "/ip4/192.0.2.1/tcp/1", true},       // allowed peer beats subnet
		{"bad", "/ip4/10.1.2.3/tcp/1", false},          // denied peer beats allowed subnet
		{"", "/ip6/2001:db8::1/udp/1/quic-v1", false},  // single address
		{"", "/ip6/2001:db8::2/udp/1/quic-v1", true},   // its neighbour
		{"", "/dns4/example.com/tcp/1", true},          // no IP: peer only
		{"bad", "/dns4/example.com/tcp/1", false},      //
		{"", "/ip6/::ffff:192.0.2.1/tcp/1", false},     // mapped v4 is v4
		{"other", "/ip4/10.0.0.1/udp/1/quic-v1", true}, //
	}
	for _, c := range cases {
		a := addr(c.addr)
		got := l.InterceptAddrDial(c.p, a)
		if c.p == "" {
			got = l.InterceptAccept(nil, a)
		}
		if got != c.want {
			t.Errorf("%q %s: allowed %v, want %v", c.p, c.addr, got, c.want)
		}
		if c.p != "" && l.InterceptSecured(network.DirInbound, c.p, nil, a) != c.want {
			t.Errorf("InterceptSecured %q %s: want %v", c.p, c.addr, c.want)
		}
	}
	if l.InterceptPeerDial("bad") || !l.InterceptPeerDial("friend") || !l.InterceptPeerDial("other") {
		t.Error("InterceptPeerDial")
	}
	if l.AllowsIP(netip.MustParseAddr("192.0.2.1")) || !l.AllowsIP(netip.MustParseAddr("10.9.9.9")) {
		t.Error("AllowsIP")
	}
	l.ForgetSubnet(netip.MustParsePrefix("0.0.0.0/0"))
	l.ForgetPeer("bad")
	if !l.AllowsIP(netip.MustParseAddr("192.0.2.1")) || !l.InterceptPeerDial("bad") {
		t.Error("Forget did not undo")
	}
}

func TestZeroAllowsAll(t *testing.T) {
	var l List
	if !l.InterceptAccept(nil, ma.StringCast("/ip4/1.2.3.4/tcp/1")) || !l.InterceptPeerDial("x") {
		t.Fatal("zero List refuses")
	}
}
