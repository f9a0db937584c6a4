package tcp

// Port sharing.
//
// One TCP port can serve several kinds of inbound connection: plain libp2p
// (the dialer starts with multistream-select), WebSocket (an HTTP request)
// and secure WebSocket (a TLS ClientHello). A PortMux owns one listening
// socket per bound address and hands each accepted connection to the
// listener registered for its kind:
//
//	socket.acceptLoop ──Accept──▶ admit (gate.begin: close at once if refused)
//	    ──▶ socket.route (one goroutine per admitted conn)
//	    peek the first bytes (≤ SniffTimeout) ──classify──▶ Kind
//	    ──▶ Listener of that Kind (its Accept returns the conn, peeked bytes included)
//
// A socket with only a KindMultistream listener skips the peek: its
// connections go straight to the TCP transport. The admission (admit.go)
// holds a handshake slot from accept until the consumer's upgrade ends
// (HandshakeDone) or the conn closes.
//
// Security named in the address (issue 4: /tcp/P/tls, /tcp/P/noise): the
// upgrader itself tells a multistream header (13), a TLS ClientHello (16)
// and a Noise first message (00 20) apart, so every connection whose kind
// has no listener goes to the KindMultistream listener. The one ambiguous
// case is a port that serves both /tcp/P/tls and /tcp/P/tls/ws: both start
// with a ClientHello. The hook for it is classify: read the whole
// ClientHello (raise peekMax to its record length) and send it to KindTLS
// only when its ALPN list lacks "libp2p" (libp2p TLS always offers it;
// WebSocket clients offer http/1.1 or nothing), else to KindMultistream.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/internal/logs"
	"github.com/tachyon-p2p/tachyon/internal/netbuf"
)

// Kind is the kind of connection a Listener of a PortMux receives, told
// apart by the first bytes the dialer sends.
type Kind int

const (
	// KindMultistream is plain libp2p: the dialer opens with
	// "\x13/multistream/1.0.0\n". Connections of a kind that has no
	// listener go to it, and its upgrader takes or rejects them.
	KindMultistream Kind = iota
	// KindHTTP is an HTTP request ("GET "): a WebSocket handshake.
	KindHTTP
	// KindTLS is a TLS ClientHello (16 03): secure WebSocket.
	KindTLS
	kindUnknown
)

func (k Kind) String() string {
	switch k {
	case KindMultistream:
		return "multistream"
	case KindHTTP:
		return "http"
	case KindTLS:
		return "tls"
	default:
		return "unknown"
	}
}

// peekMax is the most bytes classify needs.
const peekMax = 4

// classify tells the kind from the first bytes of a connection. more is
// true when it needs more bytes to decide.
func classify(b []byte) (k Kind, more bool) {
	if len(b) == 0 {
		return kindUnknown, true
	}
	switch b[0] {
	case 0x13: // length prefix of "/multistream/1.0.0\n"
		return KindMultistream, false
	case 'G':
		if len(b) < 4 {
			return kindUnknown, string(b) == "GET "[:len(b)]
		}
		if string(b[:4]) == "GET " {
			return KindHTTP, false
		}
	case 0x16: // TLS handshake record, then the major version 3
		if len(b) < 2 {
			return kindUnknown, true
		}
		if b[1] == 0x03 {
			return KindTLS, false
		}
	}
	return kindUnknown, false
}

// ErrKindInUse is returned by PortMux.Listen when the address already has a
// listener of that kind.
var ErrKindInUse = errors.New("tcp: address already has a listener of that kind")

// PortMuxConfig tunes a PortMux. The zero value is ready to use.
type PortMuxConfig struct {
	// SniffTimeout bounds how long an inbound connection on a shared port
	// may take to send the bytes that tell its kind. Default 15 s.
	SniffTimeout time.Duration
	// Resources, when set, admits every accepted connection
	// (BeginHandshake with its remote IP) before anything is read from it;
	// a refused one is closed at once. Its slot lasts until the consumer's
	// upgrade ends. The two caps below then do not apply.
	Resources network.ResourceManager
	// MaxPendingSniffs bounds the connections per socket that are in their
	// handshakes (classified, then upgraded by the listener that took
	// them) when there is no Resources. New connections over it are closed
	// at once rather than left in the kernel's accept queue, where they
	// would hold up everyone behind them. Default 256.
	MaxPendingSniffs int
	// MaxPendingPerIP bounds those connections per remote IP (per /64 for
	// IPv6; loopback is exempt) when there is no Resources, so one address
	// cannot take every slot. Default 16.
	MaxPendingPerIP int
	// Log receives connections dropped while they are classified (Debug)
	// and sockets that stop on an accept error (Warn). Nil discards.
	Log *slog.Logger
	// NoPortReuse binds listening sockets without SO_REUSEPORT, so that no
	// dial can leave from their ports (see reuse.go). By default (on Linux
	// and macOS) dials of the TCP transport leave from the listening port,
	// which NATs and hole punching need.
	NoPortReuse bool
}

// PortMux shares listening sockets between transports. Give the same
// PortMux to the TCP and the WebSocket transport to serve both on one port.
// It needs no Close: a socket closes with its last Listener.
type PortMux struct {
	cfg PortMuxConfig

	mu      sync.Mutex
	sockets []*socket // in creation order, so port 0 joins the oldest
}

// NewPortMux returns an empty PortMux.
func NewPortMux(cfg *PortMuxConfig) *PortMux {
	m := &PortMux{}
	if cfg != nil {
		m.cfg = *cfg
	}
	if m.cfg.SniffTimeout <= 0 {
		m.cfg.SniffTimeout = 15 * time.Second
	}
	m.cfg.Log = logs.Or(m.cfg.Log)
	return m
}

type sockKey struct {
	network string // tcp4 or tcp6
	addr    netip.AddrPort
}

// Listen registers a listener of kind k on network ("tcp4" or "tcp6") and
// address ("ip:port", a literal IP). It joins the socket already bound to
// that address, or binds a new one.
//
// Port 0 joins the oldest socket bound to the same IP that has no listener
// of kind k yet, and binds a new port only when there is none. So listening
// on /ip4/0.0.0.0/tcp/0 and then /ip4/0.0.0.0/tcp/0/ws puts both on one port,
// as /tcp/4001 and /tcp/4001/ws do.
func (m *PortMux) Listen(network, address string, k Kind) (*Listener, error) {
	if k < KindMultistream || k >= kindUnknown {
		return nil, fmt.Errorf("tcp: listen: bad kind %d", k)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, fmt.Errorf("tcp: listen on %s: %w", address, err)
	}
	key := sockKey{network, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}

	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.sockets {
		if s.key.network != key.network || s.key.addr.Addr() != key.addr.Addr() {
			continue
		}
		if key.addr.Port() != 0 && s.key.addr.Port() != key.addr.Port() {
			continue
		}
		l, err := s.register(k)
		if errors.Is(err, ErrKindInUse) && key.addr.Port() == 0 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("tcp: listen on %s: %w", address, err)
		}
		return l, nil
	}

	reuse := reusePortSupported && !m.cfg.NoPortReuse
	var nl net.Listener
	if reuse {
		nl, err = listenShared(network, address)
	} else {
		lc := net.ListenConfig{KeepAliveConfig: keepAlive}
		nl, err = lc.Listen(context.Background(), network, address)
	}
	if err != nil {
		return nil, fmt.Errorf("tcp: listen on %s: %w", address, err)
	}
	bound := nl.Addr().(*net.TCPAddr).AddrPort()
	key.addr = netip.AddrPortFrom(bound.Addr().Unmap(), bound.Port())
	ctx, cancel := context.WithCancel(context.Background())
	s := &socket{
		m:         m,
		key:       key,
		nl:        nl,
		reuse:     reuse,
		ctx:       ctx,
		cancel:    cancel,
		gate:      newGate(m.cfg.Resources, m.cfg.MaxPendingSniffs, m.cfg.MaxPendingPerIP),
		refusals:  refusalLog{log: m.cfg.Log},
		listeners: map[Kind]*Listener{},
	}
	l, _ := s.register(k)
	m.sockets = append(m.sockets, s)
	s.wg.Add(1)
	go s.acceptLoop()
	return l, nil
}

// remove unregisters l and closes its socket when it was the last one.
func (m *PortMux) remove(l *Listener) {
	s := l.s
	m.mu.Lock()
	s.mu.Lock()
	delete(s.listeners, l.kind)
	last := len(s.listeners) == 0
	s.mu.Unlock()
	if last {
		for i, x := range m.sockets {
			if x == s {
				m.sockets = append(m.sockets[:i], m.sockets[i+1:]...)
				break
			}
		}
	}
	m.mu.Unlock()
	if last {
		s.cancel()
		s.nl.Close()
		s.wg.Wait()
	}
}

// socket is one bound TCP socket. Its accept loop and the route goroutines
// it starts are stopped by the close of its last Listener.
type socket struct {
	m        *PortMux
	key      sockKey
	nl       net.Listener
	reuse    bool // bound with SO_REUSEPORT: dials may leave from its port
	ctx      context.Context
	cancel   context.CancelFunc
	gate     *gate
	refusals refusalLog
	wg       sync.WaitGroup

	mu        sync.Mutex
	listeners map[Kind]*Listener
	err       error // why the accept loop stopped, unless a close stopped it
}

// register adds a listener of kind k. The caller holds m.mu.
func (s *socket) register(k Kind) (*Listener, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listeners[k] != nil {
		return nil, ErrKindInUse
	}
	l := &Listener{s: s, kind: k, conns: make(chan net.Conn), done: make(chan struct{})}
	s.listeners[k] = l
	return l, nil
}

func (s *socket) acceptLoop() {
	defer s.wg.Done()
	log := s.m.cfg.Log
	for {
		c, err := s.nl.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			s.mu.Lock()
			failed := s.ctx.Err() == nil
			if failed {
				s.err = err
			}
			for _, l := range s.listeners {
				l.fail()
			}
			s.mu.Unlock()
			if failed {
				log.Warn("shared socket stopped: accept failed", "addr", s.key.addr, "err", err)
			}
			return
		}
		done, err := s.gate.begin(remoteIP(c))
		if err != nil {
			c.Close()
			s.refusals.refused(s.key.addr, c, err)
			continue
		}
		pc := &peekedConn{Conn: c, done: done}
		if l := s.soleMSS(); l != nil {
			// Nothing to sniff: hand c over here when the listener is
			// waiting for it, saving a goroutine per connection.
			select {
			case l.conns <- pc:
				continue
			default:
			}
		}
		s.wg.Add(1)
		go s.route(pc)
	}
}

// soleMSS is the multistream listener when it is the socket's only one.
func (s *socket) soleMSS() *Listener {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.listeners) != 1 {
		return nil
	}
	return s.listeners[KindMultistream]
}

// route classifies c and hands it to the listener of its kind. Closing c
// ends its handshake slot.
func (s *socket) route(c *peekedConn) {
	defer s.wg.Done()

	k := KindMultistream
	if s.soleMSS() == nil {
		var err error
		k, c.head, err = s.sniff(c.Conn)
		if err != nil {
			if s.ctx.Err() == nil {
				s.m.cfg.Log.Debug("inbound connection dropped: its first bytes did not come", "addr", s.key.addr, "remote", c.RemoteAddr(), "err", err)
			}
			c.Close()
			return
		}
	}

	s.mu.Lock()
	l := s.listeners[k]
	if l == nil {
		// Plain libp2p gets the rest: its upgrader also takes TLS and
		// Noise started without multistream-select (/tcp/P/tls,
		// /tcp/P/noise), and rejects anything else.
		l = s.listeners[KindMultistream]
	}
	s.mu.Unlock()
	if l == nil {
		s.m.cfg.Log.Debug("inbound connection dropped: no listener for its kind", "addr", s.key.addr, "remote", c.RemoteAddr(), "kind", k)
		c.Close()
		return
	}
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	case <-s.ctx.Done():
		c.Close()
	}
}

// sniff reads the first bytes of c, at most peekMax, within SniffTimeout.
func (s *socket) sniff(c net.Conn) (Kind, []byte, error) {
	c.SetReadDeadline(time.Now().Add(s.m.cfg.SniffTimeout))
	stop := context.AfterFunc(s.ctx, func() { c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, peekMax)
	n := 0
	for {
		k, more := classify(buf[:n])
		if !more || n == len(buf) {
			if !stop() {
				return k, nil, net.ErrClosed
			}
			c.SetReadDeadline(time.Time{})
			return k, buf[:n], nil
		}
		m, err := c.Read(buf[n:])
		n += m
		if err != nil {
			return kindUnknown, nil, fmt.Errorf("tcp: reading first bytes: %w", err)
		}
	}
}

// Listener receives the connections of one kind from a shared socket. It
// is a net.Listener.
type Listener struct {
	s     *socket
	kind  Kind
	conns chan net.Conn
	done  chan struct{} // closed by Close or when the socket fails
	once  sync.Once
	fOnce sync.Once
}

func (l *Listener) fail() { l.fOnce.Do(func() { close(l.done) }) }

// Accept returns the next connection of this listener's kind. Bytes read to
// classify it are replayed by its first reads. The connection holds a
// handshake slot of the socket until HandshakeDone or its Close.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		l.s.mu.Lock()
		err := l.s.err
		l.s.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("tcp: accept on %s: %w", l.s.key.addr, err)
		}
		return nil, net.ErrClosed
	}
}

// Close unregisters the listener; the socket closes with its last listener.
func (l *Listener) Close() error {
	l.once.Do(func() {
		l.fail()
		l.s.m.remove(l)
	})
	return nil
}

// Addr is the bound address of the shared socket.
func (l *Listener) Addr() net.Addr { return l.s.nl.Addr() }

// Kind is the kind of connections this listener receives.
func (l *Listener) Kind() Kind { return l.kind }

// peekedConn is an admitted connection: it holds a handshake slot until
// HandshakeDone or Close, and replays the bytes read to classify it.
type peekedConn struct {
	net.Conn
	head []byte
	done func() // ends the handshake slot
	once sync.Once
}

// HandshakeDone ends the handshake slot of c, a connection from a
// Listener's Accept (or one wrapping it): call it when its upgrade ended,
// however it ended. Close ends the slot too; other conns are ignored.
func HandshakeDone(c net.Conn) {
	if p, ok := c.(*peekedConn); ok {
		p.release()
	}
}

func (c *peekedConn) release() {
	if c.done != nil {
		c.once.Do(c.done)
	}
}

// Close closes the connection and ends its handshake slot.
func (c *peekedConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

func (c *peekedConn) Read(p []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(p, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// Buffered counts the replayed bytes and what the socket holds.
func (c *peekedConn) Buffered() int { return len(c.head) + netbuf.Buffered(c.Conn) }

// BufferedExact is that of the socket under it.
func (c *peekedConn) BufferedExact() bool { return netbuf.Exact(c.Conn) }

// CloseWrite passes half-closes through to TCP.
func (c *peekedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("tcp: connection does not support CloseWrite")
}
