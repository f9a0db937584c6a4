// Package udpmux shares UDP sockets between the QUIC-based transports.
//
// libp2p wants one UDP port per address family for everything that runs
// over UDP: QUIC (ALPN "libp2p"), WebTransport (HTTP/3, ALPN "h3") and,
// later, WebRTC-direct. Observed addresses and QUIC hole punching only work
// when outgoing connections leave from that same port, so dials use the
// listening socket when one exists.
//
// # Design
//
// A Mux owns a set of sockets. Each socket is one *net.UDPConn driven by one
// quic-go Transport with at most one quic-go Listener. The Listener's TLS
// config is chosen per ClientHello by ALPN: every consumer (Listen call)
// registers the ALPN token it serves and its own TLS config, and an accepted
// connection goes to the consumer of its negotiated ALPN. A ClientHello
// offering no registered ALPN fails the handshake.
//
// Lifetime is reference counted: a socket lives while it has a consumer or
// a connection (dialed or accepted) that is still open, and closes itself
// when the last one goes. There is no Mux-wide Close; closing every
// Listener and every connection releases every socket and goroutine.
//
// Goroutines: quic-go's own (per Transport and per connection) and, per
// socket with at least one consumer, one accept loop. The accept loop is
// owned by the socket and stops when its quic-go Listener is closed.
//
// # Handshake flood protection
//
// Each socket counts server handshakes in flight (from the first Initial
// until the connection is accepted or dies). Above Config.MaxHandshakes new
// connection attempts are refused (CONNECTION_REFUSED); above half of it,
// clients must first prove their address with a Retry round trip. Half-open
// handshakes die after Config.HandshakeTimeout.
//
// # Adding WebRTC-direct
//
// QUIC packets always have the fixed bit (0x40) set in their first byte;
// STUN (first byte 0x00-0x03) and DTLS (20-63) never do. quic-go hands
// packets without that bit to Transport.ReadNonQUICPacket and sends through
// Transport.WriteTo. A WebRTC-direct consumer would get a net.PacketConn
// view of the socket built on those two calls (one reader goroutine owned by
// the socket, counted as one more reference), and pion's ICE mux would run
// over it. Nothing in the QUIC path needs to change.
package udpmux

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// ALPN tokens of the QUIC-based transports.
const (
	ALPNLibp2p = "libp2p" // QUIC v1 (quic/README.md)
	ALPNH3     = "h3"     // HTTP/3, carrying WebTransport
)

// Config tunes a Mux. The zero value is ready to use.
type Config struct {
	// MaxHandshakes bounds server-side handshakes in flight per socket.
	// Default 128.
	MaxHandshakes int
	// HandshakeTimeout bounds a QUIC handshake that makes no progress.
	// Default 10 s.
	HandshakeTimeout time.Duration
	// AcceptQueue is how many handshaken connections may wait for Accept per
	// consumer before new ones are refused. Default 32.
	AcceptQueue int
}

// Mux hands out shared UDP sockets. It is safe for concurrent use.
type Mux struct {
	cfg      Config
	quicConf *quic.Config

	mu      sync.Mutex
	sockets map[*socket]struct{}
}

// New returns a Mux.
func New(cfg *Config) *Mux {
	m := &Mux{sockets: map[*socket]struct{}{}}
	if cfg != nil {
		m.cfg = *cfg
	}
	if m.cfg.MaxHandshakes <= 0 {
		m.cfg.MaxHandshakes = 128
	}
	if m.cfg.HandshakeTimeout <= 0 {
		m.cfg.HandshakeTimeout = 10 * time.Second
	}
	if m.cfg.AcceptQueue <= 0 {
		m.cfg.AcceptQueue = 32
	}
	// The values go-libp2p uses (quicreuse), so both ends agree on limits.
	m.quicConf = &quic.Config{
		Versions:                         []quic.Version{quic.Version1},
		HandshakeIdleTimeout:             m.cfg.HandshakeTimeout,
		MaxIncomingStreams:               256,
		MaxIncomingUniStreams:            5, // HTTP/3 control and QPACK streams
		MaxStreamReceiveWindow:           10 << 20,
		MaxConnectionReceiveWindow:       15 << 20,
		KeepAlivePeriod:                  15 * time.Second,
		EnableDatagrams:                  true, // WebTransport needs both
		EnableStreamResetPartialDelivery: true,
	}
	return m
}

// QUICConfig returns a copy of the QUIC settings used on every socket.
func (m *Mux) QUICConfig() *quic.Config { return m.quicConf.Clone() }

// socket is one UDP socket and its quic-go Transport. Its fields below mu
// are guarded by Mux.mu.
type socket struct {
	m    *Mux
	udp  *net.UDPConn
	tr   *quic.Transport
	addr netip.AddrPort

	inflight atomic.Int64 // server handshakes in flight

	// Guarded by Mux.mu.
	consumers map[string]*Listener // by ALPN
	ln        *quic.Listener
	loopDone  chan struct{} // closed when the accept loop returns
	conns     int           // open connections using this socket
	listening bool          // created by Listen (has a fixed local port)
	dead      bool
}

// Listener receives the connections of one ALPN on one socket.
type Listener struct {
	s     *socket
	alpn  string
	tls   *tls.Config
	queue chan *quic.Conn

	closeOnce sync.Once
	closed    chan struct{}
}

// Listen registers alpn on the socket for laddr and returns the listener
// that receives its connections. Port 0 joins an existing socket with the
// same IP when there is one, so that QUIC and WebTransport share a port;
// otherwise a new socket is bound. conf must set Certificates or
// GetCertificate and may set ClientAuth and VerifyPeerCertificate;
// NextProtos is set to alpn.
func (m *Mux) Listen(laddr netip.AddrPort, alpn string, conf *tls.Config) (*Listener, error) {
	if !laddr.IsValid() {
		return nil, fmt.Errorf("udpmux: listen on invalid address %s", laddr)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.findListeningLocked(laddr, alpn)
	if s == nil {
		var err error
		if s, err = m.newSocketLocked(laddr); err != nil {
			return nil, err
		}
		s.listening = true
	}
	if _, taken := s.consumers[alpn]; taken {
		m.maybeReleaseLocked(s)
		return nil, fmt.Errorf("udpmux: %s already has a %q listener", s.addr, alpn)
	}
	tc := conf.Clone()
	tc.NextProtos = []string{alpn}
	tc.GetConfigForClient = nil // only the socket-level callback is consulted
	l := &Listener{s: s, alpn: alpn, tls: tc, queue: make(chan *quic.Conn, m.cfg.AcceptQueue), closed: make(chan struct{})}
	s.consumers[alpn] = l
	if s.ln == nil {
		if err := s.startLocked(); err != nil {
			delete(s.consumers, alpn)
			m.maybeReleaseLocked(s)
			return nil, err
		}
	}
	return l, nil
}

// findListeningLocked returns the listening socket laddr designates: the one
// bound to exactly laddr, or for port 0 one with the same IP whose alpn slot
// is free.
func (m *Mux) findListeningLocked(laddr netip.AddrPort, alpn string) *socket {
	for s := range m.sockets {
		if !s.listening || s.dead {
			continue
		}
		if laddr.Port() != 0 {
			if s.addr == laddr {
				return s
			}
			continue
		}
		if s.addr.Addr() == laddr.Addr() {
			if _, taken := s.consumers[alpn]; !taken {
				return s
			}
		}
	}
	return nil
}

func (m *Mux) newSocketLocked(laddr netip.AddrPort) (*socket, error) {
	network := "udp4"
	if laddr.Addr().Is6() && !laddr.Addr().Is4In6() {
		network = "udp6"
	}
	udp, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(laddr))
	if err != nil {
		return nil, fmt.Errorf("udpmux: binding %s: %w", laddr, err)
	}
	s := &socket{
		m:         m,
		udp:       udp,
		addr:      udp.LocalAddr().(*net.UDPAddr).AddrPort(),
		consumers: map[string]*Listener{},
	}
	s.addr = netip.AddrPortFrom(s.addr.Addr().Unmap(), s.addr.Port())
	s.tr = &quic.Transport{
		Conn:                udp,
		ConnContext:         s.connContext,
		VerifySourceAddress: func(net.Addr) bool { return s.inflight.Load() > int64(m.cfg.MaxHandshakes/2) },
	}
	m.sockets[s] = struct{}{}
	return s, nil
}

// startLocked starts the quic-go Listener and its accept loop.
func (s *socket) startLocked() error {
	conf := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		GetConfigForClient: s.configForClient,
	}
	ln, err := s.tr.Listen(conf, s.m.quicConf)
	if err != nil {
		return fmt.Errorf("udpmux: listening on %s: %w", s.addr, err)
	}
	s.ln = ln
	s.loopDone = make(chan struct{})
	go s.acceptLoop(ln, s.loopDone)
	return nil
}

// configForClient picks the consumer for a ClientHello by the first ALPN
// token the client offers that has a consumer.
func (s *socket) configForClient(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	for _, p := range hello.SupportedProtos {
		if l, ok := s.consumers[p]; ok {
			return l.tls, nil
		}
	}
	return nil, fmt.Errorf("udpmux: no listener for ALPN %q", hello.SupportedProtos)
}

type handshakeKey struct{}

// handshakeSlot is released once per connection: when it is accepted or
// when it dies, whichever comes first.
type handshakeSlot struct {
	once sync.Once
	s    *socket
}

func (h *handshakeSlot) release() { h.once.Do(func() { h.s.inflight.Add(-1) }) }

// connContext admits a new server connection if the handshake budget
// allows it.
func (s *socket) connContext(ctx context.Context, _ *quic.ClientInfo) (context.Context, error) {
	if s.inflight.Add(1) > int64(s.m.cfg.MaxHandshakes) {
		s.inflight.Add(-1)
		return nil, errors.New("udpmux: too many handshakes in flight")
	}
	slot := &handshakeSlot{s: s}
	context.AfterFunc(ctx, slot.release)
	return context.WithValue(ctx, handshakeKey{}, slot), nil
}

// acceptLoop hands handshaken connections to the consumer of their ALPN.
// It returns when ln is closed.
func (s *socket) acceptLoop(ln *quic.Listener, done chan struct{}) {
	defer close(done)
	for {
		c, err := ln.Accept(context.Background())
		if err != nil {
			return
		}
		if slot, ok := c.Context().Value(handshakeKey{}).(*handshakeSlot); ok {
			slot.release()
		}
		alpn := c.ConnectionState().TLS.NegotiatedProtocol
		s.m.mu.Lock()
		l := s.consumers[alpn]
		if l == nil {
			s.m.mu.Unlock()
			c.CloseWithError(0, "no listener")
			continue
		}
		s.trackLocked(c)
		// Send under the lock so that Listener.Close, which unregisters
		// under it and then drains, cannot miss a connection.
		queued := false
		select {
		case l.queue <- c:
			queued = true
		default:
		}
		s.m.mu.Unlock()
		if !queued {
			c.CloseWithError(0, "accept queue full")
		}
	}
}

// trackLocked counts c as a user of the socket until it closes.
func (s *socket) trackLocked(c *quic.Conn) {
	s.conns++
	context.AfterFunc(c.Context(), func() {
		s.m.mu.Lock()
		defer s.m.mu.Unlock()
		s.conns--
		s.m.maybeReleaseLocked(s)
	})
}

// maybeReleaseLocked stops listening when no consumer is left and closes
// the socket when nothing uses it any more. The caller holds m.mu; the
// accept loop never blocks on m.mu while ln.Close waits, because quic-go's
// Listener.Close does not wait for Accept callers.
func (m *Mux) maybeReleaseLocked(s *socket) {
	if len(s.consumers) == 0 && s.ln != nil {
		s.ln.Close()
		s.ln = nil
	}
	if len(s.consumers) > 0 || s.conns > 0 || s.dead {
		return
	}
	s.dead = true
	delete(m.sockets, s)
	s.tr.Close()
	s.udp.Close()
}

// Accept waits for the next connection of this listener's ALPN.
func (l *Listener) Accept(ctx context.Context) (*quic.Conn, error) {
	select {
	case c := <-l.queue:
		return c, nil
	case <-l.closed:
		return nil, fmt.Errorf("udpmux: accepting on %s: %w", l.s.addr, net.ErrClosed)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Addr is the socket's local address.
func (l *Listener) Addr() netip.AddrPort { return l.s.addr }

// Close unregisters the listener and closes connections that were
// handshaken but not accepted. Accepted connections stay open.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		close(l.closed)
		l.s.m.mu.Lock()
		delete(l.s.consumers, l.alpn)
		l.s.m.maybeReleaseLocked(l.s)
		done := l.s.loopDone
		stopped := l.s.ln == nil
		l.s.m.mu.Unlock()
		if stopped && done != nil {
			<-done
		}
		for {
			select {
			case c := <-l.queue:
				c.CloseWithError(0, "listener closed")
			default:
				return
			}
		}
	})
	return nil
}

// Dial opens a QUIC connection to raddr. It leaves from a listening socket
// of the same address family when there is one (preferring one bound to
// the unspecified address, or to loopback for a loopback destination), and
// otherwise from a socket bound to an ephemeral port that is shared by all
// such dials and closed with the last of them. conf must set NextProtos.
func (m *Mux) Dial(ctx context.Context, raddr netip.AddrPort, conf *tls.Config) (*quic.Conn, error) {
	raddr = netip.AddrPortFrom(raddr.Addr().Unmap(), raddr.Port())
	m.mu.Lock()
	s := m.pickDialSocketLocked(raddr.Addr())
	if s == nil {
		var unspec netip.Addr
		if raddr.Addr().Is4() {
			unspec = netip.IPv4Unspecified()
		} else {
			unspec = netip.IPv6Unspecified()
		}
		var err error
		if s, err = m.newSocketLocked(netip.AddrPortFrom(unspec, 0)); err != nil {
			m.mu.Unlock()
			return nil, err
		}
	}
	s.conns++ // hold the socket while dialing
	m.mu.Unlock()

	c, err := s.tr.Dial(ctx, net.UDPAddrFromAddrPort(raddr), conf, m.quicConf)

	m.mu.Lock()
	defer m.mu.Unlock()
	s.conns--
	if err != nil {
		m.maybeReleaseLocked(s)
		return nil, fmt.Errorf("udpmux: QUIC dial %s: %w", raddr, err)
	}
	s.trackLocked(c)
	return c, nil
}

// pickDialSocketLocked prefers listening sockets, then any live socket of
// the right family that can reach dst.
func (m *Mux) pickDialSocketLocked(dst netip.Addr) *socket {
	var best *socket
	bestScore := -1
	for s := range m.sockets {
		if s.dead || s.addr.Addr().Is4() != dst.Is4() {
			continue
		}
		ip := s.addr.Addr()
		score := 0
		switch {
		case ip.IsUnspecified():
			score = 2
		case ip.IsLoopback() && dst.IsLoopback():
			score = 2
		case ip.IsLoopback() != dst.IsLoopback():
			continue // cannot route
		default:
			score = 1
		}
		if s.listening {
			score += 4
		}
		if score > bestScore {
			best, bestScore = s, score
		}
	}
	return best
}

// NumSockets reports how many sockets are open; tests use it to check
// that everything was released.
func (m *Mux) NumSockets() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sockets)
}

// HandshakesInFlight reports the server handshakes in flight on all
// sockets.
func (m *Mux) HandshakesInFlight() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for s := range m.sockets {
		n += int(s.inflight.Load())
	}
	return n
}

// ALPNs lists the ALPN tokens served on the socket of l (for diagnostics).
func (l *Listener) ALPNs() []string {
	l.s.m.mu.Lock()
	defer l.s.m.mu.Unlock()
	out := make([]string, 0, len(l.s.consumers))
	for a := range l.s.consumers {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}
