// Package udpmux shares UDP sockets between the UDP-based transports.
//
// libp2p wants one UDP port per address family for everything that runs
// over UDP: QUIC (ALPN "libp2p"), WebTransport (HTTP/3, ALPN "h3") and
// WebRTC-direct (STUN and DTLS). Observed addresses and QUIC hole punching
// only work when outgoing connections leave from that same port, so dials
// use the listening socket when one exists.
//
// # Design
//
// A Mux owns a set of sockets. Each socket is one *net.UDPConn driven by one
// quic-go Transport with at most one quic-go EarlyListener. The listener's
// TLS config is chosen per ClientHello by ALPN: every consumer (Listen or
// ListenEarly call) registers the ALPN token it serves and its own TLS
// config, and an accepted connection goes to the consumer of its negotiated
// ALPN. A ClientHello offering no registered ALPN fails the handshake.
//
// The quic-go listener is an early one so that a ListenEarly consumer (the
// HTTP/3 server of WebTransport) gets its connection as soon as the server
// may send, and its SETTINGS leave in the server's first flight as 0.5-RTT
// data instead of one round trip later. 0-RTT stays disabled, so the server
// never reads application data before the client's Finished was verified
// (and with it the client's proof that it holds its certificate's key):
// quic-go does not open 1-RTT packets before the handshake completes.
// Listen consumers (the QUIC transport, which authenticates the peer by its
// certificate) only get connections whose handshake completed and, with
// ListenVerified, that their verify
// function accepted: it runs on the connection's own waiter, inside the
// handshake budget below, so that checks of many clients run side by side
// and a flood of clients that fail them is bounded like a handshake flood.
//
// Lifetime is reference counted: a socket lives while it has a consumer, a
// non-QUIC view (ListenNonQUIC) or a connection (dialed or handed to a
// consumer) that is still open, and closes itself when the last one goes.
// There is no Mux-wide Close; closing every Listener, every non-QUIC view and
// every connection releases every socket and goroutine.
//
// Goroutines: quic-go's own (per Transport and per connection); per socket
// that ever had a consumer, one accept loop, which stops when the socket
// closes; per server connection in handshake, one waiter, which stops when
// the handshake completes or the connection dies. The non-QUIC view is a
// plain socket read on the caller's goroutine.
//
// Locking: quic-go calls back into the Mux (ConnContext, GetConfigForClient)
// from connection goroutines, and closing a quic-go connection, listener or
// transport waits for those goroutines, so nothing is closed while Mux.mu is
// held.
//
// # Handshake flood protection
//
// Each socket counts server handshakes in flight (from the first Initial
// until the handshake completes or the connection dies). Above
// Config.MaxHandshakes new connection attempts are refused
// (CONNECTION_REFUSED); above half of it, clients must first prove their
// address with a Retry round trip. Half-open handshakes die after
// Config.HandshakeTimeout. With Config.Resources, each attempt is also
// admitted by the ResourceManager (BeginHandshake with the remote IP, its
// per-IP and total caps) and refused (CONNECTION_REFUSED) if it says no; the
// admission ends with the handshake. The IP of an Initial is unverified
// until a Retry proves it, so a spoofer can take an IP's handshake slots for
// at most HandshakeTimeout; above half of MaxHandshakes every client must
// prove its address first.
//
// # Memory
//
// The connection-level flow-control window grows (quic-go's auto-tuning)
// only as far as the connection's scope can reserve it (SetScope); scope
// Close gives it back.
//
// # Non-QUIC packets (WebRTC-direct)
//
// QUIC packets always have the fixed bit (0x40) set in their first byte;
// STUN (first byte 0x00-0x03) and DTLS (20-63) never do. ListenNonQUIC
// gives WebRTC-direct (pion's ICE UDP mux) a net.PacketConn that receives
// exactly the others: on Linux a second socket bound to the same port, the
// kernel picking the socket of each datagram with a reuseport BPF program
// on its first byte. nonquic.go says why not quic-go's ReadNonQUICPacket.
// Nothing in the QUIC path changes.
//
// # Hole punching
//
// HolePunch (punch.go) sends hole-punching datagrams from a listening
// socket on the caller's goroutine and takes the connection of the peer it
// waits for out of the accept path, once its handshake completed, before a
// Listen consumer gets it.
package udpmux

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/internal/logs"
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
	// Resources, when set, admits each inbound connection attempt
	// (BeginHandshake) before its handshake starts; refused ones are
	// refused with CONNECTION_REFUSED.
	Resources network.ResourceManager
	// AcceptQueue is how many connections may wait for Accept per consumer
	// before new ones are refused. Default 32.
	AcceptQueue int
	// Log receives inbound connections that fail their handshake or find
	// no listener (Debug), handshakes refused over MaxHandshakes (Info, at
	// most once a second) and accept loops that stop on an error (Warn).
	// Nil discards.
	Log *slog.Logger
	// Tracer, if set, is told about sockets and inbound handshakes.
	Tracer Tracer
	// StatelessResetKey derives the stateless reset tokens of the
	// sockets' connections (RFC 9000, section 10.3): a packet for a
	// connection this node no longer has (its handshake timed out here
	// while the peer saw it complete, or this node restarted) is answered
	// with a reset, and the peer closes the connection at once instead of
	// waiting for its idle timeout. Each socket derives a key of its own
	// from it and the socket's local address, so that no socket hands out
	// the token of a connection that lives on another one (RFC 9000,
	// 10.3.2). Derive it from something stable and secret, the host's
	// identity key, so that a node restarted on the same addresses resets
	// its peers' connections to its former self. Nil: a random key per
	// Mux.
	StatelessResetKey *quic.StatelessResetKey
}

// Tracer is told, with the Mux's lock held at times (so it must be quick
// and must not call back into the Mux), what the sockets do:
//
//   - Socket: a socket's users changed, from one set to another, each
//     named by Users ("" before the socket was bound and after it closed);
//   - InboundHandshake: an inbound handshake for alpn, whose consumer is
//     known, started (delta 1) or ended, completed or not (delta -1).
type Tracer interface {
	Socket(from, to string)
	InboundHandshake(alpn string, delta int)
}

// HandshakeTracer is the Tracer of the transports over udpmux (QUIC,
// WebTransport): told when one of their handshakes starts (delta 1) and
// ends (delta -1).
type HandshakeTracer interface {
	Handshakes(delta int)
}

// TraceHandshake tells t (when not nil) that a handshake started and
// returns what tells it the handshake ended.
func TraceHandshake(t HandshakeTracer) (end func()) {
	if t == nil {
		return func() {}
	}
	t.Handshakes(1)
	return func() { t.Handshakes(-1) }
}

// Users names who shares a socket: the transports of its consumers joined
// by "+" in the order quic-v1, webtransport, webrtc-direct, other (an ALPN
// of no libp2p transport); "none" when only dials use it.
func Users(quicV1, webTransport, nonQUIC, other bool) string {
	i := 0
	for b, on := range [...]bool{quicV1, webTransport, nonQUIC, other} {
		if on {
			i |= 1 << b
		}
	}
	return userNames[i]
}

// userNames holds every value of Users, so that naming a socket allocates
// nothing.
var userNames = func() (names [16]string) {
	parts := [...]string{"quic-v1", "webtransport", "webrtc-direct", "other"}
	for i := range names {
		var n []string
		for b, p := range parts {
			if i&(1<<b) != 0 {
				n = append(n, p)
			}
		}
		names[i] = strings.Join(n, "+")
	}
	names[0] = "none"
	return names
}()

// retraceLocked tells the tracer when s's users changed since it was last
// told; a dead socket has none.
func (s *socket) retraceLocked() {
	t := s.m.cfg.Tracer
	if t == nil {
		return
	}
	users := ""
	if !s.dead {
		var quicV1, wt, other bool
		for alpn := range s.consumers {
			switch alpn {
			case ALPNLibp2p:
				quicV1 = true
			case ALPNH3:
				wt = true
			default:
				other = true
			}
		}
		users = Users(quicV1, wt, s.nonQUIC != nil, other)
	}
	if users != s.users {
		t.Socket(s.users, users)
		s.users = users
	}
}

// Mux hands out shared UDP sockets. It is safe for concurrent use.
type Mux struct {
	cfg      Config
	log      *slog.Logger
	quicConf *quic.Config
	refusals logs.Limiter // of "too many handshakes" records
	rmRefuse logs.Limiter // of the ResourceManager's refusals
	scopes   sync.Map     // *quic.Conn → network.ConnScope, see SetScope

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
	if m.cfg.StatelessResetKey == nil {
		var k quic.StatelessResetKey
		rand.Read(k[:])
		m.cfg.StatelessResetKey = &k
	}
	m.log = logs.Or(m.cfg.Log)
	// The values go-libp2p uses (quicreuse), so both ends agree on limits,
	// but for the larger initial stream window, which only this side's
	// receiving uses.
	// Allow0RTT stays false: the early listener must never read data a
	// client sent before the handshake completed (see the package doc).
	m.quicConf = &quic.Config{
		Versions:              []quic.Version{quic.Version1},
		HandshakeIdleTimeout:  m.cfg.HandshakeTimeout,
		MaxIncomingStreams:    256,
		MaxIncomingUniStreams: 5, // HTTP/3 control and QPACK streams
		// A new stream may carry 4 MiB before its window has to grow:
		// quic-go's default, 512 KiB, holds a stream on a 63 ms path to
		// 8 MiB/s for the first round trips while auto-tuning doubles it.
		// What the peer may send in all stays bounded by the connection
		// window (initially quic-go's 768 KiB), whose growth the scope
		// reserves, so this promises no unreserved memory.
		InitialStreamReceiveWindow:       4 << 20,
		MaxStreamReceiveWindow:           10 << 20,
		MaxConnectionReceiveWindow:       15 << 20,
		KeepAlivePeriod:                  15 * time.Second,
		EnableDatagrams:                  true, // WebTransport needs both
		EnableStreamResetPartialDelivery: true,
		AllowConnectionWindowIncrease:    m.allowWindowIncrease,
	}
	return m
}

// SetScope makes scope account for c's connection flow-control window as
// it grows past its initial size: growth the scope cannot reserve is not
// granted (the peer then sends no faster than the application reads). It
// lasts until c closes.
func (m *Mux) SetScope(c *quic.Conn, scope network.ConnScope) {
	m.scopes.Store(c, scope)
	context.AfterFunc(c.Context(), func() { m.scopes.Delete(c) })
}

// allowWindowIncrease is quic-go's AllowConnectionWindowIncrease. It must
// not call into c.
func (m *Mux) allowWindowIncrease(c *quic.Conn, delta uint64) bool {
	v, ok := m.scopes.Load(c)
	if !ok {
		return true // no accounting for this connection
	}
	if delta > 1<<30 {
		return false
	}
	return v.(network.ConnScope).ReserveMemory(int(delta)) == nil
}

// QUICConfig returns a copy of the QUIC settings used on every socket.
func (m *Mux) QUICConfig() *quic.Config { return m.quicConf.Clone() }

// socket is one UDP socket and its quic-go Transport. Its fields below the
// marked line are guarded by Mux.mu.
type socket struct {
	m    *Mux
	udp  *net.UDPConn
	tr   *quic.Transport
	addr netip.AddrPort

	inflight atomic.Int64  // server handshakes in flight
	closed   chan struct{} // closed once tr and udp are closed

	// Guarded by Mux.mu.
	consumers map[string]*Listener // by ALPN
	nonQUIC   *nonQUICConn
	punches   map[*punch]struct{}      // hole punches waiting for their connection
	pending   map[*quic.Conn]*Listener // in handshake, for a Listen consumer
	loopDone  chan struct{}            // closed when the accept loop returns; nil before the first consumer
	conns     int                      // open connections using this socket
	listening bool                     // created by a listen call (has a fixed local port)
	dead      bool
	users     string // as the Tracer was last told
}

// Listener receives the connections of one ALPN on one socket.
type Listener struct {
	s      *socket
	alpn   string
	early  bool
	tls    *tls.Config
	verify func(*quic.Conn) error // ListenVerified's; nil for none
	queue  chan *quic.Conn

	closeOnce sync.Once
	closed    chan struct{}
}

// Listen registers alpn on the socket for laddr and returns the listener
// that receives its connections once their handshake completed (conf's
// callbacks ran, and a client that sent a certificate proved it holds its
// key). Port 0 joins an existing listening socket with the same IP when
// there is one, so that QUIC and WebTransport share a port; otherwise a new
// socket is bound. conf must set Certificates or GetCertificate and may set
// ClientAuth and VerifyPeerCertificate; NextProtos is set to alpn.
func (m *Mux) Listen(laddr netip.AddrPort, alpn string, conf *tls.Config) (*Listener, error) {
	return m.listen(laddr, alpn, conf, false, nil)
}

// ListenVerified is Listen with verify run on each connection once its
// handshake completed, before the connection counts as handshaken (its
// slot in the handshake budget is held until verify returns) and before
// any hole punch or Accept sees it. A connection verify refuses is closed
// with reason RefusedReason. verify must return promptly (a computation,
// not a wait): the handshake timeout no longer applies to a completed
// handshake, so a verify that blocks holds its slot for as long.
func (m *Mux) ListenVerified(laddr netip.AddrPort, alpn string, conf *tls.Config, verify func(*quic.Conn) error) (*Listener, error) {
	return m.listen(laddr, alpn, conf, false, verify)
}

// RefusedReason is the close reason of a connection ListenVerified's
// verify refused.
const RefusedReason = "peer certificate refused"

// ListenEarly is Listen for a consumer that can use a connection before its
// handshake completed, to send 0.5-RTT data in the server's first flight.
// Until HandshakeComplete is closed the client is not verified; nothing it
// sends can be read before that, since 0-RTT is disabled.
func (m *Mux) ListenEarly(laddr netip.AddrPort, alpn string, conf *tls.Config) (*Listener, error) {
	return m.listen(laddr, alpn, conf, true, nil)
}

func (m *Mux) listen(laddr netip.AddrPort, alpn string, conf *tls.Config, early bool, verify func(*quic.Conn) error) (*Listener, error) {
	if !laddr.IsValid() {
		return nil, fmt.Errorf("udpmux: listen on invalid address %s", laddr)
	}
	free := func(s *socket) bool { _, taken := s.consumers[alpn]; return !taken }
	m.mu.Lock()
	s, err := m.claimSocketLocked(laddr, free, fmt.Sprintf("a %q listener", alpn))
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	tc := conf.Clone()
	tc.NextProtos = []string{alpn}
	tc.GetConfigForClient = nil // only the socket-level callback is consulted
	l := &Listener{s: s, alpn: alpn, early: early, tls: tc, verify: verify, queue: make(chan *quic.Conn, m.cfg.AcceptQueue), closed: make(chan struct{})}
	s.consumers[alpn] = l
	s.retraceLocked()
	if s.loopDone == nil {
		if err := s.startLocked(); err != nil {
			delete(s.consumers, alpn)
			release := m.releaseLocked(s)
			m.mu.Unlock()
			if release {
				s.close()
			}
			return nil, err
		}
	}
	m.mu.Unlock()
	return l, nil
}

// claimSocketLocked is listeningSocketLocked for a consumer that needs the
// socket to be free for it; what names that consumer in the error.
func (m *Mux) claimSocketLocked(laddr netip.AddrPort, free func(*socket) bool, what string) (*socket, error) {
	s, err := m.listeningSocketLocked(laddr, free)
	if err != nil {
		return nil, err
	}
	if !free(s) {
		return nil, fmt.Errorf("udpmux: %s already has %s", s.addr, what)
	}
	return s, nil
}

// listeningSocketLocked returns the listening socket laddr designates: the
// one bound to exactly laddr, or for port 0 one with the same IP that has
// room (free), else a new socket bound to laddr.
func (m *Mux) listeningSocketLocked(laddr netip.AddrPort, free func(*socket) bool) (*socket, error) {
	laddr = netip.AddrPortFrom(laddr.Addr().Unmap(), laddr.Port())
	for s := range m.sockets {
		if !s.listening || s.dead {
			continue
		}
		if laddr.Port() != 0 {
			if s.addr == laddr {
				return s, nil
			}
			continue
		}
		if s.addr.Addr() == laddr.Addr() && free(s) {
			return s, nil
		}
	}
	s, err := m.newSocketLocked(laddr, true)
	if err != nil {
		return nil, err
	}
	s.listening = true
	return s, nil
}

// newSocketLocked binds a socket for QUIC. A listening socket is bound
// with SO_REUSEPORT so that a non-QUIC view can later bind the same port
// (see nonquic.go).
func (m *Mux) newSocketLocked(laddr netip.AddrPort, listening bool) (*socket, error) {
	var udp *net.UDPConn
	var err error
	if listening {
		udp, err = bindShared(laddr)
	} else {
		udp, err = net.ListenUDP(udpNetwork(laddr), net.UDPAddrFromAddrPort(laddr))
	}
	if err != nil {
		return nil, fmt.Errorf("udpmux: binding %s: %w", laddr, err)
	}
	s := &socket{
		m:         m,
		udp:       udp,
		addr:      udp.LocalAddr().(*net.UDPAddr).AddrPort(),
		closed:    make(chan struct{}),
		consumers: map[string]*Listener{},
		pending:   map[*quic.Conn]*Listener{},
		punches:   map[*punch]struct{}{},
	}
	s.addr = netip.AddrPortFrom(s.addr.Addr().Unmap(), s.addr.Port())
	s.tr = &quic.Transport{
		Conn:                udp,
		ConnContext:         s.connContext,
		VerifySourceAddress: func(net.Addr) bool { return s.inflight.Load() > int64(m.cfg.MaxHandshakes/2) },
		StatelessResetKey:   socketResetKey(m.cfg.StatelessResetKey, s.addr),
	}
	m.sockets[s] = struct{}{}
	s.retraceLocked()
	return s, nil
}

// startLocked starts the quic-go listener and its accept loop. Both live
// until the socket closes: a second quic-go listener could only start once
// an earlier one finished closing, which cannot be waited for under m.mu.
// Without consumers, handshakes fail in configForClient.
func (s *socket) startLocked() error {
	conf := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		GetConfigForClient: s.configForClient,
	}
	ln, err := s.tr.ListenEarly(conf, s.m.quicConf)
	if err != nil {
		return fmt.Errorf("udpmux: listening on %s: %w", s.addr, err)
	}
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
	err := fmt.Errorf("udpmux: no listener for ALPN %q", hello.SupportedProtos)
	s.m.log.Debug("inbound QUIC handshake refused", "addr", s.addr, "remote", hello.Conn.RemoteAddr(), "err", err)
	return nil, err
}

type handshakeKey struct{}

// handshakeSlot is released once per connection: when its handshake
// completes or when it dies, whichever comes first. It also times the
// handshake (HandshakeStart, HandshakeDuration).
type handshakeSlot struct {
	once  sync.Once
	s     *socket
	done  func()       // the ResourceManager's, if any
	start time.Time    // set before quic-go sees the slot; read-only after
	took  atomic.Int64 // nanoseconds from start to completion; 0 until then
}

// HandshakeStart reports when the server handshake of c, a connection a
// Mux accepted (for a Listen or ListenEarly consumer, or a hole punch),
// started: when quic-go created the connection for the client's first
// Initial packet (after a Retry, the Initial that returned the token). ok
// is false for a connection the Mux dialed.
func HandshakeStart(c *quic.Conn) (start time.Time, ok bool) {
	slot, ok := c.Context().Value(handshakeKey{}).(*handshakeSlot)
	if !ok {
		return time.Time{}, false
	}
	return slot.start, true
}

// HandshakeDuration reports how long the server handshake of c took, from
// HandshakeStart until the Mux saw it complete (the client's Finished
// verified) and, for a ListenVerified consumer, verified. ok is false for a
// connection the Mux dialed and, for a ListenEarly consumer, while the
// handshake is still in progress.
func HandshakeDuration(c *quic.Conn) (took time.Duration, ok bool) {
	slot, ok := c.Context().Value(handshakeKey{}).(*handshakeSlot)
	if !ok {
		return 0, false
	}
	ns := slot.took.Load()
	return time.Duration(ns), ns > 0
}

func (h *handshakeSlot) release() {
	h.once.Do(func() {
		h.s.inflight.Add(-1)
		if h.done != nil {
			h.done()
		}
	})
}

// connContext admits a new server connection if the handshake budget
// allows it.
func (s *socket) connContext(ctx context.Context, ci *quic.ClientInfo) (context.Context, error) {
	if s.inflight.Add(1) > int64(s.m.cfg.MaxHandshakes) {
		s.inflight.Add(-1)
		if ok, held := s.m.refusals.Allow(time.Second); ok {
			s.m.log.Info("refusing QUIC handshakes: too many in flight", "addr", s.addr, "remote", ci.RemoteAddr,
				"max", s.m.cfg.MaxHandshakes, "refused_unlogged", held)
		}
		return nil, errors.New("udpmux: too many handshakes in flight")
	}
	slot := &handshakeSlot{s: s, start: time.Now()}
	if rm := s.m.cfg.Resources; rm != nil {
		var ip netip.Addr
		if ua, ok := ci.RemoteAddr.(*net.UDPAddr); ok {
			ip = ua.AddrPort().Addr().Unmap()
		}
		done, err := rm.BeginHandshake(ip)
		if err != nil {
			s.inflight.Add(-1)
			if ok, held := s.m.rmRefuse.Allow(time.Second); ok {
				s.m.log.Debug("inbound QUIC handshake refused", "addr", s.addr, "remote", ci.RemoteAddr, "err", err, "refused_unlogged", held)
			}
			return nil, fmt.Errorf("udpmux: handshake from %s refused: %w", ci.RemoteAddr, err)
		}
		slot.done = done
	}
	context.AfterFunc(ctx, slot.release)
	return context.WithValue(ctx, handshakeKey{}, slot), nil
}

// acceptLoop hands early connections to the consumer of their ALPN: at once
// to a ListenEarly consumer, after the handshake to a Listen consumer. It
// returns when ln is closed, which happens when the socket closes.
func (s *socket) acceptLoop(ln *quic.EarlyListener, done chan struct{}) {
	defer close(done)
	for {
		c, err := ln.Accept(context.Background())
		if err != nil {
			s.m.mu.Lock()
			dead := s.dead
			s.m.mu.Unlock()
			if !dead {
				s.m.log.Warn("QUIC accept loop stopped", "addr", s.addr, "err", err)
			}
			return
		}
		// The server chose the ALPN before the connection became ready.
		alpn := c.ConnectionState().TLS.NegotiatedProtocol
		s.m.mu.Lock()
		l := s.consumers[alpn]
		queued := false
		switch {
		case l == nil:
		case l.early:
			queued = s.deliverLocked(l, c)
		default:
			s.pending[c] = l
			queued = true
		}
		s.m.mu.Unlock()
		if !queued {
			s.m.log.Debug("inbound QUIC connection dropped: no listener or accept queue full", "addr", s.addr, "remote", c.RemoteAddr(), "alpn", alpn)
			c.CloseWithError(0, "no listener or accept queue full")
			continue
		}
		if t := s.m.cfg.Tracer; t != nil {
			t.InboundHandshake(l.alpn, 1)
		}
		go s.awaitHandshake(c, l)
	}
}

// awaitHandshake releases c's handshake slot when the handshake completes
// and then, for a Listen consumer, hands c over. It returns when the
// handshake completes or c dies (quic-go kills it after the handshake
// timeout at the latest).
func (s *socket) awaitHandshake(c *quic.Conn, l *Listener) {
	if t := s.m.cfg.Tracer; t != nil {
		defer t.InboundHandshake(l.alpn, -1)
	}
	select {
	case <-c.HandshakeComplete():
	case <-c.Context().Done():
		// The slot is released by connContext's AfterFunc; the entry in
		// pending is ours to drop, or every aborted handshake would stay.
		s.m.mu.Lock()
		_, held := s.pending[c]
		delete(s.pending, c)
		dead := s.dead
		s.m.mu.Unlock()
		// Not when the listener's Close took the connection from pending.
		if !dead && (l.early || held) {
			s.m.log.Debug("inbound QUIC handshake failed", "addr", s.addr, "remote", c.RemoteAddr(), "alpn", l.alpn, "err", context.Cause(c.Context()))
		}
		return
	}
	if l.verify != nil {
		if err := l.verify(c); err != nil {
			s.m.mu.Lock()
			_, held := s.pending[c]
			delete(s.pending, c)
			s.m.mu.Unlock()
			if held {
				s.m.log.Debug("inbound QUIC connection refused", "addr", s.addr, "remote", c.RemoteAddr(), "alpn", l.alpn, "err", err)
			}
			c.CloseWithError(0, RefusedReason)
			return // the slot is released with c's context
		}
	}
	if slot, ok := c.Context().Value(handshakeKey{}).(*handshakeSlot); ok {
		slot.took.Store(max(int64(time.Since(slot.start)), 1))
		slot.release()
	}
	if l.early {
		return
	}
	p := s.claimant(c, l.alpn)
	s.m.mu.Lock()
	_, ok := s.pending[c]
	delete(s.pending, c)
	if ok && p != nil && s.handToPunchLocked(p, c) {
		s.m.mu.Unlock()
		return
	}
	queued := ok && s.consumers[l.alpn] == l && s.deliverLocked(l, c)
	s.m.mu.Unlock()
	if !queued {
		if ok {
			s.m.log.Debug("inbound QUIC connection dropped: no listener or accept queue full", "addr", s.addr, "remote", c.RemoteAddr(), "alpn", l.alpn)
		}
		c.CloseWithError(0, "no listener or accept queue full")
	}
}

// deliverLocked queues c for l and counts it as a user of the socket. It
// sends under m.mu so that Listener.Close, which unregisters under it and
// then drains, cannot miss a connection.
func (s *socket) deliverLocked(l *Listener, c *quic.Conn) bool {
	select {
	case l.queue <- c:
		s.trackLocked(c)
		return true
	default:
		return false
	}
}

// trackLocked counts c as a user of the socket until it closes.
func (s *socket) trackLocked(c *quic.Conn) {
	s.conns++
	context.AfterFunc(c.Context(), func() {
		s.m.mu.Lock()
		s.conns--
		release := s.m.releaseLocked(s)
		s.m.mu.Unlock()
		if release {
			s.close()
		}
	})
}

// releaseLocked marks s dead and reports true when nothing uses it any
// more; the caller must then call s.close after unlocking m.mu.
func (m *Mux) releaseLocked(s *socket) bool {
	if len(s.consumers) > 0 || s.nonQUIC != nil || s.conns > 0 || s.dead {
		s.retraceLocked() // a consumer may have left
		return false
	}
	s.dead = true
	delete(m.sockets, s)
	s.retraceLocked()
	return true
}

// close closes the quic-go Transport (and with it the listener, the accept
// loop and every connection) and the UDP socket.
func (s *socket) close() {
	s.tr.Close()
	s.udp.Close()
	close(s.closed)
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

// Close unregisters the listener and closes the connections of its ALPN
// that are in handshake or were not accepted yet. Accepted connections stay
// open. When it was the socket's last user, Close returns after the socket
// and its accept loop are gone.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		close(l.closed)
		s := l.s
		s.m.mu.Lock()
		delete(s.consumers, l.alpn)
		var drop []*quic.Conn
		for c, pl := range s.pending {
			if pl == l {
				drop = append(drop, c)
				delete(s.pending, c)
			}
		}
		release := s.m.releaseLocked(s)
		done := s.loopDone
		s.m.mu.Unlock()
		// The clients hear of it while the socket is still open: once it
		// is closed their connections end silently, and they wait for
		// their idle timeout. (A socket released here has no queued
		// connections: each counts as a user.)
		for _, c := range drop {
			c.CloseWithError(0, "listener closed")
		}
		if release {
			s.close()
		}
		if s.isClosed() && done != nil {
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

func (s *socket) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// Dial opens a QUIC connection to raddr. It leaves from a listening socket
// of the same address family when there is one (preferring one bound to
// the unspecified address, or to loopback for a loopback destination), and
// otherwise from a socket bound to an ephemeral port that is shared by all
// such dials and closed with the last of them. conf must set NextProtos.
// The connection is returned once its handshake completed.
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
		if s, err = m.newSocketLocked(netip.AddrPortFrom(unspec, 0), false); err != nil {
			m.mu.Unlock()
			return nil, err
		}
	}
	s.conns++ // hold the socket while dialing
	m.mu.Unlock()

	c, err := s.tr.Dial(ctx, net.UDPAddrFromAddrPort(raddr), conf, m.quicConf)

	m.mu.Lock()
	s.conns--
	release := false
	if err != nil {
		release = m.releaseLocked(s)
	} else {
		s.trackLocked(c)
	}
	m.mu.Unlock()
	if release {
		s.close()
	}
	if err != nil {
		return nil, fmt.Errorf("udpmux: QUIC dial %s: %w", raddr, err)
	}
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

// PendingConns reports the connections held for Listen consumers until
// their handshake completes, on all sockets (for tests and diagnostics).
func (m *Mux) PendingConns() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for s := range m.sockets {
		n += len(s.pending)
	}
	return n
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

// StatelessResetKeyFrom derives a StatelessResetKey from secret, for a node
// whose secret outlives a restart (its identity key), by HKDF-SHA256 with
// a label of this use: the key never equals, and reveals nothing about,
// the secret. A secret shorter than 32 bytes is refused.
func StatelessResetKeyFrom(secret []byte) (*quic.StatelessResetKey, error) {
	if len(secret) < 32 {
		return nil, fmt.Errorf("udpmux: deriving the stateless reset key: secret of %d bytes, want at least 32", len(secret))
	}
	return deriveResetKey(secret, "tachyon quic stateless reset key")
}

// socketResetKey is the key of the socket bound to addr.
func socketResetKey(master *quic.StatelessResetKey, addr netip.AddrPort) *quic.StatelessResetKey {
	k, err := deriveResetKey(master[:], "tachyon quic stateless reset key of "+addr.String())
	if err != nil {
		panic(err) // HKDF-SHA256 fails only for outputs over 8160 bytes
	}
	return k
}

func deriveResetKey(secret []byte, label string) (*quic.StatelessResetKey, error) {
	b, err := hkdf.Key(sha256.New, secret, nil, label, len(quic.StatelessResetKey{}))
	if err != nil {
		return nil, fmt.Errorf("udpmux: deriving the stateless reset key: %w", err)
	}
	var k quic.StatelessResetKey
	copy(k[:], b)
	return &k, nil
}
