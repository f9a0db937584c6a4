package tls

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

type specVector struct {
	Name string `json:"name"`
	Cert string `json:"cert"`
	Peer string `json:"peer"`
}

func loadVectors(t testing.TB) []specVector {
	raw, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Vectors []specVector `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return v.Vectors
}

func TestSpecVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			der, err := hex.DecodeString(v.Cert)
			if err != nil {
				t.Fatal(err)
			}
			pub, err := pubKeyFromRawCerts([][]byte{der})
			if v.Peer == "" {
				if err == nil {
					t.Fatal("invalid certificate accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want, err := peer.Decode(v.Peer)
			if err != nil {
				t.Fatal(err)
			}
			if !want.MatchesPublicKey(pub) {
				id, _ := peer.IDFromPublicKey(pub)
				t.Fatalf("peer %s, want %s", id, v.Peer)
			}
		})
	}
}

func newKey(t testing.TB, typ crypto.KeyType) crypto.PrivKey {
	t.Helper()
	bits := 0
	if typ == crypto.RSA {
		bits = 2048
	}
	k, _, err := crypto.GenerateKeyPair(typ, bits, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newTransport(t testing.TB, key crypto.PrivKey, cfg *Config) *Transport {
	t.Helper()
	if key == nil {
		key = newKey(t, crypto.Ed25519)
	}
	tr, err := New(key, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestGeneratedCertificate(t *testing.T) {
	for _, kt := range []crypto.KeyType{crypto.Ed25519, crypto.Secp256k1, crypto.ECDSA, crypto.RSA} {
		t.Run(kt.String(), func(t *testing.T) {
			k := newKey(t, kt)
			cert, err := newCertificate(k)
			if err != nil {
				t.Fatal(err)
			}
			pub, err := PubKeyFromCertChain([]*x509.Certificate{cert.Leaf})
			if err != nil {
				t.Fatal(err)
			}
			if !pub.Equal(k.GetPublic()) {
				t.Fatal("wrong key")
			}
			if time.Until(cert.Leaf.NotBefore) > -59*time.Minute || cert.Leaf.SerialNumber.Sign() <= 0 {
				t.Fatalf("NotBefore %v serial %v", cert.Leaf.NotBefore, cert.Leaf.SerialNumber)
			}
		})
	}
	// Two certificates in the chain, or none, are rejected.
	k := newKey(t, crypto.Ed25519)
	c, _ := newCertificate(k)
	if _, err := PubKeyFromCertChain([]*x509.Certificate{c.Leaf, c.Leaf}); err == nil {
		t.Fatal("two certificates accepted")
	}
	if _, err := PubKeyFromCertChain(nil); err == nil {
		t.Fatal("empty chain accepted")
	}
	// A tampered self-signature is rejected.
	der := bytes.Clone(c.Certificate[0])
	der[len(der)-5] ^= 0x40
	if _, err := pubKeyFromRawCerts([][]byte{der}); err == nil {
		t.Fatal("tampered certificate accepted")
	}
}

func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-ch
	if b == nil {
		t.Fatal("accept failed")
	}
	return a, b
}

var pipes = []struct {
	name string
	pair func(testing.TB) (net.Conn, net.Conn)
}{
	{"pipe", func(testing.TB) (net.Conn, net.Conn) { return net.Pipe() }},
	{"tcp", tcpPair},
}

type result struct {
	conn network.SecureConn
	err  error
}

func handshakePair(t testing.TB, cli, srv *Transport, a, b net.Conn, expect peer.ID) (result, result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch := make(chan result, 1)
	go func() {
		c, err := srv.SecureInbound(ctx, b, "")
		ch <- result{c, err}
	}()
	c, err := cli.SecureOutbound(ctx, a, expect)
	return result{c, err}, <-ch
}

// closeBoth closes a while b drains its close_notify (over net.Pipe that
// alert write blocks until someone reads it), then closes b.
func closeBoth(a, b net.Conn) {
	done := make(chan struct{})
	go func() {
		a.Close()
		close(done)
	}()
	io.Copy(io.Discard, b)
	<-done
	b.Close()
}

func TestHandshakeAndData(t *testing.T) {
	leakcheck.Check(t)
	for _, p := range pipes {
		for _, kt := range []crypto.KeyType{crypto.Ed25519, crypto.Secp256k1, crypto.ECDSA} {
			t.Run(p.name+"/"+kt.String(), func(t *testing.T) {
				ck, sk := newKey(t, kt), newKey(t, crypto.Ed25519)
				cli, srv := newTransport(t, ck, nil), newTransport(t, sk, nil)
				a, b := p.pair(t)
				cr, sr := handshakePair(t, cli, srv, a, b, srv.LocalPeer())
				if cr.err != nil || sr.err != nil {
					t.Fatalf("handshake: %v / %v", cr.err, sr.err)
				}
				defer closeBoth(cr.conn, sr.conn)
				if cr.conn.RemotePeer() != srv.LocalPeer() || sr.conn.RemotePeer() != cli.LocalPeer() {
					t.Fatal("wrong remote peers")
				}
				if !cr.conn.RemotePublicKey().Equal(sk.GetPublic()) || !sr.conn.RemotePublicKey().Equal(ck.GetPublic()) {
					t.Fatal("wrong remote keys")
				}
				if s := cr.conn.ConnState(); s.Security != ID || s.Muxer != "" {
					t.Fatalf("state %+v", s)
				}
				cs := cr.conn.(*Conn).ConnectionState()
				if cs.ServerName != "" || cs.NegotiatedProtocol != "libp2p" {
					t.Fatalf("server name %q alpn %q", cs.ServerName, cs.NegotiatedProtocol)
				}
				if sr.conn.(*Conn).ConnectionState().ServerName != "" {
					t.Fatal("client sent SNI")
				}
				data := make([]byte, 300000)
				rand.Read(data)
				errc := make(chan error, 1)
				go func() {
					_, err := cr.conn.Write(data)
					errc <- err
				}()
				got := make([]byte, len(data))
				if _, err := io.ReadFull(sr.conn, got); err != nil || !bytes.Equal(got, data) {
					t.Fatalf("read: %v", err)
				}
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

func TestALPN(t *testing.T) {
	leakcheck.Check(t)
	const yamux, other = "/yamux/1.0.0", "/other/1"
	cases := []struct {
		name     string
		cli, srv []protocol.ID
		want     protocol.ID
	}{
		{"client order wins", []protocol.ID{yamux, other}, []protocol.ID{other, yamux}, yamux},
		{"client order wins reversed", []protocol.ID{other, yamux}, []protocol.ID{yamux, other}, other},
		{"no overlap falls back", []protocol.ID{other}, []protocol.ID{yamux}, ""},
		{"client none", nil, []protocol.ID{yamux}, ""},
		{"server none", []protocol.ID{yamux}, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cli := newTransport(t, nil, &Config{Muxers: tc.cli})
			srv := newTransport(t, nil, &Config{Muxers: tc.srv})
			a, b := net.Pipe()
			cr, sr := handshakePair(t, cli, srv, a, b, srv.LocalPeer())
			if cr.err != nil || sr.err != nil {
				t.Fatalf("handshake: %v / %v", cr.err, sr.err)
			}
			defer closeBoth(cr.conn, sr.conn)
			if g, h := cr.conn.ConnState().Muxer, sr.conn.ConnState().Muxer; g != tc.want || h != tc.want {
				t.Fatalf("muxer %q / %q, want %q", g, h, tc.want)
			}
		})
	}
}

func TestWrongPeerID(t *testing.T) {
	leakcheck.Check(t)
	cli, srv := newTransport(t, nil, nil), newTransport(t, nil, nil)
	a, b := tcpPair(t)
	cr, sr := handshakePair(t, cli, srv, a, b, newTransport(t, nil, nil).LocalPeer())
	if cr.err == nil || !strings.Contains(cr.err.Error(), "peer ID mismatch") || !strings.HasPrefix(cr.err.Error(), "tls: ") {
		t.Fatalf("client error %v", cr.err)
	}
	if sr.err == nil {
		sr.conn.Close()
		t.Fatal("server succeeded")
	}
	t.Logf("client: %v; server: %v", cr.err, sr.err)
	for _, err := range []error{cr.err, sr.err} {
		if strings.Count(err.Error(), "tls: ") != 1 || strings.Count(err.Error(), "handshake") != 1 {
			t.Errorf("error repeats itself: %v", err)
		}
	}
}

func TestInboundExpectedPeer(t *testing.T) {
	leakcheck.Check(t)
	cli, srv := newTransport(t, nil, nil), newTransport(t, nil, nil)
	a, b := tcpPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ch := make(chan error, 1)
	go func() {
		_, err := srv.SecureInbound(ctx, b, newTransport(t, nil, nil).LocalPeer())
		ch <- err
	}()
	c, err := cli.SecureOutbound(ctx, a, srv.LocalPeer())
	if err == nil {
		defer c.Close()
		// TLS 1.3: the client finishes first; the rejection shows on read.
		c.Read(make([]byte, 1))
	}
	if err := <-ch; err == nil || !strings.Contains(err.Error(), "peer ID mismatch") {
		t.Fatalf("server error %v", err)
	}
}

func TestContext(t *testing.T) {
	leakcheck.Check(t)
	tr := newTransport(t, nil, nil)
	t.Run("cancel", func(t *testing.T) {
		a, b := net.Pipe()
		defer b.Close()
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		if _, err := tr.SecureInbound(ctx, a, ""); !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		a, b := tcpPair(t)
		defer b.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if _, err := tr.SecureOutbound(ctx, a, tr.LocalPeer()); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %v", err)
		}
	})
}

func TestGarbageFromClient(t *testing.T) {
	leakcheck.Check(t)
	tr := newTransport(t, nil, nil)
	a, b := net.Pipe()
	go func() {
		a.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
		io.Copy(io.Discard, a)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := tr.SecureInbound(ctx, b, ""); err == nil || !strings.HasPrefix(err.Error(), "tls: ") {
		t.Fatalf("error %v", err)
	}
	a.Close()
}

// FuzzCertificate feeds arbitrary DER to the libp2p certificate checks: no
// panics, and whatever passes yields a key that re-derives a peer ID.
func FuzzCertificate(f *testing.F) {
	for _, v := range loadVectors(f) {
		der, _ := hex.DecodeString(v.Cert)
		f.Add(der)
	}
	c, err := newCertificate(newKey(f, crypto.Ed25519))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(c.Certificate[0])
	tr := newTransport(f, nil, nil)
	f.Fuzz(func(t *testing.T, der []byte) {
		pub, err := pubKeyFromRawCerts([][]byte{der})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "tls: ") {
				t.Fatalf("error without prefix: %v", err)
			}
			return
		}
		if _, err := peer.IDFromPublicKey(pub); err != nil {
			t.Fatal(err)
		}
		// What passed, CheckPeer passes with the same key, checked or kept.
		cert, _ := x509.ParseCertificate(der)
		for range 2 {
			hk, _, err := tr.CheckPeer([]*x509.Certificate{cert})
			if err != nil || !hk.Equal(pub) {
				t.Fatalf("CheckPeer after a passed check = %v, %v; want the checked key", hk, err)
			}
		}
	})
}

// pubKeyFromRawCerts parses a raw chain as a TLS peer sends it and checks
// it as PubKeyFromCertChain does.
func pubKeyFromRawCerts(raw [][]byte) (crypto.PubKey, error) {
	if len(raw) != 1 {
		return nil, fmt.Errorf("tls: expected exactly one certificate, got %d", len(raw))
	}
	cert, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return nil, fmt.Errorf("tls: parsing certificate: %w", err)
	}
	return PubKeyFromCertChain([]*x509.Certificate{cert})
}
