package tachyon

import (
	"slices"
	"testing"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/peerstore"
)

// TestNamedSecurity: hole-punch dials to a peer that advertised addresses
// naming their security protocol use that form (the first of ours the
// peer has), so no negotiation round trip is spent; others stay plain.
func TestNamedSecurity(t *testing.T) {
	dialed := []string{"/ip4/203.0.113.7/tcp/4001", "/ip4/203.0.113.7/udp/4001/quic-v1", "/ip6/2001:db8::7/tcp/4002"}
	for _, tc := range []struct {
		name       string
		ours       []protocol.ID
		ourTCP     []protocol.ID // TransportSecurity(TCP, ...), if set
		advertised []string
		want       []string
	}{
		{"plain peer (go-libp2p)", []protocol.ID{Noise, TLS}, nil,
			[]string{"/ip4/10.0.0.7/tcp/4001", "/ip4/10.0.0.7/udp/4001/quic-v1"}, dialed},
		{"tachyon peer, our first choice", []protocol.ID{Noise, TLS}, nil,
			[]string{"/ip4/10.0.0.7/tcp/4001", "/ip4/10.0.0.7/tcp/4001/tls", "/ip4/10.0.0.7/tcp/4001/noise"},
			[]string{"/ip4/203.0.113.7/tcp/4001/noise", "/ip4/203.0.113.7/udp/4001/quic-v1", "/ip6/2001:db8::7/tcp/4002/noise"}},
		{"tachyon peer, TLS first", []protocol.ID{TLS, Noise}, nil,
			[]string{"/ip4/10.0.0.7/tcp/4001/noise", "/ip4/10.0.0.7/tcp/4001/tls"},
			[]string{"/ip4/203.0.113.7/tcp/4001/tls", "/ip4/203.0.113.7/udp/4001/quic-v1", "/ip6/2001:db8::7/tcp/4002/tls"}},
		{"peer has only what we lack", []protocol.ID{Noise}, nil,
			[]string{"/ip4/10.0.0.7/tcp/4001/tls"}, dialed},
		{"TCP's own security list decides", []protocol.ID{Noise, TLS}, []protocol.ID{TLS},
			[]string{"/ip4/10.0.0.7/tcp/4001/noise", "/ip4/10.0.0.7/tcp/4001/tls"},
			[]string{"/ip4/203.0.113.7/tcp/4001/tls", "/ip4/203.0.113.7/udp/4001/quic-v1", "/ip6/2001:db8::7/tcp/4002/tls"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := []Option{Security(tc.ours...)}
			if tc.ourTCP != nil {
				opts = append(opts, TransportSecurity(TCP, tc.ourTCP...))
			}
			h := testHost(t, opts...)
			k, _ := crypto.GenerateEd25519Key(nil)
			p, _ := peer.IDFromPrivateKey(k)
			h.Peerstore().AddAddrs(p, multiaddrs(t, tc.advertised), peerstore.PermanentAddrTTL)
			got := h.namedSecurity(p, multiaddrs(t, dialed))
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i].String() != tc.want[i] {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func multiaddrs(t *testing.T, ss []string) []ma.Multiaddr {
	t.Helper()
	out := make([]ma.Multiaddr, len(ss))
	for i, s := range ss {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = a
	}
	return out
}

// TestPredictedAddrs: an observed address whose port is none of our
// listen ports of its form adds the observed IP with each such listen
// port (the port a port-keeping NAT gives the hole punch), once; an
// observed address on one of our ports, or of a form we do not listen
// on, adds nothing.
func TestPredictedAddrs(t *testing.T) {
	listen := []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4002/quic-v1", "/ip4/0.0.0.0/udp/4002/quic-v1/webtransport",
		"/ip6/::/tcp/4003", "/ip4/127.0.0.1/tcp/9000"}
	for _, tc := range []struct {
		name     string
		observed []string
		want     []string // added to own, in order
	}{
		{"port kept", []string{"/ip4/198.51.100.1/tcp/4001", "/ip4/198.51.100.1/udp/4002/quic-v1"}, nil},
		{"tcp port changed", []string{"/ip4/198.51.100.1/tcp/58076"}, []string{"/ip4/198.51.100.1/tcp/4001"}},
		{"quic port changed", []string{"/ip4/198.51.100.1/udp/61000/quic-v1"}, []string{"/ip4/198.51.100.1/udp/4002/quic-v1"}},
		{"ipv6", []string{"/ip6/2001:db8::1/tcp/5000"}, []string{"/ip6/2001:db8::1/tcp/4003"}},
		{"no listener of that form", []string{"/ip4/198.51.100.1/udp/61000/quic-v1/webtransport/certhash/uEiAkH5a4DPGKUuOBjYw0CgwjvcJCJMD2K_1aluKR_tpevQ",
			"/ip4/198.51.100.1/udp/7000/webrtc-direct"}, nil},
		{"two observed ports, one prediction", []string{"/ip4/198.51.100.1/tcp/58076", "/ip4/198.51.100.1/tcp/58077"}, []string{"/ip4/198.51.100.1/tcp/4001"}},
		{"already among ours", []string{"/ip4/198.51.100.9/tcp/58076"}, nil},
		{"not an IP", []string{"/dns4/example.com/tcp/58076"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			own := []ma.Multiaddr{ma.StringCast("/ip4/10.0.0.2/tcp/4001"), ma.StringCast("/ip4/198.51.100.9/tcp/4001")}
			var observed []ma.Multiaddr
			for _, s := range tc.observed {
				observed = append(observed, ma.StringCast(s))
			}
			own = append(own, observed...)
			var ls []ma.Multiaddr
			for _, s := range listen {
				ls = append(ls, ma.StringCast(s))
			}
			got := appendPredicted(own, observed, ls)
			var added []string
			for _, a := range got[2+len(observed):] {
				added = append(added, a.String())
			}
			if !slices.Equal(added, tc.want) {
				t.Errorf("added %q, want %q", added, tc.want)
			}
		})
	}
}
