package tcp

import (
	"context"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	manet "github.com/multiformats/go-multiaddr/net"

	"golang.org/x/sys/unix"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// addDeafSocket adds to m a listening socket on a free port of 127.0.0.1,
// bound with port reuse like the PortMux's own, that drops every new SYN,
// as the NAT in front of a peer drops SYNs it has no mapping for: it
// listens with a backlog of 0, its accept queue is filled by a connection
// nobody accepts, and the kernel drops SYNs to a listener whose accept
// queue is full. It has no accept loop and no Listener; dials of m leave
// from its port.
func addDeafSocket(t *testing.T, m *PortMux) netip.AddrPort {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, opt := range []int{unix.SO_REUSEADDR, unix.SO_REUSEPORT} {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt, 1); err != nil {
			unix.Close(fd)
			t.Fatal(err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "deaf listener")
	nl, err := net.FileListener(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nl.Close() })
	addr := nl.Addr().(*net.TCPAddr).AddrPort()

	// Fill the accept queue: connect until a connect gets no answer.
	for i := 0; ; i++ {
		if i == 16 {
			t.Fatal("the accept queue of the deaf socket never filled")
		}
		c, err := net.DialTimeout("tcp4", addr.String(), 200*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
	}

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	m.mu.Lock()
	m.sockets = append(m.sockets, &socket{
		m: m, key: sockKey{"tcp4", addr}, nl: nl, reuse: true, ctx: ctx, cancel: cancel,
		listeners: map[Kind]*Listener{},
	})
	m.mu.Unlock()
	return addr
}

// TestSimultaneousOpen: two transports whose sockets listen with port
// reuse dial each other at once, as in a DCUtR hole punch, with roles from
// the context: a is the client, b the server. Both get one connection (the
// same TCP connection, from listening port to listening port) to the right
// peer, in the right roles.
//
// Behind real NATs each peer's first SYN is dropped by the other's NAT,
// which has no mapping yet, and only the SYNs sent once both sides are in
// SYN-SENT get through and cross. On loopback nothing drops the first SYN:
// it reaches the other side's listener, which accepts it as an inbound
// connection if the other side has not called connect() yet, and that
// side's dial then finds its 4-tuple taken (ErrPortInUse). To be
// deterministic, the test plays the NATs: the listening sockets the dials
// leave from drop every new SYN (addDeafSocket). Whichever connect() comes
// first, its SYN is dropped (and would be retransmitted after a second),
// and the other side's SYN, sent after its own socket entered SYN-SENT,
// finds the first socket in SYN-SENT: the socket with the exact 4-tuple
// gets it before any listener, and the crossing SYNs make a simultaneous
// open at once.
func TestSimultaneousOpen(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, aid := newReuseTransport(t, nil)
	b, bid := newReuseTransport(t, nil)
	aAddr, bAddr := addDeafSocket(t, a.cfg.PortMux), addDeafSocket(t, b.cfg.PortMux)
	aPort, bPort := int(aAddr.Port()), int(bAddr.Port())
	aMA, _ := manet.FromNetAddr(net.TCPAddrFromAddrPort(aAddr))
	bMA, _ := manet.FromNetAddr(net.TCPAddrFromAddrPort(bAddr))

	type res struct {
		c   network.TransportConn
		err error
	}
	bres := make(chan res, 1)
	go func() {
		c, err := b.Dial(network.WithSimultaneousConnect(ctx, false), aMA, aid)
		bres <- res{c, err}
	}()
	ac, err := a.Dial(network.WithSimultaneousConnect(ctx, true), bMA, bid)
	br := <-bres
	if ac != nil {
		defer ac.Close()
	}
	if br.c != nil {
		defer br.c.Close()
	}
	if err != nil || br.err != nil {
		t.Fatalf("dials: a (client): %v; b (server): %v", err, br.err)
	}
	bc := br.c
	if ac.RemotePeer() != bid || bc.RemotePeer() != aid {
		t.Fatalf("peers: a sees %s, b sees %s", ac.RemotePeer(), bc.RemotePeer())
	}
	if ac.Direction() != network.DirOutbound || bc.Direction() != network.DirOutbound {
		t.Fatalf("directions: a %v, b %v", ac.Direction(), bc.Direction())
	}
	if portOf(t, ac.LocalMultiaddr()) != aPort || portOf(t, bc.LocalMultiaddr()) != bPort {
		t.Fatalf("not from the listening ports: a %s, b %s", ac.LocalMultiaddr(), bc.LocalMultiaddr())
	}

	// Each side opens a stream: the client's yamux IDs are odd, the
	// server's even.
	for i, c := range []struct {
		from, to network.TransportConn
		odd      bool
	}{{ac, bc, true}, {bc, ac, false}} {
		s, err := c.from.OpenStream(ctx)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		defer s.Close()
		if id := s.(interface{ StreamID() uint32 }).StreamID(); (id%2 == 1) != c.odd {
			t.Fatalf("stream %d has ID %d: want odd=%v", i, id, c.odd)
		}
		if _, err := s.Write([]byte("hi")); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		rs, err := c.to.AcceptStream()
		if err != nil {
			t.Fatalf("stream %d: accept: %v", i, err)
		}
		defer rs.Close()
		rs.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 2)
		if _, err := rs.Read(buf); err != nil || string(buf) != "hi" {
			t.Fatalf("stream %d: read %q %v", i, buf, err)
		}
	}
}
