package main

import (
	"net/netip"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// TestMakePublic: the given prefixes, and only they, become public.
func TestMakePublic(t *testing.T) {
	makePublic([]netip.Prefix{netip.MustParsePrefix("10.1.0.0/24"), netip.MustParsePrefix("10.7.0.0/24"), netip.MustParsePrefix("fd00:1::/64")})
	for a, want := range map[string]bool{
		"/ip4/10.1.0.2/tcp/1": true, "/ip4/10.1.0.255/tcp/1": true, "/ip4/10.7.0.9/udp/1/quic-v1": true,
		"/ip4/10.0.255.255/tcp/1": false, "/ip4/10.1.1.0/tcp/1": false, "/ip4/10.3.0.2/tcp/1": false, "/ip4/10.255.0.1/tcp/1": false,
		"/ip4/192.168.1.1/tcp/1": false, "/ip4/127.0.0.1/tcp/1": false, "/ip4/1.2.3.4/tcp/1": true,
		// go-multiaddr counts only global unicast IPv6 (2000::/3) as public:
		// ULAs stay private whatever the prefixes.
		"/ip6/fd00:1::2/tcp/1": false,
	} {
		if got := manet.IsPublicAddr(ma.StringCast(a)); got != want {
			t.Errorf("IsPublicAddr(%s) = %v, want %v", a, got, want)
		}
	}
}
