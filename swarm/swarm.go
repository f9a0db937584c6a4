// Package swarm holds the node's connections, grouped by peer: it runs the
// listeners, dials peers (one dial at a time per peer, its addresses ranked
// and paced by package dialrank), accepts inbound streams and opens outbound
// ones.
//
// Goroutines: one per listener (accepting upgraded conns), one per connection
// accepting streams unless its muxer hands them over itself
// (network.InboundStreams: yamux does), one per inbound stream while its
// handler runs. All are owned by the Swarm and stopped by Close; a
// connection's muxer reports its end, and Close waits for that too.
package swarm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/dialrank"
	"github.com/tachyon-p2p/tachyon/internal/logs"
	"github.com/tachyon-p2p/tachyon/peerstore"
)

var (
	// ErrClosed is returned by operations on a closed swarm.
	ErrClosed = errors.New("swarm: closed")
	// ErrDialSelf is returned when asked to dial our own peer ID.
	ErrDialSelf = errors.New("swarm: refusing to dial self")
	// ErrNoAddresses is returned when a peer has no dialable address.
	ErrNoAddresses = errors.New("swarm: no dialable addresses")
	// ErrGated is returned when the connection gater refused a dial or a
	// connection.
	ErrGated = errors.New("swarm: refused by the connection gater")
	// ErrNoConn is returned by a dial with network.WithNoDial when there is
	// no connection to the peer.
	ErrNoConn = errors.New("swarm: no connection to the peer, and dialing is not allowed")
)

// Notifiee hears about connections as they come and go. Callbacks run on
// the swarm's goroutines and must not block. For one connection, Connected
// returns before Disconnected is called.
type Notifiee interface {
	Connected(*Conn)
	Disconnected(*Conn)
}

// DefaultDialTimeout bounds a whole DialPeer unless Config.DialTimeout says
// otherwise.
const DefaultDialTimeout = 30 * time.Second

// Config tunes the swarm. The zero value is ready to use.
type Config struct {
	// DialTimeout bounds a whole DialPeer. Default DefaultDialTimeout.
	DialTimeout time.Duration
	// RTTs holds the round-trip times the dialer ranks addresses and
	// paces its attempts by (dialrank's package comment has the formula).
	// The swarm feeds it every dial's outcome; the host adds the RTTs
	// ping measures. Nil: the swarm keeps its own.
	RTTs *dialrank.RTTs
	// BlackHoles tells which classes of addresses (UDP, IPv6) lose every
	// packet, learned from dials. Nil: the swarm keeps its own.
	BlackHoles *dialrank.BlackHoles
	// LocalPrefixes returns the networks we are on; a peer's private
	// addresses inside one are dialed (dialrank's rule 5). Nil: this
	// machine's interfaces, read at most every 30 s.
	LocalPrefixes func() []netip.Prefix
	// NoDialDelay starts the dials to all of a peer's addresses at once,
	// still in ranked order (tests; simultaneous-connect experiments).
	NoDialDelay bool
	// DialTrace, if set, receives the record of every dial once it ended
	// (DialPeer's, DialDirect's, DialVia's): what was ranked, what was
	// skipped and why, when each attempt started and how it ended. It runs
	// on the dialing goroutine and must not block.
	DialTrace func(*dialrank.Trace)
	// Resolver resolves DNS addresses before dialing. Nil: system DNS.
	Resolver Resolver
	// Tracer hears of connections and dials (metrics, trace spans). Nil:
	// off.
	Tracer Tracer
	// Streams counts streams by protocol, and their bytes. Nil: off.
	Streams StreamTracer

	// Gater, if set, decides which connections are made and kept.
	Gater network.ConnectionGater

	// Log receives what the swarm drops on its own: connections the gater
	// refused, failed dials of single addresses and connections that ended
	// (Debug), and listeners that stop on an accept error (Warn). Nil
	// discards.
	Log *slog.Logger
}

// Swarm is the connection pool of one node.
type Swarm struct {
	local      peer.ID
	ps         *peerstore.Peerstore
	transports []network.Transport
	cfg        Config

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	handler   atomic.Pointer[func(*Stream)]
	notifiee  atomic.Pointer[Notifiee]   // SetNotifiee's slot
	notifiees atomic.Pointer[[]Notifiee] // Notify's list, copied on write
	nextID    atomic.Uint64

	mu        sync.Mutex
	closed    bool
	conns     map[peer.ID][]*Conn
	listeners []network.Listener
	dials     map[dialKey]*dial

	backoffs backoffs  // per address, after failed dials
	prefixes *prefixes // our networks, cached (machinePrefixes unless Config.LocalPrefixes)
}

// dialKey identifies a shared dial: a dial for a direct connection (with a
// limited one already open, or for hole punching) does not share with one
// that may end on a relay.
type dialKey struct {
	p      peer.ID
	direct bool
}

// New returns a swarm for the local peer, dialing the addresses stored in ps
// with the given transports.
func New(local peer.ID, ps *peerstore.Peerstore, transports []network.Transport, cfg *Config) *Swarm {
	s := &Swarm{
		local:      local,
		ps:         ps,
		transports: transports,
		conns:      make(map[peer.ID][]*Conn),
		dials:      make(map[dialKey]*dial),
	}
	if cfg != nil {
		s.cfg = *cfg
	}
	if s.cfg.DialTimeout <= 0 {
		s.cfg.DialTimeout = DefaultDialTimeout
	}
	if s.cfg.RTTs == nil {
		s.cfg.RTTs = dialrank.NewRTTs(nil)
	}
	if s.cfg.BlackHoles == nil {
		s.cfg.BlackHoles = dialrank.NewBlackHoles(nil)
	}
	s.prefixes = machinePrefixes
	if s.cfg.LocalPrefixes != nil {
		s.prefixes = &prefixes{resolve: s.cfg.LocalPrefixes}
	}
	s.cfg.Log = logs.Or(s.cfg.Log)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// LocalPeer is our own ID.
func (s *Swarm) LocalPeer() peer.ID { return s.local }

// Peerstore returns the store the swarm dials from.
func (s *Swarm) Peerstore() *peerstore.Peerstore { return s.ps }

// SetStreamHandler sets the function run, in its own goroutine, for each
// inbound stream. When the function returns, a stream it neither closed nor
// reset is closed (reset if closing fails), so the peer reads EOF and the
// connection's stream count drops. Without a handler, inbound streams are
// reset.
func (s *Swarm) SetStreamHandler(h func(*Stream)) { s.handler.Store(&h) }

// SetNotifiee sets the notifiee of a single slot, replacing the one set
// by an earlier SetNotifiee. Notifiees added with Notify are unaffected;
// prefer Notify.
func (s *Swarm) SetNotifiee(n Notifiee) { s.notifiee.Store(&n) }

// Notify adds n to the notifiees told about every connection from now on.
// Any number may be added; each is called in turn, in the order added. n
// must be comparable (a pointer, typically) for StopNotify to find it.
func (s *Swarm) Notify(n Notifiee) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var list []Notifiee
	if cur := s.notifiees.Load(); cur != nil {
		list = slices.Clone(*cur)
	}
	list = append(list, n)
	s.notifiees.Store(&list)
}

// StopNotify removes a notifiee added with Notify.
func (s *Swarm) StopNotify(n Notifiee) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.notifiees.Load()
	if cur == nil {
		return
	}
	i := slices.Index(*cur, n)
	if i < 0 {
		return
	}
	list := slices.Delete(slices.Clone(*cur), i, i+1)
	s.notifiees.Store(&list)
}

// notify calls f for every notifiee.
func (s *Swarm) notify(f func(Notifiee)) {
	if list := s.notifiees.Load(); list != nil {
		for _, n := range *list {
			f(n)
		}
	}
	if n := s.notifiee.Load(); n != nil && *n != nil {
		f(*n)
	}
}

func (s *Swarm) transportFor(a ma.Multiaddr) network.Transport {
	for _, t := range s.transports {
		if t.CanDial(a) {
			return t
		}
	}
	return nil
}

// canDial reports whether a transport dials a and the gater lets us dial p
// there.
func (s *Swarm) canDial(p peer.ID, a ma.Multiaddr) bool {
	if s.transportFor(a) == nil {
		return false
	}
	g := s.cfg.Gater
	return g == nil || g.InterceptAddrDial(p, a)
}

// gatePeerDial asks the gater whether p may be dialed.
func (s *Swarm) gatePeerDial(p peer.ID) error {
	if g := s.cfg.Gater; g != nil && !g.InterceptPeerDial(p) {
		return &DialError{Peer: p, Cause: ErrGated}
	}
	return nil
}

// listener is implemented by transports whose listen addresses differ from
// their dial addresses (port 0, unspecified IPs, no certhash yet).
type listener interface {
	CanListen(ma.Multiaddr) bool
}

func (s *Swarm) listenTransportFor(a ma.Multiaddr) network.Transport {
	for _, t := range s.transports {
		if l, ok := t.(listener); ok {
			if l.CanListen(a) {
				return t
			}
		} else if t.CanDial(a) {
			return t
		}
	}
	return nil
}

// Listen starts listening on every address; it fails if any fails, closing
// the ones already opened by this call.
func (s *Swarm) Listen(addrs ...ma.Multiaddr) error {
	var opened []network.Listener
	for _, a := range addrs {
		t := s.listenTransportFor(a)
		if t == nil {
			err := fmt.Errorf("swarm: no transport listens on %s", a)
			for _, l := range opened {
				l.Close()
			}
			return err
		}
		l, err := t.Listen(a)
		if err != nil {
			for _, l := range opened {
				l.Close()
			}
			return fmt.Errorf("swarm: listen: %w", err)
		}
		opened = append(opened, l)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		for _, l := range opened {
			l.Close()
		}
		return ErrClosed
	}
	s.listeners = append(s.listeners, opened...)
	s.wg.Add(len(opened))
	s.mu.Unlock()
	for _, l := range opened {
		go s.acceptConns(l)
	}
	return nil
}

// ListenAddrs returns the addresses the listeners are bound to, as bound
// (an unspecified IP stays unspecified).
func (s *Swarm) ListenAddrs() []ma.Multiaddr {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ma.Multiaddr
	for _, l := range s.listeners {
		out = append(out, l.Multiaddrs()...)
	}
	return out
}

func (s *Swarm) acceptConns(l network.Listener) {
	defer s.wg.Done()
	for {
		tc, err := l.Accept()
		if err != nil {
			if s.ctx.Err() == nil {
				s.cfg.Log.Warn("listener stopped: accept failed", "addr", l.Multiaddrs(), "err", err)
			}
			return
		}
		if g := s.cfg.Gater; g != nil && !g.InterceptAccept(tc.LocalMultiaddr(), tc.RemoteMultiaddr()) {
			s.cfg.Log.Debug("inbound connection refused by the gater", "remote", tc.RemoteMultiaddr(),
				"addr", tc.LocalMultiaddr(), "transport", tc.ConnState().Transport)
			tc.Close()
			continue
		}
		if _, err := s.addConn(tc); err != nil {
			if !errors.Is(err, ErrGated) && !errors.Is(err, ErrClosed) { // addConn logged those, or we are closing
				s.cfg.Log.Warn("inbound connection not added", "peer", tc.RemotePeer(), "remote", tc.RemoteMultiaddr(), "err", err)
			}
			tc.Close()
		}
	}
}

// addConn registers an upgraded connection and has its inbound streams
// handed over (or starts its stream loop), unless the gater refuses it (the caller closes tc on error).
func (s *Swarm) addConn(tc network.TransportConn) (*Conn, error) {
	p := tc.RemotePeer()
	if g := s.cfg.Gater; g != nil && !g.InterceptSecured(tc.Direction(), p, tc.LocalMultiaddr(), tc.RemoteMultiaddr()) {
		s.cfg.Log.Debug("connection refused by the gater", "peer", p, "direction", tc.Direction(),
			"remote", tc.RemoteMultiaddr(), "transport", tc.ConnState().Transport)
		return nil, fmt.Errorf("swarm: %s connection with %s at %s: %w", tc.Direction(), p, tc.RemoteMultiaddr(), ErrGated)
	}
	c := &Conn{tc: tc, s: s, id: s.nextID.Add(1), opened: time.Now()}
	if g, ok := s.cfg.Gater.(network.UpgradedGater); ok && !g.InterceptUpgraded(c) {
		s.cfg.Log.Debug("upgraded connection refused by the gater", "peer", p, "direction", tc.Direction(),
			"remote", tc.RemoteMultiaddr(), "transport", tc.ConnState().Transport, "muxer", tc.ConnState().Muxer)
		return nil, fmt.Errorf("swarm: %s connection with %s at %s: %w", tc.Direction(), p, tc.RemoteMultiaddr(), ErrGated)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	s.conns[p] = append(s.conns[p], c)
	s.ps.Connected(p) // under s.mu, so the peerstore's count follows s.conns
	s.wg.Add(1)
	s.mu.Unlock()

	if k := tc.RemotePublicKey(); k != nil {
		s.ps.AddPubKey(p, k)
	}
	if tc.Direction() == network.DirOutbound {
		s.ps.AddAddrs(p, []ma.Multiaddr{tc.RemoteMultiaddr()}, peerstore.ConnectedAddrTTL)
	}
	if t := s.cfg.Tracer; t != nil {
		t.ConnOpened(c.info())
	}
	s.notify(func(n Notifiee) { n.Connected(c) })
	// A muxer that hands inbound streams over spares the connection a
	// goroutine waiting in AcceptStream.
	if h, ok := tc.(network.InboundStreams); ok {
		c.hand = h
		if !h.HandleInbound(c.inbound, c.ended) {
			c.hand = nil // no stream was handed over
			go c.acceptStreams()
		}
	} else {
		go c.acceptStreams()
	}
	return c, nil
}

func (s *Swarm) removeConn(c *Conn) {
	p := c.RemotePeer()
	s.mu.Lock()
	cs := s.conns[p]
	i := slices.Index(cs, c)
	if i < 0 {
		s.mu.Unlock()
		return
	}
	cs = slices.Delete(cs, i, i+1)
	if len(cs) == 0 {
		delete(s.conns, p)
	} else {
		s.conns[p] = cs
	}
	// On the last connection, p's connected addresses get
	// RecentlyConnectedAddrTTL.
	s.ps.Disconnected(p)
	s.mu.Unlock()
	if t := s.cfg.Tracer; t != nil {
		t.ConnClosed(c.info(), time.Since(c.opened))
	}
	s.notify(func(n Notifiee) { n.Disconnected(c) })
}

// ConnsToPeer returns the open connections to p, newest last. A connection
// leaves the list as soon as it is closed: at once when closed on this
// side, once the transport notices when the peer closed it.
func (s *Swarm) ConnsToPeer(p peer.ID) []*Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return openConns(nil, s.conns[p])
}

func openConns(out, cs []*Conn) []*Conn {
	for _, c := range cs {
		if !c.IsClosed() {
			out = append(out, c)
		}
	}
	return out
}

// Conns returns every open connection.
func (s *Swarm) Conns() []*Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Conn
	for _, cs := range s.conns {
		out = openConns(out, cs)
	}
	return out
}

// Peers returns the peers we have an open connection to.
func (s *Swarm) Peers() []peer.ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]peer.ID, 0, len(s.conns))
	for p, cs := range s.conns {
		if slices.ContainsFunc(cs, func(c *Conn) bool { return !c.IsClosed() }) {
			out = append(out, p)
		}
	}
	return out
}

// bestConn picks the connection new streams go to: the newest open one
// that is not limited, or, when allowLimited, the newest limited one if
// there is nothing better. limited reports whether an open limited
// connection exists.
func (s *Swarm) bestConn(p peer.ID, allowLimited bool) (best *Conn, limited bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.conns[p]
	var lim *Conn
	for i := len(cs) - 1; i >= 0; i-- {
		c := cs[i]
		if c.IsClosed() {
			continue
		}
		if !c.Limited() {
			return c, lim != nil
		}
		if lim == nil {
			lim = c
		}
	}
	if allowLimited {
		return lim, lim != nil
	}
	return nil, lim != nil
}

// NewStream opens a stream to p, dialing it first if there is no connection.
func (s *Swarm) NewStream(ctx context.Context, p peer.ID) (*Stream, error) {
	c, err := s.DialPeer(ctx, p)
	if err != nil {
		return nil, err
	}
	st, err := c.NewStream(ctx)
	if err == nil || ctx.Err() != nil {
		return st, err
	}
	// The connection may have died under us; one fresh dial is worth a try.
	c.Close()
	if c, err = s.DialPeer(ctx, p); err != nil {
		return nil, err
	}
	return c.NewStream(ctx)
}

// ClosePeer closes every connection to p.
func (s *Swarm) ClosePeer(p peer.ID) error {
	var errs []error
	for _, c := range s.ConnsToPeer(p) {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// Close closes listeners and connections and waits for every goroutine the
// swarm started, stream handlers included.
func (s *Swarm) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ls := s.listeners
	s.listeners = nil
	var cs []*Conn
	for _, pc := range s.conns {
		cs = append(cs, pc...)
	}
	s.mu.Unlock()
	s.cancel()
	for _, l := range ls {
		l.Close()
	}
	for _, c := range cs {
		c.Close()
	}
	s.wg.Wait()
	return nil
}
