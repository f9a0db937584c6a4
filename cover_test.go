package tachyon

import (
	"net/netip"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
)

func TestCoverPlan(t *testing.T) {
	now := time.Unix(1e9, 0)
	a4 := func(s string) ma.Multiaddr { return ma.StringCast("/ip4/" + s + "/tcp/4001") }
	a6 := func(s string) ma.Multiaddr { return ma.StringCast("/ip6/" + s + "/udp/4001/quic-v1") }
	g := func(s string) netip.Prefix { return netip.MustParsePrefix(s) }
	both := map[bool]bool{true: true, false: true}
	peers := []coverPeer{
		{id: "plain", addrs: []ma.Multiaddr{a4("11.1.0.2"), a6("2a0c:1::2")}, conn6: true},
		{id: "srv1", server: true, addrs: []ma.Multiaddr{a4("11.2.0.2"), a6("2a0c:2::2")}, conn6: true},
		{id: "srv2", server: true, addrs: []ma.Multiaddr{a4("11.2.0.9"), a6("2a0c:3::2")}, conn6: true}, // srv1's /24
		{id: "srv3", server: true, addrs: []ma.Multiaddr{a4("11.3.0.2"), a6("2a0c:4::2")}, conn4: true},
		{id: "v6only", server: true, addrs: []ma.Multiaddr{a6("2a0c:5::2")}, conn6: true},
	}
	never := func(coverKey) time.Time { return time.Time{} }
	for _, tc := range []struct {
		name   string
		listen map[bool]bool
		heard  map[bool]map[netip.Prefix]bool
		tried  func(coverKey) time.Time
		want   []string // peer/family
	}{
		{
			name:   "both families heard enough: nothing",
			listen: both,
			heard:  map[bool]map[netip.Prefix]bool{true: {g("11.9.0.0/24"): true, g("11.8.0.0/24"): true}, false: {g("2a0c:9::/48"): true, g("2a0c:8::/48"): true}},
			tried:  never,
		},
		{
			// srv3 is connected over IPv4 already; srv2 shares srv1's /24;
			// servers before the plain peer; one group heard, one missing.
			name:   "IPv4 short of one group: the first server in a new group",
			listen: both,
			heard:  map[bool]map[netip.Prefix]bool{true: {g("11.9.0.0/24"): true}, false: {g("2a0c:9::/48"): true, g("2a0c:8::/48"): true}},
			tried:  never,
			want:   []string{"srv1/4"},
		},
		{
			name:   "IPv4 unheard: two peers in distinct groups",
			listen: both,
			heard:  map[bool]map[netip.Prefix]bool{false: {g("2a0c:9::/48"): true, g("2a0c:8::/48"): true}},
			tried:  never,
			want:   []string{"srv1/4", "plain/4"},
		},
		{
			name:   "a family we do not listen in is left alone",
			listen: map[bool]bool{false: true},
			heard:  map[bool]map[netip.Prefix]bool{false: {g("2a0c:9::/48"): true, g("2a0c:8::/48"): true}},
			tried:  never,
		},
		{
			name:   "recently tried peers wait",
			listen: both,
			heard:  map[bool]map[netip.Prefix]bool{false: {g("2a0c:9::/48"): true, g("2a0c:8::/48"): true}},
			tried: func(k coverKey) time.Time {
				if k.p == "srv1" {
					return now.Add(-time.Minute)
				}
				if k.p == "plain" {
					return now.Add(-coverRetry) // long enough ago
				}
				return time.Time{}
			},
			want: []string{"srv2/4", "plain/4"},
		},
		{
			name:   "IPv6 unheard: servers not connected over IPv6",
			listen: both,
			heard:  map[bool]map[netip.Prefix]bool{true: {g("11.9.0.0/24"): true, g("11.8.0.0/24"): true}},
			tried:  never,
			want:   []string{"srv3/6"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, d := range coverPlan(tc.listen, tc.heard, peers, tc.tried, now) {
				fam := "6"
				if d.v4 {
					fam = "4"
				}
				for _, a := range d.addrs {
					if ip, _ := ipOf(a); ip.Is4() != d.v4 {
						t.Errorf("%s: address %s not in the family", d.p, a)
					}
				}
				got = append(got, string(d.p)+"/"+fam)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("plan %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("plan %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// TestCoverNeeded: observation connections are wanted only for a family
// we listen on that lacks observer groups.
func TestCoverNeeded(t *testing.T) {
	groups := func(n int, v4 bool) map[netip.Prefix]bool {
		m := map[netip.Prefix]bool{}
		for i := range n {
			if v4 {
				m[netip.PrefixFrom(netip.AddrFrom4([4]byte{11, byte(i), 0, 0}), 24)] = true
			} else {
				m[netip.PrefixFrom(netip.AddrFrom16([16]byte{0x2a, 0x0c, 0, byte(i)}), 48)] = true
			}
		}
		return m
	}
	for _, tc := range []struct {
		name           string
		listen         map[bool]bool
		heard4, heard6 int
		want           bool
	}{
		{"IPv4 only, heard enough", map[bool]bool{true: true}, guessGroups, 0, false},
		{"IPv4 only, missing", map[bool]bool{true: true}, guessGroups - 1, 0, true},
		{"IPv6 only, heard enough", map[bool]bool{false: true}, 0, guessGroups, false},
		{"both, IPv6 missing", map[bool]bool{true: true, false: true}, guessGroups, guessGroups - 1, true},
		{"both, heard enough", map[bool]bool{true: true, false: true}, guessGroups, guessGroups, false},
		{"neither", map[bool]bool{}, 0, 0, false},
		{"both, IPv4 missing", map[bool]bool{true: true, false: true}, guessGroups - 1, guessGroups, true},
		{"IPv6 listed as off, missing", map[bool]bool{true: true, false: false}, guessGroups, 0, false},
	} {
		heard := map[bool]map[netip.Prefix]bool{true: groups(tc.heard4, true), false: groups(tc.heard6, false)}
		if got := coverNeeded(tc.listen, heard); got != tc.want {
			t.Errorf("%s: coverNeeded = %v, want %v", tc.name, got, tc.want)
		}
	}
}
