package noise

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
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
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

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

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	return a, r.c
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

// handshakePair runs both sides concurrently and returns their results.
func handshakePair(t testing.TB, ini, res *Transport, a, b net.Conn, expect peer.ID) (result, result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch := make(chan result, 1)
	go func() {
		c, err := res.SecureInbound(ctx, b, "")
		ch <- result{c, err}
	}()
	c, err := ini.SecureOutbound(ctx, a, expect)
	r := <-ch
	return result{c, err}, r
}

func TestHandshakeAndData(t *testing.T) {
	leakcheck.Check(t)
	keyTypes := []crypto.KeyType{crypto.Ed25519, crypto.Secp256k1, crypto.ECDSA, crypto.RSA}
	for _, p := range pipes {
		for _, kt := range keyTypes {
			t.Run(p.name+"/"+kt.String(), func(t *testing.T) {
				ik, rk := newKey(t, kt), newKey(t, crypto.Ed25519)
				ini, res := newTransport(t, ik, nil), newTransport(t, rk, nil)
				a, b := p.pair(t)
				ir, rr := handshakePair(t, ini, res, a, b, res.LocalPeer())
				if ir.err != nil || rr.err != nil {
					t.Fatalf("handshake: %v / %v", ir.err, rr.err)
				}
				defer ir.conn.Close()
				defer rr.conn.Close()
				if ir.conn.RemotePeer() != res.LocalPeer() || rr.conn.RemotePeer() != ini.LocalPeer() {
					t.Fatal("wrong remote peers")
				}
				if !ir.conn.RemotePublicKey().Equal(rk.GetPublic()) || !rr.conn.RemotePublicKey().Equal(ik.GetPublic()) {
					t.Fatal("wrong remote keys")
				}
				if ir.conn.LocalPeer() != ini.LocalPeer() {
					t.Fatal("wrong local peer")
				}
				if s := ir.conn.ConnState(); s.Security != ID || s.Muxer != "" {
					t.Fatalf("conn state %+v", s)
				}
				exchange(t, ir.conn, rr.conn, 1<<20+12345)
				exchange(t, rr.conn, ir.conn, 3)
			})
		}
	}
}

// exchange writes n random bytes on w, in one Write, and reads them back on
// r with a deliberately small buffer.
func exchange(t *testing.T, w, r net.Conn, n int) {
	t.Helper()
	data := make([]byte, n)
	rand.Read(data)
	errc := make(chan error, 1)
	go func() {
		_, err := w.Write(data)
		errc <- err
	}()
	got := make([]byte, 0, n)
	buf := make([]byte, 7001)
	for len(got) < n {
		k, err := r.Read(buf)
		if err != nil {
			t.Fatalf("read after %d bytes: %v", len(got), err)
		}
		got = append(got, buf[:k]...)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("data corrupted")
	}
}

func TestMuxerNegotiation(t *testing.T) {
	leakcheck.Check(t)
	const yamux, mplex, other = "/yamux/1.0.0", "/mplex/6.7.0", "/other/1"
	cases := []struct {
		name     string
		ini, res []protocol.ID
		want     protocol.ID
	}{
		{"initiator order wins", []protocol.ID{yamux, mplex}, []protocol.ID{mplex, yamux}, yamux},
		{"initiator order wins reversed", []protocol.ID{mplex, yamux}, []protocol.ID{yamux, mplex}, mplex},
		{"partial overlap", []protocol.ID{other, yamux}, []protocol.ID{yamux}, yamux},
		{"no overlap", []protocol.ID{other}, []protocol.ID{yamux}, ""},
		{"initiator empty", nil, []protocol.ID{yamux}, ""},
		{"responder empty", []protocol.ID{yamux}, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ini := newTransport(t, nil, &Config{Muxers: tc.ini})
			res := newTransport(t, nil, &Config{Muxers: tc.res})
			a, b := net.Pipe()
			ir, rr := handshakePair(t, ini, res, a, b, res.LocalPeer())
			if ir.err != nil || rr.err != nil {
				t.Fatalf("handshake: %v / %v", ir.err, rr.err)
			}
			defer ir.conn.Close()
			defer rr.conn.Close()
			if g, h := ir.conn.ConnState().Muxer, rr.conn.ConnState().Muxer; g != tc.want || h != tc.want {
				t.Fatalf("muxer %q / %q, want %q", g, h, tc.want)
			}
		})
	}
}

func TestCertHashesAndPrologue(t *testing.T) {
	leakcheck.Check(t)
	hashes := [][]byte{{0x12, 0x20, 1, 2, 3}, {0x12, 0x20, 4, 5}}
	pro := []byte("webrtc prologue")
	ini := newTransport(t, nil, &Config{Prologue: pro})
	res := newTransport(t, nil, &Config{Prologue: pro, CertHashes: hashes})
	a, b := tcpPair(t)
	ir, rr := handshakePair(t, ini, res, a, b, res.LocalPeer())
	if ir.err != nil || rr.err != nil {
		t.Fatalf("handshake: %v / %v", ir.err, rr.err)
	}
	defer ir.conn.Close()
	defer rr.conn.Close()
	got := ir.conn.(*Conn).RemoteCertHashes()
	if len(got) != 2 || !bytes.Equal(got[0], hashes[0]) || !bytes.Equal(got[1], hashes[1]) {
		t.Fatalf("certhashes %x", got)
	}
	if rr.conn.(*Conn).RemoteCertHashes() != nil {
		t.Fatal("initiator sent certhashes")
	}
}

func TestHandshakeFailures(t *testing.T) {
	leakcheck.Check(t)
	cases := []struct {
		name    string
		ini     *Config
		res     *Config
		expect  func(ini, res *Transport) peer.ID
		wantIni string
	}{
		{
			name:    "wrong expected peer",
			expect:  func(ini, res *Transport) peer.ID { return newTransport(t, nil, nil).LocalPeer() },
			wantIni: "peer ID mismatch",
		},
		{
			name:    "prologue mismatch",
			ini:     &Config{Prologue: []byte("a")},
			res:     &Config{Prologue: []byte("b")},
			expect:  func(ini, res *Transport) peer.ID { return res.LocalPeer() },
			wantIni: "message authentication failed",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ini, res := newTransport(t, nil, tc.ini), newTransport(t, nil, tc.res)
			a, b := tcpPair(t)
			ir, rr := handshakePair(t, ini, res, a, b, tc.expect(ini, res))
			if ir.err == nil || !strings.Contains(ir.err.Error(), tc.wantIni) || !strings.HasPrefix(ir.err.Error(), "noise: ") {
				t.Fatalf("initiator error %v, want %q", ir.err, tc.wantIni)
			}
			if rr.err == nil {
				t.Fatal("responder succeeded")
			}
			for _, err := range []error{ir.err, rr.err} {
				if strings.Count(err.Error(), "noise: ") != 1 || strings.Count(err.Error(), "handshake") != 1 {
					t.Errorf("error repeats itself: %v", err)
				}
			}
			// Both raw connections were closed.
			if _, err := a.Write([]byte{1}); err == nil {
				t.Fatal("initiator's raw conn still open")
			}
		})
	}
}

func TestInboundExpectedPeer(t *testing.T) {
	leakcheck.Check(t)
	ini, res := newTransport(t, nil, nil), newTransport(t, nil, nil)
	a, b := net.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ch := make(chan error, 1)
	go func() {
		_, err := res.SecureInbound(ctx, b, newTransport(t, nil, nil).LocalPeer())
		ch <- err
	}()
	c, err := ini.SecureOutbound(ctx, a, res.LocalPeer())
	if err == nil {
		c.Close()
	}
	if err := <-ch; err == nil || !strings.Contains(err.Error(), "peer ID mismatch") {
		t.Fatalf("responder error %v", err)
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
		_, err := tr.SecureInbound(ctx, a, "")
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		a, b := tcpPair(t)
		defer b.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := tr.SecureOutbound(ctx, a, tr.LocalPeer())
		if err == nil || time.Since(start) > 3*time.Second {
			t.Fatalf("error %v after %v", err, time.Since(start))
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("already cancelled", func(t *testing.T) {
		a, b := net.Pipe()
		defer b.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := tr.SecureInbound(ctx, a, ""); !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v", err)
		}
	})
}

// TestEarlyData checks the 0.5-RTT path: data the initiator writes right
// after SecureOutbound reaches the responder, even when it arrives in the
// same segment as message 3.
func TestEarlyData(t *testing.T) {
	leakcheck.Check(t)
	ini, res := newTransport(t, nil, nil), newTransport(t, nil, nil)
	a, b := tcpPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ch := make(chan result, 1)
	go func() {
		c, err := ini.SecureOutbound(ctx, a, res.LocalPeer())
		if err == nil {
			_, err = c.Write([]byte("early"))
		}
		ch <- result{c, err}
	}()
	// Give the initiator time to write message 3 and the data before the
	// responder reads message 3, so both sit in one buffer.
	rc, err := res.SecureInbound(ctx, &slowConn{Conn: b}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	ir := <-ch
	if ir.err != nil {
		t.Fatal(ir.err)
	}
	defer ir.conn.Close()
	buf := make([]byte, 16)
	n, err := rc.Read(buf)
	if err != nil || string(buf[:n]) != "early" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
}

// slowConn delays reads so that more data piles up in the socket.
type slowConn struct{ net.Conn }

func (s *slowConn) Read(p []byte) (int, error) {
	time.Sleep(20 * time.Millisecond)
	return s.Conn.Read(p)
}

func securedPair(t testing.TB, pair func(testing.TB) (net.Conn, net.Conn)) (*Conn, *Conn) {
	t.Helper()
	ini, res := newTransport(t, nil, nil), newTransport(t, nil, nil)
	a, b := pair(t)
	ir, rr := handshakePair(t, ini, res, a, b, res.LocalPeer())
	if ir.err != nil || rr.err != nil {
		t.Fatalf("handshake: %v / %v", ir.err, rr.err)
	}
	return ir.conn.(*Conn), rr.conn.(*Conn)
}

func TestTamperedFrame(t *testing.T) {
	leakcheck.Check(t)
	ic, rc := securedPair(t, tcpPair)
	defer ic.Close()
	defer rc.Close()
	// Bypass the cipher: a frame sealed with nothing fails authentication.
	if _, err := ic.raw.Write([]byte{0, 20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	if _, err := rc.Read(buf); err == nil || !strings.Contains(err.Error(), "authentication failed") {
		t.Fatalf("error %v", err)
	}
	if _, err := rc.Read(buf); err == nil {
		t.Fatal("read error not sticky")
	}
	if rc.rbuf != nil || rc.pooled != nil {
		t.Fatal("read buffer kept after a fatal error")
	}
	// A frame shorter than a tag.
	ic2, rc2 := securedPair(t, tcpPair)
	defer ic2.Close()
	defer rc2.Close()
	ic2.raw.Write([]byte{0, 3, 1, 2, 3})
	if _, err := rc2.Read(buf); err == nil || !strings.Contains(err.Error(), "shorter than its tag") {
		t.Fatalf("error %v", err)
	}
}

func TestTruncatedStream(t *testing.T) {
	leakcheck.Check(t)
	ic, rc := securedPair(t, tcpPair)
	defer rc.Close()
	ic.raw.Write([]byte{0, 40, 1, 2})
	ic.Close()
	if _, err := rc.Read(make([]byte, 10)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("error %v", err)
	}
}

func TestCloseWriteAndEOF(t *testing.T) {
	leakcheck.Check(t)
	ic, rc := securedPair(t, tcpPair)
	defer ic.Close()
	defer rc.Close()
	if _, err := ic.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	if err := ic.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	if err != nil || string(got) != "bye" {
		t.Fatalf("read %q, %v", got, err)
	}
	// The other direction still works.
	if _, err := rc.Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(ic, buf); err != nil || string(buf) != "ok" {
		t.Fatalf("read %q, %v", buf, err)
	}
	// net.Pipe has no CloseWrite.
	pc, pr := securedPair(t, pipes[0].pair)
	defer pc.Close()
	defer pr.Close()
	if err := pc.CloseWrite(); err == nil {
		t.Fatal("CloseWrite on net.Pipe succeeded")
	}
}

func TestReadDeadlineRecovers(t *testing.T) {
	leakcheck.Check(t)
	ic, rc := securedPair(t, tcpPair)
	defer ic.Close()
	defer rc.Close()
	// Half a frame arrives, then the deadline fires; the rest completes it.
	ct := make([]byte, 0, 64)
	ct, _ = ic.send.encrypt(ct, nil, []byte("split frame"))
	frame := append([]byte{0, byte(len(ct))}, ct...)
	ic.raw.Write(frame[:5])
	rc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	buf := make([]byte, 64)
	if _, err := rc.Read(buf); !isTimeout(err) {
		t.Fatalf("error %v", err)
	}
	rc.SetReadDeadline(time.Time{})
	ic.raw.Write(frame[5:])
	n, err := rc.Read(buf)
	if err != nil || string(buf[:n]) != "split frame" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
}

func TestConcurrentReadWrite(t *testing.T) {
	leakcheck.Check(t)
	ic, rc := securedPair(t, tcpPair)
	defer ic.Close()
	defer rc.Close()
	const n = 200
	var wg sync.WaitGroup
	for _, c := range []*Conn{ic, rc} {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				if _, err := c.Write(bytes.Repeat([]byte{byte(i)}, 1000+i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			want := 0
			for i := 0; i < n; i++ {
				want += 1000 + i
			}
			if _, err := io.CopyN(io.Discard, c, int64(want)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

func TestNewErrors(t *testing.T) {
	if _, err := New(nil, nil); err == nil {
		t.Fatal("nil key accepted")
	}
	big := [][]byte{bytes.Repeat([]byte{1}, 70000)}
	if _, err := New(newKey(t, crypto.Ed25519), &Config{CertHashes: big}); err == nil {
		t.Fatal("oversized payload accepted")
	}
}

// An initiator with no expected peer (the WebRTC-direct listener) accepts
// whoever responds, and learns who it is.
func TestOutboundAnyPeer(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ini, res := newTransport(t, nil, nil), newTransport(t, nil, nil)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	errc := make(chan error, 1)
	go func() {
		_, err := res.SecureInbound(ctx, b, "")
		errc <- err
	}()
	c, err := ini.SecureOutbound(ctx, a, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if c.RemotePeer() != res.LocalPeer() {
		t.Fatalf("learned %s, responder is %s", c.RemotePeer(), res.LocalPeer())
	}
}

// A payload whose signature verified once is not checked again (a peer that
// reconnects with the same static key), and what was kept vouches for those
// exact bytes only: the same identity key and signature with another static
// key still fail.
func TestStaticKeyCheckedOnce(t *testing.T) {
	leakcheck.Check(t)
	var checks atomic.Int32
	checkStatic = func(p payload, static []byte) (identity, error) {
		checks.Add(1)
		return checkStaticKey(p, static)
	}
	defer func() { checkStatic = checkStaticKey }()

	ini, res := newTransport(t, nil, nil), newTransport(t, nil, nil)
	handshake := func(ini *Transport) (result, result) {
		a, b := tcpPair(t)
		ir, rr := handshakePair(t, ini, res, a, b, res.LocalPeer())
		t.Cleanup(func() {
			for _, r := range []result{ir, rr} {
				if r.err == nil {
					r.conn.Close()
				}
			}
			a.Close()
			b.Close()
		})
		return ir, rr
	}
	for round := range 3 {
		ir, rr := handshake(ini)
		if ir.err != nil || rr.err != nil {
			t.Fatalf("round %d: %v / %v", round, ir.err, rr.err)
		}
		if ir.conn.RemotePeer() != res.LocalPeer() || rr.conn.RemotePeer() != ini.LocalPeer() {
			t.Fatalf("round %d: wrong peers", round)
		}
		if !rr.conn.RemotePublicKey().Equal(newKeyOf(t, ini)) {
			t.Fatalf("round %d: responder holds the wrong initiator key", round)
		}
		if n := checks.Load(); n != 2 {
			t.Fatalf("round %d: %d signature checks in all, want the first round's 2", round, n)
		}
	}

	// Another host of the same process checks for itself (2 more checks:
	// its own of the responder, the responder's of it).
	ir, rr := handshake(newTransport(t, nil, nil))
	if ir.err != nil || rr.err != nil {
		t.Fatalf("another initiator: %v / %v", ir.err, rr.err)
	}
	if n := checks.Load(); n != 4 {
		t.Fatalf("another initiator: %d signature checks in all, want 4", n)
	}

	// The initiator's identity key and signature, but a static key they
	// never signed.
	forged := *ini
	static, err := newKeypair(nil)
	if err != nil {
		t.Fatal(err)
	}
	forged.static = static
	ir, rr = handshake(&forged)
	if rr.err == nil || !strings.Contains(rr.err.Error(), "invalid static key signature") {
		t.Fatalf("responder accepted a static key the identity key did not sign: %v", rr.err)
	}
	if ir.err == nil && rr.err == nil {
		t.Fatal("forged handshake succeeded")
	}
}

// newKeyOf returns the identity public key a transport authenticates with.
func newKeyOf(t *testing.T, tr *Transport) crypto.PubKey {
	t.Helper()
	p, err := parsePayload(tr.initPayload)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := crypto.UnmarshalPublicKey(p.identityKey)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}
