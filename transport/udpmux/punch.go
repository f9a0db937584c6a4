package udpmux

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"github.com/quic-go/quic-go"
)

// QUIC hole punching.
//
// In a DCUtR hole punch over QUIC only one peer dials (A, the DCUtR
// responder). The other (B) must first open its own NAT to A's address by
// sending datagrams to it from its listening socket, and then accept A's
// connection on that socket as the QUIC server. HolePunch is B's part: it
// registers a punch on the socket, sends the datagrams from the caller's
// goroutine, and the connection it waits for is taken out of the accept
// path once its handshake completed (awaitHandshake), before any listener
// sees it. A punch recognises its connection with a claim function (the
// QUIC transport's: the peer ID in the certificate), not by address: behind
// some NATs A's connection comes from another port than the one B sends to.

// punch is a HolePunch waiting for its connection. Its map entry in
// socket.punches is guarded by Mux.mu; got is buffered, sent to once, under
// Mux.mu, by the goroutine that removes the entry.
type punch struct {
	alpn  string
	claim func(*quic.Conn) bool
	got   chan *quic.Conn
}

const (
	// punchSize is the size of a hole-punching datagram (as go-libp2p).
	punchSize = 64
	// The interval between two hole-punching datagrams is random in
	// [punchMinInterval, punchMaxInterval], so that two peers' bursts
	// never stay in lockstep.
	punchMinInterval = 10 * time.Millisecond
	punchMaxInterval = 200 * time.Millisecond
)

// HolePunch opens our NAT to raddr for a QUIC hole punch and returns the
// connection the peer then makes to us. From the listening socket of
// raddr's address family that serves alpn with a Listen consumer (not
// ListenEarly), it sends raddr datagrams of random bytes at random
// intervals of 10 to 200 ms until an inbound connection of alpn, once its
// handshake completed, is accepted by claim. That connection is not
// delivered to the listener, and holds the socket open like a dialed one.
// claim runs on a Mux goroutine, once per candidate connection; it must be
// quick and must not call into the Mux.
//
// HolePunch fails when ctx ends first (with ctx's error), when there is no
// such socket, or when its listener closes. It starts no goroutine.
//
// The datagrams are meant for the NATs and must be dropped by the peer. So
// their first byte is between 4 and 15: the fixed bit 0x40 and the
// long-header bit 0x80 are clear, so that no QUIC stack parses them (quic-go
// drops them as non-QUIC packets; a random first byte could make a short
// header with an unknown connection ID, which may draw a stateless reset),
// and the value is outside the ranges of STUN (0-3) and DTLS (20-63) in
// the RFC 7983 demultiplexing that a WebRTC stack sharing the peer's port
// applies to non-QUIC packets.
func (m *Mux) HolePunch(ctx context.Context, raddr netip.AddrPort, alpn string, claim func(*quic.Conn) bool) (*quic.Conn, error) {
	raddr = netip.AddrPortFrom(raddr.Addr().Unmap(), raddr.Port())
	p := &punch{alpn: alpn, claim: claim, got: make(chan *quic.Conn, 1)}
	m.mu.Lock()
	s := m.pickPunchSocketLocked(raddr.Addr(), alpn)
	if s == nil {
		m.mu.Unlock()
		return nil, fmt.Errorf("udpmux: hole punch to %s: no listening socket serves %q for that address", raddr, alpn)
	}
	s.punches[p] = struct{}{}
	s.conns++ // we send from the socket until we return
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(s.punches, p)
		s.conns--
		release := m.releaseLocked(s)
		m.mu.Unlock()
		// A connection handed over while we failed has nobody to take it.
		select {
		case c := <-p.got:
			c.CloseWithError(0, "hole punch ended")
		default:
		}
		if release {
			s.close()
		}
	}()

	to := net.UDPAddrFromAddrPort(raddr)
	buf := make([]byte, punchSize)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case c := <-p.got:
			return c, nil
		case <-ctx.Done():
			m.mu.Lock()
			delete(s.punches, p)
			m.mu.Unlock()
			// A connection handed over meanwhile is ours all the same.
			select {
			case c := <-p.got:
				return c, nil
			default:
			}
			return nil, ctx.Err()
		case <-timer.C:
		}
		m.mu.Lock()
		l := s.consumers[alpn]
		m.mu.Unlock()
		if l == nil || l.early {
			return nil, fmt.Errorf("udpmux: hole punch to %s: the %q listener on %s closed", raddr, alpn, s.addr)
		}
		fillPunch(buf)
		if _, err := s.tr.WriteTo(buf, to); err != nil {
			return nil, fmt.Errorf("udpmux: hole punch to %s: sending from %s: %w", raddr, s.addr, err)
		}
		timer.Reset(punchMinInterval + rand.N(punchMaxInterval-punchMinInterval+1))
	}
}

// fillPunch fills b with a hole-punching datagram (see HolePunch).
func fillPunch(b []byte) {
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
	b[0] = 4 + b[0]%12
}

// pickPunchSocketLocked is pickDialSocketLocked among the listening
// sockets with a Listen consumer for alpn.
func (m *Mux) pickPunchSocketLocked(dst netip.Addr, alpn string) *socket {
	var best *socket
	bestScore := -1
	for s := range m.sockets {
		l := s.consumers[alpn]
		if s.dead || !s.listening || l == nil || l.early || s.addr.Addr().Is4() != dst.Is4() {
			continue
		}
		ip := s.addr.Addr()
		score := 1
		switch {
		case ip.IsUnspecified():
			score = 2
		case ip.IsLoopback() != dst.IsLoopback():
			continue // cannot route
		case ip.IsLoopback():
			score = 2
		}
		if score > bestScore {
			best, bestScore = s, score
		}
	}
	return best
}

// claimant returns the hole punch waiting on s for c, if any. claim runs
// without Mux.mu: it reads c's certificate.
func (s *socket) claimant(c *quic.Conn, alpn string) *punch {
	s.m.mu.Lock()
	var ps []*punch
	for p := range s.punches {
		if p.alpn == alpn {
			ps = append(ps, p)
		}
	}
	s.m.mu.Unlock()
	for _, p := range ps {
		if p.claim(c) {
			return p
		}
	}
	return nil
}

// handToPunchLocked gives c to p if p still waits, and counts c as a user
// of the socket.
func (s *socket) handToPunchLocked(p *punch, c *quic.Conn) bool {
	if _, waiting := s.punches[p]; !waiting {
		return false
	}
	delete(s.punches, p)
	p.got <- c
	s.trackLocked(c)
	return true
}

// HolePunchesInFlight reports the hole punches waiting for their
// connection, on all sockets (for tests and diagnostics).
func (m *Mux) HolePunchesInFlight() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for s := range m.sockets {
		n += len(s.punches)
	}
	return n
}
