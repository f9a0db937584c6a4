// Package relayed dials and accepts connections through circuit relay v2
// relays (relay/circuit-v2.md), as a client: a dial sends HOP CONNECT to the
// relay, an inbound circuit arrives as a STOP CONNECT from it, and in both
// cases the relay's stream then carries the connection, which is upgraded
// (multistream-select, security, muxer) like a TCP connection. The relay can
// cut a circuit after little data or time, so the connection is marked
// limited (network.ConnState.Limited) when the relay announced limits.
//
// Reserve and Reservations (reservations.go) keep the reservations that
// let a node behind a NAT be reached through relays.
package relayed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/circuit"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/logs"
)

// Name is the transport's name in ConnState.
const Name = "p2p-circuit"

// StreamTimeout bounds the HOP and STOP exchanges (go-libp2p's value).
const StreamTimeout = time.Minute

// Host is what the transport needs from the host: a connection to the relay
// and a stream on it.
type Host interface {
	Connect(ctx context.Context, ai peer.AddrInfo) error
	NewStream(ctx context.Context, p peer.ID, protos ...protocol.ID) (network.Stream, error)
}

// Upgrader upgrades the relay's stream into a connection (upgrader.Upgrader).
type Upgrader interface {
	Upgrade(ctx context.Context, raw net.Conn, dir network.Direction, remote peer.ID, laddr, raddr ma.Multiaddr) (network.TransportConn, error)
}

// Transport is the relay client transport.
type Transport struct {
	up  Upgrader
	log *slog.Logger

	mu       sync.Mutex
	host     Host
	listener *listener // nil until Listen
	closed   bool
}

// New returns a transport upgrading with up (whose Transport name should be
// Name). The host is set with SetHost: the host is built after its
// transports.
func New(up Upgrader, log *slog.Logger) *Transport {
	return &Transport{up: up, log: logs.Or(log)}
}

// SetHost gives the transport the host it dials relays with.
func (t *Transport) SetHost(h Host) {
	t.mu.Lock()
	t.host = h
	t.mu.Unlock()
}

func (t *Transport) getHost() (Host, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.host == nil {
		return nil, errors.New("relayed: transport has no host")
	}
	return t.host, nil
}

// Name implements network.Transport.
func (t *Transport) Name() string { return Name }

// CanDial accepts <relay addr>/p2p/<relay>/p2p-circuit, optionally followed
// by /p2p/<target>.
func (t *Transport) CanDial(a ma.Multiaddr) bool {
	_, _, err := SplitAddr(a)
	return err == nil
}

// SplitAddr splits a relayed address into the relay (its ID and the
// address before /p2p-circuit, if any) and the target (empty when the
// address does not name it).
func SplitAddr(a ma.Multiaddr) (relay peer.AddrInfo, target peer.ID, err error) {
	i := -1
	for j, c := range a {
		if c.Code() == ma.P_CIRCUIT {
			if i >= 0 {
				return relay, "", fmt.Errorf("relayed: %s goes through more than one relay", a)
			}
			i = j
		}
	}
	if i < 0 {
		return relay, "", fmt.Errorf("relayed: %s has no /p2p-circuit", a)
	}
	before, after := a[:i], a[i+1:]
	switch {
	case len(after) == 0:
	case len(after) == 1 && after[0].Code() == ma.P_P2P:
		target = peer.ID(after[0].RawValue())
	default:
		return relay, "", fmt.Errorf("relayed: %s: only /p2p/<peer> may follow /p2p-circuit", a)
	}
	tpt, id := peer.SplitAddr(before)
	if id == "" {
		return relay, "", fmt.Errorf("relayed: %s does not name the relay (/p2p/<relay> before /p2p-circuit)", a)
	}
	relay.ID = id
	if len(tpt) > 0 {
		relay.Addrs = []ma.Multiaddr{tpt}
	}
	return relay, target, nil
}

// Dial connects to p through the relay named in addr.
func (t *Transport) Dial(ctx context.Context, addr ma.Multiaddr, p peer.ID) (network.TransportConn, error) {
	relay, target, err := SplitAddr(addr)
	if err != nil {
		return nil, err
	}
	if target != "" && target != p {
		return nil, fmt.Errorf("relayed: %s names peer %s, not %s", addr, target, p)
	}
	h, err := t.getHost()
	if err != nil {
		return nil, err
	}
	if relay.ID == p {
		return nil, fmt.Errorf("relayed: %s: %s would be its own relay", addr, p)
	}
	if err := h.Connect(ctx, relay); err != nil {
		return nil, fmt.Errorf("relayed: connecting to relay %s: %w", relay.ID, err)
	}
	// The relay's connection must be a direct one: relays refuse hop
	// streams over relayed connections.
	s, err := h.NewStream(ctx, relay.ID, circuit.HopID)
	if err != nil {
		return nil, fmt.Errorf("relayed: opening a hop stream to relay %s: %w", relay.ID, err)
	}
	tc, err := t.connect(ctx, s, relay.ID, p)
	if err != nil {
		s.Reset()
		return nil, err
	}
	return tc, nil
}

func (t *Transport) connect(ctx context.Context, s network.Stream, relay, p peer.ID) (network.TransportConn, error) {
	dl := time.Now().Add(StreamTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	s.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { s.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := circuit.WriteHop(s, &circuit.HopMessage{Type: circuit.HopConnect, Peer: &circuit.Peer{ID: p}}); err != nil {
		return nil, fmt.Errorf("relayed: sending CONNECT for %s to relay %s: %w", p, relay, err)
	}
	m, err := circuit.ReadHop(s)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("relayed: reading the answer of relay %s to CONNECT %s: %w", relay, p, err)
	}
	if m.Type != circuit.HopStatus {
		return nil, fmt.Errorf("relayed: relay %s answered CONNECT %s with %s, not STATUS", relay, p, m.Type)
	}
	if m.Status != circuit.StatusOK {
		return nil, fmt.Errorf("relayed: connecting to %s through relay %s: %w", p, relay, &circuit.StatusError{Status: m.Status, From: "relay"})
	}
	if !stop() {
		return nil, ctx.Err()
	}
	s.SetDeadline(time.Time{})
	return t.upgrade(ctx, s, network.DirOutbound, relay, p, m.Limit)
}

// upgrade runs the connection's upgrade over the relay's stream s.
func (t *Transport) upgrade(ctx context.Context, s network.Stream, dir network.Direction, relay, p peer.ID, limit *circuit.Limit) (network.TransportConn, error) {
	raddr := circuitAddr(s.Conn().RemoteMultiaddr(), relay)
	laddr := ma.Multiaddr{circuitComponent()}
	sc := newStreamConn(s, raddr)
	tc, err := t.up.Upgrade(ctx, sc, dir, p, laddr, raddr)
	if err != nil {
		return nil, fmt.Errorf("relayed: upgrading the connection with %s through relay %s: %w", p, relay, err)
	}
	return &conn{TransportConn: tc, limited: limit != nil && (limit.Duration > 0 || limit.Data > 0), done: sc.done}, nil
}

// circuitAddr is <relay's address>/p2p/<relay>/p2p-circuit.
func circuitAddr(relayAddr ma.Multiaddr, relay peer.ID) ma.Multiaddr {
	out := make(ma.Multiaddr, 0, len(relayAddr)+2)
	out = append(out, relayAddr...)
	if pc, err := relay.Component(); err == nil {
		out = append(out, *pc)
	}
	return append(out, circuitComponent())
}

func circuitComponent() ma.Component {
	c, _ := ma.NewComponent("p2p-circuit", "")
	return *c
}

// conn is a relayed connection: ConnState says so.
type conn struct {
	network.TransportConn
	limited bool
	done    <-chan struct{} // closed when the relay's stream is closed
}

func (c *conn) ConnState() network.ConnState {
	st := c.TransportConn.ConnState()
	st.Transport = Name
	st.Limited = c.limited
	return st
}

// HandleStop serves a STOP stream from a relay: a peer connecting to us
// through it. The connection is handed to the listener; without one (the
// host does not listen on /p2p-circuit) the circuit is refused.
func (t *Transport) HandleStop(s network.Stream) {
	relay := s.RemotePeer()
	s.SetDeadline(time.Now().Add(StreamTimeout))
	m, err := circuit.ReadStop(s)
	if err != nil {
		t.log.Debug("relayed: reading STOP", "relay", relay, "err", err)
		if errors.Is(err, circuit.ErrMalformed) {
			circuit.WriteStop(s, &circuit.StopMessage{Type: circuit.StopStatus, Status: circuit.StatusMalformedMessage})
		}
		s.Reset()
		return
	}
	refuse := func(st circuit.Status, why string) {
		t.log.Debug("relayed: refusing a circuit", "relay", relay, "why", why)
		circuit.WriteStop(s, &circuit.StopMessage{Type: circuit.StopStatus, Status: st})
		s.Close()
	}
	if m.Type != circuit.StopConnect {
		refuse(circuit.StatusUnexpectedMessage, "STOP "+m.Type.String())
		return
	}
	if m.Peer == nil || m.Peer.ID == "" {
		refuse(circuit.StatusMalformedMessage, "CONNECT without a peer")
		return
	}
	src := m.Peer.ID
	t.mu.Lock()
	l := t.listener
	t.mu.Unlock()
	if l == nil {
		refuse(circuit.StatusConnectionFailed, "not listening on /p2p-circuit")
		return
	}
	if err := circuit.WriteStop(s, &circuit.StopMessage{Type: circuit.StopStatus, Status: circuit.StatusOK}); err != nil {
		t.log.Debug("relayed: answering STOP", "relay", relay, "peer", src, "err", err)
		s.Reset()
		return
	}
	s.SetDeadline(time.Time{})
	// The upgrade runs here, on the stream's goroutine, which the host
	// owns; its deadline is the upgrader's handshake timeout.
	tc, err := t.upgrade(l.ctx, s, network.DirInbound, relay, src, m.Limit)
	if err != nil {
		t.log.Debug("relayed: inbound circuit", "relay", relay, "peer", src, "err", err)
		return // the upgrader closed s
	}
	if !l.deliver(tc) {
		tc.Close()
		return
	}
	// The stream is the connection: the host ends a handler's stream when
	// the handler returns, so this one returns when the connection closes.
	<-tc.(*conn).done
}

// Listen accepts circuits from relays. addr must be /p2p-circuit; one
// listener at a time.
func (t *Transport) Listen(addr ma.Multiaddr) (network.Listener, error) {
	if len(addr) != 1 || addr[0].Code() != ma.P_CIRCUIT {
		return nil, fmt.Errorf("relayed: can only listen on /p2p-circuit, not %s", addr)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.listener != nil {
		return nil, errors.New("relayed: already listening on /p2p-circuit")
	}
	l := &listener{t: t, conns: make(chan network.TransportConn, 16), addr: addr}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	t.listener = l
	return l, nil
}

// CanListen reports whether addr is /p2p-circuit.
func (t *Transport) CanListen(addr ma.Multiaddr) bool {
	return len(addr) == 1 && addr[0].Code() == ma.P_CIRCUIT
}

type listener struct {
	t      *Transport
	addr   ma.Multiaddr
	conns  chan network.TransportConn
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
}

// deliver hands tc to Accept, waiting while the queue is full until the
// listener closes.
func (l *listener) deliver(tc network.TransportConn) bool {
	select {
	case l.conns <- tc:
		return true
	case <-l.ctx.Done():
		return false
	}
}

func (l *listener) Accept() (network.TransportConn, error) {
	select {
	case tc := <-l.conns:
		return tc, nil
	case <-l.ctx.Done():
		return nil, net.ErrClosed
	}
}

func (l *listener) Close() error {
	l.once.Do(func() {
		l.t.mu.Lock()
		if l.t.listener == l {
			l.t.listener = nil
		}
		l.t.mu.Unlock()
		l.cancel()
		for {
			select {
			case tc := <-l.conns:
				tc.Close()
			default:
				return
			}
		}
	})
	return nil
}

func (l *listener) Multiaddrs() []ma.Multiaddr { return []ma.Multiaddr{l.addr} }

// streamConn is the net.Conn an upgrade runs over: the relay's stream.
type streamConn struct {
	network.Stream
	raddr ma.Multiaddr
	once  sync.Once
	done  chan struct{}
}

func newStreamConn(s network.Stream, raddr ma.Multiaddr) *streamConn {
	return &streamConn{Stream: s, raddr: raddr, done: make(chan struct{})}
}

// Close half-closes the stream and stops reading: the relay passes the end
// on to the other side, after the data written before it, and drops the
// circuit once both sides have closed. The muxer calls it when the
// connection ends for any reason.
func (c *streamConn) Close() error {
	err := c.Stream.Close()
	c.once.Do(func() { close(c.done) })
	return err
}

func (c *streamConn) LocalAddr() net.Addr  { return addr{"p2p-circuit"} }
func (c *streamConn) RemoteAddr() net.Addr { return addr{c.raddr.String()} }

type addr struct{ s string }

func (a addr) Network() string { return Name }
func (a addr) String() string  { return a.s }
