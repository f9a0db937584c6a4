// Package tcp is the TCP transport: it dials and listens on /ip4|ip6/…/tcp/N
// addresses and hands each raw connection to an upgrader for security and
// multiplexing.
package tcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/logs"
)

// Upgrader secures and multiplexes a raw connection (see package upgrader).
type Upgrader interface {
	Upgrade(ctx context.Context, raw net.Conn, dir network.Direction, remote peer.ID, laddr, raddr ma.Multiaddr) (network.TransportConn, error)
}

// Config tunes the transport. The zero value is ready to use.
type Config struct {
	// Resources admits inbound handshakes on the transport's own PortMux
	// (see PortMuxConfig.Resources); a PortMux given below has its own.
	// Connections are admitted by the Upgrader's manager once the peer is
	// known.
	Resources network.ResourceManager
	// MaxPendingUpgrades bounds the inbound connections in their handshakes
	// on the transport's own PortMux when there is no Resources (see
	// PortMuxConfig.MaxPendingSniffs); over it they are closed at once.
	// Default 256.
	MaxPendingUpgrades int
	// DialTimeout bounds the TCP connect alone. Default 10 s.
	DialTimeout time.Duration
	// PortMux shares listening ports with other transports: give the
	// WebSocket transport the same one to serve /tcp/P and /tcp/P/ws on one
	// socket. Nil means a PortMux of the transport's own.
	PortMux *PortMux
	// Log receives what the transport drops on its own: failed inbound
	// upgrades (Debug) and listeners that stop on an accept error (Warn).
	// Nil discards.
	Log *slog.Logger
	// NoPortReuse makes dials leave from ephemeral ports, and the
	// transport's own PortMux bind without SO_REUSEPORT. By default (on
	// Linux and macOS) a dial leaves from the port of a listening socket of
	// the PortMux, so that the address peers observe is the one we listen
	// on, as NAT traversal and hole punching need (see reuse.go); a
	// PortMux given above decides for its own sockets
	// (PortMuxConfig.NoPortReuse).
	NoPortReuse bool
}

// Transport is the TCP transport.
type Transport struct {
	up  Upgrader
	cfg Config
}

// New returns a TCP transport that upgrades connections with up.
func New(up Upgrader, cfg *Config) *Transport {
	t := &Transport{up: up}
	if cfg != nil {
		t.cfg = *cfg
	}
	if t.cfg.DialTimeout <= 0 {
		t.cfg.DialTimeout = 10 * time.Second
	}
	t.cfg.Log = logs.Or(t.cfg.Log)
	if t.cfg.PortMux == nil {
		t.cfg.PortMux = NewPortMux(&PortMuxConfig{Log: t.cfg.Log, Resources: t.cfg.Resources, MaxPendingSniffs: t.cfg.MaxPendingUpgrades, NoPortReuse: t.cfg.NoPortReuse})
	}
	return t
}

// Name implements network.Transport.
func (t *Transport) Name() string { return "tcp" }

// CanDial accepts /ip4|ip6/…/tcp/N, optionally followed by /tls or /noise:
// an address that names its security protocol, which the upgrader then
// starts without negotiating it (see upgrader.NamedSecurity).
func (t *Transport) CanDial(addr ma.Multiaddr) bool {
	switch len(addr) {
	case 2:
	case 3:
		if c := addr[2].Code(); c != ma.P_TLS && c != ma.P_NOISE {
			return false
		}
	default:
		return false
	}
	return isIPTCP(addr)
}

// CanListen accepts /ip4|ip6/…/tcp/N only: a listener accepts every
// security protocol on its port, and the host advertises the named forms.
func (t *Transport) CanListen(addr ma.Multiaddr) bool {
	return len(addr) == 2 && isIPTCP(addr)
}

func isIPTCP(addr ma.Multiaddr) bool {
	switch addr[0].Code() {
	case ma.P_IP4, ma.P_IP6:
	default:
		return false
	}
	return addr[1].Code() == ma.P_TCP
}

// Dial connects to p at addr. It leaves from the port of a listening
// socket of the same address family when there is one (unless
// Config.NoPortReuse), else from an ephemeral port.
//
// Hole punching: when ctx comes from network.WithSimultaneousConnect, both
// peers dial each other at once from their listening ports, the crossing
// SYNs make one TCP connection (simultaneous open), and the upgrade runs in
// the role ctx names (see package upgrader); the connection is DirOutbound
// on both sides. Such a dial never falls back to an ephemeral port: when
// the peer's SYN reached our listener first, that listener accepts an
// inbound connection from the peer on the same 4-tuple, and the dial fails
// at once with ErrPortInUse.
func (t *Transport) Dial(ctx context.Context, addr ma.Multiaddr, p peer.ID) (network.TransportConn, error) {
	if !t.CanDial(addr) {
		return nil, fmt.Errorf("tcp: cannot dial %s", addr)
	}
	nw, host, err := manet.DialArgs(addr[:2])
	if err != nil {
		return nil, fmt.Errorf("tcp: dial %s: %w", addr, err)
	}
	d := net.Dialer{Timeout: t.cfg.DialTimeout, KeepAliveConfig: keepAlive}
	var raw net.Conn
	if t.cfg.NoPortReuse {
		raw, err = d.DialContext(ctx, nw, host)
	} else {
		raw, err = t.cfg.PortMux.Dial(ctx, d, nw, host)
	}
	if err != nil {
		return nil, fmt.Errorf("tcp: dial %s: %w", addr, err)
	}
	laddr, err := FromTCPAddr(raw.LocalAddr())
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("tcp: dial %s: %w", addr, err)
	}
	// ctx carries the simultaneous-open role to the upgrader.
	return t.up.Upgrade(ctx, raw, network2dir(true), p, laddr, addr)
}

// keepAlive is the TCP keepalive of every connection: probes after 30 s of
// silence, then every 15 s. The probe count is left to the kernel (9 on
// Linux, what Go would set), one setsockopt less per connection.
var keepAlive = net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 15 * time.Second, Count: -1}

func network2dir(outbound bool) network.Direction {
	if outbound {
		return network.DirOutbound
	}
	return network.DirInbound
}

// Listen listens on addr. Port 0 picks a free port, or joins the port of
// another transport's listener on the same IP (see PortMux.Listen).
func (t *Transport) Listen(addr ma.Multiaddr) (network.Listener, error) {
	if !t.CanListen(addr) {
		return nil, fmt.Errorf("tcp: cannot listen on %s", addr)
	}
	nw, host, err := manet.DialArgs(addr)
	if err != nil {
		return nil, fmt.Errorf("tcp: listen on %s: %w", addr, err)
	}
	nl, err := t.cfg.PortMux.Listen(nw, host, KindMultistream)
	if err != nil {
		return nil, err
	}
	laddr, err := manet.FromNetAddr(nl.Addr())
	if err != nil {
		nl.Close()
		return nil, fmt.Errorf("tcp: listen on %s: %w", addr, err)
	}
	return NewUpgradeListener(nl, laddr, t.up, t.cfg.MaxPendingUpgrades, nil, t.cfg.Log), nil
}

// ErrListenerClosed is returned by Accept after Close.
var ErrListenerClosed = errors.New("tcp: listener closed")

// Prepare turns a raw inbound connection into the byte stream to upgrade (a
// WebSocket listener runs its HTTP handshake here) and returns the
// multiaddrs of the stream's two ends. It must return once ctx is done and
// close raw when it fails.
type Prepare func(ctx context.Context, raw net.Conn) (c net.Conn, laddr, raddr ma.Multiaddr, err error)

// NewUpgradeListener accepts raw connections from nl and upgrades each in a
// goroutine of its own, so a slow handshake never holds up the others; Accept
// on nl is never held back. Connections from a PortMux Listener were admitted
// by their socket (PortMuxConfig), and their slot ends with the upgrade
// (HandshakeDone). Others get the built-in caps: maxPending in all (default
// 256) and 16 per IP (loopback exempt); over them a connection is closed at
// once. prepare, if not nil, runs before the upgrade. The returned listener
// owns nl and reports laddr as its address. log (nil discards) gets inbound
// connections that fail to prepare or upgrade or are refused (Debug, refusals
// at most once a second), and an accept error that stops the listener
// (Warn).
func NewUpgradeListener(nl net.Listener, laddr ma.Multiaddr, up Upgrader, maxPending int, prepare Prepare, log *slog.Logger) network.Listener {
	if prepare == nil {
		prepare = prepareRaw
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &listener{
		up:      up,
		prepare: prepare,
		nl:      nl,
		laddr:   laddr,
		log:     logs.Or(log),
		ctx:     ctx,
		cancel:  cancel,
		conns:   make(chan network.TransportConn),
		gate:    newGate(nil, maxPending, 0),
	}
	l.refusals.log = l.log
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

func prepareRaw(_ context.Context, raw net.Conn) (net.Conn, ma.Multiaddr, ma.Multiaddr, error) {
	laddr, err := FromTCPAddr(raw.LocalAddr())
	if err != nil {
		raw.Close()
		return nil, nil, nil, err
	}
	raddr, err := FromTCPAddr(raw.RemoteAddr())
	if err != nil {
		raw.Close()
		return nil, nil, nil, err
	}
	return raw, laddr, raddr, nil
}

type listener struct {
	up       Upgrader
	prepare  Prepare
	nl       net.Listener
	laddr    ma.Multiaddr
	log      *slog.Logger
	ctx      context.Context
	cancel   context.CancelFunc
	conns    chan network.TransportConn
	gate     *gate // for conns not admitted by a PortMux
	refusals refusalLog
	wg       sync.WaitGroup
	once     sync.Once

	mu  sync.Mutex
	err error // why the accept loop stopped, unless Close stopped it
}

// acceptLoop accepts raw connections and upgrades each in its own goroutine.
func (l *listener) acceptLoop() {
	defer l.wg.Done()
	defer l.cancel()
	for {
		raw, err := l.nl.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			l.mu.Lock()
			failed := l.ctx.Err() == nil
			if failed {
				l.err = err
			}
			l.mu.Unlock()
			if failed {
				l.log.Warn("listener stopped: accept failed", "addr", l.laddr, "err", err)
			}
			return
		}
		if _, admitted := raw.(*peekedConn); !admitted {
			done, err := l.gate.begin(remoteIP(raw))
			if err != nil {
				raw.Close()
				l.refusals.refused(l.laddr, raw, err)
				continue
			}
			raw = &peekedConn{Conn: raw, done: done}
		}
		l.wg.Add(1)
		go l.upgrade(raw)
	}
}

func (l *listener) upgrade(raw net.Conn) {
	defer l.wg.Done()
	defer HandshakeDone(raw)
	c, laddr, raddr, err := l.prepare(l.ctx, raw)
	if err != nil {
		if l.ctx.Err() == nil {
			l.log.Debug("inbound connection failed before its upgrade", "addr", l.laddr, "remote", raw.RemoteAddr(), "err", err)
		}
		return
	}
	tc, err := l.up.Upgrade(l.ctx, c, network.DirInbound, "", laddr, raddr)
	if err != nil {
		// A failed inbound handshake concerns only that peer; the upgrader
		// closed the conn.
		if l.ctx.Err() == nil {
			l.log.Debug("inbound upgrade failed", "addr", l.laddr, "remote", raddr, "err", err)
		}
		return
	}
	select {
	case l.conns <- tc:
	case <-l.ctx.Done():
		tc.Close()
	}
}

func (l *listener) Accept() (network.TransportConn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.ctx.Done():
		l.mu.Lock()
		err := l.err
		l.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("tcp: accept on %s: %w", l.laddr, err)
		}
		return nil, ErrListenerClosed
	}
}

func (l *listener) Close() error {
	l.once.Do(func() {
		l.cancel()
		l.nl.Close()
		l.wg.Wait()
	})
	return nil
}

func (l *listener) Multiaddrs() []ma.Multiaddr { return []ma.Multiaddr{l.laddr} }
