// Package upgrader turns a raw stream connection (TCP, WebSocket) into a
// libp2p connection: multistream-select picks a security protocol, the
// handshake authenticates the peer, and a stream multiplexer runs on top.
//
//	raw conn ──mss──▶ /noise | /tls/1.0.0 ──handshake──▶ SecureConn
//	         ──Resources.OpenConn(dir, peer, raddr)──▶ ConnScope
//	         ──(muxer from the handshake, or mss)──▶ /yamux/1.0.0 ──▶ TransportConn
//
// The muxer is taken from the handshake when both sides announced theirs
// (TLS ALPN, Noise extensions), which saves the round trip of a second
// negotiation.
//
// # Roles
//
// The client of an upgrade is the multistream-select initiator, the
// security initiator (TLS client, Noise initiator) and the muxer client
// (yamux odd stream IDs); the server takes the other side of each. Normally
// the dialer is the client. In a TCP simultaneous open (hole punching) both
// sockets are outbound, so the dial's context says which side is which
// (network.WithSimultaneousConnect): the server role still verifies that
// the peer is the one dialed, and the connection stays DirOutbound.
package upgrader

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/netbuf"
	"github.com/tachyon-p2p/tachyon/mss"
)

// DefaultHandshakeTimeout bounds the whole upgrade of one connection.
const DefaultHandshakeTimeout = 15 * time.Second

// ErrNoSecurity is returned when no security protocol is configured.
var ErrNoSecurity = errors.New("upgrader: no security protocol configured")

// Upgrader holds the protocols offered during an upgrade, in preference
// order. Its zero value is unusable; set Security and Muxers.
type Upgrader struct {
	// Security protocols in preference order.
	Security []network.SecureTransport
	// Muxers in preference order.
	Muxers []network.Multiplexer
	// HandshakeTimeout bounds an upgrade; zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// Transport names the transport in ConnState, such as "tcp".
	Transport string
	// Resources, when set, admits each connection, inbound and outbound,
	// once the security handshake has authenticated the peer; a refused
	// one is closed. The connection's scope goes to the muxer and is closed
	// with the connection, or when the upgrade fails after it was opened.
	Resources network.ResourceManager
	// Tracer hears of every upgrade and how it ended. Nil: off.
	Tracer Tracer
}

// Upgrade secures and multiplexes raw. For outbound connections remote must
// be set and is verified; inbound, any peer is accepted. laddr and raddr are
// the multiaddrs of the raw connection's ends. On error raw is closed.
//
// An outbound upgrade whose ctx comes from network.WithSimultaneousConnect
// runs in the role it names (see Roles in the package doc).
func (u *Upgrader) Upgrade(ctx context.Context, raw net.Conn, dir network.Direction, remote peer.ID, laddr, raddr ma.Multiaddr) (network.TransportConn, error) {
	client := isClient(ctx, dir)
	var hs *Handshake
	if u.Tracer != nil {
		hs = &Handshake{Dir: dir, Transport: u.Transport, Peer: remote, RemoteAddr: raddr, Start: time.Now()}
	}
	tc, err := u.upgrade(ctx, raw, dir, client, remote, laddr, raddr, hs)
	if hs != nil {
		hs.Took, hs.Err = time.Since(hs.Start), err
		u.Tracer.HandshakeDone(*hs)
	}
	if err != nil {
		raw.Close()
		switch {
		case dir == network.DirInbound:
			return nil, fmt.Errorf("upgrader: inbound upgrade from %s: %w", raddr, err)
		case !client:
			return nil, fmt.Errorf("upgrader: outbound upgrade (simultaneous open, as the server): %w", err)
		default:
			return nil, fmt.Errorf("upgrader: outbound upgrade: %w", err) // the dialer names peer and address
		}
	}
	return tc, nil
}

// isClient tells the role of this side in an upgrade: the dialer's, unless
// an outbound dial's ctx assigns the role of a simultaneous open.
func isClient(ctx context.Context, dir network.Direction) bool {
	if dir != network.DirOutbound {
		return false
	}
	if client, ok := network.SimultaneousConnect(ctx); ok {
		return client
	}
	return true
}

// upgrade does the work of Upgrade, noting in hs (when not nil) what it
// chose as it goes.
func (u *Upgrader) upgrade(ctx context.Context, raw net.Conn, dir network.Direction, client bool, remote peer.ID, laddr, raddr ma.Multiaddr, hs *Handshake) (network.TransportConn, error) {
	if len(u.Security) == 0 {
		return nil, ErrNoSecurity
	}
	if dir == network.DirOutbound && !client && remote == "" {
		// The server role would accept anyone.
		return nil, errors.New("a simultaneous open needs the remote peer ID")
	}
	timeout := u.HandshakeTimeout
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The negotiations below do plain blocking I/O: a deadline from ctx bounds
	// them, and a cancelled ctx closes the conn.
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	// pc is raw, or raw replaying the bytes peeked to pick the security.
	sec, pc, err := u.negotiateSecurity(raw, client, raddr)
	if err != nil {
		return nil, fmt.Errorf("negotiating security: %w", err)
	}
	if hs != nil {
		hs.Security = sec.ID()
	}
	var sconn network.SecureConn
	if client {
		sconn, err = sec.SecureOutbound(ctx, pc, remote)
	} else {
		sconn, err = sec.SecureInbound(ctx, pc, remote)
	}
	if err != nil {
		return nil, fmt.Errorf("%s handshake: %w", sec.ID(), err)
	}
	if remote != "" && sconn.RemotePeer() != remote {
		// The handshake checked it already; never trust one check.
		sconn.Close()
		return nil, fmt.Errorf("%s handshake: %w", sec.ID(), &network.PeerIDMismatchError{Expected: remote, Actual: sconn.RemotePeer()})
	}
	// Admitted before the muxer is negotiated: a refused peer costs no more.
	var scope network.ConnScope
	if u.Resources != nil {
		scope, err = u.Resources.OpenConn(dir, sconn.RemotePeer(), raddr)
		if err != nil {
			sconn.Close()
			return nil, &refusedError{peer: sconn.RemotePeer(), err: err}
		}
	}
	fail := func() {
		sconn.Close()
		if scope != nil {
			scope.Close()
		}
	}
	early := sconn.ConnState().Muxer != ""
	if hs != nil {
		hs.Peer, hs.EarlyMuxer = sconn.RemotePeer(), early
	}
	mux, err := u.negotiateMuxer(sconn, client)
	if err != nil {
		fail()
		return nil, fmt.Errorf("negotiating the muxer with %s: %w", sconn.RemotePeer(), err)
	}
	if hs != nil {
		hs.Muxer = mux.ID()
	}
	if !stop() {
		// ctx fired after the handshake finished: the deadline was clobbered.
		fail()
		return nil, ctx.Err()
	}
	raw.SetDeadline(time.Time{})
	mc, err := mux.NewConn(sconn, !client, scope)
	if err != nil {
		fail()
		return nil, fmt.Errorf("starting %s with %s: %w", mux.ID(), sconn.RemotePeer(), err)
	}
	st := sconn.ConnState()
	st.Muxer = mux.ID()
	st.EarlyMuxer = early
	st.Transport = u.Transport
	return &conn{MuxedConn: mc, sec: sconn, scope: scope, state: st, dir: dir, laddr: laddr, raddr: raddr}, nil
}

// ErrRefused is wrapped by the error of an upgrade that the
// ResourceManager refused (OpenConn); so is the manager's own error.
var ErrRefused = errors.New("refused by the resource manager")

// refusedError says which peer OpenConn refused, and wraps its reason (a
// *limits.LimitError naming the limit).
type refusedError struct {
	peer peer.ID
	err  error
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("connection with %s %s: %v", e.peer, ErrRefused, e.err)
}

func (e *refusedError) Unwrap() []error { return []error{ErrRefused, e.err} }

// negotiateSecurity picks the security protocol. A client dialing an
// address that names it (/tcp/P/tls, /tcp/P/noise) skips multistream-select
// and its round trip. Otherwise the client proposes its protocols in order
// and its last proposal (its only one, with one configured) optimistically:
// that proposal goes out with the handshake's first message and its answer
// is read before the handshake's first read, so it costs no round trip. A
// refusal of the last proposal ends the connection anyway, which is what
// makes the optimism safe; the handshake then fails with the
// *mss.NotSupportedError.
//
// On the server, the first byte tells the three cases apart on the same
// port: a multistream header starts with its length 0x13, a TLS record with
// 0x16 (handshake), a Noise first message with the high byte of its 16-bit
// length, 0x00. When the client's first handshake bytes came with its
// proposal (it did not wait for the answer), the answer goes out with the
// handshake's first message. The returned conn replays what was read
// ahead.
func (u *Upgrader) negotiateSecurity(raw net.Conn, client bool, raddr ma.Multiaddr) (network.SecureTransport, net.Conn, error) {
	if client {
		if id := NamedSecurity(raddr); id != "" {
			s := u.security(id)
			if s == nil {
				return nil, raw, fmt.Errorf("address %s names %s, which is not configured", raddr, id)
			}
			return s, raw, nil
		}
		ids := make([]protocol.ID, len(u.Security))
		for i, s := range u.Security {
			ids[i] = s.ID()
		}
		pc := &peekConn{Conn: raw}
		id, pending, err := mss.SelectOptimistic(pc, ids...)
		if err != nil {
			return nil, raw, err
		}
		if pending != nil {
			pc.answer = pending
			pc.send(pending.Bytes())
		}
		return u.security(id), pc.settled(), nil
	}
	pc := &peekConn{Conn: raw}
	first, err := pc.peek()
	if err != nil {
		return nil, raw, err
	}
	var direct protocol.ID
	switch first {
	case 0x16:
		direct = TLSID
	case 0x00:
		direct = NoiseID
	}
	if direct != "" {
		s := u.security(direct)
		if s == nil {
			return nil, raw, fmt.Errorf("peer started %s directly, which is not configured", direct)
		}
		return s, pc.settled(), nil
	}
	var m mss.Mux[network.SecureTransport]
	for _, s := range u.Security {
		m.AddHandler(s.ID(), s)
	}
	_, s, echo, err := m.NegotiateDeferred(pc, nil)
	if err != nil {
		return nil, raw, err
	}
	if len(pc.held) > 0 {
		// The client sent handshake bytes behind its proposal: it is not
		// waiting for the echo.
		pc.send(echo)
	} else if _, err := raw.Write(echo); err != nil {
		return nil, raw, fmt.Errorf("mss: answering %s: %w", s.ID(), err)
	}
	return s, pc.settled(), nil
}

// Security protocol ids that can be named in a multiaddr.
const (
	TLSID   protocol.ID = "/tls/1.0.0"
	NoiseID protocol.ID = "/noise"
)

// NamedSecurity returns the security protocol that the last component of a
// TCP address names (/tcp/P/tls or /tcp/P/noise), or "" if none.
func NamedSecurity(a ma.Multiaddr) protocol.ID {
	if len(a) < 2 || a[len(a)-2].Code() != ma.P_TCP {
		return ""
	}
	switch a[len(a)-1].Code() {
	case ma.P_TLS:
		return TLSID
	case ma.P_NOISE:
		return NoiseID
	}
	return ""
}

// peekConn reads ahead of the security handshake: while the security
// protocol is being picked, each read takes whatever the socket holds (up
// to 256 bytes) in one system call, rather than one per multistream length
// prefix and token, and bytes read past the negotiation are replayed to the
// handshake. It never waits for more than the caller asked for: a read with
// bytes held returns them alone.
//
// It also carries what is left of the negotiation into the handshake:
// unsent goes out in the same write as the handshake's first bytes, and a
// client's optimistic proposal has its answer read before the handshake's
// first read. Both are over when the handshake is. A handshake may read
// and write from two goroutines (plaintext does): the read side's fields
// belong to the reader, unsent is under wmu.
type peekConn struct {
	net.Conn
	ahead  [256]byte
	held   []byte       // read, not yet returned
	done   bool         // negotiation over: reads with nothing held go straight through
	answer *mss.Pending // a proposal whose answer is still to be read
	rerr   error        // why the optimistic proposal failed

	wmu     sync.Mutex
	unsent  []byte      // negotiation bytes to send with the first write
	sending atomic.Bool // unsent is not empty
}

// peek returns the first byte without consuming it.
func (c *peekConn) peek() (byte, error) {
	for len(c.held) == 0 {
		if err := c.fill(); err != nil {
			return 0, err
		}
	}
	return c.held[0], nil
}

func (c *peekConn) fill() error {
	n, err := c.Conn.Read(c.ahead[:])
	c.held = c.ahead[:n]
	if n > 0 {
		return nil
	}
	return err
}

func (c *peekConn) Read(p []byte) (int, error) {
	if err := c.readAnswer(); err != nil {
		return 0, err
	}
	if len(c.held) == 0 && len(p) > 0 {
		if c.done {
			return c.Conn.Read(p)
		}
		if err := c.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.held)
	c.held = c.held[n:]
	return n, nil
}

// readAnswer reads the answer to the optimistic proposal, if one is still
// to be read, sending the proposal first if the handshake reads before it
// writes. A refusal or a malformed answer fails this and every later read.
func (c *peekConn) readAnswer() error {
	if c.answer == nil || c.rerr != nil {
		return c.rerr
	}
	pending := c.answer
	c.answer = nil
	if c.sending.Load() {
		if _, err := c.Write(nil); err != nil {
			c.rerr = err
			return err
		}
	}
	done := c.done
	c.done = false // the answer's tokens are read ahead too
	err := pending.ReadAnswer(c)
	c.done = done
	if err != nil {
		c.rerr = fmt.Errorf("negotiating security: %w", err)
		return c.rerr
	}
	return nil
}

// joinBufLen fits a TLS client's or server's first flight behind the
// multistream tokens (a post-quantum key share makes it ~1.5-3 KiB).
const joinBufLen = 8 << 10

var joinPool = sync.Pool{New: func() any { b := make([]byte, 0, joinBufLen); return &b }}

// send has b go out ahead of (and with) the first bytes written.
func (c *peekConn) send(b []byte) {
	c.wmu.Lock()
	c.unsent = b
	c.sending.Store(true)
	c.wmu.Unlock()
}

// Write sends what is left of the negotiation with the first bytes written.
func (c *peekConn) Write(p []byte) (int, error) {
	if !c.sending.Load() {
		return c.Conn.Write(p)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	head := c.unsent
	if head == nil {
		if len(p) == 0 {
			return 0, nil // a flush that found the bytes already sent
		}
		return c.Conn.Write(p)
	}
	c.unsent = nil
	// Cleared only once the bytes are out (deferred calls run before the
	// unlock): a concurrent writer that saw it cleared would bypass wmu
	// and could get ahead of them.
	defer c.sending.Store(false)
	// Joined in a pooled buffer: a TLS first flight is a few KiB.
	bp := joinPool.Get().(*[]byte)
	joined := append(append((*bp)[:0], head...), p...)
	n, err := c.Conn.Write(joined)
	if cap(joined) == joinBufLen {
		*bp = joined[:0]
		joinPool.Put(bp)
	}
	if err != nil {
		return max(0, n-len(head)), fmt.Errorf("sending the multistream answer or proposal: %w", err)
	}
	return len(p), nil
}

// ReadByte lets the multistream reader take length prefixes from the held
// bytes.
func (c *peekConn) ReadByte() (byte, error) {
	if err := c.readAnswer(); err != nil {
		return 0, err
	}
	b, err := c.peek()
	if err == nil {
		c.held = c.held[1:]
	}
	return b, err
}

// settled ends the negotiation: the handshake gets the bare connection
// when nothing read ahead is left for it.
func (c *peekConn) settled() net.Conn {
	c.done = true
	if len(c.held) == 0 && !c.sending.Load() && c.answer == nil {
		return c.Conn
	}
	return c
}

// Buffered reports the held bytes and what the kernel holds for the
// socket, so that a multistream listener can tell a pipelined proposal
// from a dialer waiting for its header.
func (c *peekConn) Buffered() int {
	if c.answer != nil {
		return 0 // what is there starts with the answer, not handshake bytes
	}
	if len(c.held) > 0 {
		return len(c.held)
	}
	return netbuf.Buffered(c.Conn)
}

// BufferedExact: held bytes are exact, else it is the connection's.
func (c *peekConn) BufferedExact() bool { return len(c.held) > 0 || netbuf.Exact(c.Conn) }

// CloseWrite passes half-closes through to TCP.
func (c *peekConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

func (u *Upgrader) security(id protocol.ID) network.SecureTransport {
	for _, s := range u.Security {
		if s.ID() == id {
			return s
		}
	}
	return nil
}

func (u *Upgrader) muxer(id protocol.ID) network.Multiplexer {
	for _, m := range u.Muxers {
		if m.ID() == id {
			return m
		}
	}
	return nil
}

func (u *Upgrader) negotiateMuxer(sconn network.SecureConn, client bool) (network.Multiplexer, error) {
	if id := sconn.ConnState().Muxer; id != "" {
		if m := u.muxer(id); m != nil {
			return m, nil
		}
		return nil, fmt.Errorf("handshake agreed on muxer %s, which is not configured", id)
	}
	if client {
		ids := make([]protocol.ID, len(u.Muxers))
		for i, m := range u.Muxers {
			ids[i] = m.ID()
		}
		id, err := mss.SelectOneOf(sconn, ids...)
		if err != nil {
			return nil, err
		}
		return u.muxer(id), nil
	}
	var m mss.Mux[network.Multiplexer]
	for _, mx := range u.Muxers {
		m.AddHandler(mx.ID(), mx)
	}
	_, mx, err := m.Negotiate(sconn)
	return mx, err
}

// conn is the TransportConn an upgrade yields.
type conn struct {
	network.MuxedConn
	sec          network.SecureConn
	scope        network.ConnScope // nil without Resources
	state        network.ConnState
	dir          network.Direction
	laddr, raddr ma.Multiaddr
}

// Close closes the muxer and releases the connection's scope. The muxer
// closes the scope too when the connection ends on its own; Close may be
// called more than once.
func (c *conn) Close() error {
	err := c.MuxedConn.Close()
	if c.scope != nil {
		c.scope.Close()
	}
	return err
}

func (c *conn) LocalPeer() peer.ID             { return c.sec.LocalPeer() }
func (c *conn) RemotePeer() peer.ID            { return c.sec.RemotePeer() }
func (c *conn) RemotePublicKey() crypto.PubKey { return c.sec.RemotePublicKey() }
func (c *conn) ConnState() network.ConnState   { return c.state }
func (c *conn) LocalMultiaddr() ma.Multiaddr   { return c.laddr }
func (c *conn) RemoteMultiaddr() ma.Multiaddr  { return c.raddr }
func (c *conn) Direction() network.Direction   { return c.dir }

// HandleInbound and ReleaseInbound hand inbound streams over if the muxer
// can (see network.InboundStreams).
func (c *conn) HandleInbound(accept func(network.MuxedStream), ended func(error)) bool {
	h, ok := c.MuxedConn.(network.InboundStreams)
	return ok && h.HandleInbound(accept, ended)
}

func (c *conn) ReleaseInbound(ms network.MuxedStream) {
	if h, ok := c.MuxedConn.(network.InboundStreams); ok {
		h.ReleaseInbound(ms)
	}
}
