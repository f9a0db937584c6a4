package tachyon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/connmgr"
	"github.com/tachyon-p2p/tachyon/core/circuit"
	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/dialrank"
	"github.com/tachyon-p2p/tachyon/event"
	"github.com/tachyon-p2p/tachyon/internal/logs"
	"github.com/tachyon-p2p/tachyon/limits"
	"github.com/tachyon-p2p/tachyon/metrics"
	"github.com/tachyon-p2p/tachyon/mss"
	"github.com/tachyon-p2p/tachyon/peerstore"
	"github.com/tachyon-p2p/tachyon/protocol/autonatv1"
	"github.com/tachyon-p2p/tachyon/protocol/autonatv2"
	"github.com/tachyon-p2p/tachyon/protocol/holepunch"
	"github.com/tachyon-p2p/tachyon/protocol/identify"
	"github.com/tachyon-p2p/tachyon/protocol/ping"
	"github.com/tachyon-p2p/tachyon/protocol/relay"
	"github.com/tachyon-p2p/tachyon/reachability"
	"github.com/tachyon-p2p/tachyon/swarm"
	"github.com/tachyon-p2p/tachyon/transport/relayed"
	"github.com/tachyon-p2p/tachyon/transport/webrtc"
)

// negotiationTimeout bounds protocol negotiation on an inbound stream, so a
// peer that opens streams and says nothing cannot pin goroutines.
const negotiationTimeout = 10 * time.Second

// StreamHandler serves one inbound stream of a protocol. When the handler
// returns, a stream it left open is closed: the peer reads what the handler
// wrote, then EOF (the stream is reset instead if closing fails). A handler
// that wants to keep using the stream must not return; a handler that
// wants the peer to see an error calls Reset.
type StreamHandler func(network.Stream)

// handlerEntry is a registered stream handler.
type handlerEntry struct {
	fn StreamHandler
	// limited: the handler also serves streams on limited connections.
	limited bool
	// answers: the handler answers at once (see answersAtOnce), so the
	// multistream echo can wait for its answer and share its write.
	answers bool
}

// answersAtOnce marks a handler whose first write follows at once: it
// writes before reading (identify), or answers what the dialer sent with
// its proposal as soon as it has read it (ping). Only for such handlers
// does the echo wait for the answer: a dialer may wait for the echo before
// anything else (eager negotiation), or when it closes (optimistic dialers
// complete the handshake on close), and a handler that reads a request and
// works on it for long would hold that dialer up. A Read that would wait
// sends the echo first in any case.
func answersAtOnce() HandlerOption {
	return func(e *handlerEntry) { e.answers = true }
}

// HandlerOption changes how SetStreamHandler serves a protocol.
type HandlerOption func(*handlerEntry)

// AllowLimitedConns lets the handler serve streams arriving on limited
// (relayed) connections. Without it such streams are refused as if the
// protocol were unknown: a relay with go-libp2p's default limits cuts a
// circuit after 128 KiB or 2 minutes, which suits signalling (identify,
// ping, hole punching), not bulk protocols.
func AllowLimitedConns() HandlerOption {
	return func(e *handlerEntry) { e.limited = true }
}

// Host is a libp2p node: an identity, a swarm of connections, and the
// protocol handlers that serve inbound streams.
type Host struct {
	key   crypto.PrivKey
	id    peer.ID
	ps    *peerstore.Peerstore
	swarm *swarm.Swarm
	ids   *identify.Service
	cfg   config
	log   *slog.Logger
	bus   *event.Bus

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mux   mss.Mux[handlerEntry]   // inbound protocol handlers
	pings pingTable               // the one outbound ping stream per peer
	rm    network.ResourceManager // nil: no limits
	cm    *connmgr.Manager        // nil: no connection manager
	lim   *limits.Manager         // nil: NoLimits
	rtts  *dialrank.RTTs          // the dialer's RTT estimates; pings add theirs
	// dialFails are the last dials that connected nowhere (Status).
	dialFails *dialFailures
	// refusals rate-limits the log lines of streams refused by limits.
	refusals logs.Limiter

	mu         sync.RWMutex
	identified map[peer.ID]*identifyCall
	connCount  map[peer.ID]int // connections the host was told about
	addrs      []ma.Multiaddr  // listen addresses last announced
	closed     bool
	closeOnce  sync.Once

	pushNow chan struct{}

	relayed        *relayed.Transport    // nil: NoRelayClient
	rsv            *relayed.Reservations // nil without StaticRelays
	relayProtected map[peer.ID]bool      // relays protected for their reservation; under mu
	hp             *holepunch.Service    // nil: NoHolePunching
	observed       observedAddrs
	relaySvc       *relay.Service           // nil: not a relay
	an             *autoNAT                 // observed addresses, reachability, AutoNAT servers
	webrtc         *webrtc.PrivateTransport // nil: no /webrtc
	advertised     []ma.Multiaddr           // AdvertisedAddrs last announced; under mu
	advTraced      bool                     // the metrics have seen an advertised set; under mu
	labels         *protoLabels             // the protocols stream metrics name
	ifaces         *ifaceCache              // interface addresses, for unspecified listen addresses
}

// identifyCall is the identify exchange run on a peer's first connection.
type identifyCall struct {
	done   chan struct{}
	result *identify.Result
	err    error
}

func newHost(cfg config, id peer.ID, ps *peerstore.Peerstore, sw *swarm.Swarm, rm network.ResourceManager) *Host {
	h := &Host{
		rm:         rm,
		key:        cfg.key,
		id:         id,
		ps:         ps,
		swarm:      sw,
		cfg:        cfg,
		log:        cfg.log,
		identified: make(map[peer.ID]*identifyCall),
		connCount:  make(map[peer.ID]int),
		pushNow:    make(chan struct{}, 1),
		ifaces:     newIfaceCache(),
		bus:        event.NewTracedBus(cfg.metrics.EventBus()),
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.ps.Run(h.ctx, peerstore.DefaultGCInterval) // expired addresses and forgotten peers
	}()
	if cfg.connMgr != nil {
		c := *cfg.connMgr
		if c.Log == nil {
			c.Log = cfg.log.With("component", "connmgr")
		}
		if c.Tracer == nil {
			c.Tracer = cfg.metrics.ConnMgr()
		}
		h.cm = connmgr.New(c)
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			h.cm.Run(h.ctx)
		}()
	}
	if !cfg.noIdentifyPush {
		h.wg.Add(1)
		go h.pushLoop()
	}
	return h
}

// ID is the host's peer ID.
func (h *Host) ID() peer.ID { return h.id }

// PrivateKey is the host's identity key.
func (h *Host) PrivateKey() crypto.PrivKey { return h.key }

// EventBus is where the host reports connections, identify results and
// changes of its own addresses and protocols (the event package lists the
// events). Emitting never blocks the host: a subscriber that falls behind
// misses events. The bus closes with the host.
func (h *Host) EventBus() *event.Bus { return h.bus }

// ConnManager is the connection manager, for protecting and tagging peers
// (see package connmgr); nil when the host was built with NoConnManager.
func (h *Host) ConnManager() *connmgr.Manager { return h.cm }

// Limits is the resource manager: its Config (defaults filled in) and Stat
// (what is in use). Nil when the host was built with NoLimits.
func (h *Host) Limits() *limits.Manager { return h.lim }

// Peerstore holds what the host knows about other peers.
func (h *Host) Peerstore() *peerstore.Peerstore { return h.ps }

// Network shows the host's connections: list them, look at one (its
// addresses, transport, security, muxer, streams), close them, listen on
// more addresses.
func (h *Host) Network() network.Network { return hostNetwork{h} }

// Connectedness tells whether the host has a connection to p.
func (h *Host) Connectedness(p peer.ID) network.Connectedness {
	if len(h.swarm.ConnsToPeer(p)) > 0 {
		return network.Connected
	}
	return network.NotConnected
}

// Addrs returns the addresses the host listens on, with unspecified IPs
// (0.0.0.0, ::) replaced by the machine's interface addresses.
func (h *Host) Addrs() []ma.Multiaddr {
	raw := h.swarm.ListenAddrs()
	out := h.webrtcAddrs(h.ifaces.expandListen(raw))
	if h.an != nil {
		// The outside addresses of our NAT that enough peers agree on, and
		// those AutoNAT confirmed (some were guessed from others' IP).
		extra := h.an.obs.Addrs(raw)
		if h.an.reach != nil {
			extra = append(extra, h.an.reach.Addrs(reachability.Public)...)
		}
		for _, a := range extra {
			if !slices.ContainsFunc(out, a.Equal) {
				out = append(out, a)
			}
		}
	}
	return append(h.withNamedSecurity(out), h.relayAddrs()...)
}

// listenAddrs are the addresses the host listens on, unspecified IPs
// expanded to the interfaces' addresses.
func (h *Host) listenAddrs() []ma.Multiaddr { return h.ifaces.expandListen(h.swarm.ListenAddrs()) }

var (
	tlsComponent, _   = ma.NewComponent("tls", "")
	noiseComponent, _ = ma.NewComponent("noise", "")
)

// securityComponent is the multiaddr component that names security
// protocol id, or nil.
func securityComponent(id protocol.ID) *ma.Component {
	switch id {
	case TLS:
		return tlsComponent
	case Noise:
		return noiseComponent
	}
	return nil
}

// withNamedSecurity appends, for every plain TCP address, the forms that
// name a security protocol (/tcp/P/tls, /tcp/P/noise): a tachyon dialer uses
// them to skip the security negotiation round trip, and the listener accepts
// them on the same port. Peers that do not know the forms dial the plain one.
//
// A port that also serves /tls/ws gets no /tls form: both would start with
// a TLS ClientHello, and the port sends those to the WebSocket listener.
func (h *Host) withNamedSecurity(addrs []ma.Multiaddr) []ma.Multiaddr {
	wss := map[string]bool{}
	for _, a := range addrs {
		if len(a) == 4 && a[1].Code() == ma.P_TCP && a[2].Code() == ma.P_TLS && a[3].Code() == ma.P_WS {
			wss[string(a[:2].Bytes())] = true
		}
	}
	var named []ma.Multiaddr
	for _, a := range addrs {
		if len(a) != 2 || a[1].Code() != ma.P_TCP {
			continue
		}
		for _, sec := range h.cfg.securityFor(TCP) {
			c := securityComponent(sec)
			if c == nil || sec == TLS && wss[string(a.Bytes())] {
				continue
			}
			named = append(named, slices.Clone(a).AppendComponent(c))
		}
	}
	return append(addrs, named...)
}

// addrsChanged announces a change of listen addresses: an
// EvtLocalAddrsUpdated event and an identify push.
func (h *Host) addrsChanged() {
	now := h.Addrs()
	adv := h.AdvertisedAddrs()
	h.mu.Lock()
	before := h.addrs
	h.addrs = now
	advChanged := !slices.EqualFunc(adv, h.advertised, func(a, b ma.Multiaddr) bool { return a.Equal(b) })
	h.advertised = adv
	var added, removed []ma.Multiaddr
	for _, a := range now {
		if !slices.ContainsFunc(before, a.Equal) {
			added = append(added, a)
		}
	}
	for _, a := range before {
		if !slices.ContainsFunc(now, a.Equal) {
			removed = append(removed, a)
		}
	}
	if len(added)+len(removed) > 0 {
		h.bus.Emit(event.EvtLocalAddrsUpdated{Current: slices.Clone(now), Added: added, Removed: removed})
	}
	if advChanged {
		h.bus.Emit(event.EvtAdvertisedAddrsUpdated{Current: slices.Clone(adv)})
	}
	// The gauges follow the set (under mu, so two updates cannot land
	// out of order); the first update sets them even when nothing is
	// advertised yet, so a scrape shows zeros, not no series.
	if t := h.cfg.metrics.Advertised(); t != nil && (advChanged || !h.advTraced) {
		t.Advertised(adv)
		h.advTraced = true
	}
	h.mu.Unlock()
	if advChanged || len(added)+len(removed) > 0 {
		h.schedulePush()
	}
}

// FullAddrs returns Addrs with /p2p/<id> appended, as peers dial them.
func (h *Host) FullAddrs() []ma.Multiaddr {
	ai := peer.AddrInfo{ID: h.id, Addrs: h.Addrs()}
	full, _ := ai.P2pAddrs()
	return full
}

// SetStreamHandler serves inbound streams of protocol id with handler,
// replacing any earlier handler, and tells connected peers. Streams on
// limited connections reach it only with AllowLimitedConns.
func (h *Host) SetStreamHandler(id protocol.ID, handler StreamHandler, opts ...HandlerOption) error {
	had := slices.Contains(h.mux.Protocols(), id)
	e := handlerEntry{fn: handler}
	for _, o := range opts {
		o(&e)
	}
	if err := h.mux.AddHandler(id, e); err != nil {
		return fmt.Errorf("tachyon: SetStreamHandler: %w", err)
	}
	if h.labels != nil {
		h.labels.serve(id)
	}
	if !had {
		h.bus.Emit(event.EvtLocalProtocolsUpdated{Added: []protocol.ID{id}})
	}
	h.schedulePush()
	return nil
}

// RemoveStreamHandler stops serving protocol id.
func (h *Host) RemoveStreamHandler(id protocol.ID) {
	had := slices.Contains(h.mux.Protocols(), id)
	h.mux.RemoveHandler(id)
	if had {
		h.bus.Emit(event.EvtLocalProtocolsUpdated{Removed: []protocol.ID{id}})
	}
	h.schedulePush()
}

// Protocols lists the protocols the host serves, sorted.
func (h *Host) Protocols() []protocol.ID {
	out := h.mux.Protocols()
	slices.Sort(out)
	return out
}

// handleStream negotiates the protocol of an inbound stream and runs its
// handler; it runs on the stream's own goroutine, owned by the swarm.
func (h *Host) handleStream(s *swarm.Stream) {
	s.SetReadDeadline(time.Now().Add(negotiationTimeout))
	err := s.ReadAhead()
	var id protocol.ID
	var handler handlerEntry
	if err == nil {
		var allow func(handlerEntry) bool
		if s.Conn().ConnState().Limited {
			allow = func(e handlerEntry) bool { return e.limited }
		}
		var echo []byte
		id, handler, echo, err = h.mux.NegotiateDeferred(s, allow)
		if err == nil {
			// The echo goes with the answer of a handler that answers at
			// once; the stream sends it by itself before a Read waits.
			if handler.answers {
				s.DeferWrite(echo)
			} else {
				// A failed write is not the negotiation's failure: the
				// dialer may have sent its data and closed its side.
				_, _ = s.Write(echo)
			}
		}
	}
	if err != nil {
		h.log.Debug("inbound stream negotiation failed", "peer", s.RemotePeer(), "err", err)
		s.Reset()
		return
	}
	s.SetReadDeadline(time.Time{})
	s.SetProtocol(id)
	if !h.admitStream(s, id) {
		return
	}
	handler.fn(s)
}

// admitStream accounts an inbound stream to its protocol (limits, and the
// connection manager's protocol tags); a stream the limits refuse is reset.
func (h *Host) admitStream(s *swarm.Stream, id protocol.ID) bool {
	var release func()
	if h.rm != nil {
		var err error
		release, err = h.rm.OpenProtocolStream(network.DirInbound, s.RemotePeer(), id)
		if err != nil {
			if ok, held := h.refusals.Allow(time.Second); ok {
				h.log.Info("inbound stream refused", "peer", s.RemotePeer(), "protocol", id, "err", err, "not_logged_before", held)
			}
			s.Reset()
			return false
		}
	}
	if h.cm != nil {
		c := s.Conn()
		h.cm.StreamOpened(c, id)
		if release == nil {
			release = func() { h.cm.StreamClosed(c, id) }
		} else {
			r := release
			release = func() { r(); h.cm.StreamClosed(c, id) }
		}
	}
	if release != nil {
		s.SetOnDone(release)
	}
	return true
}

// Connect makes sure there is a connection to ai.ID, adding ai.Addrs to the
// peerstore first. It returns once this host's end of the connection is
// secured, muxed and registered: from then on ai.ID is in Peers and
// Network().ConnsToPeer, and EvtConnOpened has been emitted. Identify runs
// in the background.
//
// The peer's end is not necessarily registered yet when Connect returns:
// the dialer finishes the security handshake first (it sends the last
// handshake message, which the listener must still receive and verify), so
// the listener lists the connection some time later: about half a round
// trip, longer when the listener's CPU is busy with many handshakes, and
// never if its connection gater refuses the connection. Once IdentifyWait
// for ai.ID has returned without error, the peer has registered the
// connection: it answers identify only on connections it registered.
//
// A connection through a relay (a /p2p-circuit address) counts: Connect
// succeeds with a limited connection when nothing better comes up, as in
// go-libp2p. network.WithForceDirectDial makes it want a direct one.
func (h *Host) Connect(ctx context.Context, ai peer.AddrInfo) error {
	if len(ai.Addrs) > 0 {
		h.ps.AddAddrs(ai.ID, ai.Addrs, peerstore.TempAddrTTL)
	}
	_, err := h.swarm.DialPeer(network.WithAllowLimitedConn(ctx, "connect"), ai.ID)
	return err
}

// NewStream opens a stream to p speaking the first of protos the peer
// supports, dialing p if needed.
//
// When identify has listed one of protos, or when only one protocol is asked
// for and identify has not answered yet, the protocol is negotiated
// optimistically: the negotiation rides along with the first write and costs
// no round trip, so NewStream does not fail for a protocol the peer turns
// out not to speak; the first Read (or Close) does, with an error matching
// mss.ErrNotSupported. A peer whose identify did not list any of protos, and
// a ctx from network.WithEagerNegotiation, get a full negotiation before NewStream
// returns.
func (h *Host) NewStream(ctx context.Context, p peer.ID, protos ...protocol.ID) (network.Stream, error) {
	if len(protos) == 0 {
		return nil, errors.New("tachyon: NewStream: no protocol given")
	}
	s, err := h.swarm.NewStream(ctx, p)
	if err != nil {
		return nil, err
	}
	if !network.EagerNegotiation(ctx) {
		proto, known := h.ps.SupportsProtocol(p, protos...)
		if !known && len(protos) == 1 && len(h.ps.Protocols(p)) == 0 {
			// Nothing says the peer lacks it. Data sent behind a proposal the
			// peer refuses would be read as multistream tokens, so once
			// identify has said no, negotiate first.
			proto, known = protos[0], true
		}
		if known {
			h.trackOutbound(s, proto)
			return newLazyStream(s, proto), nil
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		s.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { s.SetDeadline(time.Unix(1, 0)) })
	id, err := mss.SelectOneOf(s, protos...)
	stop()
	if err != nil {
		s.Reset()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("tachyon: negotiating %v with %s: %w", protos, p, err)
	}
	s.SetDeadline(time.Time{})
	s.SetProtocol(id)
	h.trackOutbound(s, id)
	return s, nil
}

// trackOutbound tells the connection manager about an outbound stream, so
// protocol tags count both directions. Outbound streams are not held to
// the per-protocol stream limits: the application opens them.
func (h *Host) trackOutbound(s *swarm.Stream, id protocol.ID) {
	if h.cm == nil {
		return
	}
	c := s.Conn()
	h.cm.StreamOpened(c, id)
	s.SetOnDone(func() { h.cm.StreamClosed(c, id) })
}

// Peers returns the peers the host has at least one connection to.
func (h *Host) Peers() []peer.ID { return h.swarm.Peers() }

// ClosePeer closes every connection to p (disconnects from p).
func (h *Host) ClosePeer(p peer.ID) error {
	if err := h.swarm.ClosePeer(p); err != nil {
		return fmt.Errorf("tachyon: closing connections to %s: %w", p, err)
	}
	return nil
}

// Close closes every connection and listener, waits for every goroutine
// of the host, and closes the event bus.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		h.mu.Lock()
		h.closed = true
		h.mu.Unlock()
		h.cancel()
		if h.relaySvc != nil {
			h.relaySvc.Close() // resets the circuits, which live on handler goroutines
		}
		if h.hp != nil {
			h.hp.Close() // ends the hole punches answered on handler goroutines
		}
		h.closeAutoNAT()
		if h.webrtc != nil {
			h.webrtc.Close() // fails the /webrtc handshakes in progress
		}
		h.swarm.Close()
		h.wg.Wait()
		h.bus.Close()
	})
	return nil
}

// notifiee is the host's own wiring to the swarm, kept off the Host's API.
type notifiee struct{ h *Host }

func (n notifiee) Connected(c *swarm.Conn)    { n.h.connected(c) }
func (n notifiee) Disconnected(c *swarm.Conn) { n.h.disconnected(c) }

func connInfo(c *swarm.Conn) event.ConnInfo {
	return event.ConnInfo{
		ID:         c.ID(),
		Peer:       c.RemotePeer(),
		LocalAddr:  c.LocalMultiaddr(),
		RemoteAddr: c.RemoteMultiaddr(),
		Direction:  c.Direction(),
		State:      c.ConnState(),
		Opened:     c.Opened(),
	}
}

// connected runs on every new connection: it reports it, and identify runs
// on a peer's first connection. Events are emitted under h.mu so that those
// of one peer keep their order.
func (h *Host) connected(c *swarm.Conn) {
	h.traceInboundHandshake(c)
	p := c.RemotePeer()
	if h.cm != nil {
		h.cm.Connected(c)
	}
	h.mu.Lock()
	h.connCount[p]++
	h.bus.Emit(event.EvtConnOpened{Conn: connInfo(c)})
	if h.connCount[p] == 1 {
		h.bus.Emit(event.EvtPeerConnectedness{Peer: p, Connected: true})
	}
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.maybeHolePunch(c)
	if !c.Limited() && !swarm.IsRelayAddr(c.RemoteMultiaddr()) {
		// A direct connection (hole punch, /webrtc, a plain dial) makes
		// the relayed ones to the peer redundant.
		h.retireRelayed(p)
	}
	call := h.identified[p]
	if call != nil {
		h.mu.Unlock()
		return
	}
	call = &identifyCall{done: make(chan struct{})}
	h.identified[p] = call
	h.wg.Add(1)
	h.mu.Unlock()
	go h.identifyConn(c, call)
}

// disconnected runs when a connection is gone.
func (h *Host) disconnected(c *swarm.Conn) {
	if h.cm != nil {
		h.cm.Disconnected(c)
	}
	p := c.RemotePeer()
	h.connClosedAutoNAT(c)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bus.Emit(event.EvtConnClosed{Conn: connInfo(c)})
	h.connCount[p]--
	if h.connCount[p] > 0 {
		return
	}
	delete(h.connCount, p)
	if h.rsv != nil {
		h.rsv.PeerDisconnected(p) // takes only its own lock
	}
	if h.relaySvc != nil {
		h.relaySvc.PeerDisconnected(p) // takes only its own lock
	}
	h.bus.Emit(event.EvtPeerConnectedness{Peer: p, Connected: false})
	if call := h.identified[p]; call != nil {
		select {
		case <-call.done:
			delete(h.identified, p)
		default: // still running; it removes nothing itself
		}
	}
}

// tachyonProtocols are the protocols tachyon speaks itself: stream metrics
// name them whether or not this host serves them.
var tachyonProtocols = map[protocol.ID]bool{
	identify.ID: true, identify.PushID: true, ping.ID: true, holepunch.ID: true,
	circuit.HopID: true, circuit.StopID: true, autonatv1.ID: true,
	autonatv2.DialRequestID: true, autonatv2.DialBackID: true,
	"/perf/1.0.0": true, webrtc.SignalingProtocol: true,
}

// protoLabels is the host's swarm.StreamTracer: it hands the metrics'
// tracer protocols from a bounded set, those the host ever served and
// tachyon's own, and metrics.ProtoOther for the rest.
type protoLabels struct {
	t      swarm.StreamTracer // nil: metrics are off
	mu     sync.RWMutex
	served map[protocol.ID]bool
}

// serve adds id to the protocols named.
func (l *protoLabels) serve(id protocol.ID) {
	if l.t == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.served == nil {
		l.served = make(map[protocol.ID]bool)
	}
	l.served[id] = true
}

func (l *protoLabels) label(id protocol.ID) protocol.ID {
	if id == "" || tachyonProtocols[id] {
		return id
	}
	l.mu.RLock()
	ok := l.served[id]
	l.mu.RUnlock()
	if ok {
		return id
	}
	return metrics.ProtoOther
}

func (l *protoLabels) StreamOpened(dir network.Direction, id protocol.ID) swarm.StreamMeter {
	return l.t.StreamOpened(dir, l.label(id))
}

func (l *protoLabels) NegotiationFailed(dir network.Direction) { l.t.NegotiationFailed(dir) }
