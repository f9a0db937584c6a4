package quic_test

import (
	"context"
	"crypto/rand"
	"net"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/transport/quic"
	"github.com/tachyon-p2p/tachyon/transport/udpmux"
	tt "github.com/tachyon-p2p/tachyon/transport/udpmux/transporttest"
)

func newPeer(t testing.TB, mux *udpmux.Mux) (*quic.Transport, tt.Peer) {
	t.Helper()
	k, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	if mux == nil {
		mux = udpmux.New(nil)
	}
	tr, err := quic.New(k, mux, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tr, tt.Peer{T: tr, ID: id}
}

func TestCanDial(t *testing.T) {
	tr, _ := newPeer(t, nil)
	for s, want := range map[string]bool{
		"/ip4/1.2.3.4/udp/1/quic-v1":              true,
		"/ip6/::1/udp/1/quic-v1":                  true,
		"/ip4/1.2.3.4/udp/1/quic":                 false,
		"/ip4/1.2.3.4/udp/0/quic-v1":              false,
		"/ip4/0.0.0.0/udp/1/quic-v1":              false,
		"/ip4/1.2.3.4/tcp/1":                      false,
		"/ip4/1.2.3.4/udp/1/quic-v1/webtransport": false,
		"/dns4/example.com/udp/1/quic-v1":         false,
	} {
		if got := tr.CanDial(ma.StringCast(s)); got != want {
			t.Errorf("CanDial(%s) = %v", s, got)
		}
	}
}

func TestQUIC(t *testing.T) {
	for _, ip := range []string{"/ip4/127.0.0.1", "/ip6/::1"} {
		t.Run(ip, func(t *testing.T) {
			leakcheck.Check(t)
			tt.CheckQUICGoroutines(t)
			muxA, muxB := udpmux.New(nil), udpmux.New(nil)
			a, pa := newPeer(t, muxA)
			b, pb := newPeer(t, muxB)
			la := tt.Listen(t, a, ip+"/udp/0/quic-v1")
			lb := tt.Listen(t, b, ip+"/udp/0/quic-v1")
			start := time.Now()
			dc, ac := tt.Connect(t, pb, la, pa.ID)
			t.Logf("connection setup: %v", time.Since(start))

			// Port reuse: B dialed from its listening socket.
			if got, want := dc.LocalMultiaddr().String(), lb.Multiaddrs()[0].String(); got != want {
				t.Errorf("dial left from %s, want the listening socket %s", got, want)
			}
			if got := ac.RemoteMultiaddr().String(); got != lb.Multiaddrs()[0].String() {
				t.Errorf("listener observed %s, want %s", got, lb.Multiaddrs()[0])
			}
			st := dc.ConnState()
			if st.Transport != "quic-v1" || st.Security != "/tls/1.0.0" || st.Muxer != "" {
				t.Errorf("ConnState = %+v", st)
			}
			tt.RunReset(t, dc, ac)
			tt.RunDeadline(t, dc, ac)
			tt.RunBasic(t, pb, dc, ac, pa.ID)
			la.Close()
			lb.Close()
			waitSockets(t, muxA, 0)
			waitSockets(t, muxB, 0)
		})
	}
}

func waitSockets(t *testing.T, m *udpmux.Mux, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for m.NumSockets() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d sockets open, want %d", m.NumSockets(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDialWithoutListener(t *testing.T) {
	leakcheck.Check(t)
	tt.CheckQUICGoroutines(t)
	a, pa := newPeer(t, nil)
	mux := udpmux.New(nil)
	_, pb := newPeer(t, mux)
	la := tt.Listen(t, a, "/ip4/127.0.0.1/udp/0/quic-v1")
	dc, ac := tt.Connect(t, pb, la, pa.ID)
	if mux.NumSockets() != 1 {
		t.Fatalf("%d sockets for one dial", mux.NumSockets())
	}
	tt.RunBasic(t, pb, dc, ac, pa.ID)
	waitSockets(t, mux, 0) // the ephemeral dial socket goes with its last conn
}

func TestWrongPeerID(t *testing.T) {
	leakcheck.Check(t)
	tt.CheckQUICGoroutines(t)
	muxA, muxB := udpmux.New(nil), udpmux.New(nil)
	a, _ := newPeer(t, muxA)
	b, _ := newPeer(t, muxB)
	_, other := newPeer(t, nil)
	la := tt.Listen(t, a, "/ip4/127.0.0.1/udp/0/quic-v1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := b.Dial(ctx, la.Multiaddrs()[0], other.ID)
	if err == nil || !strings.Contains(err.Error(), "peer ID mismatch") {
		t.Fatalf("dial with the wrong peer ID: %v", err)
	}
	if _, err := b.Dial(ctx, la.Multiaddrs()[0], ""); err == nil {
		t.Fatal("dial without a peer ID succeeded")
	}
	waitSockets(t, muxB, 0)
	la.Close()
	waitSockets(t, muxA, 0)
}

// TestHandshakeFlood sends a flood of Initial-sized garbage and many
// client handshakes that never finish. A real client still gets through,
// and once the handshake timeout has passed nothing is left.
func TestHandshakeFlood(t *testing.T) {
	leakcheck.Check(t)
	tt.CheckQUICGoroutines(t)
	mux := udpmux.New(&udpmux.Config{MaxHandshakes: 16, HandshakeTimeout: time.Second})
	a, pa := newPeer(t, mux)
	_, pb := newPeer(t, nil)
	la := tt.Listen(t, a, "/ip4/127.0.0.1/udp/0/quic-v1")
	la.Multiaddrs()
	raddr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(la.(*quic.Listener).Addr().Port())}
	for range 8 {
		c, err := net.DialUDP("udp4", nil, raddr)
		if err != nil {
			t.Fatal(err)
		}
		for range 50 {
			c.Write(fakeInitial())
		}
		// Pure garbage too: short, long, non-QUIC.
		c.Write([]byte{0x00, 0x01})
		junk := make([]byte, 1500)
		rand.Read(junk)
		c.Write(junk)
		c.Close()
	}
	time.Sleep(200 * time.Millisecond)
	if n := mux.HandshakesInFlight(); n == 0 || n > 16 {
		t.Fatalf("%d handshakes in flight after the flood, want 1..16", n)
	}
	dc, ac := tt.Connect(t, pb, la, pa.ID)
	deadline := time.Now().Add(5 * time.Second)
	for mux.HandshakesInFlight() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d half-open handshakes still in flight", mux.HandshakesInFlight())
		}
		time.Sleep(20 * time.Millisecond)
	}
	tt.RunBasic(t, pb, dc, ac, pa.ID)
	la.Close()
	waitSockets(t, mux, 0)
}

// fakeInitial is a 1200-byte long-header Initial packet of QUIC v1 with
// random connection IDs and an undecryptable payload.
func fakeInitial() []byte {
	p := make([]byte, 1200)
	rand.Read(p)
	p[0] = 0xc0 | p[0]&0x0f // long header, fixed bit, type Initial
	copy(p[1:5], []byte{0, 0, 0, 1})
	p[5] = 8 // DCID length
	p[14] = 8
	p[23] = 0                 // token length 0
	p[24], p[25] = 0x44, 0x96 // length 1174 (the rest) as a 2-byte varint
	return p
}

func FuzzParseAddr(f *testing.F) {
	for _, s := range []string{"/ip4/127.0.0.1/udp/4001/quic-v1", "/ip6/::1/udp/1/quic-v1/webtransport", "/ip4/1.2.3.4/udp/1/quic", "/ip4/1.2.3.4/tcp/1"} {
		f.Add(ma.StringCast(s).Bytes())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		addr, err := ma.NewMultiaddrBytes(b)
		if err != nil {
			return
		}
		ap, rest, err := quic.ParseAddr(addr)
		if err != nil {
			return
		}
		back := quic.FormatAddr(ap)
		if len(addr) < 3 || !back.Equal(addr[:3]) && !ap.Addr().Is4In6() {
			t.Fatalf("%s parsed as %s + %s, formats back as %s", addr, ap, rest, back)
		}
	})
}

// TestHandshakeDuration: an accepted connection reports its QUIC
// handshake's duration, a dialed one 0.
func TestHandshakeDuration(t *testing.T) {
	leakcheck.Check(t)
	tt.CheckQUICGoroutines(t)
	a, pa := newPeer(t, nil)
	_, pb := newPeer(t, nil)
	la := tt.Listen(t, a, "/ip4/127.0.0.1/udp/0/quic-v1")
	tt.RunHandshakeDuration(t, pb, la, pa.ID)
}
