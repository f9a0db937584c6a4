package webrtc

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/internal/streamtest"
)

// loopbackOnly keeps every ICE candidate of a test on 127.0.0.1.
func loopbackOnly(a netip.Addr) bool { return a == netip.MustParseAddr("127.0.0.1") }

// newPrivate returns a transport for the peer called name, on loopback
// only; Close runs at cleanup.
func newPrivate(t testing.TB, name string, cfg PrivateConfig) *PrivateTransport {
	t.Helper()
	if cfg.ICEAddrFilter == nil {
		cfg.ICEAddrFilter = loopbackOnly
	}
	tr, err := NewPrivate(streamtest.Key(t, name), nil, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// relayCircuit is a circuit address through relay "r".
func relayCircuit(t testing.TB) ma.Multiaddr {
	return ma.StringCast("/ip4/127.0.0.1/tcp/4001/p2p/" + streamtest.PeerID(t, "relay").String() + "/p2p-circuit")
}

func privateAddr(t testing.TB, p peer.ID) ma.Multiaddr {
	return relayCircuit(t).Encapsulate(ma.StringCast("/webrtc/p2p/" + p.String()))
}

// pipeSignaller plays the host: Signal opens an in-memory stream, marked
// limited as over a relay, whose other end goes to the target's handler
// (the transport's HandleSignaling unless handler is set). It records
// both ends.
type pipeSignaller struct {
	from    peer.ID
	handler func(network.Stream)
	target  *PrivateTransport

	wg    sync.WaitGroup
	mu    sync.Mutex
	relay ma.Multiaddr
	ends  [][2]*streamtest.Stream
}

func (ps *pipeSignaller) Signal(ctx context.Context, relayAddr ma.Multiaddr, p peer.ID) (network.Stream, error) {
	a, b := streamtest.Pair(streamtest.Config{Protocol: SignalingProtocol, A: ps.from, B: p,
		State: network.ConnState{Transport: "tcp", Limited: true}})
	ps.mu.Lock()
	ps.relay = relayAddr
	ps.ends = append(ps.ends, [2]*streamtest.Stream{a, b})
	ps.mu.Unlock()
	h := ps.handler
	if h == nil {
		h = ps.target.HandleSignaling
	}
	ps.wg.Add(1)
	go func() {
		defer ps.wg.Done()
		h(b)
	}()
	return a, nil
}

func (ps *pipeSignaller) last() [2]*streamtest.Stream {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.ends[len(ps.ends)-1]
}

// privateSetup is A (dialer) and B (listening) joined by a pipeSignaller.
type privateSetup struct {
	a, b   *PrivateTransport
	lb     network.Listener
	sig    *pipeSignaller
	aID    peer.ID
	bID    peer.ID
	accept chan acceptResult
}

type acceptResult struct {
	c   network.TransportConn
	err error
}

func newPrivateSetup(t *testing.T, acfg, bcfg PrivateConfig) *privateSetup {
	t.Helper()
	s := &privateSetup{
		a: newPrivate(t, "a", acfg), b: newPrivate(t, "b", bcfg),
		aID: streamtest.PeerID(t, "a"), bID: streamtest.PeerID(t, "b"),
		accept: make(chan acceptResult, 16),
	}
	s.sig = &pipeSignaller{from: s.aID, target: s.b}
	s.a.SetSignaller(s.sig)
	l, err := s.b.Listen(ma.StringCast("/webrtc"))
	if err != nil {
		t.Fatal(err)
	}
	s.lb = l
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			s.accept <- acceptResult{c, err}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		s.sig.wg.Wait()
		for {
			select {
			case r := <-s.accept:
				if r.c != nil {
					r.c.Close()
				}
				continue
			default:
			}
			return
		}
	})
	return s
}

// connect dials B from A and returns both ends of the connection.
func (s *privateSetup) connect(t *testing.T) (client, server network.TransportConn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := s.a.Dial(ctx, privateAddr(t, s.bID), s.bID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	select {
	case r := <-s.accept:
		if r.err != nil {
			t.Fatal(r.err)
		}
		t.Cleanup(func() { r.c.Close() })
		return c, r.c
	case <-time.After(15 * time.Second):
		t.Fatal("no inbound connection")
	}
	return nil, nil
}

func privatePair(t *testing.T) (client, server network.TransportConn, s *privateSetup) {
	s = newPrivateSetup(t, PrivateConfig{}, PrivateConfig{})
	c, srv := s.connect(t)
	return c, srv, s
}

func TestPrivateConnect(t *testing.T) {
	leakcheck.Check(t)
	c, s, setup := privatePair(t)
	if c.RemotePeer() != setup.bID || s.RemotePeer() != setup.aID || c.LocalPeer() != setup.aID || s.LocalPeer() != setup.bID {
		t.Fatalf("peers: client %s->%s, server %s->%s", c.LocalPeer(), c.RemotePeer(), s.LocalPeer(), s.RemotePeer())
	}
	if !c.RemotePublicKey().Equal(streamtest.Key(t, "b").GetPublic()) || !s.RemotePublicKey().Equal(streamtest.Key(t, "a").GetPublic()) {
		t.Fatal("remote public keys do not match the signalling peers")
	}
	want := network.ConnState{Transport: "webrtc"}
	if c.ConnState() != want || s.ConnState() != want {
		t.Fatalf("ConnState %+v / %+v", c.ConnState(), s.ConnState())
	}
	if c.Direction() != network.DirOutbound || s.Direction() != network.DirInbound {
		t.Fatalf("directions %v %v", c.Direction(), s.Direction())
	}
	// The connection is direct: ICE addresses, not the relay's.
	for _, a := range []ma.Multiaddr{c.RemoteMultiaddr(), c.LocalMultiaddr(), s.RemoteMultiaddr(), s.LocalMultiaddr()} {
		if !regexp.MustCompile(`^/ip4/127\.0\.0\.1/udp/\d+/webrtc$`).MatchString(a.String()) {
			t.Fatalf("connection address %s, want /ip4/127.0.0.1/udp/<port>/webrtc", a)
		}
	}
	if got := setup.sig.relay.String(); got != relayCircuit(t).String() {
		t.Fatalf("Signal got relay address %s, want %s", got, relayCircuit(t))
	}
	// Both ends closed the signalling stream, neither reset it.
	ends := setup.sig.last()
	for i, e := range ends {
		if how := e.WaitEnded(t, 5*time.Second); how != "close" {
			t.Fatalf("signalling stream end %d: %s, want close", i, how)
		}
	}
	echoOnce(t, c, s)
	echoOnce(t, s, c)
}

// TestPrivateEcho1MiB: 1 MiB echoed byte for byte, on a stream opened by
// each side.
func TestPrivateEcho1MiB(t *testing.T) {
	leakcheck.Check(t)
	c, s, _ := privatePair(t)
	wgS, wgC := echoServer(s), echoServer(c)
	defer func() {
		c.Close()
		s.Close()
		wgS.Wait()
		wgC.Wait()
	}()
	for _, dir := range []struct {
		name     string
		from, to network.TransportConn
	}{{"dialer opens", c, s}, {"listener opens", s, c}} {
		t.Run(dir.name, func(t *testing.T) {
			st, err := dir.from.OpenStream(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			msg := make([]byte, 1<<20)
			rand.Read(msg)
			errc := make(chan error, 1)
			go func() {
				_, err := st.Write(msg)
				if err == nil {
					err = st.CloseWrite()
				}
				errc <- err
			}()
			_ = st.SetReadDeadline(time.Now().Add(20 * time.Second))
			got, err := io.ReadAll(st)
			if err != nil {
				t.Fatal(err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, msg) {
				t.Fatalf("echo differs: %d bytes back", len(got))
			}
			st.Close()
		})
	}
}

func TestPrivateManyStreams(t *testing.T) {
	leakcheck.Check(t)
	c, s, _ := privatePair(t)
	wg := echoServer(s)
	defer wg.Wait()
	defer s.Close()
	const streams = 64
	var all sync.WaitGroup
	errs := make(chan error, streams)
	for i := range streams {
		all.Add(1)
		go func() {
			defer all.Done()
			st, err := c.OpenStream(context.Background())
			if err != nil {
				errs <- err
				return
			}
			defer st.Close()
			msg := bytes.Repeat([]byte{byte(i)}, 20000+i)
			if _, err := st.Write(msg); err != nil {
				errs <- err
				return
			}
			st.CloseWrite()
			_ = st.SetReadDeadline(time.Now().Add(20 * time.Second))
			got, err := io.ReadAll(st)
			if err != nil {
				errs <- fmt.Errorf("stream %d: %w", i, err)
				return
			}
			if !bytes.Equal(got, msg) {
				errs <- fmt.Errorf("stream %d: echo differs", i)
			}
		}()
	}
	all.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestPrivateCloseSemantics: half-close gives EOF with the data, a reset
// reaches the peer, and closing the connection ends the peer's.
func TestPrivateCloseSemantics(t *testing.T) {
	leakcheck.Check(t)
	c, s, _ := privatePair(t)
	accepted := make(chan network.MuxedStream, 2)
	go func() {
		for range 2 {
			st, err := s.AcceptStream()
			if err != nil {
				return
			}
			accepted <- st
		}
	}()
	// Half-close: FIN, the data, then EOF; the other direction still works.
	st, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte("ping"))
	st.CloseWrite()
	peerSt := <-accepted
	b, err := io.ReadAll(peerSt)
	if err != nil || string(b) != "ping" {
		t.Fatalf("got %q %v", b, err)
	}
	peerSt.Write([]byte("pong"))
	peerSt.Close()
	b, err = io.ReadAll(st)
	if err != nil || string(b) != "pong" {
		t.Fatalf("got %q %v", b, err)
	}
	st.Close()
	// Reset: the peer's read fails with ErrReset.
	st2, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st2.Write([]byte("x"))
	peer2 := <-accepted
	one := make([]byte, 1)
	if _, err := io.ReadFull(peer2, one); err != nil {
		t.Fatal(err)
	}
	st2.Reset()
	_ = peer2.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := peer2.Read(one); !errors.Is(err, network.ErrReset) {
		t.Fatalf("read after the peer's reset: %v", err)
	}
	// Connection close: the peer notices, streams and accepts end.
	c.Close()
	if _, err := c.OpenStream(context.Background()); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("OpenStream after Close: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !s.IsClosed() {
		if time.Now().After(deadline) {
			t.Fatal("the listener's side did not notice the close")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := s.AcceptStream(); !errors.Is(err, ErrConnClosed) {
		t.Fatalf("AcceptStream after the peer closed: %v", err)
	}
}

func TestPrivateAddrs(t *testing.T) {
	tr := newPrivate(t, "a", PrivateConfig{})
	b := streamtest.PeerID(t, "b").String()
	r := streamtest.PeerID(t, "relay").String()
	for _, tc := range []struct {
		addr           string
		dial, listen   bool
		relay, peerStr string
	}{
		{"/ip4/1.2.3.4/tcp/1/p2p/" + r + "/p2p-circuit/webrtc/p2p/" + b, true, false, "/ip4/1.2.3.4/tcp/1/p2p/" + r + "/p2p-circuit", b},
		{"/ip4/1.2.3.4/udp/1/quic-v1/p2p/" + r + "/p2p-circuit/webrtc", true, false, "/ip4/1.2.3.4/udp/1/quic-v1/p2p/" + r + "/p2p-circuit", ""},
		{"/p2p/" + r + "/p2p-circuit/webrtc/p2p/" + b, true, false, "/p2p/" + r + "/p2p-circuit", b},
		{"/webrtc", false, true, "", ""},
		{"/webrtc/p2p/" + b, false, false, "", ""},
		{"/ip4/1.2.3.4/tcp/1/p2p-circuit/webrtc", false, false, "", ""}, // relay not named
		{"/ip4/1.2.3.4/tcp/1/p2p/" + r + "/p2p-circuit", false, false, "", ""},
		{"/ip4/1.2.3.4/tcp/1/p2p/" + r + "/p2p-circuit/p2p/" + b, false, false, "", ""},
		{"/ip4/1.2.3.4/tcp/1/p2p/" + r + "/p2p-circuit/webrtc/webrtc", false, false, "", ""},
		{"/ip4/1.2.3.4/tcp/1/p2p/" + r + "/p2p-circuit/p2p/" + r + "/p2p-circuit/webrtc", false, false, "", ""},
		{"/ip4/1.2.3.4/udp/1/webrtc-direct", false, false, "", ""},
	} {
		a := ma.StringCast(tc.addr)
		if got := tr.CanDial(a); got != tc.dial {
			t.Errorf("CanDial(%s) = %v", a, got)
		}
		if got := tr.CanListen(a); got != tc.listen {
			t.Errorf("CanListen(%s) = %v", a, got)
		}
		if !tc.dial {
			continue
		}
		relay, target, err := parsePrivateAddr(a)
		if err != nil || relay.String() != tc.relay || string(target) != string(peerOrEmpty(t, tc.peerStr)) {
			t.Errorf("parsePrivateAddr(%s) = %s, %s, %v", a, relay, target, err)
		}
	}
	in := []ma.Multiaddr{
		ma.StringCast("/ip4/1.2.3.4/tcp/1/p2p/" + r + "/p2p-circuit"),
		ma.StringCast("/ip4/1.2.3.4/tcp/1/p2p/" + r), // not a circuit address
		ma.StringCast("/ip4/1.2.3.4/tcp/1/p2p-circuit"),
		ma.StringCast("/ip6/::1/udp/1/quic-v1/p2p/" + r + "/p2p-circuit"),
	}
	got := PrivateListenAddrs(in)
	want := []string{
		"/ip4/1.2.3.4/tcp/1/p2p/" + r + "/p2p-circuit/webrtc",
		"/ip6/::1/udp/1/quic-v1/p2p/" + r + "/p2p-circuit/webrtc",
	}
	if len(got) != len(want) {
		t.Fatalf("PrivateListenAddrs = %v", got)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("PrivateListenAddrs[%d] = %s, want %s", i, got[i], want[i])
		}
	}
	if in[0].String() != "/ip4/1.2.3.4/tcp/1/p2p/"+r+"/p2p-circuit" {
		t.Fatal("PrivateListenAddrs changed its input")
	}
	l, err := tr.Listen(ma.StringCast("/webrtc"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if ms := l.Multiaddrs(); len(ms) != 1 || ms[0].String() != "/webrtc" {
		t.Fatalf("listener addresses %v", ms)
	}
	if _, err := tr.Listen(ma.StringCast("/webrtc")); err == nil {
		t.Fatal("a second listener was opened")
	}
}

func peerOrEmpty(t *testing.T, s string) peer.ID {
	if s == "" {
		return ""
	}
	id, err := peer.Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestNewPrivateConfig(t *testing.T) {
	key := streamtest.Key(t, "a")
	for _, tc := range []struct {
		servers []string
		ok      bool
	}{
		{nil, true},
		{[]string{"stun:127.0.0.1:3478", "stun:stun.example.org"}, true},
		{[]string{"turn:127.0.0.1:3478"}, false},
		{[]string{"127.0.0.1:3478"}, false},
	} {
		tr, err := NewPrivate(key, nil, &PrivateConfig{STUNServers: tc.servers})
		if (err == nil) != tc.ok {
			t.Errorf("STUNServers %q: err %v", tc.servers, err)
		}
		if tr != nil {
			tr.Close()
		}
	}
	if _, err := NewPrivate(nil, nil, nil); err == nil {
		t.Error("nil key accepted")
	}
}
