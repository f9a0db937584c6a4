// Package websocket is the WebSocket transport: /…/tcp/N/ws, and with TLS
// /…/tcp/N/tls/ws (also written /wss) or /…/tcp/N/tls/sni/<name>/ws. Binary
// frames carry a plain byte stream that is upgraded (multistream-select,
// security, muxer) exactly like a TCP connection.
//
// Listeners register on a tcp.PortMux, so a WebSocket listener can share its
// port with the TCP transport: a connection that starts with "GET " goes to
// the /ws listener, one that starts with a TLS ClientHello to the /tls/ws
// listener, and any other to the TCP transport.
//
// The RFC 6455 handshake and framing are implemented here (handshake.go,
// frame.go, conn.go) rather than taken from a library: the transport needs
// only the handshake on a conn it already owns, binary frames, ping/pong and
// close, and owning the framing lets the conn stream payloads without
// buffering whole messages.
package websocket

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/logs"
	"github.com/tachyon-p2p/tachyon/transport/tcp"
)

// Upgrader secures and multiplexes a raw connection (see package upgrader).
type Upgrader interface {
	Upgrade(ctx context.Context, raw net.Conn, dir network.Direction, remote peer.ID, laddr, raddr ma.Multiaddr) (network.TransportConn, error)
}

// Config tunes the transport. The zero value is ready to use, without /tls/ws
// listeners.
type Config struct {
	// PortMux shares listening ports with the TCP transport; give both the
	// same one. Nil means a PortMux of the transport's own.
	PortMux *tcp.PortMux
	// TLSConfig holds the server certificate for /tls/ws listeners. Listening
	// on /tls/ws fails without it.
	TLSConfig *tls.Config
	// ClientTLSConfig is the base TLS config for dialing /tls/ws. Nil means
	// the system roots. ServerName, when empty, is taken from /sni, else the
	// DNS name, else the IP.
	ClientTLSConfig *tls.Config
	// InsecureSkipVerify dials /tls/ws without checking the server's
	// certificate (self-signed setups such as the interop tests). The libp2p
	// security handshake inside still authenticates the peer.
	InsecureSkipVerify bool
	// HandshakeTimeout bounds the TLS and HTTP handshakes of a connection,
	// before the libp2p upgrade and its own timeout. Default 15 s.
	HandshakeTimeout time.Duration
	// DialTimeout bounds the TCP connect alone. Default 10 s.
	DialTimeout time.Duration
	// Resources admits inbound handshakes on the transport's own PortMux
	// (see tcp.PortMuxConfig.Resources); a PortMux given above has its own.
	Resources network.ResourceManager
	// MaxPendingUpgrades bounds the inbound connections in their handshakes
	// on the transport's own PortMux when there is no Resources (see
	// tcp.PortMuxConfig.MaxPendingSniffs). Default 256.
	MaxPendingUpgrades int
	// Log receives inbound connections whose TLS or HTTP upgrade or libp2p
	// upgrade failed (Debug) and listeners that stop on an accept error
	// (Warn). Nil discards.
	Log *slog.Logger
}

// Transport is the WebSocket transport.
type Transport struct {
	up  Upgrader
	cfg Config
}

// New returns a WebSocket transport that upgrades connections with up.
func New(up Upgrader, cfg *Config) *Transport {
	t := &Transport{up: up}
	if cfg != nil {
		t.cfg = *cfg
	}
	t.cfg.Log = logs.Or(t.cfg.Log)
	if t.cfg.PortMux == nil {
		t.cfg.PortMux = tcp.NewPortMux(&tcp.PortMuxConfig{Log: t.cfg.Log, Resources: t.cfg.Resources, MaxPendingSniffs: t.cfg.MaxPendingUpgrades})
	}
	if t.cfg.HandshakeTimeout <= 0 {
		t.cfg.HandshakeTimeout = 15 * time.Second
	}
	if t.cfg.DialTimeout <= 0 {
		t.cfg.DialTimeout = 10 * time.Second
	}
	return t
}

// Name implements network.Transport.
func (t *Transport) Name() string { return "websocket" }

// wsAddr is a parsed WebSocket multiaddr.
type wsAddr struct {
	tcp     ma.Multiaddr // /ip4|ip6|dns|dns4|dns6/…/tcp/N
	network string       // tcp, tcp4 or tcp6
	host    string       // IP or DNS name
	port    string
	dns     bool
	secure  bool
	sni     string
	path    string
}

var (
	wsSuffix  = ma.StringCast("/ws")
	wssSuffix = ma.StringCast("/tls/ws")
)

// parseAddr accepts /ip4|ip6|dns|dns4|dns6/H/tcp/N followed by /ws, /wss,
// /tls/ws or /tls/sni/<name>/ws, then optionally /http-path/<path>.
func parseAddr(a ma.Multiaddr) (wsAddr, error) {
	var w wsAddr
	bad := fmt.Errorf("websocket: not a WebSocket address: %s", a)
	if len(a) < 3 || a[1].Code() != ma.P_TCP {
		return w, bad
	}
	switch a[0].Code() {
	case ma.P_IP4:
		w.network = "tcp4"
	case ma.P_IP6:
		w.network = "tcp6"
	case ma.P_DNS4:
		w.network, w.dns = "tcp4", true
	case ma.P_DNS6:
		w.network, w.dns = "tcp6", true
	case ma.P_DNS:
		w.network, w.dns = "tcp", true
	default:
		return w, bad
	}
	w.tcp = a[:2]
	w.host, w.port = a[0].Value(), a[1].Value()
	rest := a[2:]
	switch {
	case rest[0].Code() == ma.P_WS:
		rest = rest[1:]
	case rest[0].Code() == ma.P_WSS:
		w.secure, rest = true, rest[1:]
	case len(rest) >= 2 && rest[0].Code() == ma.P_TLS && rest[1].Code() == ma.P_WS:
		w.secure, rest = true, rest[2:]
	case len(rest) >= 3 && rest[0].Code() == ma.P_TLS && rest[1].Code() == ma.P_SNI && rest[2].Code() == ma.P_WS:
		w.secure, w.sni, rest = true, rest[1].Value(), rest[3:]
	default:
		return w, bad
	}
	w.path = "/"
	if len(rest) == 1 && rest[0].Code() == ma.P_HTTP_PATH {
		p, err := url.PathUnescape(rest[0].Value())
		if err != nil {
			return w, fmt.Errorf("websocket: %s: %w", a, err)
		}
		w.path = "/" + p
		if len(p) > 0 && p[0] == '/' {
			w.path = p
		}
		rest = rest[1:]
	}
	if len(rest) != 0 {
		return w, bad
	}
	return w, nil
}

// hostPort is the address to dial and the Host header.
func (w wsAddr) hostPort() string { return net.JoinHostPort(w.host, w.port) }

func (w wsAddr) suffix() ma.Multiaddr {
	if w.secure {
		return wssSuffix
	}
	return wsSuffix
}

// CanDial reports whether addr is a WebSocket address.
func (t *Transport) CanDial(addr ma.Multiaddr) bool {
	_, err := parseAddr(addr)
	return err == nil
}

// Dial connects to p at addr.
func (t *Transport) Dial(ctx context.Context, addr ma.Multiaddr, p peer.ID) (network.TransportConn, error) {
	w, err := parseAddr(addr)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: t.cfg.DialTimeout, KeepAlive: 30 * time.Second}
	raw, err := d.DialContext(ctx, w.network, w.hostPort())
	if err != nil {
		return nil, fmt.Errorf("websocket: dial %s: %w", addr, err)
	}
	c, err := t.clientHandshake(ctx, raw, w)
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("websocket: dial %s: %w", addr, err)
	}
	laddr, err := tcp.FromTCPAddr(raw.LocalAddr())
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("websocket: dial %s: %w", addr, err)
	}
	return t.up.Upgrade(ctx, c, network.DirOutbound, p, laddr.Encapsulate(w.suffix()), addr)
}

// clientHandshake runs TLS (for /tls/ws) and the HTTP upgrade on raw,
// within HandshakeTimeout and ctx.
func (t *Transport) clientHandshake(ctx context.Context, raw net.Conn, w wsAddr) (*Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.HandshakeTimeout)
	defer cancel()
	dl, _ := ctx.Deadline()
	raw.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	c := raw
	host := w.hostPort()
	if w.secure {
		var conf *tls.Config
		if t.cfg.ClientTLSConfig != nil {
			conf = t.cfg.ClientTLSConfig.Clone()
		} else {
			conf = &tls.Config{}
		}
		if conf.ServerName == "" {
			conf.ServerName = w.host
			if w.sni != "" {
				conf.ServerName = w.sni
			}
		}
		if w.sni != "" {
			host = net.JoinHostPort(w.sni, w.port)
		}
		conf.InsecureSkipVerify = conf.InsecureSkipVerify || t.cfg.InsecureSkipVerify
		tc := tls.Client(raw, conf)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("tls handshake: %w", err)
		}
		c = tc
	}
	key := newKey()
	if _, err := c.Write(appendUpgradeRequest(nil, host, w.path, key)); err != nil {
		return nil, fmt.Errorf("websocket: sending upgrade request: %w", err)
	}
	lr := &limitReader{r: c, n: maxHandshakeBytes}
	br := bufio.NewReader(lr)
	if err := readUpgradeResponse(br, key); err != nil {
		return nil, err
	}
	if !stop() {
		return nil, ctx.Err()
	}
	raw.SetDeadline(time.Time{})
	lr.n = -1
	return newConn(c, br, true), nil
}

// ErrNoTLSConfig is returned by Listen on /tls/ws without Config.TLSConfig.
var ErrNoTLSConfig = errors.New("websocket: /tls/ws listener needs Config.TLSConfig")

// Listen listens on addr, an /ip4|ip6/…/tcp/N/ws or /tls/ws address. The
// port is shared with other listeners of the same PortMux (see
// tcp.PortMux.Listen, which also says how port 0 is chosen). The listener
// reports /…/tcp/N/ws or /…/tcp/N/tls/ws.
func (t *Transport) Listen(addr ma.Multiaddr) (network.Listener, error) {
	w, err := parseAddr(addr)
	if err != nil || w.dns {
		return nil, fmt.Errorf("websocket: cannot listen on %s", addr)
	}
	kind := tcp.KindHTTP
	if w.secure {
		if t.cfg.TLSConfig == nil {
			return nil, ErrNoTLSConfig
		}
		kind = tcp.KindTLS
	}
	nw, host, err := manet.DialArgs(w.tcp)
	if err != nil {
		return nil, fmt.Errorf("websocket: listen on %s: %w", addr, err)
	}
	nl, err := t.cfg.PortMux.Listen(nw, host, kind)
	if err != nil {
		return nil, fmt.Errorf("websocket: %w", err)
	}
	laddr, err := manet.FromNetAddr(nl.Addr())
	if err != nil {
		nl.Close()
		return nil, fmt.Errorf("websocket: listen on %s: %w", addr, err)
	}
	s := &server{t: t, secure: w.secure, suffix: w.suffix()}
	if w.secure {
		s.tlsConf = t.cfg.TLSConfig.Clone()
	}
	return tcp.NewUpgradeListener(nl, laddr.Encapsulate(w.suffix()), t.up, t.cfg.MaxPendingUpgrades, s.prepare, t.cfg.Log), nil
}

// server runs the server side of the TLS and HTTP handshakes.
type server struct {
	t       *Transport
	secure  bool
	tlsConf *tls.Config
	suffix  ma.Multiaddr
}

// prepare is the tcp.Prepare of WebSocket listeners.
func (s *server) prepare(ctx context.Context, raw net.Conn) (net.Conn, ma.Multiaddr, ma.Multiaddr, error) {
	laddr, err := tcp.FromTCPAddr(raw.LocalAddr())
	if err != nil {
		raw.Close()
		return nil, nil, nil, err
	}
	raddr, err := tcp.FromTCPAddr(raw.RemoteAddr())
	if err != nil {
		raw.Close()
		return nil, nil, nil, err
	}
	c, err := s.handshake(ctx, raw)
	if err != nil {
		raw.Close()
		return nil, nil, nil, err
	}
	return c, laddr.Encapsulate(s.suffix), raddr.Encapsulate(s.suffix), nil
}

func (s *server) handshake(ctx context.Context, raw net.Conn) (*Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, s.t.cfg.HandshakeTimeout)
	defer cancel()
	dl, _ := ctx.Deadline()
	raw.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	c := raw
	if s.secure {
		tc := tls.Server(raw, s.tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("websocket: tls handshake: %w", err)
		}
		c = tc
	}
	lr := &limitReader{r: c, n: maxHandshakeBytes}
	br := bufio.NewReader(lr)
	key, err := readUpgradeRequest(br)
	if err != nil {
		status := 400
		var he *handshakeError
		if errors.As(err, &he) {
			status = he.status
		}
		c.Write(appendErrorResponse(nil, status))
		return nil, err
	}
	if _, err := c.Write(appendUpgradeResponse(nil, key)); err != nil {
		return nil, fmt.Errorf("websocket: sending upgrade response: %w", err)
	}
	if !stop() {
		return nil, ctx.Err()
	}
	raw.SetDeadline(time.Time{})
	lr.n = -1
	return newConn(c, br, false), nil
}
