package udpmux

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// ListenNonQUIC returns a view of the socket bound at laddr that carries
// every datagram that is not QUIC (STUN, DTLS: first byte without the fixed
// bit 0x40 and without the long-header bit 0x80): ReadFrom yields them with
// the sender's *net.UDPAddr, WriteTo sends from the same address and port.
//
// laddr follows Listen's rules: it joins the listening socket bound to
// exactly laddr; with port 0, one with the same IP that has no non-QUIC view
// yet, else it binds a new socket. A socket has at most one non-QUIC view,
// which keeps it open until Close. Close unblocks a pending ReadFrom.
//
// # How the packets are split
//
// quic-go can hand non-QUIC packets out itself (Transport.ReadNonQUICPacket),
// but it queues only 32 of them and drops the rest: a WebRTC data channel
// at full speed overruns that whenever its reader is descheduled for a
// millisecond, and uploads over a shared port fell to a fifth of those over
// a port of their own. Instead the kernel splits them: the view is a second
// UDP socket bound to the same address and port (both with SO_REUSEPORT),
// and a classic BPF program on the port's reuseport group sends each
// datagram to the QUIC socket or to the view by its first byte. Each has
// its own receive buffer and nothing is copied or queued in user space.
// Datagrams that arrive while no view exists go to quic-go, which drops
// them.
func (m *Mux) ListenNonQUIC(laddr netip.AddrPort) (net.PacketConn, error) {
	if !laddr.IsValid() {
		return nil, fmt.Errorf("udpmux: listen for non-QUIC packets on invalid address %s", laddr)
	}
	if !SharesNonQUIC {
		return nil, errors.New("udpmux: sharing a UDP port between QUIC and WebRTC needs Linux (reuseport BPF)")
	}
	free := func(s *socket) bool { return s.nonQUIC == nil }
	m.mu.Lock()
	s, err := m.claimSocketLocked(laddr, free, "a non-QUIC listener")
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	udp, err := bindNonQUIC(s.addr)
	if err != nil {
		release := m.releaseLocked(s)
		m.mu.Unlock()
		if release {
			// Not under m.mu: quic-go's close waits for callbacks that
			// take it. Done before returning, so the port is free again.
			s.close()
		}
		return nil, fmt.Errorf("udpmux: non-QUIC view of %s: %w", s.addr, err)
	}
	defer m.mu.Unlock()
	// Room for a burst of DTLS records while the reader decrypts.
	_ = udp.SetReadBuffer(viewReadBuffer)
	_ = udp.SetWriteBuffer(viewReadBuffer)
	c := &nonQUICConn{UDPConn: udp, s: s}
	s.nonQUIC = c
	s.retraceLocked()
	return c, nil
}

// viewReadBuffer is the socket buffer asked for the view (the kernel caps
// it at net.core.rmem_max unless the process may raise it).
const viewReadBuffer = 4 << 20

// nonQUICConn is the net.PacketConn of ListenNonQUIC: the view's own UDP
// socket, whose Close also releases the shared socket.
type nonQUICConn struct {
	*net.UDPConn
	s         *socket
	closeOnce sync.Once
}

var _ net.PacketConn = (*nonQUICConn)(nil)

// WriteTo sends b to addr, which must be a *net.UDPAddr.
func (c *nonQUICConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, &net.OpError{Op: "write", Net: "udp", Source: c.LocalAddr(), Addr: addr,
			Err: fmt.Errorf("address %v is a %T, not a *net.UDPAddr", addr, addr)}
	}
	return c.UDPConn.WriteToUDP(b, ua)
}

// Close closes the view and releases the shared socket (closing it if
// nothing else uses it). A second Close reports net.ErrClosed.
func (c *nonQUICConn) Close() error {
	err := net.ErrClosed
	c.closeOnce.Do(func() {
		err = c.UDPConn.Close()
		s := c.s
		s.m.mu.Lock()
		if s.nonQUIC == c {
			s.nonQUIC = nil
		}
		release := s.m.releaseLocked(s)
		s.m.mu.Unlock()
		if release {
			s.close()
		}
	})
	return err
}

func udpNetwork(laddr netip.AddrPort) string {
	if laddr.Addr().Is6() && !laddr.Addr().Is4In6() {
		return "udp6"
	}
	return "udp4"
}

// bindMu serialises the probe and the reuseport bind of bindShared and
// the view's bind, so that two Muxes of this process (two nodes) cannot
// both see a port free and then share it.
var bindMu sync.Mutex

// bindShared binds a listening socket with SO_REUSEPORT, after a plain
// bind of the same address has shown that nobody holds the port: without
// it, a reuseport bind would join any reuseport socket of this user on
// that port (another node, or for port 0 whatever port the kernel hands
// out again), and the two would share its traffic. The plain bind also
// picks the port for port 0. The split program is attached at once: while
// the socket is alone in its group, the program's index 1 does not exist
// and the kernel falls back to it, and when a view joins, no datagram is
// hashed to the wrong socket before the program is there.
//
// Another process of the same user could still join the group between the
// probe and the bind, or later with a reuseport bind of its own: reuseport
// trusts the user, and so does this.
func bindShared(laddr netip.AddrPort) (*net.UDPConn, error) {
	if !SharesNonQUIC {
		return net.ListenUDP(udpNetwork(laddr), net.UDPAddrFromAddrPort(laddr))
	}
	bindMu.Lock()
	defer bindMu.Unlock()
	nw := udpNetwork(laddr)
	var last error
	for range 5 {
		probe, err := net.ListenUDP(nw, net.UDPAddrFromAddrPort(laddr))
		if err != nil {
			return nil, err
		}
		want := netip.AddrPortFrom(laddr.Addr(), uint16(probe.LocalAddr().(*net.UDPAddr).Port))
		probe.Close()
		c, err := listenReusePort(nw, want)
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				last = err // another process took the port in between
				continue
			}
			return nil, err
		}
		if err := attachSplitProgram(c); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
	return nil, last
}

// bindNonQUIC binds the view: a second reuseport socket on addr, which
// the group's split program (attached by bindShared) makes index 1.
func bindNonQUIC(addr netip.AddrPort) (*net.UDPConn, error) {
	bindMu.Lock()
	defer bindMu.Unlock()
	return listenReusePort(udpNetwork(addr), addr)
}

// A read deadline and the other net.PacketConn methods come from the
// embedded *net.UDPConn; this keeps the compiler checking that.
var _ interface{ SetReadDeadline(time.Time) error } = (*nonQUICConn)(nil)
