package webtransport_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"strings"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	mh "github.com/multiformats/go-multihash"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/transport/quic"
	"github.com/tachyon-p2p/tachyon/transport/udpmux"
	tt "github.com/tachyon-p2p/tachyon/transport/udpmux/transporttest"
	"github.com/tachyon-p2p/tachyon/transport/webtransport"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newPeer(t testing.TB, mux *udpmux.Mux, cfg *webtransport.Config) (*webtransport.Transport, tt.Peer, crypto.PrivKey) {
	t.Helper()
	k, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	if mux == nil {
		mux = udpmux.New(nil)
	}
	tr, err := webtransport.New(k, mux, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr, tt.Peer{T: tr, ID: id}, k
}

func TestWebTransport(t *testing.T) {
	for _, ip := range []string{"/ip4/127.0.0.1", "/ip6/::1"} {
		t.Run(ip, func(t *testing.T) {
			leakcheck.Check(t)
			tt.CheckQUICGoroutines(t)
			a, pa, _ := newPeer(t, nil, nil)
			b, pb, _ := newPeer(t, nil, nil)
			la := tt.Listen(t, a, ip+"/udp/0/quic-v1/webtransport")
			lb := tt.Listen(t, b, ip+"/udp/0/quic-v1/webtransport")
			addr := la.Multiaddrs()[0]
			if n := strings.Count(addr.String(), "/certhash/"); n != 2 {
				t.Fatalf("listen address %s has %d certhashes, want 2", addr, n)
			}
			start := time.Now()
			dc, ac := tt.Connect(t, pb, la, pa.ID)
			t.Logf("connection setup: %v", time.Since(start))
			lbAddr, _, _ := webtransport.ParseAddr(lb.Multiaddrs()[0])
			dcAddr, _, _ := webtransport.ParseAddr(dc.LocalMultiaddr())
			if dcAddr != lbAddr {
				t.Errorf("dial left from %s, want the listening socket %s", dcAddr, lbAddr)
			}
			st := ac.ConnState()
			if st.Transport != "webtransport" || st.Security != "/noise" || st.Muxer != "" {
				t.Errorf("ConnState = %+v", st)
			}
			tt.RunReset(t, dc, ac)
			tt.RunDeadline(t, dc, ac)
			tt.RunBasic(t, pb, dc, ac, pa.ID)
		})
	}
}

// TestSharedPort: QUIC and WebTransport listeners on port 0 of one Mux share
// the UDP port, and both accept.
func TestSharedPort(t *testing.T) {
	leakcheck.Check(t)
	tt.CheckQUICGoroutines(t)
	mux := udpmux.New(nil)
	k, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(k)
	q, err := quic.New(k, mux, nil)
	if err != nil {
		t.Fatal(err)
	}
	w, err := webtransport.New(k, mux, nil)
	if err != nil {
		t.Fatal(err)
	}
	lq := tt.Listen(t, q, "/ip4/127.0.0.1/udp/0/quic-v1")
	lw := tt.Listen(t, w, "/ip4/127.0.0.1/udp/0/quic-v1/webtransport")
	if mux.NumSockets() != 1 {
		t.Fatalf("%d sockets, want 1 shared", mux.NumSockets())
	}
	if !strings.HasPrefix(lw.Multiaddrs()[0].String(), lq.Multiaddrs()[0].String()+"/webtransport/") {
		t.Fatalf("addresses do not share the port: %s and %s", lq.Multiaddrs()[0], lw.Multiaddrs()[0])
	}
	qc, _ := quic.New(mustKey(t), udpmux.New(nil), nil)
	dq, aq := tt.Connect(t, tt.Peer{T: qc}, lq, id)
	_, pw, _ := newPeer(t, nil, nil)
	dw, aw := tt.Connect(t, pw, lw, id)
	if aq.ConnState().Transport != "quic-v1" || aw.ConnState().Transport != "webtransport" {
		t.Fatalf("wrong demultiplexing: %+v %+v", aq.ConnState(), aw.ConnState())
	}
	for _, c := range []interface{ Close() error }{dq, aq, dw, aw, lq, lw} {
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for mux.NumSockets() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d sockets left", mux.NumSockets())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mustKey(t testing.TB) crypto.PrivKey {
	k, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestBadDials(t *testing.T) {
	leakcheck.Check(t)
	tt.CheckQUICGoroutines(t)
	a, pa, _ := newPeer(t, nil, nil)
	mux := udpmux.New(nil)
	b, _, _ := newPeer(t, mux, nil)
	_, other, _ := newPeer(t, nil, nil)
	la := tt.Listen(t, a, "/ip4/127.0.0.1/udp/0/quic-v1/webtransport")
	good := la.Multiaddrs()[0]
	ap, hashes, err := webtransport.ParseAddr(good)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("not our certificate"))
	bogus, _ := mh.Encode(sum[:], mh.SHA2_256)
	ident, _ := mh.Encode([]byte("x"), mh.IDENTITY)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name string
		addr ma.Multiaddr
		p    peer.ID
		want string
	}{
		{"wrong peer ID", good, other.ID, "peer ID mismatch"},
		{"no certhash", webtransport.FormatAddr(ap, nil), pa.ID, "without a /certhash"},
		{"unknown certhash", webtransport.FormatAddr(ap, [][]byte{bogus}), pa.ID, "matches none"},
		{"identity certhash", webtransport.FormatAddr(ap, [][]byte{ident}), pa.ID, "matches none"},
		{"extra certhash", webtransport.FormatAddr(ap, append(hashes, bogus)), pa.ID, "does not list it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := b.Dial(ctx, tc.addr, tc.p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("dial %s: %v, want an error containing %q", tc.addr, err, tc.want)
			}
		})
	}
	if b.CanDial(webtransport.FormatAddr(ap, nil)) {
		t.Fatal("CanDial accepts an address without certhash")
	}
	// The listener still works and nothing is left on the dialer's side.
	dc, ac := tt.Connect(t, tt.Peer{T: b}, la, pa.ID)
	dc.Close()
	ac.Close()
	deadline := time.Now().Add(5 * time.Second)
	for mux.NumSockets() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d dialer sockets left", mux.NumSockets())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRotation steps an injected clock through certificate epochs: an
// address keeps working through the next epoch and stops after that.
func TestRotation(t *testing.T) {
	leakcheck.Check(t)
	tt.CheckQUICGoroutines(t)
	clock := &fakeClock{now: time.Now()}
	a, pa, _ := newPeer(t, nil, &webtransport.Config{Clock: clock.Now})
	b, _, _ := newPeer(t, nil, nil)
	la := tt.Listen(t, a, "/ip4/127.0.0.1/udp/0/quic-v1/webtransport")
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := la.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	})
	defer wg.Wait()
	defer la.Close()

	dial := func(addr ma.Multiaddr) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := b.Dial(ctx, addr, pa.ID)
		if err == nil {
			c.Close()
		}
		return err
	}
	old := la.Multiaddrs()[0]
	if err := dial(old); err != nil {
		t.Fatalf("epoch 0: %v", err)
	}
	clock.Add(7*24*time.Hour + time.Minute)
	cur := la.Multiaddrs()[0]
	if cur.Equal(old) {
		t.Fatal("certhashes did not rotate")
	}
	_, oh, _ := webtransport.ParseAddr(old)
	_, ch, _ := webtransport.ParseAddr(cur)
	if string(oh[1]) != string(ch[0]) {
		t.Fatal("the next certificate of epoch 0 is not the current one of epoch 1")
	}
	if err := dial(old); err != nil {
		t.Fatalf("epoch 1 with the address of epoch 0: %v", err)
	}
	if err := dial(cur); err != nil {
		t.Fatalf("epoch 1: %v", err)
	}
	clock.Add(7 * 24 * time.Hour)
	if err := dial(old); err == nil || !strings.Contains(err.Error(), "matches none") {
		t.Fatalf("epoch 2 with the address of epoch 0: %v, want a certhash mismatch", err)
	}
	if err := dial(cur); err != nil {
		t.Fatalf("epoch 2 with the address of epoch 1: %v", err)
	}
}

// TestHalfOpen opens QUIC connections with ALPN h3 that never send
// CONNECT: the listener closes them after its handshake timeout.
func TestHalfOpen(t *testing.T) {
	leakcheck.Check(t)
	tt.CheckQUICGoroutines(t)
	a, pa, _ := newPeer(t, nil, &webtransport.Config{HandshakeTimeout: 500 * time.Millisecond})
	la := tt.Listen(t, a, "/ip4/127.0.0.1/udp/0/quic-v1/webtransport")
	ap, _, _ := webtransport.ParseAddr(la.Multiaddrs()[0])
	mux := udpmux.New(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 10 {
		qc, err := mux.Dial(ctx, ap, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h3"}})
		if err != nil {
			t.Fatal(err)
		}
		defer qc.CloseWithError(0, "")
		select {
		case <-qc.Context().Done():
			t.Fatal("closed before the handshake timeout")
		default:
		}
		go func() {
			select {
			case <-qc.Context().Done():
			case <-time.After(5 * time.Second):
				t.Error("half-open connection still open after 5 s")
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	_, pb, _ := newPeer(t, nil, nil)
	dc, ac := tt.Connect(t, pb, la, pa.ID)
	time.Sleep(time.Second) // past the handshake timeout: the real conn lives on
	if dc.IsClosed() || ac.IsClosed() {
		t.Fatal("an established connection was closed by the handshake timeout")
	}
	deadline := time.Now().Add(5 * time.Second)
	for mux.NumSockets() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("half-open connections were not closed by the listener")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func FuzzParseAddr(f *testing.F) {
	for _, s := range []string{
		"/ip4/127.0.0.1/udp/4001/quic-v1/webtransport",
		"/ip4/127.0.0.1/udp/4001/quic-v1/webtransport/certhash/uEiDDq4_xNyDorZBH3TlGazyJdOWSwvo4PUo5YHFMrvDE8g",
		"/ip6/::1/udp/1/quic-v1/webtransport/certhash/zQmdHYvAqCusPzPpq1bEfSHqmGkKrvBzH5ZAfmAiSGCxAXb/certhash/zQmdHYvAqCusPzPpq1bEfSHqmGkKrvBzH5ZAfmAiSGCxAXb",
		"/ip4/1.2.3.4/udp/1/quic-v1",
		"/ip4/1.2.3.4/udp/1/quic-v1/webtransport/p2p/12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE",
	} {
		if a, err := ma.NewMultiaddr(s); err == nil {
			f.Add(a.Bytes())
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		addr, err := ma.NewMultiaddrBytes(b)
		if err != nil {
			return
		}
		ap, hashes, err := webtransport.ParseAddr(addr)
		if err != nil {
			return
		}
		for _, h := range hashes {
			if _, err := mh.Decode(h); err != nil {
				t.Fatalf("accepted a bad multihash %x", h)
			}
		}
		back := webtransport.FormatAddr(ap, hashes)
		ap2, hashes2, err := webtransport.ParseAddr(back)
		if err != nil || ap2 != ap || len(hashes2) != len(hashes) {
			t.Fatalf("round trip of %s: %s, %v", addr, back, err)
		}
		for i := range hashes {
			if string(hashes[i]) != string(hashes2[i]) {
				t.Fatalf("round trip changed certhash %d", i)
			}
		}
	})
}

// TestHandshakeDuration: an accepted connection reports how long its
// QUIC, HTTP/3 and Noise handshakes took, a dialed one 0.
func TestHandshakeDuration(t *testing.T) {
	leakcheck.Check(t)
	tt.CheckQUICGoroutines(t)
	a, pa, _ := newPeer(t, nil, nil)
	_, pb, _ := newPeer(t, nil, nil)
	la := tt.Listen(t, a, "/ip4/127.0.0.1/udp/0/quic-v1/webtransport")
	tt.RunHandshakeDuration(t, pb, la, pa.ID)
}
