package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	ma "github.com/multiformats/go-multiaddr"
)

// Protocol ids of the connection upgrade.
const (
	SecNoise = "/noise"
	SecTLS   = "/tls/1.0.0"
	YamuxID  = "/yamux/1.0.0"
)

// Config says how a Peer behaves.
type Config struct {
	Mode Mode
	// Security is SecNoise or SecTLS: what the peer proposes as a dialer
	// and the only one it accepts as a listener (TCP and WebSocket).
	Security string
	// EarlyMuxer offers yamux inside the security handshake (Noise
	// extensions, TLS ALPN; connections/inlined-muxer-negotiation.md). By
	// default the muxer is negotiated over multistream, as rust-libp2p does.
	EarlyMuxer bool
	// ProposeFirst, when set, is proposed before each protocol of the
	// connection upgrade, for the listener to refuse with "na": it
	// exercises na and retry.
	ProposeFirst string
	// AgentVersion goes in identify.
	AgentVersion string
}

// Peer is a libp2p host made of this package's parts. It serves identify,
// identify push, ping, perf and echo on every inbound stream.
type Peer struct {
	Identity *Identity
	cfg      Config

	ctx    context.Context // ends with Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // accept loops, upgrades, stream handlers

	mu          sync.Mutex
	violations  []error
	handlerErrs []error
	protocols   []string
	listenAddrs []ma.Multiaddr
	listeners   []io.Closer
	conns       []*Conn
	closed      bool
	inbound     chan *Conn
}

// New makes a peer with a fresh identity.
func New(cfg Config) (*Peer, error) {
	if cfg.Security == "" {
		cfg.Security = SecNoise
	}
	if cfg.AgentVersion == "" {
		cfg.AgentVersion = "conformance-peer/" + cfg.Mode.String()
	}
	id, err := NewIdentity()
	if err != nil {
		return nil, fmt.Errorf("peer: %w", err)
	}
	p := &Peer{
		Identity:  id,
		cfg:       cfg,
		protocols: []string{IdentifyID, IdentifyPushID, PingID, PerfID, EchoID},
		inbound:   make(chan *Conn, 16),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p, nil
}

// ID is the peer's ID.
func (p *Peer) ID() string { return p.Identity.ID }

// Violations returns every breach of a spec seen from remotes.
func (p *Peer) Violations() []error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.violations)
}

// HandlerErrors returns the errors of inbound stream handlers other than
// violations (a stream the remote reset, for instance), for diagnosis.
func (p *Peer) HandlerErrors() []error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.handlerErrs)
}

// check records err if it is a violation, and returns it.
func (p *Peer) check(err error) error {
	if err != nil && isViolation(err) {
		p.mu.Lock()
		p.violations = append(p.violations, err)
		p.mu.Unlock()
	}
	return err
}

// AddProtocol announces id too (in identify; streams of it are echoed),
// for a later Push to tell the remote about.
func (p *Peer) AddProtocol(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !slices.Contains(p.protocols, id) {
		p.protocols = append(p.protocols, id)
	}
}

// Protocols lists the protocols the peer serves.
func (p *Peer) Protocols() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.protocols)
}

// ListenAddrs are the addresses the peer listens on.
func (p *Peer) ListenAddrs() []ma.Multiaddr {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.listenAddrs)
}

// Accept returns the next inbound connection, once upgraded.
func (p *Peer) Accept(ctx context.Context) (*Conn, error) {
	select {
	case c := <-p.inbound:
		return c, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("peer: waiting for an inbound connection: %w", ctx.Err())
	}
}

// Close closes every listener and connection and waits for every
// goroutine of the peer.
func (p *Peer) Close() error {
	p.mu.Lock()
	p.closed = true
	ls, cs := p.listeners, p.conns
	p.listeners, p.conns = nil, nil
	p.mu.Unlock()
	p.cancel()
	for _, l := range ls {
		l.Close()
	}
	for _, c := range cs {
		c.Close()
	}
	p.wg.Wait()
	// Connections that finished their upgrade while closing.
	for {
		select {
		case c := <-p.inbound:
			c.Close()
		default:
			return nil
		}
	}
}

// addListener registers l, unless the peer is closed.
func (p *Peer) addListener(l io.Closer, addr ma.Multiaddr) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		l.Close()
		return errors.New("peer: closed")
	}
	p.listeners = append(p.listeners, l)
	p.listenAddrs = append(p.listenAddrs, addr)
	return nil
}

// goAccept runs accept in a loop owned by the peer, upgrading each raw
// connection on a goroutine of its own.
func (p *Peer) goAccept(accept func() (net.Conn, error), transport string, suffix string) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			raw, err := accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				ctx, cancel := context.WithTimeout(p.ctx, DefaultTimeout)
				defer cancel()
				c, err := p.upgrade(ctx, raw, false, "", transport, suffix)
				if err != nil {
					p.check(err)
					p.addHandlerErr(fmt.Errorf("upgrading inbound %s connection: %w", transport, err))
					return
				}
				select {
				case p.inbound <- c:
				default:
					c.Close() // nobody accepts: drop it
				}
			}()
		}
	}()
}

func (p *Peer) addHandlerErr(err error) {
	p.mu.Lock()
	p.handlerErrs = append(p.handlerErrs, err)
	p.mu.Unlock()
}

// ListenTCP listens on hostport (e.g. 127.0.0.1:0) and returns the
// multiaddr to dial.
func (p *Peer) ListenTCP(hostport string) (ma.Multiaddr, error) {
	l, err := net.Listen("tcp", hostport)
	if err != nil {
		return nil, fmt.Errorf("peer: listening on tcp %s: %w", hostport, err)
	}
	addr, err := toMultiaddr(l.Addr(), "tcp", "")
	if err != nil {
		l.Close()
		return nil, err
	}
	if err := p.addListener(l, addr); err != nil {
		return nil, err
	}
	p.goAccept(l.Accept, "tcp", "")
	return addr, nil
}

// DialTCP connects to hostport and upgrades the connection; remoteID is
// the peer expected there.
func (p *Peer) DialTCP(ctx context.Context, hostport, remoteID string) (*Conn, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return nil, fmt.Errorf("peer: dialing tcp %s: %w", hostport, err)
	}
	c, err := p.upgrade(ctx, raw, true, remoteID, "tcp", "")
	return c, p.check(err)
}

// toMultiaddr turns a TCP or UDP address into /ip4|ip6/.../tcp|udp/port
// followed by suffix (e.g. "/ws", "/quic-v1").
func toMultiaddr(a net.Addr, network, suffix string) (ma.Multiaddr, error) {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return nil, fmt.Errorf("peer: address %s: %w", a, err)
	}
	ip := net.ParseIP(host)
	fam := "ip4"
	if ip == nil {
		return nil, fmt.Errorf("peer: address %s is not an IP address", a)
	}
	if ip.To4() == nil {
		fam = "ip6"
	}
	if _, err := strconv.Atoi(port); err != nil {
		return nil, fmt.Errorf("peer: port of %s: %w", a, err)
	}
	m, err := ma.NewMultiaddr("/" + fam + "/" + host + "/" + network + "/" + port + suffix)
	if err != nil {
		return nil, fmt.Errorf("peer: multiaddr of %s: %w", a, err)
	}
	return m, nil
}

// bound sets c's deadline from ctx (DefaultTimeout when ctx has none) and
// forces it into the past when ctx ends; stop undoes both.
func bound(ctx context.Context, c interface{ SetDeadline(time.Time) error }) (stop func()) {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(DefaultTimeout)
	}
	c.SetDeadline(dl)
	cancel := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	return func() {
		cancel()
		c.SetDeadline(time.Time{})
	}
}

// proposals is what the peer proposes for want, with the refused decoy
// first when configured.
func (p *Peer) proposals(want string) []string {
	if p.cfg.ProposeFirst != "" {
		return []string{p.cfg.ProposeFirst, want}
	}
	return []string{want}
}

// upgrade secures raw and starts yamux on it (specs connections/README.md,
// "Upgrading Connections"): multistream for the security protocol, its
// handshake, then multistream for the muxer over the secured channel
// (unless the handshake agreed on one).
func (p *Peer) upgrade(ctx context.Context, raw net.Conn, dialer bool, remoteID, transport, suffix string) (*Conn, error) {
	c, err := p.upgradeConn(ctx, raw, dialer, remoteID)
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("peer: upgrading %s connection to %s: %w", transport, raw.RemoteAddr(), err)
	}
	conn := &Conn{p: p, Transport: transport, EarlyMuxer: c.early}
	conn.Local, _ = toMultiaddr(raw.LocalAddr(), "tcp", suffix)
	conn.Remote, _ = toMultiaddr(raw.RemoteAddr(), "tcp", suffix)
	conn.yamux = NewYamux(c.conn, dialer, p.cfg.Mode, c.remoteID, func(err error) { p.check(err) })
	conn.Session = conn.yamux
	if err := p.addConn(conn); err != nil {
		return nil, err
	}
	return conn, nil
}

type secured struct {
	conn     net.Conn
	remoteID string
	early    bool // the handshake chose the muxer
}

func (p *Peer) upgradeConn(ctx context.Context, raw net.Conn, dialer bool, remoteID string) (secured, error) {
	mode := p.cfg.Mode
	stop := bound(ctx, raw)
	defer stop()
	if mode == Split {
		// The upgrade goes byte by byte; afterwards yamux splits each
		// frame header (and small payloads) into writes of their own, but
		// bulk data goes whole, or a MiB would take a million writes.
		sc := &splitUntil{Conn: raw}
		sc.split.Store(true)
		defer sc.split.Store(false)
		raw = sc
	}
	var muxers []string
	if p.cfg.EarlyMuxer {
		muxers = []string{YamuxID}
	}

	// Security, over multistream on the raw connection.
	sec := p.cfg.Security
	conn := raw
	switch {
	case !dialer:
		if _, err := SelectListener(raw, []string{sec}, mode); err != nil {
			return secured{}, fmt.Errorf("negotiating security: %w", err)
		}
	case mode == Pipelined && p.cfg.ProposeFirst == "":
		// Header and proposal go with the first handshake message.
		conn = &lazyConn{Conn: raw, proto: sec}
	default:
		if _, err := SelectDialer(raw, p.proposals(sec), mode); err != nil {
			return secured{}, fmt.Errorf("negotiating security: %w", err)
		}
	}
	var s secured
	var early bool
	switch sec {
	case SecNoise:
		// splitUntil paces Split's handshake; the mode given to Noise
		// would split its transport writes too.
		nmode := mode
		if nmode == Split {
			nmode = Strict
		}
		res, err := Noise(ctx, conn, p.Identity, dialer, remoteID, muxers, nmode)
		if err != nil {
			return secured{}, err
		}
		s = secured{conn: res.Conn, remoteID: res.RemoteID}
		early = p.cfg.EarlyMuxer && slices.Contains(res.RemoteMuxers, YamuxID)
	default:
		var err error
		if s, early, err = p.secureOther(ctx, conn, dialer, remoteID); err != nil {
			return secured{}, err
		}
	}
	if early {
		s.early = true
		return s, nil
	}

	// The muxer, over multistream on the secured channel.
	stop2 := bound(ctx, raw) // the handshake cleared the deadline
	defer stop2()
	switch {
	case !dialer:
		if _, err := SelectListener(s.conn, []string{YamuxID}, mode); err != nil {
			return secured{}, fmt.Errorf("negotiating the muxer: %w", err)
		}
	case mode == Pipelined && p.cfg.ProposeFirst == "":
		// Header and proposal go out now (with Noise's message 3); the
		// answer is read ahead of yamux's first frame.
		lc := &lazyConn{Conn: s.conn, proto: YamuxID}
		if err := lc.flush(); err != nil {
			return secured{}, fmt.Errorf("proposing the muxer: %w", err)
		}
		s.conn = lc
	default:
		if _, err := SelectDialer(s.conn, p.proposals(YamuxID), mode); err != nil {
			return secured{}, fmt.Errorf("negotiating the muxer: %w", err)
		}
	}
	return s, nil
}

func (p *Peer) addConn(c *Conn) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.Session.Close()
		return errors.New("peer: closed")
	}
	p.conns = append(p.conns, c)
	p.mu.Unlock()
	c.pushes = make(chan *IdentifyMsg, 16)
	c.done = make(chan struct{})
	p.wg.Add(1)
	go c.serve()
	return nil
}

// Conn is an upgraded connection to one remote peer.
type Conn struct {
	Session
	p         *Peer
	Transport string
	// Local and Remote are the connection's addresses, for identify's
	// observedAddr; nil where the transport does not tell.
	Local, Remote ma.Multiaddr

	yamux  *Yamux // nil on QUIC
	pushes chan *IdentifyMsg
	done   chan struct{} // closed when serve stops: the session is over
	// EarlyMuxer says the security handshake chose yamux (no multistream
	// for the muxer).
	EarlyMuxer bool
}

// Yamux is the connection's yamux session (nil on QUIC).
func (c *Conn) Yamux() *Yamux { return c.yamux }

// Pushes delivers identify pushes from the remote.
func (c *Conn) Pushes() <-chan *IdentifyMsg { return c.pushes }

// serve accepts inbound streams until the session ends.
func (c *Conn) serve() {
	defer c.p.wg.Done()
	defer close(c.done)
	for {
		// QUIC's AcceptStream gives up after DefaultTimeout unless the
		// context has a deadline: give it one far away.
		ctx, cancel := context.WithTimeout(c.p.ctx, time.Hour)
		s, err := c.AcceptStream(ctx)
		cancel()
		if err != nil {
			return
		}
		c.p.wg.Add(1)
		go func() {
			defer c.p.wg.Done()
			if err := c.p.check(c.handle(s)); err != nil {
				c.p.addHandlerErr(err)
				s.Reset()
			}
		}()
	}
}

// handle negotiates an inbound stream and serves it.
func (c *Conn) handle(s Stream) error {
	s.SetDeadline(time.Now().Add(DefaultTimeout))
	mode := c.p.cfg.Mode
	proto, err := SelectListener(s, append(c.p.Protocols(), EchoUnlistedID), mode)
	if err != nil {
		return fmt.Errorf("inbound stream: %w", err)
	}
	switch proto {
	case IdentifyID:
		if err := writeIdentify(s, c.identifyMsg(), mode); err != nil {
			return err
		}
		return closeDone(s)
	case IdentifyPushID:
		m, err := readIdentify(s, c.RemoteID())
		if err != nil {
			return fmt.Errorf("identify push: %w", err)
		}
		select {
		case c.pushes <- m:
		default:
		}
		return closeDone(s)
	case PingID:
		return servePing(s, mode)
	case PerfID:
		return servePerf(s)
	default:
		return serveEcho(s)
	}
}

func (c *Conn) identifyMsg() *IdentifyMsg {
	m := &IdentifyMsg{
		ProtocolVersion: "ipfs/0.1.0",
		AgentVersion:    c.p.cfg.AgentVersion,
		PublicKey:       c.p.Identity.PubKeyPB,
		Protocols:       c.p.Protocols(),
	}
	for _, a := range c.p.ListenAddrs() {
		m.ListenAddrs = append(m.ListenAddrs, a.Bytes())
	}
	if c.Remote != nil {
		m.ObservedAddr = c.Remote.Bytes()
	}
	return m
}

// NewStream opens a stream and negotiates the first of protos the remote
// takes. A Pipelined peer proposing a single protocol does so without a
// round trip: the proposal goes with the first data.
func (c *Conn) NewStream(ctx context.Context, protos ...string) (Stream, string, error) {
	s, err := c.OpenStream(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("peer: opening a stream: %w", err)
	}
	if c.p.cfg.Mode == Pipelined && len(protos) == 1 {
		return newLazyStream(s, protos[0]), protos[0], nil
	}
	stop := bound(ctx, s)
	defer stop()
	proto, err := SelectDialer(s, protos, c.p.cfg.Mode)
	if err != nil {
		s.Reset()
		return nil, "", c.p.check(fmt.Errorf("peer: negotiating %v: %w", protos, err))
	}
	return s, proto, nil
}

// run opens a stream of proto and runs f on it, bounded by ctx.
func (c *Conn) run(ctx context.Context, proto string, f func(Stream) error) error {
	s, _, err := c.NewStream(ctx, proto)
	if err != nil {
		return err
	}
	stop := bound(ctx, s)
	defer stop()
	if err := f(s); err != nil {
		s.Reset()
		return c.p.check(fmt.Errorf("peer: %s: %w", proto, err))
	}
	return nil
}

// Ping sends count pings on one stream.
func (c *Conn) Ping(ctx context.Context, count int) error {
	return c.run(ctx, PingID, func(s Stream) error { return PingStream(s, count, c.p.cfg.Mode) })
}

// Identify asks the remote who it is and checks the answer.
func (c *Conn) Identify(ctx context.Context) (*IdentifyMsg, error) {
	var m *IdentifyMsg
	err := c.run(ctx, IdentifyID, func(s Stream) error {
		// The requester sends nothing: half-close at once (a Pipelined
		// stream sends its proposal with the FIN). A responder that has
		// answered and stopped reading (QUIC STOP_SENDING) makes this
		// fail, which is no failure of identify.
		s.CloseWrite()
		var err error
		if m, err = readIdentify(s, c.RemoteID()); err != nil {
			return err
		}
		return closeDone(s)
	})
	return m, err
}

// Push sends the peer's identify unasked.
func (c *Conn) Push(ctx context.Context) error {
	return c.run(ctx, IdentifyPushID, func(s Stream) error {
		if err := writeIdentify(s, c.identifyMsg(), c.p.cfg.Mode); err != nil {
			return err
		}
		if err := s.CloseWrite(); err != nil {
			return fmt.Errorf("half-closing: %w", err)
		}
		// The remote closes once it has the message.
		if _, err := io.Copy(io.Discard, s); err != nil {
			return fmt.Errorf("waiting for the remote to close: %w", err)
		}
		return closeDone(s)
	})
}

// Echo sends data on an echo stream and checks it comes back.
func (c *Conn) Echo(ctx context.Context, data []byte) error {
	return c.run(ctx, EchoID, func(s Stream) error { return EchoStream(s, data) })
}

// Perf runs one perf exchange as the client.
func (c *Conn) Perf(ctx context.Context, up, down uint64) error {
	return c.run(ctx, PerfID, func(s Stream) error { return PerfClient(s, up, down, c.p.cfg.Mode) })
}

// hostPort returns the host:port of a /ip4|ip6/.../tcp|udp/... multiaddr.
func hostPort(a ma.Multiaddr) (string, error) {
	var host, port string
	for _, c := range a {
		switch c.Code() {
		case ma.P_IP4, ma.P_IP6:
			host = c.Value()
		case ma.P_TCP, ma.P_UDP:
			port = c.Value()
		}
	}
	if host == "" || port == "" {
		return "", fmt.Errorf("peer: %s has no IP address and port", a)
	}
	return net.JoinHostPort(host, port), nil
}

// splitUntil writes byte by byte while split is set.
type splitUntil struct {
	net.Conn
	split atomic.Bool
}

func (c *splitUntil) Write(b []byte) (int, error) {
	if c.split.Load() {
		return splitWriter{c.Conn}.Write(b)
	}
	return c.Conn.Write(b)
}

// CloseWrite passes a half-close through when the wrapped conn has one.
func (c *splitUntil) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// Done is closed when the connection's session is over.
func (c *Conn) Done() <-chan struct{} { return c.done }
