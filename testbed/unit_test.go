package testbed

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// frameOf builds an Ethernet frame carrying an IP header.
func frameOf(src, dst netip.Addr, proto byte, icmpType byte) []byte {
	f := make([]byte, 14, 80)
	if src.Is4() {
		f[12], f[13] = 0x08, 0x00
		ip := make([]byte, 20)
		ip[9] = proto
		copy(ip[12:], src.AsSlice())
		copy(ip[16:], dst.AsSlice())
		return append(f, ip...)
	}
	f[12], f[13] = 0x86, 0xdd
	ip := make([]byte, 41)
	ip[6] = proto
	copy(ip[8:], src.AsSlice())
	copy(ip[24:], dst.AsSlice())
	ip[40] = icmpType
	return append(f, ip...)
}

func TestBlackholeDrops(t *testing.T) {
	a4, b4 := netip.MustParseAddr("10.1.0.2"), netip.MustParseAddr("10.2.0.2")
	a6, b6 := netip.MustParseAddr("fd00:1::2"), netip.MustParseAddr("fd00:2::2")
	arp := make([]byte, 42)
	arp[12], arp[13] = 0x08, 0x06
	for _, tc := range []struct {
		name  string
		hole  Blackhole
		frame []byte
		want  bool
	}{
		{"udp4", Blackhole{UDP: true}, frameOf(a4, b4, 17, 0), true},
		{"tcp4 passes udp hole", Blackhole{UDP: true}, frameOf(a4, b4, 6, 0), false},
		{"udp6", Blackhole{UDP: true}, frameOf(a6, b6, 17, 0), true},
		{"ipv6 tcp", Blackhole{IPv6: true}, frameOf(a6, b6, 6, 0), true},
		{"ipv6 echo", Blackhole{IPv6: true}, frameOf(a6, b6, 58, 128), true},
		{"ipv6 neighbour solicitation passes", Blackhole{IPv6: true}, frameOf(a6, b6, 58, 135), false},
		{"ipv4 passes ipv6 hole", Blackhole{IPv6: true}, frameOf(a4, b4, 17, 0), false},
		{"addr dst", Blackhole{Addrs: []netip.Addr{b4}}, frameOf(a4, b4, 6, 0), true},
		{"addr src", Blackhole{Addrs: []netip.Addr{b4}}, frameOf(b4, a4, 6, 0), true},
		{"addr other", Blackhole{Addrs: []netip.Addr{b4}}, frameOf(a4, a4, 6, 0), false},
		{"addr v6", Blackhole{Addrs: []netip.Addr{b6}}, frameOf(a6, b6, 6, 0), true},
		{"arp passes", Blackhole{UDP: true, IPv6: true, Addrs: []netip.Addr{b4}}, arp, false},
		{"runt", Blackhole{UDP: true}, []byte{1, 2, 3}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.hole.drops(tc.frame); got != tc.want {
				t.Errorf("drops = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSchedule(t *testing.T) {
	const ms = int64(time.Millisecond)
	frame := make([]byte, 1250) // 10 000 bits: 10 µs at 1 Gbit/s
	for _, tc := range []struct {
		name string
		cfg  LinkConfig
		at   []int64 // arrival times
		want []int64 // release times, -1 for dropped
	}{
		{"delay", LinkConfig{Delay: 5 * time.Millisecond}, []int64{0, 1, 2}, []int64{5 * ms, 5*ms + 1, 5*ms + 2}},
		{"rate serialises", LinkConfig{Rate: 1e9}, []int64{0, 0, 0}, []int64{10000, 20000, 30000}},
		{"rate then delay", LinkConfig{Rate: 1e9, Delay: time.Millisecond}, []int64{0, 0}, []int64{ms + 10000, ms + 20000}},
		{"idle link restarts", LinkConfig{Rate: 1e9}, []int64{0, ms}, []int64{10000, ms + 10000}},
		{"queue full tail-drops", LinkConfig{Rate: 1e9, QueueLen: 1}, []int64{0, 0, 0}, []int64{10000, 20000, -1}},
		{"full loss", LinkConfig{Loss: 1}, []int64{0}, []int64{-1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &pipe{rng: rand.New(rand.NewPCG(1, 2))}
			for i, at := range tc.at {
				rel, ok := p.schedule(&tc.cfg, frame, 0, at)
				if !ok {
					rel = -1
				}
				if rel != tc.want[i] {
					t.Errorf("frame %d: release %d, want %d", i, rel, tc.want[i])
				}
			}
		})
	}
}

func TestJitterKeepsOrder(t *testing.T) {
	cfg := LinkConfig{Delay: 10 * time.Millisecond, Jitter: 5 * time.Millisecond}
	p := &pipe{rng: rand.New(rand.NewPCG(1, 2))}
	var last int64
	spread := false
	// Dense arrivals (every 100 µs) check the order; sparse ones (every
	// 20 ms, more than the jitter span) check that the delay does vary.
	for i := range 2000 {
		at := int64(i) * int64(100*time.Microsecond)
		if i >= 1000 {
			at = int64(i) * int64(20*time.Millisecond)
		}
		rel, _ := p.schedule(&cfg, make([]byte, 100), 0, at)
		if rel < last {
			t.Fatalf("frame %d released at %d before the previous one at %d", i, rel, last)
		}
		if d := rel - at; d < int64(5*time.Millisecond) || d > int64(15*time.Millisecond)+int64(5*time.Millisecond) {
			t.Fatalf("frame %d delayed %v", i, time.Duration(d))
		}
		spread = spread || rel-at < int64(7*time.Millisecond)
		last = rel
	}
	if !spread {
		t.Error("jitter never shortened the delay")
	}
}

func TestRoundTrips(t *testing.T) {
	for _, tc := range []struct {
		elapsed, rtt time.Duration
		want         float64
	}{
		{50 * time.Millisecond, 50 * time.Millisecond, 1},
		{101 * time.Millisecond, 50 * time.Millisecond, 2},
		{75 * time.Millisecond, 50 * time.Millisecond, 1.5},
		{time.Second, 0, 0},
	} {
		if got := RoundTrips(tc.elapsed, tc.rtt); got != tc.want {
			t.Errorf("RoundTrips(%v, %v) = %v, want %v", tc.elapsed, tc.rtt, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg LinkConfig
		ok  bool
	}{
		{LinkConfig{}, true},
		{LinkConfig{Delay: time.Second, Loss: 0.5, Rate: 1e6, MTU: 9000}, true},
		{LinkConfig{Delay: -1}, false},
		{LinkConfig{Loss: 1.5}, false},
		{LinkConfig{Rate: -1}, false},
		{LinkConfig{MTU: 1000}, false},
	} {
		if err := tc.cfg.validate(); (err == nil) != tc.ok {
			t.Errorf("validate(%+v) = %v, want ok=%v", tc.cfg, err, tc.ok)
		}
	}
}

// TestAddressRanges checks that the public ranges are public to libp2p
// (go-multiaddr's manet, which go-libp2p and tachyon both use), that the
// private ones are not, and that the public ones avoid IANA's
// special-purpose registries.
func TestAddressRanges(t *testing.T) {
	special := []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
		"192.0.0.0/24", "192.0.2.0/24", "192.31.196.0/24", "192.52.193.0/24", "192.88.99.0/24",
		"192.168.0.0/16", "192.175.48.0/24", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
		"240.0.0.0/4", "::/127", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64",
		"2001::/23", "2001:db8::/32", "2002::/16", "2620:4f:8000::/48", "3fff::/20", "5f00::/16",
		"fc00::/7", "fe80::/10",
	}
	for _, k := range []int{1, 2, 17, 250} {
		for _, host := range []byte{1, 2, 3, 254} {
			for _, tc := range []struct {
				addr   netip.Addr
				public bool
			}{
				{addr4(k, host, true), true},
				{addr6(k, host, true), true},
				{addr4(k, host, false), false},
				{addr6(k, host, false), false},
			} {
				if got := isPublic(tc.addr); got != tc.public {
					t.Errorf("%v: manet says public=%v, want %v", tc.addr, got, tc.public)
				}
				if !tc.public {
					continue
				}
				for _, s := range special {
					if netip.MustParsePrefix(s).Contains(tc.addr) {
						t.Errorf("%v is in the special-purpose range %s", tc.addr, s)
					}
				}
			}
		}
	}
}

// FuzzNLAttrs: the attribute parser of kernel netlink replies never
// panics and never returns a value reaching past its input.
func FuzzNLAttrs(f *testing.F) {
	// IFLA_IFNAME "eth0" and a nested IFLA_LINKINFO{IFLA_INFO_KIND "veth"}.
	f.Add([]byte{9, 0, 3, 0, 'e', 't', 'h', '0', 0, 0, 0, 0, 16, 0, 18, 0x80, 9, 0, 1, 0, 'v', 'e', 't', 'h', 0, 0, 0, 0})
	f.Add([]byte{4, 0, 1, 0})
	f.Add([]byte{3, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		attrs, err := nlAttrs(b)
		if err != nil {
			return
		}
		total := 0
		for _, v := range attrs {
			total += len(v)
		}
		if total > len(b) {
			t.Fatalf("values of %d bytes from %d bytes of input", total, len(b))
		}
	})
}
