//go:build linux || darwin

package tcp

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/muxer/yamux"
	"github.com/tachyon-p2p/tachyon/security/noise"
	"github.com/tachyon-p2p/tachyon/upgrader"
)

func newReuseTransport(t *testing.T, cfg *Config) (*Transport, peer.ID) {
	t.Helper()
	k, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(k)
	sec, err := noise.New(k, &noise.Config{Muxers: []protocol.ID{yamux.ID}})
	if err != nil {
		t.Fatal(err)
	}
	up := &upgrader.Upgrader{
		Security:         []network.SecureTransport{sec},
		Muxers:           []network.Multiplexer{&yamux.Transport{}},
		HandshakeTimeout: 5 * time.Second,
		Transport:        "tcp",
	}
	return New(up, cfg), id
}

func portOf(t *testing.T, a ma.Multiaddr) int {
	t.Helper()
	s, err := a.ValueForProtocol(ma.P_TCP)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(s)
	return p
}

// listenAccepting listens on addr and returns the listener and a channel
// of the connections it accepts (closed with the listener, and the
// connections too).
func listenAccepting(t *testing.T, tr *Transport, addr string) (network.Listener, <-chan network.TransportConn) {
	t.Helper()
	l, err := tr.Listen(ma.StringCast(addr))
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan network.TransportConn, 8)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			ch <- c
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l, ch
}

// Dials leave from the listening port, so the peer sees the address we
// listen on; a second connection to the same address falls back to an
// ephemeral port; NoPortReuse turns it off.
func TestDialLeavesFromListenPort(t *testing.T) {
	for _, ip := range []string{"/ip4/127.0.0.1", "/ip4/0.0.0.0", "/ip6/::1"} {
		t.Run(ip, func(t *testing.T) { testDialLeavesFromListenPort(t, ip) })
	}
}

func testDialLeavesFromListenPort(t *testing.T, ip string) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, _ := newReuseTransport(t, nil)
	b, bid := newReuseTransport(t, nil)
	la, _ := listenAccepting(t, a, ip+"/tcp/0")
	lb, accepted := listenAccepting(t, b, strings.Replace(ip, "0.0.0.0", "127.0.0.1", 1)+"/tcp/0")
	aPort := portOf(t, la.Multiaddrs()[0])

	c1, err := a.Dial(ctx, lb.Multiaddrs()[0], bid)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	if p := portOf(t, c1.LocalMultiaddr()); p != aPort {
		t.Fatalf("first dial left from port %d, not the listening port %d", p, aPort)
	}
	if p := portOf(t, (<-accepted).RemoteMultiaddr()); p != aPort {
		t.Fatalf("the peer saw port %d, not our listening port %d", p, aPort)
	}

	// The 4-tuple from the listening port is taken now.
	c2, err := a.Dial(ctx, lb.Multiaddrs()[0], bid)
	if err != nil {
		t.Fatalf("second dial to the same address: %v", err)
	}
	defer c2.Close()
	if p := portOf(t, c2.LocalMultiaddr()); p == aPort {
		t.Fatal("second dial left from the listening port too")
	}
	<-accepted

	// A hole-punching dial does not fall back.
	_, err = a.Dial(network.WithSimultaneousConnect(ctx, true), lb.Multiaddrs()[0], bid)
	if !errors.Is(err, ErrPortInUse) {
		t.Fatalf("hole-punching dial on a taken 4-tuple: %v, want ErrPortInUse", err)
	}

	off, _ := newReuseTransport(t, &Config{NoPortReuse: true})
	lo, _ := listenAccepting(t, off, ip+"/tcp/0")
	c3, err := off.Dial(ctx, lb.Multiaddrs()[0], bid)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if portOf(t, c3.LocalMultiaddr()) == portOf(t, lo.Multiaddrs()[0]) {
		t.Fatal("NoPortReuse: dial left from the listening port")
	}
	<-accepted
}

// A transport sharing its PortMux with a WebSocket-kind listener dials from
// the shared port, whichever listener bound it.
func TestDialFromSharedPort(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m := NewPortMux(nil)
	ws, err := m.Listen("tcp4", "127.0.0.1:0", KindHTTP)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	a, _ := newReuseTransport(t, &Config{PortMux: m})
	la, _ := listenAccepting(t, a, "/ip4/127.0.0.1/tcp/0")
	if portOf(t, la.Multiaddrs()[0]) != ws.Addr().(*net.TCPAddr).Port {
		t.Fatal("the TCP listener did not join the WebSocket port")
	}
	b, bid := newReuseTransport(t, nil)
	lb, accepted := listenAccepting(t, b, "/ip4/127.0.0.1/tcp/0")
	c, err := a.Dial(ctx, lb.Multiaddrs()[0], bid)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p := portOf(t, (<-accepted).RemoteMultiaddr()); p != ws.Addr().(*net.TCPAddr).Port {
		t.Fatalf("the peer saw port %d, not the shared port", p)
	}
}

// A listening socket never joins the reuseport group of another socket on
// its port: not another PortMux's (another node in this process), not a
// foreign one.
func TestListenDoesNotJoinAReusePortGroup(t *testing.T) {
	leakcheck.Check(t)
	lc := net.ListenConfig{Control: reuseControl}
	foreign, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := NewPortMux(nil)
	if l, err := m.Listen("tcp4", foreign.Addr().String(), KindMultistream); !errors.Is(err, syscall.EADDRINUSE) {
		if err == nil {
			l.Close()
		}
		t.Fatalf("listening on a foreign reuseport socket's port: %v, want EADDRINUSE", err)
	}
	foreign.Close()
	l1, err := m.Listen("tcp4", foreign.Addr().String(), KindMultistream)
	if err != nil {
		t.Fatalf("listening once the port is free: %v", err)
	}
	defer l1.Close()
	other := NewPortMux(nil)
	if l, err := other.Listen("tcp4", l1.Addr().String(), KindMultistream); !errors.Is(err, syscall.EADDRINUSE) {
		if err == nil {
			l.Close()
		}
		t.Fatalf("a second PortMux on the port: %v, want EADDRINUSE", err)
	}
}

// In a hole punch where the client's SYN reaches the server's listener
// before the server dialed (no NAT in the way), the server's listener
// accepts the connection as an inbound one, in the server role, and the
// server's own dial then fails at once with ErrPortInUse: the caller has
// its connection from the listener.
func TestSimultaneousOpenPeerReachedListener(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, aid := newReuseTransport(t, nil)
	b, bid := newReuseTransport(t, nil)
	la, _ := listenAccepting(t, a, "/ip4/127.0.0.1/tcp/0")
	lb, acceptedB := listenAccepting(t, b, "/ip4/127.0.0.1/tcp/0")
	ac, err := a.Dial(network.WithSimultaneousConnect(ctx, true), lb.Multiaddrs()[0], bid)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	bc := <-acceptedB
	if bc.RemotePeer() != aid || bc.Direction() != network.DirInbound {
		t.Fatalf("b accepted %s, %v", bc.RemotePeer(), bc.Direction())
	}
	_, err = b.Dial(network.WithSimultaneousConnect(ctx, false), la.Multiaddrs()[0], aid)
	if !errors.Is(err, ErrPortInUse) {
		t.Fatalf("b's dial: %v, want ErrPortInUse", err)
	}
}
