package tachyon

import (
	"net/netip"
	"slices"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

func TestAdvertise(t *testing.T) {
	const relay = "/ip4/198.51.7.1/tcp/4001/p2p/12D3KooWGzBwjfGmm9kBhDwJuYLh8hL8VbDhtjLfhoVuX6Ki2f6r/p2p-circuit"
	all := []string{
		"/ip4/127.0.0.1/tcp/4001",
		"/ip4/192.168.1.5/tcp/4001",
		"/ip6/fd00:1::5/udp/4001/quic-v1",
		"/ip4/10.9.0.2/tcp/4001",
		"/ip4/8.8.4.4/tcp/4001",
		"/ip4/8.8.4.4/tcp/4001/tls",
		"/ip4/8.8.4.4/udp/4001/quic-v1",
		"/dns4/example.com/tcp/443/wss",
		relay,
		"/ip4/127.0.0.1/tcp/9/p2p/12D3KooWGzBwjfGmm9kBhDwJuYLh8hL8VbDhtjLfhoVuX6Ki2f6r/p2p-circuit",
	}
	testnet := []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}
	onlyTCP := func(a ma.Multiaddr) bool {
		return a.String() == "/ip4/8.8.4.4/tcp/4001" || a.String() == "/ip4/10.9.0.2/tcp/4001"
	}
	for _, tc := range []struct {
		name      string
		remote    string
		public    []netip.Prefix
		confirmed func(ma.Multiaddr) bool
		want      []string
	}{
		{"the Internet, nothing checked", "", nil, nil,
			[]string{"/ip4/8.8.4.4/tcp/4001", "/ip4/8.8.4.4/tcp/4001/tls", "/ip4/8.8.4.4/udp/4001/quic-v1", "/dns4/example.com/tcp/443/wss", relay}},
		{"a public peer, TCP confirmed", "/ip4/1.1.1.1/tcp/5", nil, onlyTCP,
			[]string{"/ip4/8.8.4.4/tcp/4001", "/ip4/8.8.4.4/tcp/4001/tls", relay}},
		{"a LAN peer", "/ip4/192.168.1.9/tcp/5", nil, onlyTCP,
			[]string{"/ip4/192.168.1.5/tcp/4001", "/ip6/fd00:1::5/udp/4001/quic-v1", "/ip4/10.9.0.2/tcp/4001", "/ip4/8.8.4.4/tcp/4001", "/ip4/8.8.4.4/tcp/4001/tls", relay}},
		{"a peer over loopback", "/ip4/127.0.0.1/tcp/5", nil, onlyTCP,
			[]string{"/ip4/127.0.0.1/tcp/4001", "/ip4/192.168.1.5/tcp/4001", "/ip6/fd00:1::5/udp/4001/quic-v1", "/ip4/10.9.0.2/tcp/4001", "/ip4/8.8.4.4/tcp/4001", "/ip4/8.8.4.4/tcp/4001/tls", relay,
				"/ip4/127.0.0.1/tcp/9/p2p/12D3KooWGzBwjfGmm9kBhDwJuYLh8hL8VbDhtjLfhoVuX6Ki2f6r/p2p-circuit"}},
		{"a peer through a relay reaches as far as the relay", relay, nil, nil,
			[]string{"/ip4/8.8.4.4/tcp/4001", "/ip4/8.8.4.4/tcp/4001/tls", "/ip4/8.8.4.4/udp/4001/quic-v1", "/dns4/example.com/tcp/443/wss", relay}},
		{"declared public prefixes are public", "/ip4/10.9.3.3/tcp/5", testnet, onlyTCP,
			[]string{"/ip4/10.9.0.2/tcp/4001", "/ip4/8.8.4.4/tcp/4001", "/ip4/8.8.4.4/tcp/4001/tls", relay}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var remote ma.Multiaddr
			if tc.remote != "" {
				remote = ma.StringCast(tc.remote)
			}
			var got []string
			for _, a := range advertise(multiaddrs(t, all), remote, tc.public, tc.confirmed) {
				got = append(got, a.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got\n%v\nwant\n%v", got, tc.want)
			}
		})
	}
}
