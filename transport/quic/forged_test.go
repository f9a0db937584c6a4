package quic_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/security/tls/tlstest"
	"github.com/tachyon-p2p/tachyon/transport/quic"
	"github.com/tachyon-p2p/tachyon/transport/udpmux"
	tt "github.com/tachyon-p2p/tachyon/transport/udpmux/transporttest"
	"github.com/tachyon-p2p/tachyon/transport/webtransport"
)

// These tests present certificates that tls.md makes invalid on every path
// a QUIC handshake takes (dial, accept, hole punch). A dialer checks the
// server's certificate in the handshake, before its own leaves: the dial
// fails with a TLS alert. A listener's socket counts the client's chain in
// the handshake and checks it once the handshake is complete (peerOf, when
// the client has proved it holds the certificate's key): the connection is
// closed by the listener, and neither Accept nor a hole punch returns it.

// kinds is the genuine certificate, which must pass through the same rig
// (so that the rig can fail), and every forgery.
var kinds = append([]tlstest.Forgery{tlstest.Genuine}, tlstest.Forgeries...)

// forgedCert returns a certificate claiming a fresh host key, wrong as f
// says, and the peer ID it claims.
func forgedCert(t *testing.T, f tlstest.Forgery) (tls.Certificate, peer.ID) {
	t.Helper()
	host, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tlstest.Certificate(host, f)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(host)
	return cert, id
}

// alertClose reports whether err is a QUIC connection close carrying a TLS
// alert, sent by the peer (remote) or by us.
func alertClose(err error, remote bool) bool {
	te, ok := errors.AsType[*quicgo.TransportError](err)
	return ok && te.ErrorCode.IsCryptoError() && te.Remote == remote
}

// closedByPeer reports whether err is the peer closing the connection: in
// the handshake with a TLS alert, or after it.
func closedByPeer(err error) bool {
	ae, ok := errors.AsType[*quicgo.ApplicationError](err)
	return alertClose(err, true) || ok && ae.Remote
}

// forgedServer serves QUIC with ALPN libp2p, presenting cert and checking
// nothing, until the test ends.
func forgedServer(t *testing.T, cert tls.Certificate) *net.UDPAddr {
	t.Helper()
	ln, err := quicgo.ListenAddr("127.0.0.1:0", tlstest.ServerConfig(cert, udpmux.ALPNLibp2p), nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// An accepted connection stays open until the dialer closes it or
		// the listener closes.
		for {
			if _, err := ln.Accept(context.Background()); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().(*net.UDPAddr)
}

// forgedDial dials raddr from its own socket with ALPN libp2p, presenting
// cert and checking nothing. It returns the connection's end: nil if the
// handshake and the connection survived until ctx ended (which the caller
// treats as acceptance), else the error that ended it.
func forgedDial(ctx context.Context, udp *net.UDPConn, raddr net.Addr, cert tls.Certificate) (ended error) {
	tr := &quicgo.Transport{Conn: udp}
	defer tr.Close()
	c, err := tr.Dial(ctx, raddr, tlstest.ClientConfig(cert, udpmux.ALPNLibp2p), nil)
	if err != nil {
		return err
	}
	// TLS 1.3: the client is done before the server has checked its
	// certificate; the server's verdict arrives afterwards.
	select {
	case <-c.Context().Done():
		return context.Cause(c.Context())
	case <-ctx.Done():
		c.CloseWithError(0, "")
		return nil
	}
}

func localUDP(t *testing.T) *net.UDPConn {
	t.Helper()
	udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { udp.Close() })
	return udp
}

// TestForgedServer: dialing a server whose certificate claims the dialed
// peer but is invalid fails in the handshake, whatever socket the dial
// leaves from, also for the dialing side of a hole punch.
func TestForgedServer(t *testing.T) {
	for _, f := range kinds {
		t.Run(f.String(), func(t *testing.T) {
			leakcheck.Check(t)
			tt.CheckQUICGoroutines(t)
			cert, claimed := forgedCert(t, f)
			raddr := quic.FormatAddr(forgedServer(t, cert).AddrPort())
			for _, path := range []string{"listening-socket", "no-listener", "hole-punch-client"} {
				t.Run(path, func(t *testing.T) {
					mux := udpmux.New(nil)
					d, _ := newPeer(t, mux)
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					switch path {
					case "listening-socket":
						l := tt.Listen(t, d, "/ip4/127.0.0.1/udp/0/quic-v1")
						defer l.Close()
					case "hole-punch-client":
						ctx = network.WithSimultaneousConnect(ctx, true)
					}
					c, err := d.Dial(ctx, raddr, claimed)
					if f == tlstest.Genuine {
						if err != nil {
							t.Fatalf("dialing the genuine server: %v", err)
						}
						if c.RemotePeer() != claimed {
							t.Fatalf("remote %s, want %s", c.RemotePeer(), claimed)
						}
						c.Close()
						return
					}
					if err == nil {
						c.Close()
						t.Fatalf("dialed a server presenting a %s certificate as %s", f, c.RemotePeer())
					}
					if !alertClose(err, false) {
						t.Fatalf("the dial failed, but not in the TLS handshake: %v", err)
					}
				})
			}
		})
	}
}

// TestForgedClient: a client whose certificate is invalid is refused by a
// listener, also when WebTransport shares its socket, and by a hole punch
// waiting for the peer that certificate claims: its connection is closed,
// and neither Accept nor the punch returns it.
func TestForgedClient(t *testing.T) {
	for _, f := range kinds {
		t.Run(f.String(), func(t *testing.T) {
			for _, path := range []string{"listen", "listen-shared-with-webtransport", "hole-punch"} {
				t.Run(path, func(t *testing.T) {
					leakcheck.Check(t)
					tt.CheckQUICGoroutines(t)
					testForgedClient(t, f, path)
				})
			}
		})
	}
}

func testForgedClient(t *testing.T, f tlstest.Forgery, path string) {
	cert, claimed := forgedCert(t, f)
	mux := udpmux.New(nil)
	b, _ := newPeer(t, mux)
	if path == "listen-shared-with-webtransport" {
		k, _ := crypto.GenerateEd25519Key(nil)
		w, err := webtransport.New(k, mux, nil)
		if err != nil {
			t.Fatal(err)
		}
		wl := tt.Listen(t, w, "/ip4/127.0.0.1/udp/0/quic-v1/webtransport")
		defer wl.Close()
	}
	l := tt.Listen(t, b, "/ip4/127.0.0.1/udp/0/quic-v1")
	defer l.Close()
	if path == "listen-shared-with-webtransport" && mux.NumSockets() != 1 {
		t.Fatalf("%d sockets: QUIC and WebTransport do not share one", mux.NumSockets())
	}
	laddr := net.UDPAddrFromAddrPort(l.(*quic.Listener).Addr())
	udp := localUDP(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	type result struct {
		c   network.TransportConn
		err error
	}
	got := make(chan result, 1)
	accepted := got // what the listener's Accept returns
	if path == "hole-punch" {
		// A connection the punch does not claim goes to the listener,
		// whose Accept a host always waits in.
		accepted = make(chan result, 1)
		go func() {
			c, err := l.Accept()
			accepted <- result{c, err}
		}()
		from := quic.FormatAddr(udp.LocalAddr().(*net.UDPAddr).AddrPort())
		go func() {
			c, err := b.HolePunch(ctx, from, claimed)
			got <- result{c, err}
		}()
		waitPunching(t, mux)
	} else {
		go func() {
			c, err := l.Accept()
			got <- result{c, err}
		}()
	}
	// The punch's connection is the punch's alone.
	listenerTookNone := func() {
		if path != "hole-punch" {
			return
		}
		l.Close()
		if r := <-accepted; r.err == nil {
			r.c.Close()
			t.Fatalf("the listener took the connection of a hole punch, as %s", r.c.RemotePeer())
		}
	}

	if f == tlstest.Genuine {
		dctx, dcancel := context.WithCancel(ctx)
		dialed := make(chan error, 1)
		go func() { dialed <- forgedDial(dctx, udp, laddr, cert) }()
		r := <-got
		dcancel()
		if err := <-dialed; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("the genuine client's connection ended: %v", err)
		}
		if r.err != nil {
			t.Fatalf("the genuine client was not accepted: %v", r.err)
		}
		defer r.c.Close()
		if r.c.RemotePeer() != claimed {
			t.Fatalf("remote %s, want %s", r.c.RemotePeer(), claimed)
		}
		listenerTookNone()
		return
	}

	dialed := make(chan error, 1)
	go func() { dialed <- forgedDial(ctx, udp, laddr, cert) }()
	var ended error
	select {
	case r := <-got:
		cancel()
		<-dialed
		if r.err == nil {
			r.c.Close()
			t.Fatalf("the client presenting a %s certificate was taken as %s", f, r.c.RemotePeer())
		}
		t.Fatalf("waiting for a connection: %v", r.err)
	case ended = <-dialed:
	}
	// The handshake is over; whatever B made of it is in got once its
	// accept or punch ends.
	l.Close()
	cancel()
	if r := <-got; r.err == nil {
		r.c.Close()
		t.Fatalf("the client presenting a %s certificate was taken as %s", f, r.c.RemotePeer())
	}
	listenerTookNone()
	if !closedByPeer(ended) {
		t.Fatalf("the forged client's connection was not closed by the listener: %v", ended)
	}
}

// TestForgedClientRefusedWithoutAccept: a listener refuses a forged client
// as soon as its handshake completes, whether or not anyone waits in
// Accept: the check is the socket's (udpmux.ListenVerified), within its
// handshake budget, not the accepting goroutine's.
func TestForgedClientRefusedWithoutAccept(t *testing.T) {
	leakcheck.Check(t)
	tt.CheckQUICGoroutines(t)
	cert, _ := forgedCert(t, tlstest.WrongSigner)
	b, _ := newPeer(t, udpmux.New(nil))
	l := tt.Listen(t, b, "/ip4/127.0.0.1/udp/0/quic-v1")
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ended := forgedDial(ctx, localUDP(t), net.UDPAddrFromAddrPort(l.(*quic.Listener).Addr()), cert)
	ae, ok := errors.AsType[*quicgo.ApplicationError](ended)
	if !ok || !ae.Remote || ae.ErrorMessage != udpmux.RefusedReason {
		t.Fatalf("the forged client's connection ended with %v, want the listener's close with %q", ended, udpmux.RefusedReason)
	}
}
