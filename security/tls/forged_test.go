package tls

import (
	"bytes"
	"context"
	stdcrypto "crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/internal/verified"
	"github.com/tachyon-p2p/tachyon/security/tls/tlstest"
)

// TestForgedCertificates: a peer claiming a host key with a certificate
// that tls.md makes invalid fails the handshake in both roles, and the
// genuine certificate of the same test rig passes (so the rig can fail).
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

			// The client checks the server before its own certificate
			// leaves (a forged server never sees it), or, from a server
			// that asks for none, once the handshake is over.
			for _, auth := range []tls.ClientAuthType{tls.RequireAnyClientCert, tls.NoClientCert} {
				t.Run(fmt.Sprintf("outbound/%v", auth), func(t *testing.T) {
					a, b := tcpPair(t)
					done := make(chan struct{})
					var gotCert atomic.Bool
					go func() { // the forged server
						defer close(done)
						defer b.Close()
						conf := tlstest.ServerConfig(cert, alpnLibp2p)
						conf.ClientAuth = auth
						conf.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
							gotCert.Store(len(raw) > 0)
							return nil
						}
						s := tls.Server(b, conf)
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
						if !c.RemotePublicKey().Equal(host.GetPublic()) {
							t.Fatal("remote key is not the claimed host key")
						}
						c.Close()
					} else if err == nil {
						c.Close()
						t.Fatalf("dialed a server presenting a %s certificate as %s", f, c.RemotePeer())
					}
					a.Close()
					<-done
					if want := f == tlstest.Genuine && auth != tls.NoClientCert; gotCert.Load() != want {
						t.Fatalf("server received our certificate: %v, want %v", gotCert.Load(), want)
					}
				})
			}
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
			// ServerConfig (QUIC listeners) counts the chain only; the
			// checks are CheckPeer's, once the handshake is complete.
			t.Run("server-config", func(t *testing.T) {
				a, b := tcpPair(t)
				done := make(chan struct{})
				go func() {
					defer close(done)
					defer a.Close()
					c := tls.Client(a, tlstest.ClientConfig(cert, alpnLibp2p))
					if c.HandshakeContext(ctx) == nil {
						io.Copy(io.Discard, c)
					}
				}()
				conf := quicServerConfig(t, tr)
				s := tls.Server(b, conf)
				defer func() { b.Close(); <-done }()
				if err := s.HandshakeContext(ctx); err != nil {
					t.Fatalf("handshake: %v", err)
				}
				for range 2 { // checked, then kept if it passed
					pub, id, err := tr.CheckPeer(s.ConnectionState().PeerCertificates)
					if f == tlstest.Genuine {
						if err != nil || id != claimed || !pub.Equal(host.GetPublic()) {
							t.Fatalf("CheckPeer on the genuine client = %s, %v", id, err)
						}
					} else if err == nil {
						t.Fatalf("CheckPeer passed a client presenting a %s certificate as %s", f, id)
					}
				}
			})
		})
	}
}

// TestCheckPeerChainLength: CheckPeer, like ServerConfig's handshake,
// refuses a chain of any length but one.
func TestCheckPeerChainLength(t *testing.T) {
	tr := newTransport(t, nil, nil)
	c, err := tlstest.Certificate(newKey(t, crypto.Ed25519), tlstest.Genuine)
	if err != nil {
		t.Fatal(err)
	}
	for _, chain := range [][]*x509.Certificate{nil, {c.Leaf, c.Leaf}} {
		if _, _, err := tr.CheckPeer(chain); err == nil || !strings.Contains(err.Error(), "exactly one certificate") {
			t.Fatalf("CheckPeer on a chain of %d = %v", len(chain), err)
		}
	}
}

// TestCertificatesCheckedOnce: each side checks a certificate it has seen
// pass once (checkOnce), and a hit still proves nothing by itself: a peer
// presenting the same certificate without its key fails before anything
// is looked up (a lookup's time would tell a hit from a miss), and a peer
// ID other than the one expected is still refused.
func TestCertificatesCheckedOnce(t *testing.T) {
	leakcheck.Check(t)
	var checks atomic.Int32
	lookups := map[*Transport]int{}
	var mu sync.Mutex
	checkChain = func(chain []*x509.Certificate) (crypto.PubKey, error) {
		checks.Add(1)
		return PubKeyFromCertChain(chain)
	}
	checkOnceHook = func(tr *Transport, _ []*x509.Certificate) {
		mu.Lock()
		lookups[tr]++
		mu.Unlock()
	}
	defer func() { checkChain, checkOnceHook = PubKeyFromCertChain, func(*Transport, []*x509.Certificate) {} }()
	lookupsOf := func(tr *Transport) int {
		mu.Lock()
		defer mu.Unlock()
		return lookups[tr]
	}

	cli, srv := newTransport(t, nil, nil), newTransport(t, nil, nil)
	dial := func(expect peer.ID) (result, result) {
		a, b := tcpPair(t)
		cr, sr := handshakePair(t, cli, srv, a, b, expect)
		for _, r := range []result{cr, sr} {
			if r.err == nil {
				defer r.conn.Close()
			}
		}
		a.Close()
		b.Close()
		return cr, sr
	}
	for i := range 3 {
		cr, sr := dial(srv.LocalPeer())
		if cr.err != nil || sr.err != nil {
			t.Fatalf("dial %d: %v / %v", i, cr.err, sr.err)
		}
		if cr.conn.RemotePeer() != srv.LocalPeer() || !cr.conn.RemotePublicKey().Equal(srv.key.GetPublic()) {
			t.Fatalf("dial %d: client sees %s", i, cr.conn.RemotePeer())
		}
		if sr.conn.RemotePeer() != cli.LocalPeer() || !sr.conn.RemotePublicKey().Equal(cli.key.GetPublic()) {
			t.Fatalf("dial %d: server sees %s", i, sr.conn.RemotePeer())
		}
	}
	if n := checks.Load(); n != 2 {
		t.Fatalf("3 dials between the same two peers: %d certificate checks, want 2 (one a side)", n)
	}
	if lc, ls := lookupsOf(cli), lookupsOf(srv); lc != 3 || ls != 3 {
		t.Fatalf("lookups: client %d, server %d, want 3 each", lc, ls)
	}

	// A hit, but the dialer expected another peer: refused before its
	// certificate leaves, so the server looks nothing up.
	other := newTransport(t, nil, nil).LocalPeer()
	cr, sr := dial(other)
	var mismatch *network.PeerIDMismatchError
	if !errors.As(cr.err, &mismatch) || mismatch.Actual != srv.LocalPeer() {
		t.Fatalf("dial expecting %s: %v", other, cr.err)
	}
	if sr.err == nil {
		t.Fatal("the server accepted a client that refused it")
	}
	if lc, ls := lookupsOf(cli), lookupsOf(srv); lc != 4 || ls != 3 {
		t.Fatalf("after the mismatch, lookups: client %d, server %d, want 4 and 3", lc, ls)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// A hit on the listener, but it expected another peer.
	t.Run("listener-expects-another", func(t *testing.T) {
		a, b := tcpPair(t)
		defer a.Close()
		defer b.Close()
		ch := make(chan error, 1)
		go func() {
			c, err := srv.SecureInbound(ctx, b, other)
			if err == nil {
				c.Close()
			}
			ch <- err
		}()
		if c, err := cli.SecureOutbound(ctx, a, srv.LocalPeer()); err == nil {
			c.Read(make([]byte, 1)) // the listener's refusal shows on read
			c.Close()
		}
		err := <-ch
		var mismatch *network.PeerIDMismatchError
		if !errors.As(err, &mismatch) || mismatch.Actual != cli.LocalPeer() {
			t.Fatalf("listener expecting %s: %v", other, err)
		}
		if n := lookupsOf(srv); n != 4 {
			t.Fatalf("server lookups %d, want 4 (a hit)", n)
		}
	})

	// The server's certificate presented by a server without its key.
	srvCert, _, err := srv.certificate()
	if err != nil {
		t.Fatal(err)
	}
	stolen := tls.Certificate{Certificate: srvCert.Certificate, PrivateKey: newCertKey(t), Leaf: srvCert.Leaf}
	t.Run("stolen-server-certificate", func(t *testing.T) {
		a, b := tcpPair(t)
		defer a.Close()
		var gotCert atomic.Bool
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer b.Close()
			conf := tlstest.ServerConfig(stolen, alpnLibp2p)
			conf.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
				gotCert.Store(true)
				return nil
			}
			tls.Server(b, conf).HandshakeContext(ctx)
		}()
		if c, err := cli.SecureOutbound(ctx, a, srv.LocalPeer()); err == nil {
			c.Close()
			t.Fatal("dialed a server presenting a certificate it has no key for")
		}
		<-done
		if gotCert.Load() {
			t.Fatal("our certificate went to a server without its certificate's key")
		}
		if n := lookupsOf(cli); n != 5 {
			t.Fatalf("client lookups %d, want still 5", n)
		}
	})

	// The client's certificate presented by a client without its key.
	cliCert, _, err := cli.certificate()
	if err != nil {
		t.Fatal(err)
	}
	stolen = tls.Certificate{Certificate: cliCert.Certificate, PrivateKey: newCertKey(t), Leaf: cliCert.Leaf}
	t.Run("stolen-client-certificate", func(t *testing.T) {
		a, b := tcpPair(t)
		defer b.Close()
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer a.Close()
			tls.Client(a, tlstest.ClientConfig(stolen, alpnLibp2p)).HandshakeContext(ctx)
		}()
		if c, err := srv.SecureInbound(ctx, b, ""); err == nil {
			c.Close()
			t.Fatal("accepted a client presenting a certificate it has no key for")
		}
		<-done
		if n := lookupsOf(srv); n != 4 {
			t.Fatalf("server lookups %d, want still 4", n)
		}
	})
	if n := checks.Load(); n != 2 {
		t.Fatalf("certificates checked %d times, want still 2", n)
	}

	// ServerConfig's handshakes (QUIC listeners) share the table through
	// CheckPeer: the client's certificate is found, not checked again.
	t.Run("server-config", func(t *testing.T) {
		a, b := tcpPair(t)
		defer a.Close()
		defer b.Close()
		go tls.Client(a, tlstest.ClientConfig(*cliCert, alpnLibp2p)).HandshakeContext(ctx)
		s := tls.Server(b, quicServerConfig(t, srv))
		if err := s.HandshakeContext(ctx); err != nil {
			t.Fatal(err)
		}
		_, id, err := srv.CheckPeer(s.ConnectionState().PeerCertificates)
		if err != nil || id != cli.LocalPeer() {
			t.Fatalf("CheckPeer = %s, %v", id, err)
		}
		if n, l := checks.Load(), lookupsOf(srv); n != 2 || l != 5 {
			t.Fatalf("%d checks and %d server lookups, want still 2 checks and 5 lookups", n, l)
		}
	})
	// ... and a client presenting that certificate without its key fails
	// the handshake before anything is looked up.
	t.Run("server-config-stolen-client-certificate", func(t *testing.T) {
		a, b := tcpPair(t)
		defer a.Close()
		defer b.Close()
		go tls.Client(a, tlstest.ClientConfig(stolen, alpnLibp2p)).HandshakeContext(ctx)
		if err := tls.Server(b, quicServerConfig(t, srv)).HandshakeContext(ctx); err == nil {
			t.Fatal("ServerConfig's handshake passed a client without its certificate's key")
		}
		if l := lookupsOf(srv); l != 5 {
			t.Fatalf("server lookups %d, want still 5", l)
		}
	})

	// Another server: both check anew.
	if cr, sr := func() (result, result) {
		srv2 := newTransport(t, nil, nil)
		a, b := tcpPair(t)
		defer a.Close()
		defer b.Close()
		return handshakePair(t, cli, srv2, a, b, srv2.LocalPeer())
	}(); cr.err != nil || sr.err != nil {
		t.Fatalf("dial to a second server: %v / %v", cr.err, sr.err)
	} else {
		cr.conn.Close()
		sr.conn.Close()
	}
	if n := checks.Load(); n != 4 {
		t.Fatalf("a second server: %d checks in all, want 4", n)
	}
}

// quicServerConfig is tr's ServerConfig as transport/udpmux uses it: its
// own callbacks, not GetConfigForClient's, and ALPN "libp2p".
func quicServerConfig(t *testing.T, tr *Transport) *tls.Config {
	t.Helper()
	conf, err := tr.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	conf.GetConfigForClient = nil
	conf.NextProtos = []string{alpnLibp2p}
	return conf
}

func newCertKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestCheckedCertificateExpires: a certificate that passed is still
// refused once it is no longer valid (the digest does not cover the time).
func TestCheckedCertificateExpires(t *testing.T) {
	host := newKey(t, crypto.Ed25519)
	id, _ := peer.IDFromPrivateKey(host)
	for _, f := range []tlstest.Forgery{tlstest.Expired, tlstest.NotYetValid} {
		cert, err := tlstest.Certificate(host, f)
		if err != nil {
			t.Fatal(err)
		}
		tr := newTransport(t, nil, nil)
		tr.checked.Add(verified.Sum(certDigestDomain, cert.Leaf.Raw), checkedCert{pub: host.GetPublic(), id: id})
		if _, err := tr.checkOnce([]*x509.Certificate{cert.Leaf}); err == nil || !strings.Contains(err.Error(), "not valid now") {
			t.Fatalf("%s certificate found in the table: %v", f, err)
		}
	}
}

// TestServerConfigRotates: a QUIC listener keeps the config ServerConfig
// gave it for its lifetime, and its certificate still rotates after
// certLifetime, as SecureInbound's does, whether the config is used as
// udpmux uses it (its own ALPN, no GetConfigForClient) or whole.
func TestServerConfigRotates(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr := newTransport(t, nil, nil)
	cli := newTransport(t, nil, nil)
	cliCert, _, err := cli.certificate()
	if err != nil {
		t.Fatal(err)
	}
	whole, err := tr.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	configs := map[string]*tls.Config{"as udpmux uses it": quicServerConfig(t, tr), "whole": whole}
	// served is the certificate a handshake with conf presents.
	served := func(t *testing.T, conf *tls.Config) []byte {
		t.Helper()
		a, b := tcpPair(t)
		defer a.Close()
		defer b.Close()
		go tls.Server(b, conf).HandshakeContext(ctx)
		c := tls.Client(a, tlstest.ClientConfig(*cliCert, alpnLibp2p))
		if err := c.HandshakeContext(ctx); err != nil {
			t.Fatal(err)
		}
		return c.ConnectionState().PeerCertificates[0].Raw
	}
	before := map[string][]byte{}
	for name, conf := range configs {
		before[name] = served(t, conf)
		if again := served(t, conf); !bytes.Equal(again, before[name]) {
			t.Fatalf("%s: the certificate changed before certLifetime", name)
		}
	}
	tr.mu.Lock()
	tr.certAge = time.Now().Add(-certLifetime - time.Minute)
	tr.mu.Unlock()
	cur, _, err := tr.certificate()
	if err != nil {
		t.Fatal(err)
	}
	for name, conf := range configs {
		after := served(t, conf)
		if bytes.Equal(after, before[name]) {
			t.Fatalf("%s: the listener still serves its first certificate after certLifetime", name)
		}
		if !bytes.Equal(after, cur.Leaf.Raw) {
			t.Fatalf("%s: the listener serves a certificate that is not the transport's current one", name)
		}
	}
}

// TestCertificateKeyTypes: tls.md lets a peer pick its certificate key
// (any type the other side can verify; go and rust use P-256): peers
// presenting P-384, P-521, Ed25519 and RSA certificate keys are accepted
// inbound, outbound and by ServerConfig plus CheckPeer, as the host they
// claim. (tachyon itself presents P-256, which every implementation
// verifies.)
func TestCertificateKeyTypes(t *testing.T) {
	keys := []struct {
		name string
		gen  func() (stdcrypto.Signer, error)
	}{
		{"P-256", func() (stdcrypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }},
		{"P-384", func() (stdcrypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P384(), rand.Reader) }},
		{"P-521", func() (stdcrypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P521(), rand.Reader) }},
		{"Ed25519", func() (stdcrypto.Signer, error) { _, k, err := ed25519.GenerateKey(rand.Reader); return k, err }},
		{"RSA-2048", func() (stdcrypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) }},
	}
	tr := newTransport(t, nil, nil)
	for _, k := range keys {
		t.Run(k.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			host := newKey(t, crypto.Ed25519)
			claimed, _ := peer.IDFromPrivateKey(host)
			certKey, err := k.gen()
			if err != nil {
				t.Fatal(err)
			}
			cert, err := tlstest.CertificateKeyed(host, certKey)
			if err != nil {
				t.Fatal(err)
			}
			// peer runs the other side's handshake on its end of a pipe.
			pair := func(t *testing.T, peer func(net.Conn) *tls.Conn) (ours net.Conn, done <-chan struct{}) {
				a, b := tcpPair(t)
				ch := make(chan struct{})
				go func() {
					defer close(ch)
					defer b.Close()
					if c := peer(b); c.HandshakeContext(ctx) == nil {
						io.Copy(io.Discard, c)
					}
				}()
				return a, ch
			}
			for _, dir := range []struct {
				name string
				peer func(net.Conn) *tls.Conn
				ours func(net.Conn) (network.SecureConn, error)
			}{
				{"outbound",
					func(c net.Conn) *tls.Conn { return tls.Server(c, tlstest.ServerConfig(cert, alpnLibp2p)) },
					func(c net.Conn) (network.SecureConn, error) { return tr.SecureOutbound(ctx, c, claimed) }},
				{"inbound",
					func(c net.Conn) *tls.Conn { return tls.Client(c, tlstest.ClientConfig(cert, alpnLibp2p)) },
					func(c net.Conn) (network.SecureConn, error) { return tr.SecureInbound(ctx, c, "") }},
			} {
				t.Run(dir.name, func(t *testing.T) {
					a, done := pair(t, dir.peer)
					c, err := dir.ours(a)
					if err != nil {
						t.Fatalf("peer with a %s certificate refused: %v", k.name, err)
					}
					if c.RemotePeer() != claimed {
						t.Fatalf("remote %s, want %s", c.RemotePeer(), claimed)
					}
					c.Close()
					<-done
				})
			}
			t.Run("server-config", func(t *testing.T) {
				b, done := pair(t, func(c net.Conn) *tls.Conn { return tls.Client(c, tlstest.ClientConfig(cert, alpnLibp2p)) })
				s := tls.Server(b, quicServerConfig(t, tr))
				if err := s.HandshakeContext(ctx); err != nil {
					t.Fatalf("handshake with a %s client certificate: %v", k.name, err)
				}
				_, id, err := tr.CheckPeer(s.ConnectionState().PeerCertificates)
				if err != nil || id != claimed {
					t.Fatalf("CheckPeer = %s, %v; want %s", id, err, claimed)
				}
				b.Close()
				<-done
			})
		})
	}
}
