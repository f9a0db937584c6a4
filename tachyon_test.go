package tachyon

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/mss"
	"github.com/tachyon-p2p/tachyon/protocol/identify"
	"github.com/tachyon-p2p/tachyon/protocol/ping"
	"github.com/tachyon-p2p/tachyon/swarm"
)

const echoID protocol.ID = "/tachyon-test/echo/1.0.0"

func echo(s network.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.Copy(s, s); err != nil {
		s.Reset()
	}
}

func testHost(t *testing.T, opts ...Option) *Host {
	t.Helper()
	h, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func TestHostsTalk(t *testing.T) {
	for _, tc := range []struct {
		name   string
		listen string
		sec    protocol.ID
	}{
		{"tcp4-noise", "/ip4/127.0.0.1/tcp/0", Noise},
		{"tcp4-tls", "/ip4/127.0.0.1/tcp/0", TLS},
		{"tcp6-noise", "/ip6/::1/tcp/0", Noise},
		{"tcp6-tls", "/ip6/::1/tcp/0", TLS},
		{"tcp4-plaintext", "/ip4/127.0.0.1/tcp/0", Plaintext},
		{"ws4-noise", "/ip4/127.0.0.1/tcp/0/ws", Noise},
		{"ws6-tls", "/ip6/::1/tcp/0/ws", TLS},
		{"quic4", "/ip4/127.0.0.1/udp/0/quic-v1", TLS},
		{"quic6", "/ip6/::1/udp/0/quic-v1", TLS},
		{"webtransport4", "/ip4/127.0.0.1/udp/0/quic-v1/webtransport", Noise},
		{"webtransport6", "/ip6/::1/udp/0/quic-v1/webtransport", Noise},
		{"webrtc-direct4", "/ip4/127.0.0.1/udp/0/webrtc-direct", Noise},
		{"webrtc-direct6", "/ip6/::1/udp/0/webrtc-direct", Noise},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			server := testHost(t, ListenAddrStrings(tc.listen), Security(tc.sec), UserAgent("server/1"))
			client := testHost(t, Security(tc.sec), UserAgent("client/1"))
			server.SetStreamHandler(echoID, echo)

			if err := client.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}); err != nil {
				t.Fatal(err)
			}
			c := client.Network().ConnsToPeer(server.ID())
			if len(c) != 1 {
				t.Fatalf("%d connections, want 1", len(c))
			}
			st := c[0].ConnState()
			switch {
			case strings.HasPrefix(tc.name, "tcp"):
				if st.Security != tc.sec || st.Muxer != "/yamux/1.0.0" || st.Transport != "tcp" {
					t.Fatalf("conn state %+v", st)
				}
			case strings.HasPrefix(tc.name, "ws"):
				if st.Security != tc.sec || st.Muxer != "/yamux/1.0.0" || st.Transport != "websocket" {
					t.Fatalf("conn state %+v", st)
				}
			case strings.HasPrefix(tc.name, "quic"):
				if st.Transport != "quic-v1" {
					t.Fatalf("conn state %+v", st)
				}
			case strings.HasPrefix(tc.name, "webrtc-direct"):
				if st.Transport != "webrtc-direct" {
					t.Fatalf("conn state %+v", st)
				}
			case strings.HasPrefix(tc.name, "webtransport"):
				if st.Transport != "webtransport" {
					t.Fatalf("conn state %+v", st)
				}
			}

			var rtts int
			if err := client.Ping(ctx, server.ID(), 3, 0, 5*time.Second, func(int, time.Duration) { rtts++ }); err != nil || rtts != 3 {
				t.Fatalf("ping: %d replies, %v", rtts, err)
			}

			// Identify, both ways.
			res, err := client.IdentifyWait(ctx, server.ID())
			if err != nil {
				t.Fatal(err)
			}
			if res.Message.AgentVersion != "server/1" {
				t.Errorf("agent %q", res.Message.AgentVersion)
			}
			for _, want := range []protocol.ID{identify.ID, identify.PushID, ping.ID, echoID} {
				if !slices.Contains(res.Message.Protocols, want) {
					t.Errorf("server protocols %v lack %s", res.Message.Protocols, want)
				}
			}
			if res.Record() == nil || res.Record().PeerID != server.ID() {
				t.Errorf("signed peer record missing or wrong: %+v", res.Record())
			}
			if res.Message.ObservedAddr == nil {
				t.Error("no observed address")
			}
			sres, err := server.IdentifyWait(ctx, client.ID())
			if err != nil {
				t.Fatal(err)
			}
			if sres.Message.AgentVersion != "client/1" {
				t.Errorf("server saw agent %q", sres.Message.AgentVersion)
			}

			// 10 MiB echoed on 8 concurrent streams of the one connection,
			// opened by the client, then the same opened by the server.
			// (Both at once can stall QUIC by design: its connection-level
			// window fills with data for echo handlers that are blocked
			// writing, on both sides.)
			client.SetStreamHandler(echoID, echo)
			for _, dir := range [][2]*Host{{client, server}, {server, client}} {
				from, to := dir[0], dir[1]
				var wg sync.WaitGroup
				errs := make(chan error, 8)
				for i := range 8 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if err := echoOnce(ctx, from, to.ID(), 10<<20/8); err != nil {
							errs <- fmt.Errorf("stream %d: %w", i, err)
						}
					}()
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Error(err)
				}
				if t.Failed() {
					return
				}
			}
			if n := len(client.Network().ConnsToPeer(server.ID())); n != 1 {
				t.Errorf("%d connections after streams from both sides, want 1", n)
			}

			if err := client.Close(); err != nil {
				t.Fatal(err)
			}
			// The server notices the disconnect.
			deadline := time.Now().Add(5 * time.Second)
			for len(server.Network().ConnsToPeer(client.ID())) > 0 {
				if time.Now().After(deadline) {
					t.Fatal("server still has a connection after the client closed")
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

func TestWrongPeerID(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, sec := range []protocol.ID{Noise, TLS} {
		server := testHost(t, ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), Security(sec))
		client := testHost(t, Security(sec))
		k, _ := crypto.GenerateEd25519Key(nil)
		other, _ := peer.IDFromPrivateKey(k)
		err := client.Connect(ctx, peer.AddrInfo{ID: other, Addrs: server.Addrs()})
		if err == nil {
			t.Fatalf("%s: connected to %s while dialing %s", sec, server.ID(), other)
		}
		t.Logf("%s: %v", sec, err)
	}
}

func TestUnreachable(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := testHost(t)
	k, _ := crypto.GenerateEd25519Key(nil)
	other, _ := peer.IDFromPrivateKey(k)
	// A port nobody listens on: bind one and close it.
	tmp := testHost(t, ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	addr := tmp.Addrs()[0]
	tmp.Close()
	err := client.Connect(ctx, peer.AddrInfo{ID: other, Addrs: []ma.Multiaddr{addr}})
	if err == nil {
		t.Fatal("connected to a closed port")
	}
	if _, err := client.NewStream(ctx, other, echoID); err == nil {
		t.Fatal("NewStream to an unreachable peer worked")
	}
	if err := client.Connect(ctx, peer.AddrInfo{ID: client.ID()}); !errors.Is(err, swarm.ErrDialSelf) {
		t.Fatalf("self dial: %v", err)
	}
}

func TestUnsupportedProtocol(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	server := testHost(t, ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	client := testHost(t)
	if err := client.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}); err != nil {
		t.Fatal(err)
	}
	// Two candidates, neither known: negotiated with a round trip, refused.
	if _, err := client.NewStream(ctx, server.ID(), "/nope/1", "/nope/2"); err == nil {
		t.Fatal("negotiated a protocol the server does not have")
	}
	if _, err := client.IdentifyWait(ctx, server.ID()); err != nil {
		t.Fatal(err)
	}
	// One candidate that identify did not list: negotiated first, refused.
	if _, err := client.NewStream(ctx, server.ID(), "/nope/3"); !errors.Is(err, mss.ErrNotSupported) {
		t.Fatalf("NewStream of a protocol identify did not list = %v, want ErrNotSupported", err)
	}
	// Eager on request, even for a protocol identify listed nothing about.
	client.Peerstore().SetProtocols(server.ID(), nil)
	if _, err := client.NewStream(network.WithEagerNegotiation(ctx), server.ID(), "/nope/4"); !errors.Is(err, mss.ErrNotSupported) {
		t.Fatalf("eager NewStream = %v, want ErrNotSupported", err)
	}
	// One candidate and nothing known: optimistic, so the refusal shows on
	// the first read.
	s, err := client.NewStream(ctx, server.ID(), "/nope/5")
	if err != nil {
		t.Fatal(err)
	}
	s.Write([]byte("x"))
	if _, err := s.Read(make([]byte, 1)); !errors.Is(err, mss.ErrNotSupported) {
		t.Fatalf("read on a refused optimistic stream = %v, want ErrNotSupported", err)
	}
	s.Reset()
}

// An idle connection costs one goroutine on each side, the muxer's reader:
// yamux hands inbound streams to the swarm itself (network.InboundStreams),
// so no goroutine waits in AcceptStream.
func TestIdleConnGoroutines(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 20
	server := testHost(t, ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	clients := make([]*Host, n+1)
	for i := range clients {
		clients[i] = testHost(t)
	}
	settle := func() int {
		time.Sleep(200 * time.Millisecond)
		return runtime.NumGoroutine()
	}
	// The first connection starts what every connection shares (the
	// muxers' keepalive ticker): counted from after it.
	connect := func(c *Host) {
		if err := c.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.IdentifyWait(ctx, server.ID()); err != nil {
			t.Fatal(err)
		}
		if _, err := server.IdentifyWait(ctx, c.ID()); err != nil {
			t.Fatal(err)
		}
	}
	connect(clients[n])
	before := settle()
	for _, c := range clients[:n] {
		connect(c)
	}
	// A count can catch short-lived goroutines (a stream deadline's timer
	// firing): count again for a while, and judge the lowest.
	after := settle()
	for deadline := time.Now().Add(5 * time.Second); float64(after-before)/n > 2 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		after = min(after, runtime.NumGoroutine())
	}
	per := float64(after-before) / n
	t.Logf("%.2f goroutines per idle connection, both ends together", per)
	if per > 2 {
		t.Fatalf("%.2f goroutines per idle connection (both ends), want at most 2", per)
	}
}

func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: k}}}
}

// Plain TCP, /ws, /tls/ws (wss, with a configured certificate) and the
// addresses that name the security protocol all reach one port.
func TestOnePortManyWays(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	server := testHost(t, WebSocketTLS(selfSigned(t)),
		ListenAddrStrings("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0/ws", "/ip4/127.0.0.1/tcp/0/tls/ws"))
	server.SetStreamHandler(echoID, echo)
	// Plain TCP, /ws and /tls/ws as listened on, then the TCP address in the
	// form that names Noise (no /tls form: that port's TLS goes to wss).
	addrs := server.Addrs()
	if len(addrs) != 4 || !strings.HasSuffix(addrs[3].String(), "/noise") {
		t.Fatalf("addrs %v", addrs)
	}
	port := func(a ma.Multiaddr) string { v, _ := a.ValueForProtocol(ma.P_TCP); return v }
	for _, a := range addrs[1:] {
		if port(a) != port(addrs[0]) {
			t.Fatalf("not one port: %v", addrs)
		}
	}
	for _, a := range addrs {
		client := testHost(t, WebSocketInsecureSkipVerify())
		if err := client.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: []ma.Multiaddr{a}}); err != nil {
			t.Fatalf("%s: %v", a, err)
		}
		if err := client.Ping(ctx, server.ID(), 2, 0, 5*time.Second, nil); err != nil {
			t.Fatalf("%s: ping: %v", a, err)
		}
		st := client.Network().ConnsToPeer(server.ID())[0].ConnState()
		want := "tcp"
		if _, err := a.ValueForProtocol(ma.P_WS); err == nil {
			want = "websocket"
		}
		if st.Transport != want {
			t.Fatalf("%s: transport %s", a, st.Transport)
		}
		if strings.HasSuffix(a.String(), "/noise") && st.Security != Noise {
			t.Fatalf("%s: security %s", a, st.Security)
		}
		client.Close()
	}
}

// The addresses that name the security protocol skip its negotiation and
// reach a listener that also takes plain multistream connections.
func TestNamedSecurityAddrs(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	server := testHost(t, ListenAddrStrings("/ip4/127.0.0.1/tcp/0", "/ip6/::1/tcp/0"))
	server.SetStreamHandler(echoID, echo)
	var named int
	for _, a := range server.Addrs() {
		var want protocol.ID
		switch {
		case strings.HasSuffix(a.String(), "/tls"):
			want = TLS
		case strings.HasSuffix(a.String(), "/noise"):
			want = Noise
		default:
			continue
		}
		named++
		client := testHost(t)
		if err := client.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: []ma.Multiaddr{a}}); err != nil {
			t.Fatalf("%s: %v", a, err)
		}
		c := client.Network().ConnsToPeer(server.ID())[0]
		if st := c.ConnState(); st.Security != want || st.Muxer != "/yamux/1.0.0" || !c.RemoteMultiaddr().Equal(a) {
			t.Fatalf("%s: %+v via %s", a, st, c.RemoteMultiaddr())
		}
		if err := client.Ping(ctx, server.ID(), 1, 0, 5*time.Second, nil); err != nil {
			t.Fatal(err)
		}
		client.Close()
	}
	if named != 4 {
		t.Fatalf("%d named-security addresses in %v, want 4", named, server.Addrs())
	}
}

// sendAll writes data to s and half-closes it on a goroutine of its own,
// so that the caller can read meanwhile; the channel gets the outcome.
func sendAll(s network.Stream, data []byte) <-chan error {
	errc := make(chan error, 1)
	go func() {
		_, err := s.Write(data)
		if err == nil {
			err = s.CloseWrite()
		}
		errc <- err
	}()
	return errc
}

// echoOnce sends n random bytes to p's echo handler on a new stream and
// checks that they come back.
func echoOnce(ctx context.Context, h *Host, p peer.ID, n int) error {
	s, err := h.NewStream(ctx, p, echoID)
	if err != nil {
		return err
	}
	defer s.Close()
	data := make([]byte, n)
	rand.Read(data)
	errc := sendAll(s, data)
	got, err := io.ReadAll(s)
	if werr := <-errc; werr != nil {
		return fmt.Errorf("writing: %w", werr)
	}
	if err != nil {
		return fmt.Errorf("reading: %w", err)
	}
	if !bytes.Equal(got, data) {
		return fmt.Errorf("echo: got %d bytes back, sent %d (equal=%v)", len(got), n, bytes.Equal(got, data))
	}
	return nil
}

// TestStreamCopy: io.Copy from a stream, on either end, yields the stream's
// data and nothing of its protocol negotiation, whichever of the stream
// types a host hands out (the lazily negotiated one of NewStream, the
// eagerly negotiated one, the handler's).
func TestStreamCopy(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	server := testHost(t, ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	client := testHost(t)
	// The handler echoes with io.Copy (through the stream's WriteTo).
	server.SetStreamHandler(echoID, echo)
	if err := client.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 100<<10)
	rand.Read(data)
	for _, tc := range []struct {
		name string
		ctx  context.Context
	}{
		{"lazy", ctx},
		{"eager", network.WithEagerNegotiation(ctx)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := client.NewStream(tc.ctx, server.ID(), echoID)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			errc := sendAll(s, data)
			var got bytes.Buffer
			// A plain Writer, so that io.Copy asks the stream (WriteTo).
			n, err := io.Copy(struct{ io.Writer }{&got}, s)
			if werr := <-errc; werr != nil {
				t.Fatalf("writing: %v", werr)
			}
			if err != nil || !bytes.Equal(got.Bytes(), data) {
				t.Fatalf("io.Copy from the stream: %d bytes (want %d, equal %v), %v", n, len(data), bytes.Equal(got.Bytes(), data), err)
			}
		})
	}
}
