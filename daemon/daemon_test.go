package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/core/circuit"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/internal/lp"
	"github.com/tachyon-p2p/tachyon/internal/varint"
	"github.com/tachyon-p2p/tachyon/protocol/relay"
)

const testEcho protocol.ID = "/tachyon-test/echo/1.0.0"

// fixture is a daemon serving host a, and a second host b it can reach.
type fixture struct {
	a, b   *tachyon.Host
	ctl    string // control address
	cancel context.CancelFunc
	done   chan error // Serve's result
}

func newHost(t *testing.T, opts ...tachyon.Option) *tachyon.Host {
	t.Helper()
	h, err := tachyon.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

var listenLoopback = tachyon.ListenAddrStrings("/ip4/127.0.0.1/tcp/0")

// start runs Serve for a new host, with a second host beside it; the
// cleanup stops it and checks that Serve returned nil. Call leakcheck.Check
// before it.
func start(t *testing.T, cfg *Config) *fixture {
	t.Helper()
	f := serve(t, newHost(t, listenLoopback), cfg)
	f.b = newHost(t, listenLoopback)
	return f
}

// serve runs Serve for h, as start does; the fixture has no second host.
func serve(t *testing.T, h *tachyon.Host, cfg *Config) *fixture {
	t.Helper()
	f := &fixture{a: h, done: make(chan error, 1)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.ctl = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go func() { f.done <- Serve(ctx, ln, TachyonHost(f.a), cfg) }()
	t.Cleanup(func() { f.stop(t) })
	return f
}

// stop ends Serve and waits for it, at most 5s.
func (f *fixture) stop(t *testing.T) {
	t.Helper()
	f.cancel()
	select {
	case err, ok := <-f.done:
		if ok && err != nil {
			t.Errorf("Serve: %v", err)
		}
		if ok {
			close(f.done)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return within 5s of cancel")
	}
}

func (f *fixture) dial(t *testing.T) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", f.ctl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c.(*net.TCPConn)
}

// send writes one framed request on a new control connection and returns
// the connection.
func (f *fixture) send(t *testing.T, req []byte) *net.TCPConn {
	t.Helper()
	c := f.dial(t)
	if err := lp.WriteMsg(c, req); err != nil {
		t.Fatal(err)
	}
	return c
}

func readResponse(t *testing.T, r io.Reader) testResponse {
	t.Helper()
	msg, err := lp.ReadMsg(r, MaxRequestSize)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	resp, err := decodeResponse(msg)
	if err != nil {
		t.Fatalf("decoding response %x: %v", msg, err)
	}
	if !resp.hasType {
		t.Fatalf("response %x has no type", msg)
	}
	return resp
}

// roundTrip sends a request, reads the response and checks the daemon
// then closes the connection.
func (f *fixture) roundTrip(t *testing.T, req []byte) testResponse {
	t.Helper()
	c := f.send(t, req)
	resp := readResponse(t, c)
	expectEOF(t, c)
	return resp
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
	}
}

func expectEOF(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("after the response: read %d bytes, %v; want EOF", n, err)
	}
}

func expectOK(t *testing.T, r testResponse) {
	t.Helper()
	if r.typ != respOK || r.hasErr {
		t.Fatalf("response %+v, want OK", r)
	}
}

func expectError(t *testing.T, r testResponse, contains string) {
	t.Helper()
	if r.typ != respError || !r.hasErr || !strings.Contains(r.errMsg, contains) {
		t.Fatalf("response %+v, want ERROR containing %q", r, contains)
	}
}

func echoHandler(s network.Stream) {
	s.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(s, s); err != nil {
		s.Reset()
		return
	}
	s.CloseWrite()
}

func TestIdentify(t *testing.T) {
	leakcheck.Check(t)
	f := start(t, nil)
	// The captured js request: length 2, type IDENTIFY written explicitly.
	c := f.dial(t)
	if _, err := c.Write([]byte{0x02, 0x08, 0x00}); err != nil {
		t.Fatal(err)
	}
	raw, err := lp.ReadMsg(c, MaxRequestSize)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(raw, []byte{0x08, 0x00, 0x22}) {
		t.Errorf("response %x does not start with type OK and identify", raw)
	}
	expectEOF(t, c)
	resp, err := decodeResponse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if resp.identify == nil || resp.identify.id != f.a.ID() {
		t.Fatalf("identify %+v, want id %s", resp.identify, f.a.ID())
	}
	if !slices.EqualFunc(resp.identify.addrs, f.a.Addrs(), func(x, y ma.Multiaddr) bool { return x.Equal(y) }) {
		t.Errorf("addrs %v, want %v", resp.identify.addrs, f.a.Addrs())
	}
}

func TestConnectListPeersDisconnect(t *testing.T) {
	leakcheck.Check(t)
	f := start(t, nil)

	resp := f.roundTrip(t, encRequest(reqListPeers, 0, nil))
	expectOK(t, resp)
	if len(resp.peers) != 0 {
		t.Fatalf("peers before connecting: %+v", resp.peers)
	}

	expectOK(t, f.roundTrip(t, encConnect(f.b.ID(), f.b.Addrs(), 5)))
	// The other side sees the connection too.
	waitUntil(t, func() bool { return len(f.b.Network().ConnsToPeer(f.a.ID())) == 1 })
	resp = f.roundTrip(t, encRequest(reqListPeers, 0, nil))
	expectOK(t, resp)
	// The dialer picks one of b's addresses (the /tls form of its TCP
	// socket first).
	if len(resp.peers) != 1 || resp.peers[0].id != f.b.ID() || len(resp.peers[0].addrs) != 1 || !slices.ContainsFunc(f.b.Addrs(), resp.peers[0].addrs[0].Equal) {
		t.Fatalf("peers after connecting: %+v, want %s at one of %s", resp.peers, f.b.ID(), f.b.Addrs())
	}
	// Connecting again reuses the connection.
	expectOK(t, f.roundTrip(t, encConnect(f.b.ID(), nil, 0)))
	if n := len(f.a.Network().ConnsToPeer(f.b.ID())); n != 1 {
		t.Errorf("%d connections after a second CONNECT", n)
	}

	expectOK(t, f.roundTrip(t, encDisconnect(f.b.ID())))
	if n := len(f.a.Network().ConnsToPeer(f.b.ID())); n != 0 {
		t.Errorf("%d connections after DISCONNECT", n)
	}
	resp = f.roundTrip(t, encRequest(reqListPeers, 0, nil))
	if len(resp.peers) != 0 {
		t.Errorf("peers after DISCONNECT: %+v", resp.peers)
	}
}

func TestConnectFails(t *testing.T) {
	leakcheck.Check(t)
	f := start(t, nil)
	// A port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead, _ := manet.FromNetAddr(ln.Addr())
	ln.Close()
	resp := f.roundTrip(t, encConnect(f.b.ID(), []ma.Multiaddr{dead}, 5))
	expectError(t, resp, "connecting to "+f.b.ID().String())

	// A stream to a peer we have no address for fails the same way.
	resp = f.roundTrip(t, encStreamOpen(testPeer(t), testEcho))
	expectError(t, resp, "opening a [/tachyon-test/echo/1.0.0] stream")
}

func TestStreamOpen(t *testing.T) {
	leakcheck.Check(t)
	f := start(t, nil)
	f.b.SetStreamHandler(testEcho, echoHandler)
	expectOK(t, f.roundTrip(t, encConnect(f.b.ID(), f.b.Addrs(), 5)))

	c := f.send(t, encStreamOpen(f.b.ID(), testEcho))
	resp := readResponse(t, c)
	expectOK(t, resp)
	si := resp.streamInfo
	if si == nil || si.peer != f.b.ID() || si.proto != string(testEcho) || !slices.ContainsFunc(f.b.Addrs(), si.addr.Equal) {
		t.Fatalf("stream info %+v, want %s %s at one of %s", si, f.b.ID(), testEcho, f.b.Addrs())
	}
	// The control connection is the stream now. Our half-close reaches
	// the echo handler, whose half-close reaches us after the echo.
	payload := bytes.Repeat([]byte("tachyon"), 40000)
	go func() {
		c.Write(payload)
		c.CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) {
		t.Errorf("echoed %d bytes, want %d", len(got), len(payload))
	}
}

// TestStreamOpenUnsupportedProtocol: the peer refuses the protocol, so the
// stream (and the control connection) end without data.
// TestStreamOpenUnsupportedProtocol: like go's p2pd, the daemon answers
// ERROR when the peer does not speak the protocol, instead of an OK that
// names a protocol nobody agreed to.
func TestStreamOpenUnsupportedProtocol(t *testing.T) {
	leakcheck.Check(t)
	f := start(t, nil)
	expectOK(t, f.roundTrip(t, encConnect(f.b.ID(), f.b.Addrs(), 5)))
	c := f.send(t, encStreamOpen(f.b.ID(), "/nobody/1.0.0"))
	expectError(t, readResponse(t, c), "/nobody/1.0.0")
	expectEOF(t, c)
}

// ended tells whether a read error means the connection ended (reset,
// closed) rather than timing out.
func ended(err error) bool {
	var ne net.Error
	return !errors.As(err, &ne) || !ne.Timeout()
}

// handlerListener stands in for a client's STREAM_HANDLER listener.
func handlerListener(t *testing.T) (*net.TCPListener, ma.Multiaddr) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	a, err := manet.FromNetAddr(ln.Addr())
	if err != nil {
		t.Fatal(err)
	}
	return ln.(*net.TCPListener), a
}

func accept(t *testing.T, ln *net.TCPListener) *net.TCPConn {
	t.Helper()
	ln.SetDeadline(time.Now().Add(10 * time.Second))
	c, err := ln.AcceptTCP()
	if err != nil {
		t.Fatalf("waiting for the daemon's dial-back: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

func TestStreamHandler(t *testing.T) {
	leakcheck.Check(t)
	f := start(t, nil)
	ln1, addr1 := handlerListener(t)
	expectOK(t, f.roundTrip(t, encStreamHandler(addr1, testEcho)))
	if !slices.Contains(f.a.Protocols(), testEcho) {
		t.Fatalf("host protocols %v lack %s", f.a.Protocols(), testEcho)
	}
	if err := f.b.Connect(context.Background(), peer.AddrInfo{ID: f.a.ID(), Addrs: f.a.Addrs()}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := f.b.NewStream(ctx, f.a.ID(), testEcho)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := s.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatal(err)
	}

	c := accept(t, ln1)
	msg, err := lp.ReadMsg(c, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	si, err := decodeStreamInfo(msg)
	if err != nil || si.peer != f.b.ID() || si.proto != string(testEcho) || si.addr == nil {
		t.Fatalf("StreamInfo %+v, %v", si, err)
	}
	// The stream's bytes, then its half-close, come through.
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "ping" {
		t.Fatalf("handler read %q, %v", got, err)
	}
	// And ours go back, half-close included.
	c.Write([]byte("pong"))
	c.CloseWrite()
	got, err = io.ReadAll(s)
	if err != nil || string(got) != "pong" {
		t.Fatalf("stream read %q, %v", got, err)
	}

	// Registering again overrides: the next stream goes to the new address.
	ln2, addr2 := handlerListener(t)
	expectOK(t, f.roundTrip(t, encStreamHandler(addr2, testEcho)))
	s2, err := f.b.NewStream(ctx, f.a.ID(), testEcho)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	s2.SetDeadline(time.Now().Add(10 * time.Second))
	s2.Write([]byte("second"))
	c2 := accept(t, ln2)
	if _, err := lp.ReadMsg(c2, 1<<16); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	if _, err := io.ReadFull(c2, buf); err != nil || string(buf) != "second" {
		t.Fatalf("second handler read %q, %v", buf, err)
	}
	ln1.SetDeadline(time.Now().Add(100 * time.Millisecond))
	if c, err := ln1.Accept(); err == nil {
		c.Close()
		t.Error("the first handler address was dialed after it was replaced")
	}
	// A reset stream closes the handler connection.
	s2.Reset()
	if _, err := io.ReadAll(c2); err != nil && !ended(err) {
		t.Errorf("handler connection after reset: %v", err)
	}
}

func TestStreamHandlerDialFails(t *testing.T) {
	leakcheck.Check(t)
	f := start(t, nil)
	ln, addr := handlerListener(t)
	ln.Close()
	expectOK(t, f.roundTrip(t, encStreamHandler(addr, testEcho)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.b.Connect(ctx, peer.AddrInfo{ID: f.a.ID(), Addrs: f.a.Addrs()}); err != nil {
		t.Fatal(err)
	}
	s, err := f.b.NewStream(ctx, f.a.ID(), testEcho)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	s.Write([]byte("x"))
	if _, err := io.ReadAll(s); err == nil {
		t.Error("stream ended cleanly although the handler could not be reached")
	}
}

// TestUnsupported: every operation the daemon does not serve answers a
// clear ERROR and closes the connection.
func TestUnsupported(t *testing.T) {
	leakcheck.Check(t)
	f := start(t, nil)
	cases := []struct {
		req  []byte
		want string
	}{
		{encRequest(reqDHT, 5, []byte{0x08, 0x00}), "DHT requests are not supported"},
		{encRequest(reqPubsub, 8, []byte{0x08, 0x00}), "PUBSUB requests are not supported"},
		{encRequest(reqConnManager, 6, nil), "CONNMANAGER requests are not supported"},
		{encRequest(reqPeerstore, 9, []byte{0x08, 0x01}), "PEERSTORE requests are not supported"},
		{encRequest(42, 0, nil), "unknown request type 42"},
	}
	for _, c := range cases {
		expectError(t, f.roundTrip(t, c.req), c.want)
	}
}

// TestMalformed: bad requests get an ERROR and a closed connection, and
// the daemon keeps serving.
func TestMalformed(t *testing.T) {
	leakcheck.Check(t)
	f := start(t, &Config{RequestTimeout: 300 * time.Millisecond})
	p := testPeer(t)
	cases := []struct {
		name string
		raw  []byte // written as is
		half bool   // half-close after writing
		want string
	}{
		{"no type", []byte{0x00}, false, "no request type"},
		{"garbage", []byte{0x03, 0xff, 0xff, 0xff}, false, "malformed request"},
		{"connect without peer", lp.Append(nil, encRequest(reqConnect, 2, []byte{})), false, "connect without peer"},
		{"bad peer id", lp.Append(nil, encRequest(reqConnect, 2, []byte{0x0a, 0x02, 0x12, 0x01})), false, "connect.peer"},
		{"stream open without protocols", lp.Append(nil, encStreamOpen(p)), false, "without protocols"},
		{"handler on udp", lp.Append(nil, encStreamHandler(ma.StringCast("/ip4/127.0.0.1/udp/1"), testEcho)), false, "handler address"},
		{"oversized", varint.Append(nil, MaxRequestSize+1), false, "message too large"},
		{"huge varint", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, false, "reading request"},
		{"truncated", []byte{0x10, 0x08, 0x01}, true, "unexpected EOF"},
		{"silent", nil, false, "i/o timeout"},
		{"stalled mid-message", []byte{0x10, 0x08}, false, "i/o timeout"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn := f.dial(t)
			if _, err := conn.Write(c.raw); err != nil {
				t.Fatal(err)
			}
			if c.half {
				conn.CloseWrite()
			}
			expectError(t, readResponse(t, conn), c.want)
			expectEOF(t, conn)
		})
	}
	// Still serving.
	expectOK(t, f.roundTrip(t, []byte{0x08, 0x00}))
	// A client that connects and leaves gets nothing and costs nothing.
	c := f.dial(t)
	c.Close()
}

// TestShutdown: cancelling Serve ends open streams and handler
// connections, removes the handlers and leaves no goroutine behind.
func TestShutdown(t *testing.T) {
	leakcheck.Check(t)
	f := start(t, nil)
	f.b.SetStreamHandler(testEcho, echoHandler)
	ln, addr := handlerListener(t)
	expectOK(t, f.roundTrip(t, encStreamHandler(addr, "/tachyon-test/sink/1.0.0")))
	expectOK(t, f.roundTrip(t, encConnect(f.b.ID(), f.b.Addrs(), 5)))

	// An open outbound stream on a control connection.
	out := f.send(t, encStreamOpen(f.b.ID(), testEcho))
	expectOK(t, readResponse(t, out))
	// An inbound stream piped to a handler connection.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// b may not have registered a's connection yet; it may dial a itself.
	if err := f.b.Connect(ctx, peer.AddrInfo{ID: f.a.ID(), Addrs: f.a.Addrs()}); err != nil {
		t.Fatal(err)
	}
	s, err := f.b.NewStream(ctx, f.a.ID(), "/tachyon-test/sink/1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Write([]byte("x"))
	in := accept(t, ln)
	if _, err := lp.ReadMsg(in, 1<<16); err != nil {
		t.Fatal(err)
	}
	// A control connection that has not sent its request yet.
	idle := f.dial(t)

	f.stop(t)
	for name, c := range map[string]net.Conn{"stream": out, "handler": in, "idle": idle} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(c); err != nil && !ended(err) {
			t.Errorf("%s connection not closed by shutdown: %v", name, err)
		}
	}
	if slices.Contains(f.a.Protocols(), "/tachyon-test/sink/1.0.0") {
		t.Error("handler still registered after shutdown")
	}
	if _, err := net.Dial("tcp", f.ctl); err == nil {
		t.Error("control listener still accepting after shutdown")
	}
}

// TestRelay plays the @libp2p/interop relay test with tachyon on all three
// sides: B reserves a slot on the relay R with a raw RESERVE written on a
// STREAM_OPEN'd hop stream, A connects to B through R, and an echo runs
// over the limited connection, opened by A's STREAM_OPEN and served through
// B's STREAM_HANDLER.
func TestRelay(t *testing.T) {
	leakcheck.Check(t)
	r := newHost(t, listenLoopback, tachyon.RelayService(relay.DefaultConfig()))
	// A and B do not listen: they reach each other only through R.
	a := serve(t, newHost(t), nil)
	b := serve(t, newHost(t), nil)
	viaRelay := func(target peer.ID) ma.Multiaddr {
		return ma.StringCast(fmt.Sprintf("%s/p2p/%s/p2p-circuit/p2p/%s", r.Addrs()[0], r.ID(), target))
	}

	expectOK(t, b.roundTrip(t, encConnect(r.ID(), r.Addrs(), 10)))
	hop := b.send(t, encStreamOpen(r.ID(), circuit.HopID))
	expectOK(t, readResponse(t, hop))
	if err := circuit.WriteHop(hop, &circuit.HopMessage{Type: circuit.HopReserve}); err != nil {
		t.Fatal(err)
	}
	m, err := circuit.ReadHop(hop)
	if err != nil || m.Type != circuit.HopStatus || m.Status != circuit.StatusOK {
		t.Fatalf("RESERVE answered %+v, %v; want STATUS OK", m, err)
	}
	hop.Close()

	expectOK(t, a.roundTrip(t, encConnect(b.a.ID(), []ma.Multiaddr{viaRelay(b.a.ID())}, 10)))
	var toB []testPeerInfo
	for _, p := range a.roundTrip(t, encRequest(reqListPeers, 0, nil)).peers {
		if p.id == b.a.ID() {
			toB = append(toB, p)
		}
	}
	if len(toB) != 1 {
		t.Fatalf("LIST_PEERS has %d entries for B, want 1: %+v", len(toB), toB)
	}

	ln, addr := handlerListener(t)
	expectOK(t, b.roundTrip(t, encStreamHandler(addr, testEcho)))
	out := a.send(t, encStreamOpen(b.a.ID(), testEcho))
	expectOK(t, readResponse(t, out))
	out.Write([]byte("test"))
	out.CloseWrite()
	in := accept(t, ln)
	msg, err := lp.ReadMsg(in, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	if si, err := decodeStreamInfo(msg); err != nil || si.peer != a.a.ID() || si.proto != string(testEcho) {
		t.Fatalf("StreamInfo %+v, %v", si, err)
	}
	if got, err := io.ReadAll(in); err != nil || string(got) != "test" {
		t.Fatalf("B's handler read %q, %v", got, err)
	}
	in.Write([]byte("test"))
	in.CloseWrite()
	if got, err := io.ReadAll(out); err != nil || string(got) != "test" {
		t.Fatalf("A's stream read %q, %v", got, err)
	}

	// A peer without a reservation: the relay's status name reaches the
	// client, which the suite matches.
	c := testPeer(t)
	expectError(t, a.roundTrip(t, encConnect(c, []ma.Multiaddr{viaRelay(c)}, 10)), "NO_RESERVATION")
}
