package tachyon

import (
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
