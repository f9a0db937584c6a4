package tcp_test

import (
	"context"
	"errors"
	"io"
	"net"
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
	"github.com/tachyon-p2p/tachyon/transport/tcp"
	"github.com/tachyon-p2p/tachyon/upgrader"
)

func newTransport(t *testing.T, timeout time.Duration) (*tcp.Transport, peer.ID) {
	t.Helper()
	k, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(k)
	sec, err := noise.New(k, nil)
	if err != nil {
		t.Fatal(err)
	}
	up := &upgrader.Upgrader{
		Security:         []network.SecureTransport{sec},
		Muxers:           []network.Multiplexer{&yamux.Transport{}},
		HandshakeTimeout: timeout,
		Transport:        "tcp",
	}
	return tcp.New(up, nil), id
}

func TestCanDial(t *testing.T) {
	tr, _ := newTransport(t, 0)
	for s, want := range map[string]bool{
		"/ip4/1.2.3.4/tcp/1":         true,
		"/ip6/::1/tcp/1":             true,
		"/ip4/1.2.3.4/udp/1":         false,
		"/ip4/1.2.3.4/tcp/1/ws":      false,
		"/dns4/example.com/tcp/1":    false,
		"/ip4/1.2.3.4/udp/1/quic-v1": false,
	} {
		if got := tr.CanDial(ma.StringCast(s)); got != want {
			t.Errorf("CanDial(%s) = %v", s, got)
		}
	}
}

func TestDialListen(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	server, sid := newTransport(t, 0)
	client, cid := newTransport(t, 0)
	l, err := server.Listen(ma.StringCast("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan network.TransportConn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	c, err := client.Dial(ctx, l.Multiaddrs()[0], sid)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc := <-accepted
	defer sc.Close()
	if sc.RemotePeer() != cid || c.RemotePeer() != sid {
		t.Fatal("peer IDs")
	}
	if c.Direction() != network.DirOutbound || sc.Direction() != network.DirInbound {
		t.Fatal("directions")
	}
	if !c.RemoteMultiaddr().Equal(l.Multiaddrs()[0]) || !sc.LocalMultiaddr().Equal(l.Multiaddrs()[0]) {
		t.Fatalf("addrs %s %s", c.RemoteMultiaddr(), sc.LocalMultiaddr())
	}
	if st := c.ConnState(); st.Security != "/noise" || st.Muxer != yamux.ID || st.Transport != "tcp" {
		t.Fatalf("state %+v", st)
	}
}

// A peer that connects and then stalls or sends garbage is cut off after
// the handshake timeout, and never blocks other connections.
func TestBadInboundConnections(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	server, sid := newTransport(t, 300*time.Millisecond)
	client, _ := newTransport(t, 0)
	l, err := server.Listen(ma.StringCast("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	na, _ := manet.ToNetAddr(l.Multiaddrs()[0])

	silent, err := net.Dial("tcp", na.String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	garbage, err := net.Dial("tcp", na.String())
	if err != nil {
		t.Fatal(err)
	}
	defer garbage.Close()
	garbage.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))

	// A good peer still gets through while those two hang around.
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := client.Dial(ctx, l.Multiaddrs()[0], sid)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	for name, conn := range map[string]net.Conn{"silent": silent, "garbage": garbage} {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := io.Copy(io.Discard, conn)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("%s connection was not closed by the listener", name)
		}
	}
}

func TestAcceptAfterClose(t *testing.T) {
	leakcheck.Check(t)
	server, _ := newTransport(t, 0)
	l, err := server.Listen(ma.StringCast("/ip6/::1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	go func() { time.Sleep(50 * time.Millisecond); l.Close() }()
	if _, err := l.Accept(); !errors.Is(err, tcp.ErrListenerClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
}
