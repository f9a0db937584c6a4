package webrtc

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	tt "github.com/tachyon-p2p/tachyon/transport/udpmux/transporttest"
)

func newTransport(t testing.TB) (*Transport, peer.ID) {
	t.Helper()
	key, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := GenerateCertificate()
	if err != nil {
		t.Fatal(err)
	}
	tr, err := New(key, cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tr, tr.local
}

func listen(t testing.TB, tr *Transport, addr string) network.Listener {
	t.Helper()
	l, err := tr.Listen(ma.StringCast(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// connect dials l from d and returns both ends.
func connect(t testing.TB, d *Transport, l network.Listener, server peer.ID) (client, srv network.TransportConn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type res struct {
		c   network.TransportConn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := l.Accept()
		ch <- res{c, err}
	}()
	client, err := d.Dial(ctx, l.Multiaddrs()[0], server)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.c.Close() })
	return client, r.c
}

func TestConnectBothWays(t *testing.T) {
	leakcheck.Check(t)
	for _, addr := range []string{"/ip4/127.0.0.1/udp/0/webrtc-direct", "/ip6/::1/udp/0/webrtc-direct"} {
		t.Run(addr, func(t *testing.T) {
			a, aID := newTransport(t)
			b, bID := newTransport(t)
			la := listen(t, a, addr)
			lb := listen(t, b, addr)
			for _, tc := range []struct {
				name   string
				dialer *Transport
				l      network.Listener
				dID    peer.ID
				lID    peer.ID
			}{{"a->b", a, lb, aID, bID}, {"b->a", b, la, bID, aID}} {
				c, s := connect(t, tc.dialer, tc.l, tc.lID)
				if c.RemotePeer() != tc.lID || s.RemotePeer() != tc.dID {
					t.Fatalf("%s: peers %s/%s", tc.name, c.RemotePeer(), s.RemotePeer())
				}
				if c.ConnState().Transport != "webrtc-direct" || c.Direction() != network.DirOutbound || s.Direction() != network.DirInbound {
					t.Fatalf("%s: state %+v dirs %v %v", tc.name, c.ConnState(), c.Direction(), s.Direction())
				}
				// streams both ways
				echoOnce(t, c, s)
				echoOnce(t, s, c)
				c.Close()
				s.Close()
			}
		})
	}
}

// echoOnce opens a stream on from, writes, and checks the echo from to.
func echoOnce(t *testing.T, from, to network.TransportConn) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		s, err := to.AcceptStream()
		if err != nil {
			done <- err
			return
		}
		_, err = io.Copy(s, s)
		if err == nil {
			err = s.Close()
		}
		done <- err
	}()
	s, err := from.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("hello over webrtc")
	if _, err := s.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo %q", got)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// TestHandshakeDuration: an accepted WebRTC-direct connection reports
// how long its handshake took from the first STUN binding request, a
// dialed one 0.
func TestHandshakeDuration(t *testing.T) {
	leakcheck.Check(t)
	a, aID := newTransport(t)
	b, bID := newTransport(t)
	l := listen(t, a, "/ip4/127.0.0.1/udp/0/webrtc-direct")
	tt.RunHandshakeDuration(t, tt.Peer{T: b, ID: bID}, l, aID)
}
