package websocket_test

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
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/muxer/yamux"
	"github.com/tachyon-p2p/tachyon/security/noise"
	tlssec "github.com/tachyon-p2p/tachyon/security/tls"
	"github.com/tachyon-p2p/tachyon/transport/tcp"
	"github.com/tachyon-p2p/tachyon/transport/websocket"
	"github.com/tachyon-p2p/tachyon/upgrader"
)

// node is one side: a TCP and a WebSocket transport on one PortMux.
type node struct {
	id  peer.ID
	tcp *tcp.Transport
	ws  *websocket.Transport
}

type nodeOpts struct {
	security  string // "noise" or "tls"
	timeout   time.Duration
	serverTLS *tls.Config
}

func newNode(t testing.TB, o nodeOpts) *node {
	t.Helper()
	k, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(k)
	var sec network.SecureTransport
	var err error
	if o.security == "tls" {
		sec, err = tlssec.New(k, nil)
	} else {
		sec, err = noise.New(k, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	up := upgrader.Upgrader{
		Security:         []network.SecureTransport{sec},
		Muxers:           []network.Multiplexer{&yamux.Transport{}},
		HandshakeTimeout: o.timeout,
		Transport:        "tcp",
	}
	wsUp := up
	wsUp.Transport = "websocket"
	pm := tcp.NewPortMux(&tcp.PortMuxConfig{SniffTimeout: o.timeout})
	return &node{
		id:  id,
		tcp: tcp.New(&up, &tcp.Config{PortMux: pm}),
		ws: websocket.New(&wsUp, &websocket.Config{
			PortMux:            pm,
			TLSConfig:          o.serverTLS,
			InsecureSkipVerify: true,
			HandshakeTimeout:   o.timeout,
		}),
	}
}

func (n *node) listen(t *testing.T, addr string) network.Listener {
	t.Helper()
	a := ma.StringCast(addr)
	var l network.Listener
	var err error
	if n.ws.CanDial(a) {
		l, err = n.ws.Listen(a)
	} else {
		l, err = n.tcp.Listen(a)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func (n *node) dial(ctx context.Context, a ma.Multiaddr, p peer.ID) (network.TransportConn, error) {
	if n.ws.CanDial(a) {
		return n.ws.Dial(ctx, a, p)
	}
	return n.tcp.Dial(ctx, a, p)
}

// selfSigned returns a server TLS config with a fresh self-signed
// certificate for 127.0.0.1, ::1 and "example.test".
func selfSigned(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "example.test"},
		DNSNames:     []string{"example.test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// connect dials l's address and returns both ends.
func connect(t *testing.T, ctx context.Context, client, server *node, l network.Listener, addr ma.Multiaddr) (network.TransportConn, network.TransportConn) {
	t.Helper()
	type res struct {
		c   network.TransportConn
		err error
	}
	accepted := make(chan res, 1)
	go func() {
		c, err := l.Accept()
		accepted <- res{c, err}
	}()
	c, err := client.dial(ctx, addr, server.id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := <-accepted
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.c.Close() })
	if c.RemotePeer() != server.id || r.c.RemotePeer() != client.id {
		t.Fatal("wrong peer IDs")
	}
	return c, r.c
}

// echoStreams serves echo on every stream sc accepts, until sc closes.
func echoStreams(sc network.TransportConn, wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		s, err := sc.AcceptStream()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			io.Copy(s, s)
			s.CloseWrite()
		}()
	}
}

// echoOver sends total bytes over n concurrent streams of c and checks the
// echo.
func echoOver(t *testing.T, ctx context.Context, c network.TransportConn, n, total int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- echoOne(ctx, c, i, total/n)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func echoOne(ctx context.Context, c network.TransportConn, seed, size int) error {
	s, err := c.OpenStream(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(20 * time.Second))
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*7 + seed)
	}
	werr := make(chan error, 1)
	go func() {
		_, err := s.Write(data)
		if err == nil {
			err = s.CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(s)
	if err != nil {
		return fmt.Errorf("stream %d: read: %w", seed, err)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("stream %d: write: %w", seed, err)
	}
	if !bytes.Equal(got, data) {
		return fmt.Errorf("stream %d: echo differs (%d of %d bytes)", seed, len(got), len(data))
	}
	return nil
}

func TestWebSocketEcho(t *testing.T) {
	for _, tc := range []struct{ name, listen, security string }{
		{"ws/noise", "/ip4/127.0.0.1/tcp/0/ws", "noise"},
		{"ws/tls", "/ip6/::1/tcp/0/ws", "tls"},
		{"wss/noise", "/ip4/127.0.0.1/tcp/0/tls/ws", "noise"},
		{"wss/tls", "/ip4/127.0.0.1/tcp/0/wss", "tls"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			server := newNode(t, nodeOpts{security: tc.security, serverTLS: selfSigned(t)})
			client := newNode(t, nodeOpts{security: tc.security})
			l := server.listen(t, tc.listen)
			addr := l.Multiaddrs()[0]
			c, sc := connect(t, ctx, client, server, l, addr)
			if st := c.ConnState(); st.Transport != "websocket" || st.Muxer != yamux.ID {
				t.Fatalf("conn state %+v", st)
			}
			if !c.RemoteMultiaddr().Equal(addr) || !sc.LocalMultiaddr().Equal(addr) {
				t.Fatalf("addrs: dialer sees %s, listener %s, want %s", c.RemoteMultiaddr(), sc.LocalMultiaddr(), addr)
			}
			if !sc.RemoteMultiaddr().Equal(c.LocalMultiaddr()) {
				t.Fatalf("addrs: %s vs %s", sc.RemoteMultiaddr(), c.LocalMultiaddr())
			}
			var wg sync.WaitGroup
			wg.Add(2)
			go echoStreams(sc, &wg)
			go echoStreams(c, &wg)
			// Streams both ways; 10 MiB over 8 streams from the dialer.
			echoOver(t, ctx, c, 8, 10<<20)
			echoOver(t, ctx, sc, 2, 1<<20)
			c.Close()
			sc.Close()
			wg.Wait()
		})
	}
}

// One port serves TCP, WebSocket and secure WebSocket at once; port 0 for
// the later listens joins the port of the first.
func TestSharedPort(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	server := newNode(t, nodeOpts{serverTLS: selfSigned(t)})
	client := newNode(t, nodeOpts{})
	lt := server.listen(t, "/ip4/127.0.0.1/tcp/0")
	lw := server.listen(t, "/ip4/127.0.0.1/tcp/0/ws")
	port, _ := lt.Multiaddrs()[0].ValueForProtocol(ma.P_TCP)
	lwss := server.listen(t, "/ip4/127.0.0.1/tcp/"+port+"/tls/ws")
	for _, l := range []network.Listener{lw, lwss} {
		if p, _ := l.Multiaddrs()[0].ValueForProtocol(ma.P_TCP); p != port {
			t.Fatalf("%s does not share port %s", l.Multiaddrs()[0], port)
		}
	}
	// Another listen of a kind the port already has gets a port of its own.
	other := server.listen(t, "/ip4/127.0.0.1/tcp/0/ws")
	if p, _ := other.Multiaddrs()[0].ValueForProtocol(ma.P_TCP); p == port {
		t.Fatal("second /ws listener joined a port that has one")
	}
	if _, err := server.ws.Listen(lw.Multiaddrs()[0]); !errors.Is(err, tcp.ErrKindInUse) {
		t.Fatalf("second /ws listener on the same port: %v", err)
	}

	var wg sync.WaitGroup
	var conns []network.TransportConn
	for _, l := range []network.Listener{lt, lw, lwss} {
		c, sc := connect(t, ctx, client, server, l, l.Multiaddrs()[0])
		want := "websocket"
		if l == lt {
			want = "tcp"
		}
		if sc.ConnState().Transport != want || !sc.LocalMultiaddr().Equal(l.Multiaddrs()[0]) {
			t.Fatalf("%s: accepted %s conn on %s", l.Multiaddrs()[0], sc.ConnState().Transport, sc.LocalMultiaddr())
		}
		wg.Add(1)
		go echoStreams(sc, &wg)
		conns = append(conns, c, sc)
	}
	for i := 0; i < len(conns); i += 2 {
		echoOver(t, ctx, conns[i], 2, 256<<10)
	}
	// Closing the TCP listener keeps the port open for WebSocket.
	lt.Close()
	c, sc := connect(t, ctx, client, server, lw, lw.Multiaddrs()[0])
	wg.Add(1)
	go echoStreams(sc, &wg)
	echoOver(t, ctx, c, 1, 1024)
	for _, c := range append(conns, c, sc) {
		c.Close()
	}
	wg.Wait()
}

// Peers that send nothing, garbage, a bad HTTP request or a plain HTTP
// request are closed within the timeouts and never block a good peer.
func TestBadInboundConnections(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	server := newNode(t, nodeOpts{timeout: 300 * time.Millisecond, serverTLS: selfSigned(t)})
	client := newNode(t, nodeOpts{})
	lt := server.listen(t, "/ip4/127.0.0.1/tcp/0")
	lw := server.listen(t, "/ip4/127.0.0.1/tcp/0/ws")
	server.listen(t, "/ip4/127.0.0.1/tcp/0/tls/ws")
	na, _ := manet.ToNetAddr(lt.Multiaddrs()[0])

	bad := map[string]string{
		"silent":       "",
		"garbage":      "\xff\xfe\xfdhello",
		"half GET":     "GE",
		"not upgrade":  "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"bad key":      "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: abc\r\n\r\n",
		"endless head": "GET / HTTP/1.1\r\nX: " + string(bytes.Repeat([]byte("a"), 20000)),
		"stalled TLS":  "\x16\x03\x01\x00\xff",
		"stalled ws": "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
	}
	conns := map[string]net.Conn{}
	for name, msg := range bad {
		c, err := net.Dial("tcp", na.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go c.Write([]byte(msg))
		conns[name] = c
	}

	// Good peers still get through, on every kind.
	for _, l := range []network.Listener{lt, lw} {
		connect(t, ctx, client, server, l, l.Multiaddrs()[0])
	}

	for name, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := io.Copy(io.Discard, c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("%s connection was not closed by the listener", name)
		}
	}
}

func TestCanDial(t *testing.T) {
	tr := websocket.New(nil, nil)
	for s, want := range map[string]bool{
		"/ip4/1.2.3.4/tcp/1/ws":                      true,
		"/ip6/::1/tcp/1/ws":                          true,
		"/dns4/example.com/tcp/443/wss":              true,
		"/dns6/example.com/tcp/443/tls/ws":           true,
		"/dns/example.com/tcp/443/tls/sni/a.b/ws":    true,
		"/ip4/1.2.3.4/tcp/1/ws/http-path/%2Ffoo":     true,
		"/ip4/1.2.3.4/tcp/1":                         false,
		"/ip4/1.2.3.4/tcp/1/tls":                     false,
		"/ip4/1.2.3.4/udp/1/ws":                      false,
		"/ip4/1.2.3.4/tcp/1/ws/p2p-circuit":          false,
		"/ip4/1.2.3.4/udp/1/quic-v1":                 false,
		"/ip4/1.2.3.4/tcp/1/tls/sni/a.b/http/ws":     false,
		"/dnsaddr/example.com/tcp/1/ws":              false,
		"/ip4/1.2.3.4/tcp/1/tls/ws/http-path/a/b/ws": false,
	} {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			if want {
				t.Errorf("%s: %v", s, err)
			}
			continue
		}
		if got := tr.CanDial(a); got != want {
			t.Errorf("CanDial(%s) = %v", s, got)
		}
	}
}

// Listening on /tls/ws needs a certificate; on a DNS name it is refused.
func TestListenErrors(t *testing.T) {
	leakcheck.Check(t)
	n := newNode(t, nodeOpts{})
	if _, err := n.ws.Listen(ma.StringCast("/ip4/127.0.0.1/tcp/0/tls/ws")); !errors.Is(err, websocket.ErrNoTLSConfig) {
		t.Errorf("wss without cert: %v", err)
	}
	if _, err := n.ws.Listen(ma.StringCast("/dns4/localhost/tcp/0/ws")); err == nil {
		t.Error("listen on a DNS address succeeded")
	}
}

// A wss dial that checks certificates rejects the self-signed one, and one
// that names the server by /sni with a trusted root accepts it.
func TestWSSVerification(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srvTLS := selfSigned(t)
	server := newNode(t, nodeOpts{serverTLS: srvTLS})
	l := server.listen(t, "/ip4/127.0.0.1/tcp/0/tls/ws")
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port, _ := l.Multiaddrs()[0].ValueForProtocol(ma.P_TCP)
	k, _ := crypto.GenerateEd25519Key(nil)
	sec, _ := noise.New(k, nil)
	up := &upgrader.Upgrader{Security: []network.SecureTransport{sec}, Muxers: []network.Multiplexer{&yamux.Transport{}}}

	strict := websocket.New(up, nil)
	if _, err := strict.Dial(ctx, l.Multiaddrs()[0], server.id); err == nil {
		t.Fatal("dial accepted a self-signed certificate")
	}
	leaf, _ := x509.ParseCertificate(srvTLS.Certificates[0].Certificate[0])
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	trusting := websocket.New(up, &websocket.Config{ClientTLSConfig: &tls.Config{RootCAs: roots}})
	c, err := trusting.Dial(ctx, ma.StringCast("/ip4/127.0.0.1/tcp/"+port+"/tls/sni/example.test/ws"), server.id)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// BenchmarkThroughput compares one stream over TCP, /ws and /tls/ws, with
// Noise and yamux.
func BenchmarkThroughput(b *testing.B) {
	for _, tc := range []struct{ name, listen string }{
		{"tcp", "/ip4/127.0.0.1/tcp/0"},
		{"ws", "/ip4/127.0.0.1/tcp/0/ws"},
		{"wss", "/ip4/127.0.0.1/tcp/0/tls/ws"},
	} {
		listen := tc.listen
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			server := newNode(b, nodeOpts{serverTLS: selfSigned(b)})
			client := newNode(b, nodeOpts{})
			a := ma.StringCast(listen)
			var l network.Listener
			var err error
			if server.ws.CanDial(a) {
				l, err = server.ws.Listen(a)
			} else {
				l, err = server.tcp.Listen(a)
			}
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			go func() {
				sc, err := l.Accept()
				if err != nil {
					return
				}
				defer sc.Close()
				for {
					s, err := sc.AcceptStream()
					if err != nil {
						return
					}
					go func() { io.Copy(io.Discard, s); s.Close() }()
				}
			}()
			c, err := client.dial(ctx, l.Multiaddrs()[0], server.id)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			s, err := c.OpenStream(ctx)
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 1<<20)
			b.SetBytes(int64(len(buf)))
			b.ResetTimer()
			for range b.N {
				if _, err := s.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			s.Close()
		})
	}
}
