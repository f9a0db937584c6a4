package peer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// TestTLSVectors parses the certificates of tls/tls.md "Test vectors"
// (typed into testdata/ from the spec).
func TestTLSVectors(t *testing.T) {
	cases := []struct{ file, id string }{
		{"tls_cert_ed25519.hex", "12D3KooWM6CgA9iBFZmcYAHA6A2qvbAxqfkmrYiRQuz3XEsk4Ksv"},
		{"tls_cert_ecdsa.hex", "QmfXbAwNjJLXfesgztEHe8HwgVDCMMpZ9Eax1HYq6hn9uE"},
		{"tls_cert_secp256k1.hex", "16Uiu2HAkutTMoTzDw1tCvSRtu6YoixJwS46S1ZFxW8hSx9fWHiPs"},
		{"tls_cert_invalid.hex", ""}, // the key that signed does not match the claimed one
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			raw, err := os.ReadFile("testdata/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			der, err := hex.DecodeString(strings.TrimSpace(string(raw)))
			if err != nil {
				t.Fatal(err)
			}
			id, err := verifyTLSChain([][]byte{der})
			if tc.id == "" {
				if err == nil {
					t.Fatalf("invalid certificate accepted as %s", id)
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id != tc.id {
				t.Fatalf("peer ID %s, want %s", id, tc.id)
			}
		})
	}
}

type secTLSResult struct {
	c        net.Conn
	id, alpn string
	err      error
}

func secTLSPair(t *testing.T, clientALPN, serverALPN []string, expect func(server *Identity) string) (client, server secTLSResult, cID, sID *Identity) {
	t.Helper()
	c, s := secTCPPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cID, _ = NewIdentity()
	sID, _ = NewIdentity()
	done := make(chan secTLSResult, 1)
	go func() {
		var r secTLSResult
		r.c, r.id, r.alpn, r.err = TLSHandshake(ctx, s, sID, true, serverALPN, "")
		if r.err == nil {
			// TLS 1.3 servers check the client certificate last; a read
			// surfaces failures on the client side too.
			_, r.err = r.c.Write([]byte("hi"))
		} else {
			s.Close()
		}
		done <- r
	}()
	client.c, client.id, client.alpn, client.err = TLSHandshake(ctx, c, cID, false, clientALPN, expect(sID))
	if client.err == nil {
		buf := make([]byte, 2)
		_ = client.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, client.err = io.ReadFull(client.c, buf)
	} else {
		c.Close()
	}
	server = <-done
	return client, server, cID, sID
}

func TestTLSHandshake(t *testing.T) {
	ids := func(s *Identity) string { return s.ID }
	client, server, cID, sID := secTLSPair(t, []string{"libp2p"}, []string{"libp2p"}, ids)
	if client.err != nil || server.err != nil {
		t.Fatalf("client: %v; server: %v", client.err, server.err)
	}
	if client.id != sID.ID || server.id != cID.ID {
		t.Fatalf("remote IDs %s, %s; want %s, %s", client.id, server.id, sID.ID, cID.ID)
	}
	if client.alpn != "libp2p" || server.alpn != "libp2p" {
		t.Fatalf("ALPN %q / %q", client.alpn, server.alpn)
	}
	cs := client.c.(*tls.Conn).ConnectionState()
	if cs.Version != tls.VersionTLS13 {
		t.Fatalf("version %x", cs.Version)
	}
	if scs := server.c.(*tls.Conn).ConnectionState(); scs.ServerName != "" {
		t.Fatalf("client sent SNI %q", scs.ServerName)
	}
	// Our certificate's extension is critical: make sure it is.
	if crit := cs.PeerCertificates[0].UnhandledCriticalExtensions; len(crit) != 1 || !crit[0].Equal(tlsExtensionOID) {
		t.Fatalf("unhandled critical extensions %v", crit)
	}
	// CloseWrite sends close_notify: the server reads EOF and can still write.
	if err := client.c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = server.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := server.c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("after CloseWrite: %d, %v", n, err)
	}
	if _, err := server.c.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	secExpectRead(t, client.c, "late")
}

func TestTLSEarlyMuxer(t *testing.T) {
	none := func(*Identity) string { return "" }
	// The client's order wins, not the server's.
	client, server, _, _ := secTLSPair(t,
		[]string{"/yamux/1.0.0", "/mplex/6.7.0", "libp2p"},
		[]string{"/mplex/6.7.0", "/yamux/1.0.0", "libp2p"}, none)
	if client.err != nil || server.err != nil {
		t.Fatalf("client: %v; server: %v", client.err, server.err)
	}
	if client.alpn != "/yamux/1.0.0" || server.alpn != "/yamux/1.0.0" {
		t.Fatalf("ALPN %q / %q, want /yamux/1.0.0", client.alpn, server.alpn)
	}
	// No common muxer: fall back to "libp2p", then to mss.
	client, server, _, _ = secTLSPair(t, []string{"/yamux/1.0.0", "libp2p"}, []string{"libp2p"}, none)
	if client.err != nil || server.err != nil || client.alpn != "libp2p" {
		t.Fatalf("client: %v (%q); server: %v", client.err, client.alpn, server.err)
	}
	// Nothing in common: the server must abort.
	client, server, _, _ = secTLSPair(t, []string{"h2"}, []string{"libp2p"}, none)
	if client.err == nil || server.err == nil {
		t.Fatalf("no common ALPN, yet client: %v; server: %v", client.err, server.err)
	}
}

func TestTLSWrongPeer(t *testing.T) {
	other, _ := NewIdentity()
	client, _, _, _ := secTLSPair(t, []string{"libp2p"}, []string{"libp2p"}, func(*Identity) string { return other.ID })
	if client.err == nil {
		t.Fatal("client accepted the wrong peer")
	}
	t.Log(client.err)
}

// TestTLSBadCerts: the checks a receiver MUST make, on certificates the
// client presents to a server.
func TestTLSBadCerts(t *testing.T) {
	unknown := asn1.ObjectIdentifier{1, 2, 3, 4}
	cases := map[string]func(*x509.Certificate){
		"expired": func(c *x509.Certificate) {
			c.NotBefore, c.NotAfter = time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)
		},
		"not yet valid": func(c *x509.Certificate) { c.NotBefore = time.Now().Add(time.Hour) },
		"unknown critical extension": func(c *x509.Certificate) {
			c.ExtraExtensions = append(c.ExtraExtensions, pkix.Extension{Id: unknown, Critical: true})
		},
		"no libp2p extension": func(c *x509.Certificate) { c.ExtraExtensions = nil },
		"signature over other key": func(c *x509.Certificate) {
			id, _ := NewIdentity()
			ext, _ := asn1.Marshal(tlsSignedKey{PublicKey: id.PubKeyPB, Signature: id.Sign([]byte(tlsSigPrefix + "x"))})
			c.ExtraExtensions = []pkix.Extension{{Id: tlsExtensionOID, Value: ext}}
		},
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			id, _ := NewIdentity()
			conf, err := tlsConfig(id, false, []string{"libp2p"}, "", edit)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := verifyTLSChain(conf.Certificates[0].Certificate); err == nil {
				t.Fatal("accepted")
			} else {
				t.Log(err)
			}
		})
	}
	t.Run("non-critical extension", func(t *testing.T) {
		id, _ := NewIdentity()
		conf, _ := tlsConfig(id, false, nil, "", func(c *x509.Certificate) { c.ExtraExtensions[0].Critical = false })
		if got, err := verifyTLSChain(conf.Certificates[0].Certificate); err != nil || got != id.ID {
			t.Fatalf("got %s, %v", got, err)
		}
	})
	t.Run("two certificates", func(t *testing.T) {
		id, _ := NewIdentity()
		conf, _ := TLSConfig(id, false, nil, "")
		der := conf.Certificates[0].Certificate[0]
		if _, err := verifyTLSChain([][]byte{der, der}); err == nil {
			t.Fatal("accepted a chain of two")
		}
	})
}
