package tcp

import (
	"math/rand/v2"
	"net"
	"testing"

	manet "github.com/multiformats/go-multiaddr/net"
)

// TestFromTCPAddr: the same multiaddr as manet.FromNetAddr, cached or not.
func TestFromTCPAddr(t *testing.T) {
	addrs := []net.Addr{
		&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4001},
		&net.TCPAddr{IP: net.IP{10, 1, 2, 3}, Port: 0},
		&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 65535},
		&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 80},
		&net.TCPAddr{IP: net.ParseIP("::"), Port: 1},
		&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 2, Zone: "eth0"},
		&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 3},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 3 * maxIPComponents { // past the cache's bound, and back
		ip := make(net.IP, 4+12*r.IntN(2))
		for i := range ip {
			ip[i] = byte(r.Uint32())
		}
		addrs = append(addrs, &net.TCPAddr{IP: ip, Port: r.IntN(1 << 16)})
	}
	for round := range 2 {
		for _, a := range addrs {
			want, werr := manet.FromNetAddr(a)
			got, err := FromTCPAddr(a)
			if (err != nil) != (werr != nil) || err == nil && !got.Equal(want) {
				t.Fatalf("round %d: FromTCPAddr(%v) = %v, %v; manet: %v, %v", round, a, got, err, want, werr)
			}
		}
	}
	if n := len(ipComponents.m); n > maxIPComponents {
		t.Fatalf("%d IP components cached, bound %d", n, maxIPComponents)
	}
}

func BenchmarkFromTCPAddr(b *testing.B) {
	a := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4001}
	b.Run("manet", func(b *testing.B) {
		for b.Loop() {
			manet.FromNetAddr(a)
		}
	})
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			FromTCPAddr(a)
		}
	})
}
