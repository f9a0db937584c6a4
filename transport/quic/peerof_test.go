package quic

import (
	"context"
	stdtls "crypto/tls"
	"strings"
	"testing"

	"github.com/quic-go/quic-go"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/security/tls/tlstest"
	"github.com/tachyon-p2p/tachyon/transport/udpmux"
)

// connPair returns the dialed and the accepted side of a connection, and
// the dialer's transport.
func connPair(t testing.TB) (dialed, accepted *Conn, dialer *Transport) {
	t.Helper()
	newT := func() *Transport {
		k, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := New(k, udpmux.New(nil), nil)
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	a, d := newT(), newT()
	l, err := a.Listen(ma.StringCast("/ip4/127.0.0.1/udp/0/quic-v1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	dc, err := d.Dial(context.Background(), l.Multiaddrs()[0], a.localID)
	if err != nil {
		t.Fatal(err)
	}
	ac, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dc.Close(); ac.Close() })
	return dc.(*Conn), ac.(*Conn), d
}

// BenchmarkPeerOf is what reading the peer's identity costs once the
// certificate has passed its checks (it is kept).
func BenchmarkPeerOf(b *testing.B) {
	dc, _, d := connPair(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := d.peerOf(dc.qc); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPeerOfUnverified: peerOf refuses connections that are not libp2p's:
// another ALPN, or a server config that asked for no client certificate.
func TestPeerOfUnverified(t *testing.T) {
	k, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := New(k, udpmux.New(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tlstest.Certificate(k, tlstest.Genuine)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		alpn, want string
	}{{"h3", `ALPN "h3"`}, {udpmux.ALPNLibp2p, "got 0"}} {
		t.Run(tc.alpn, func(t *testing.T) {
			conf := tlstest.ServerConfig(cert, tc.alpn)
			conf.ClientAuth = stdtls.NoClientCert
			ln, err := quic.ListenAddr("127.0.0.1:0", conf, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			ctx := context.Background()
			c, err := quic.DialAddr(ctx, ln.Addr().String(), tlstest.ClientConfig(cert, tc.alpn), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseWithError(0, "")
			s, err := ln.Accept(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer s.CloseWithError(0, "")
			if _, _, err := tr.peerOf(s); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("peerOf = %v, want an error with %q", err, tc.want)
			}
		})
	}
}
