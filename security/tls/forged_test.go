package tls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/security/tls/tlstest"
)

// TestForgedCertificates: a peer claiming a host key with a certificate
// that tls.md makes invalid fails the handshake in both roles, and the
// genuine certificate of the same test rig passes (so the rig can fail).
// HostKey, which reads the key after the handshake, checks nothing: these
// handshakes are the proof that the verifier ran.
func TestForgedCertificates(t *testing.T) {
	for _, f := range append([]tlstest.Forgery{tlstest.Genuine}, tlstest.Forgeries...) {
		t.Run(f.String(), func(t *testing.T) {
			leakcheck.Check(t)
			host := newKey(t, crypto.Ed25519)
			claimed, _ := peer.IDFromPrivateKey(host)
			cert, err := tlstest.Certificate(host, f)
			if err != nil {
				t.Fatal(err)
			}
			pub, err := PubKeyFromCertChain([]*x509.Certificate{cert.Leaf})
			if ok := err == nil; ok != (f == tlstest.Genuine) {
				t.Fatalf("PubKeyFromCertChain: %v", err)
			}
			if err == nil && !pub.Equal(host.GetPublic()) {
				t.Fatal("PubKeyFromCertChain returned another key")
			}
			tr := newTransport(t, nil, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()

			t.Run("outbound", func(t *testing.T) {
				a, b := tcpPair(t)
				done := make(chan struct{})
				go func() { // the forged server
					defer close(done)
					defer b.Close()
					s := tls.Server(b, tlstest.ServerConfig(cert, alpnLibp2p))
					if s.HandshakeContext(ctx) == nil {
						io.Copy(io.Discard, s)
					}
				}()
				c, err := tr.SecureOutbound(ctx, a, claimed)
				if f == tlstest.Genuine {
					if err != nil {
						t.Fatalf("genuine server refused: %v", err)
					}
					if c.RemotePeer() != claimed {
						t.Fatalf("remote %s, want %s", c.RemotePeer(), claimed)
					}
					c.Close()
				} else if err == nil {
					c.Close()
					t.Fatalf("dialed a server presenting a %s certificate as %s", f, c.RemotePeer())
				}
				a.Close()
				<-done
			})
			t.Run("inbound", func(t *testing.T) {
				a, b := tcpPair(t)
				done := make(chan struct{})
				go func() { // the forged client
					defer close(done)
					defer a.Close()
					c := tls.Client(a, tlstest.ClientConfig(cert, alpnLibp2p))
					if c.HandshakeContext(ctx) == nil {
						io.Copy(io.Discard, c) // the server's alert, if it refuses
					}
				}()
				c, err := tr.SecureInbound(ctx, b, "")
				if f == tlstest.Genuine {
					if err != nil {
						t.Fatalf("genuine client refused: %v", err)
					}
					if c.RemotePeer() != claimed {
						t.Fatalf("remote %s, want %s", c.RemotePeer(), claimed)
					}
					c.Close()
				} else if err == nil {
					c.Close()
					t.Fatalf("accepted a client presenting a %s certificate as %s", f, c.RemotePeer())
				}
				b.Close()
				<-done
			})
		})
	}
}
