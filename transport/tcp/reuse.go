package tcp

// Port reuse.
//
// A NAT maps an outbound connection to some public port. Dials that leave
// from an ephemeral port get a mapping nobody can dial back, so the address
// a peer observes (identify) is useless, and TCP hole punching, where both
// peers dial each other at once, cannot work. So outbound connections leave
// from the port of a listening socket, as go-libp2p's reuseport does:
//
//	listening socket  SO_REUSEADDR + SO_REUSEPORT, bound to IP:P, listening
//	dialing socket    SO_REUSEADDR + SO_REUSEPORT, bound to IP:P, connect()
//
// Both sockets must set SO_REUSEPORT for the second bind to succeed. A
// dial from P to a peer we already have a connection with from P fails:
// the 4-tuple is taken (EADDRNOTAVAIL from connect, or EADDRINUSE from bind
// while an old one lingers in TIME-WAIT). The dial then leaves from an
// ephemeral port instead, so a second connection to the same address still
// works. A hole-punching dial does not fall back: from another port it
// cannot get through the NATs, and the taken 4-tuple usually means the
// peer's dial already reached our listener (see Transport.Dial).
//
// SO_REUSEPORT on a listening socket has a cost: any later socket of the
// same user that binds the port with SO_REUSEPORT and listens joins its
// group, and the kernel splits incoming connections between them. So a
// listening socket is bound only after a plain bind (no SO_REUSEPORT) of
// the same address has shown that nobody holds the port, under a
// process-wide lock so that two PortMuxes (two nodes) cannot both see it
// free and then share it; udpmux does the same for UDP. Another process of
// the same user could still slip in between probe and bind: reuseport trusts
// the user, and so does this.
//
// Only on Linux and macOS (reuse_unix.go); elsewhere sockets are bound
// plainly and dials leave from ephemeral ports.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/tachyon-p2p/tachyon/core/network"
)

// bindMu serialises the probe and the reuseport bind of listenShared.
var bindMu sync.Mutex

// listenShared listens on address with SO_REUSEPORT after a plain listen on
// it, closed at once, has shown that the port is free (and picked it for
// port 0). A listen rather than a bind, because Go binds TCP sockets only
// to listen or dial; closing it leaves nothing behind (no connection, no
// TIME-WAIT).
func listenShared(nw, address string) (net.Listener, error) {
	bindMu.Lock()
	defer bindMu.Unlock()
	lc := net.ListenConfig{KeepAliveConfig: keepAlive}
	var last error
	for range 5 {
		probe, err := lc.Listen(context.Background(), nw, address)
		if err != nil {
			return nil, err
		}
		want := probe.Addr().String() // the port the probe got, for port 0
		probe.Close()
		rlc := lc
		rlc.Control = reuseControl
		nl, err := rlc.Listen(context.Background(), nw, want)
		if err != nil {
			if errIsAddrInUse(err) {
				last = err // another process took the port in between
				continue
			}
			return nil, err
		}
		return nl, nil
	}
	return nil, last
}

// dialSourceLocked picks the listening socket an outbound connection to
// dst over nw ("tcp4" or "tcp6") leaves from: one bound with port
// reuse, preferring the unspecified address, or loopback for a loopback
// destination, then the oldest; never a loopback socket for another
// destination or the reverse, which cannot route. The caller holds m.mu.
func (m *PortMux) dialSourceLocked(nw string, dst netip.Addr) (netip.AddrPort, bool) {
	var best netip.AddrPort
	bestScore := 0
	for _, s := range m.sockets {
		if !s.reuse || s.key.network != nw || s.ctx.Err() != nil {
			continue
		}
		ip := s.key.addr.Addr()
		score := 1
		switch {
		case ip.IsUnspecified():
			score = 2
		case ip.IsLoopback() != dst.IsLoopback():
			continue
		case ip.IsLoopback():
			score = 2
		}
		if score > bestScore {
			best, bestScore = s.key.addr, score
		}
	}
	return best, bestScore > 0
}

// ErrPortInUse is wrapped by the error of a hole-punching dial (see
// Transport.Dial) that could not leave from the listening port because a
// connection between the same two addresses exists already.
var ErrPortInUse = errors.New("a connection between these addresses exists already")

// Dial connects to address ("ip:port", a literal IP) over nw ("tcp4" or
// "tcp6") from the port of a listening socket of m bound with port reuse
// when there is one (see Port reuse above), else from an ephemeral port,
// with d's settings (from a listening port, d's LocalAddr and Control are
// replaced). When the
// listening port is taken for that destination, it falls back to an
// ephemeral port, unless ctx is a hole punch's
// (network.WithSimultaneousConnect): then it fails with ErrPortInUse. The
// WebSocket transport can dial through it too.
func (m *PortMux) Dial(ctx context.Context, d net.Dialer, nw, address string) (net.Conn, error) {
	dst, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, fmt.Errorf("tcp: dial %s: %w", address, err)
	}
	_, holePunch := network.SimultaneousConnect(ctx)
	m.mu.Lock()
	src, ok := m.dialSourceLocked(nw, dst.Addr().Unmap())
	m.mu.Unlock()
	if !ok {
		return d.DialContext(ctx, nw, address)
	}
	rd := d
	rd.LocalAddr = net.TCPAddrFromAddrPort(src)
	rd.Control = reuseControl
	c, err := rd.DialContext(ctx, nw, address)
	if err == nil || !errIsAddrInUse(err) || ctx.Err() != nil {
		return c, err
	}
	if holePunch {
		return nil, fmt.Errorf("dialing from listening port %d: %w: %w", src.Port(), ErrPortInUse, err)
	}
	return d.DialContext(ctx, nw, address)
}
