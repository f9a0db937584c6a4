package webrtc

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/stun/v3"
)

// udpMux shares the listener's one UDP socket between all of its ICE agents
// (pion's ice.UDPMux). Packets are routed by source address once an address
// is known, and otherwise by the server ufrag in a STUN binding request's
// USERNAME. A binding request with an unknown ufrag is a new connection
// attempt: it is offered on pending, and dropped without allocating anything
// when pending is full, which is what bounds a STUN flood.
type udpMux struct {
	sock    net.PacketConn
	local   *net.UDPAddr // the address ICE advertises
	pending chan muxCandidate
	log     *slog.Logger

	mu      sync.Mutex
	byUfrag map[string]*muxConn
	byAddr  map[netip.AddrPort]*muxConn
	closed  bool

	done chan struct{} // closed when readLoop returns

	unrouted atomic.Int64 // datagrams from unknown addresses that were not a binding request
}

// muxCandidate is a connection attempt seen by the mux.
type muxCandidate struct {
	creds iceCredentials
	addr  *net.UDPAddr
	seen  time.Time // when its first binding request arrived
}

const (
	muxPacketSize = 1500 // larger datagrams are truncated; pion's MTU is 1200
	// muxConnQueue is the packets buffered per connection before
	// dropping the oldest (see push): enough for what a tachyon stream
	// keeps in flight (sendHighWater), so that a briefly descheduled
	// reader does not cost a loss. Other senders keep up to the SCTP
	// window in flight and overrun it when the reader lags (go-libp2p's
	// 10 MiB echo of the interop test: hundreds of drops under load).
	muxConnQueue    = 1024
	muxAddrsPerConn = 8 // remote addresses one ufrag may use
)

var _ ice.UDPMux = (*udpMux)(nil)

var packetPool = sync.Pool{New: func() any { b := make([]byte, muxPacketSize); return &b }}

// newUDPMux starts reading sock, whose address is local. Close stops it.
// log (not nil) hears of a read error that stops it.
func newUDPMux(sock net.PacketConn, local *net.UDPAddr, pendingLen int, log *slog.Logger) *udpMux {
	m := &udpMux{
		sock:    sock,
		local:   local,
		pending: make(chan muxCandidate, pendingLen),
		log:     log,
		byUfrag: map[string]*muxConn{},
		byAddr:  map[netip.AddrPort]*muxConn{},
		done:    make(chan struct{}),
	}
	go m.readLoop()
	return m
}

func (m *udpMux) readLoop() {
	defer close(m.done)
	for {
		bp := packetPool.Get().(*[]byte)
		n, from, err := m.sock.ReadFrom(*bp)
		if err != nil {
			packetPool.Put(bp)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			m.mu.Lock()
			closed := m.closed
			m.mu.Unlock()
			if !closed {
				m.log.Warn("listener stopped: reading the socket failed", "addr", m.local, "err", err)
			}
			return
		}
		ua, err := udpAddrOf(from)
		if err != nil {
			packetPool.Put(bp)
			continue
		}
		if ip4 := ua.IP.To4(); ip4 != nil && len(ua.IP) != net.IPv4len {
			// A dual-stack socket (a shared one may be) reports IPv4
			// peers as ::ffff:a.b.c.d; ICE and SDP want them as IPv4.
			ua = &net.UDPAddr{IP: ip4, Port: ua.Port}
		}
		if !m.route(bp, n, ua) {
			packetPool.Put(bp)
		}
	}
}

// route hands a datagram to its connection and reports whether it took
// ownership of the buffer.
func (m *udpMux) route(bp *[]byte, n int, from *net.UDPAddr) bool {
	ap := from.AddrPort()
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	m.mu.Lock()
	c := m.byAddr[ap]
	m.mu.Unlock()
	if c != nil {
		return c.push(bp, n, from)
	}
	pkt := (*bp)[:n]
	if !stun.IsMessage(pkt) {
		m.unrouted.Add(1)
		return false
	}
	msg := &stun.Message{Raw: pkt}
	if msg.Decode() != nil || msg.Type != stun.BindingRequest {
		return false
	}
	var user stun.Username
	if user.GetFrom(msg) != nil {
		return false
	}
	creds, err := parseSTUNUsername(user.String())
	if err != nil {
		return false
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return false
	}
	c = m.byUfrag[creds.serverUfrag]
	if c == nil {
		select {
		case m.pending <- muxCandidate{creds: creds, addr: from, seen: time.Now()}:
		default:
			m.mu.Unlock()
			return false // too many attempts in flight
		}
		c = newMuxConn(m, creds.serverUfrag)
		m.byUfrag[creds.serverUfrag] = c
	}
	if len(c.addrs) < muxAddrsPerConn && m.byAddr[ap] == nil {
		c.addrs = append(c.addrs, ap)
		m.byAddr[ap] = c
	}
	m.mu.Unlock()
	return c.push(bp, n, from)
}

// GetConn implements ice.UDPMux: it returns the connection of the local
// (server) ufrag, creating it if no packet announced it yet.
func (m *udpMux) GetConn(ufrag string, _ net.Addr) (net.PacketConn, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, net.ErrClosed
	}
	c := m.byUfrag[ufrag]
	if c == nil {
		c = newMuxConn(m, ufrag)
		m.byUfrag[ufrag] = c
	}
	return c, nil
}

// RemoveConnByUfrag implements ice.UDPMux.
func (m *udpMux) RemoveConnByUfrag(ufrag string) {
	m.mu.Lock()
	c := m.byUfrag[ufrag]
	removed := c != nil && m.removeLocked(c)
	m.mu.Unlock()
	if removed {
		m.logRemoved(c)
	}
}

// logRemoved tells, at Debug, what a connection received: whether the
// last datagrams of a peer reached the listener at all.
func (m *udpMux) logRemoved(c *muxConn) {
	at := func(ns int64) string {
		if ns == 0 {
			return "never"
		}
		return time.Unix(0, ns).Format(time.RFC3339Nano)
	}
	m.log.Debug("ICE connection left the listener's socket", "addr", m.local, "ufrag", c.ufrag,
		"datagrams", c.in.Load(), "dropped_queue_full", c.dropped.Load(), "last_datagram", at(c.last.Load()),
		"last_drop", at(c.lastDrop.Load()), "unrouted_total", m.unrouted.Load())
}

// removeLocked removes c and reports whether this call closed it.
func (m *udpMux) removeLocked(c *muxConn) bool {
	if m.byUfrag[c.ufrag] == c {
		delete(m.byUfrag, c.ufrag)
	}
	for _, a := range c.addrs {
		if m.byAddr[a] == c {
			delete(m.byAddr, a)
		}
	}
	c.addrs = nil
	closed := false
	c.closeOnce.Do(func() {
		close(c.closed)
		closed = true
	})
	return closed
}

// GetListenAddresses implements ice.UDPMux.
func (m *udpMux) GetListenAddresses() []net.Addr { return []net.Addr{m.local} }

// Close closes the socket and every connection and waits for the read loop.
func (m *udpMux) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		<-m.done
		return nil
	}
	m.closed = true
	for _, c := range m.byUfrag {
		m.removeLocked(c)
	}
	m.mu.Unlock()
	err := m.sock.Close()
	<-m.done
	return err
}

// muxConn is the packet connection of one ufrag.
type muxConn struct {
	mux   *udpMux
	ufrag string
	addrs []netip.AddrPort // guarded by mux.mu

	packets   chan packet
	closed    chan struct{}
	closeOnce sync.Once

	in, dropped    atomic.Int64 // datagrams routed here, and of those dropped
	last, lastDrop atomic.Int64 // when the last one came and was dropped, unix ns
}

type packet struct {
	buf  *[]byte
	n    int
	from *net.UDPAddr
}

func newMuxConn(m *udpMux, ufrag string) *muxConn {
	return &muxConn{mux: m, ufrag: ufrag, packets: make(chan packet, muxConnQueue), closed: make(chan struct{})}
}

// push queues a datagram. When the queue is full the oldest one is dropped,
// not this one: a peer's last datagrams, the SCTP ABORT and DTLS
// close_notify that end the connection, often come behind a backlog, and
// dropping the newest lost them both, leaving the connection to the ICE
// timeouts. The data dropped instead is retransmitted.
func (c *muxConn) push(bp *[]byte, n int, from *net.UDPAddr) bool {
	select {
	case <-c.closed:
		return false
	default:
	}
	c.in.Add(1)
	c.last.Store(time.Now().UnixNano())
	pk := packet{bp, n, from}
	for {
		select {
		case c.packets <- pk:
			return true
		default:
		}
		// Full. The read loop is the only sender, so once one is taken
		// (here or by the reader) the next try succeeds.
		select {
		case old := <-c.packets:
			packetPool.Put(old.buf)
			c.dropped.Add(1)
			c.lastDrop.Store(time.Now().UnixNano())
		default:
		}
	}
}

func (c *muxConn) ReadFrom(p []byte) (int, net.Addr, error) {
	select {
	case pk := <-c.packets:
		n := copy(p, (*pk.buf)[:pk.n])
		packetPool.Put(pk.buf)
		return n, pk.from, nil
	case <-c.closed:
		return 0, nil, net.ErrClosed
	}
}

func (c *muxConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	return c.mux.sock.WriteTo(p, addr)
}

// Close removes the connection from the mux.
func (c *muxConn) Close() error {
	c.mux.mu.Lock()
	removed := c.mux.removeLocked(c)
	c.mux.mu.Unlock()
	if removed {
		c.mux.logRemoved(c)
	}
	for {
		select {
		case pk := <-c.packets:
			packetPool.Put(pk.buf)
		default:
			return nil
		}
	}
}

func (c *muxConn) LocalAddr() net.Addr              { return c.mux.local }
func (c *muxConn) SetDeadline(time.Time) error      { return nil }
func (c *muxConn) SetReadDeadline(time.Time) error  { return nil }
func (c *muxConn) SetWriteDeadline(time.Time) error { return nil }
