package udpmux

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ListenNonQUIC returns a view of the socket bound at laddr that carries
// every datagram that is not QUIC (STUN, DTLS: first byte without the fixed
// bit 0x40 and without the long-header bit 0x80): ReadFrom yields them with
// the sender's *net.UDPAddr, WriteTo sends any datagram from the socket.
//
// laddr follows Listen's rules: it joins the listening socket bound to
// exactly laddr; with port 0, one with the same IP that has no non-QUIC view
// yet, else it binds a new socket. A socket has at most one non-QUIC view,
// which keeps it open until Close. Close unblocks a pending ReadFrom.
//
// quic-go queues up to 32 such datagrams while nobody reads and drops the
// rest. Datagrams that arrive before the socket's first view are dropped;
// those that arrive between two views are queued for the next.
func (m *Mux) ListenNonQUIC(laddr netip.AddrPort) (net.PacketConn, error) {
	if !laddr.IsValid() {
		return nil, fmt.Errorf("udpmux: listen for non-QUIC packets on invalid address %s", laddr)
	}
	free := func(s *socket) bool { return s.nonQUIC == nil }
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.listeningSocketLocked(laddr, free)
	if err != nil {
		return nil, err
	}
	if !free(s) {
		return nil, fmt.Errorf("udpmux: %s already has a non-QUIC listener", s.addr)
	}
	if !s.nonQUICArmed {
		// quic-go drops non-QUIC packets until the first read, and that
		// first read (which makes the queue) must not race with another. A
		// read with a done context arms the queue now, so that nothing sent
		// after ListenNonQUIC returns is lost and ReadFrom may run
		// concurrently. The queue is new, so this read cannot take a packet.
		done, cancel := context.WithCancel(context.Background())
		cancel()
		s.tr.ReadNonQUICPacket(done, nil)
		s.nonQUICArmed = true
	}
	c := &nonQUICConn{s: s, laddr: net.UDPAddrFromAddrPort(s.addr)}
	c.closeCtx, c.cancel = context.WithCancel(context.Background())
	c.rdl, c.rdlStop = context.WithCancel(c.closeCtx)
	s.nonQUIC = c
	return c, nil
}

// nonQUICConn is the net.PacketConn of ListenNonQUIC.
type nonQUICConn struct {
	s     *socket
	laddr *net.UDPAddr

	closeCtx  context.Context // done once Close was called
	cancel    context.CancelFunc
	closeOnce sync.Once

	dlMu    sync.Mutex
	rdl     context.Context // done at the read deadline or on Close
	rdlStop context.CancelFunc
	wdl     atomic.Pointer[time.Time] // nil: no write deadline
}

var _ net.PacketConn = (*nonQUICConn)(nil)

func (c *nonQUICConn) opError(op string, addr net.Addr, err error) error {
	return &net.OpError{Op: op, Net: "udp", Source: c.laddr, Addr: addr, Err: err}
}

// ReadFrom reads the next non-QUIC datagram. Errors are *net.OpError
// (Timeout() at the read deadline, net.ErrClosed after Close), so
// os.IsTimeout and errors.Is work as on a *net.UDPConn.
func (c *nonQUICConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		deadline := c.readDeadline()
		if deadline.Err() == nil {
			n, addr, err := c.s.tr.ReadNonQUICPacket(deadline, b)
			if err == nil {
				return n, addr, nil
			}
			if deadline.Err() == nil { // the transport closed under us
				return 0, nil, c.opError("read", nil, fmt.Errorf("reading non-QUIC packets: %w", err))
			}
		}
		if err := c.stopped(deadline); err != nil {
			return 0, nil, err
		}
	}
}

// stopped says why the deadline context of a read ended: Close
// (net.ErrClosed), the deadline (timeout) or nil when SetReadDeadline
// replaced it and the read goes on with the new one.
func (c *nonQUICConn) stopped(deadline context.Context) error {
	switch {
	case c.closeCtx.Err() != nil:
		return c.opError("read", nil, net.ErrClosed)
	case errors.Is(deadline.Err(), context.DeadlineExceeded):
		return c.opError("read", nil, os.ErrDeadlineExceeded)
	default:
		return nil
	}
}

func (c *nonQUICConn) readDeadline() context.Context {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	return c.rdl
}

// WriteTo sends b to addr, which must be a *net.UDPAddr, from the socket.
func (c *nonQUICConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, c.opError("write", addr, fmt.Errorf("address %v is a %T, not a *net.UDPAddr", addr, addr))
	}
	if c.closeCtx.Err() != nil {
		return 0, c.opError("write", addr, net.ErrClosed)
	}
	if dl := c.wdl.Load(); dl != nil && !time.Now().Before(*dl) {
		return 0, c.opError("write", addr, os.ErrDeadlineExceeded)
	}
	n, err := c.s.tr.WriteTo(b, ua)
	if err != nil {
		return n, c.opError("write", addr, err)
	}
	return n, nil
}

// Close releases the socket (closing it if nothing else uses it) and
// unblocks a pending ReadFrom.
func (c *nonQUICConn) Close() error {
	c.closeOnce.Do(func() {
		c.cancel()
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
		c.dlMu.Lock()
		c.rdlStop()
		c.dlMu.Unlock()
	})
	return nil
}

// LocalAddr is the socket's address, a *net.UDPAddr.
func (c *nonQUICConn) LocalAddr() net.Addr { return c.laddr }

// SetDeadline sets both deadlines.
func (c *nonQUICConn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline bounds pending and future ReadFrom calls; the zero time
// removes the bound.
func (c *nonQUICConn) SetReadDeadline(t time.Time) error {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	old := c.rdlStop
	if t.IsZero() {
		c.rdl, c.rdlStop = context.WithCancel(c.closeCtx)
	} else {
		c.rdl, c.rdlStop = context.WithDeadline(c.closeCtx, t)
	}
	old() // wakes a pending read, which picks up the new deadline
	return nil
}

// SetWriteDeadline makes WriteTo fail once t has passed. Writes to a UDP
// socket do not block, so it only matters for calls made after t.
func (c *nonQUICConn) SetWriteDeadline(t time.Time) error {
	if t.IsZero() {
		c.wdl.Store(nil)
	} else {
		c.wdl.Store(&t)
	}
	return nil
}
