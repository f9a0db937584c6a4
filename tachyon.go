// Package tachyon is a libp2p node. New wires the stack together:
//
//	tachyon.Host ── protocols (ping, identify) ── swarm ── transports: tcp, ws ── upgrader ── security (noise, tls) ── muxer (yamux)
//	                                                                  quic-v1, webtransport, webrtc-direct (pion)
//	                                                                  (one UDP socket per address: udpmux)
//
// This file is the only place where concrete transports, security protocols
// and services are named.
//
// Where to find things:
//
//   - connected peers: Host.Peers; connections: Host.Network().Conns and
//     ConnsToPeer (addresses, direction, transport, security, muxer,
//     stream count); is a peer connected: Network().Connectedness
//   - a stream's connection and remote address: Stream.Conn(),
//     Stream.RemoteMultiaddr
//   - disconnecting: Host.ClosePeer
//   - what a peer said about itself: Host.IdentifyWait, the peerstore
//     (Host.Peerstore), event.EvtPeerIdentified
//   - events (connections, identify, protocol and address changes):
//     Host.EventBus and package event
//   - timeouts: DefaultDialTimeout and the DialTimeout option for dials;
//     every blocking call also takes a context
//   - which transports, security protocols and muxers run: the Transports,
//     Security and Muxers options; which connections are allowed: the
//     ConnectionGater option
package tachyon

import (
	"fmt"
	"io"
	"log/slog"
	"slices"

	ma "github.com/multiformats/go-multiaddr"
	quicgo "github.com/quic-go/quic-go"

	"github.com/tachyon-p2p/tachyon/connmgr"
	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/dialrank"
	"github.com/tachyon-p2p/tachyon/metrics"
	"github.com/tachyon-p2p/tachyon/muxer/yamux"
	"github.com/tachyon-p2p/tachyon/peerstore"
	"github.com/tachyon-p2p/tachyon/protocol/identify"
	"github.com/tachyon-p2p/tachyon/protocol/ping"
	"github.com/tachyon-p2p/tachyon/security/noise"
	"github.com/tachyon-p2p/tachyon/security/plaintext"
	tlssec "github.com/tachyon-p2p/tachyon/security/tls"
	"github.com/tachyon-p2p/tachyon/swarm"
	"github.com/tachyon-p2p/tachyon/transport/quic"
	"github.com/tachyon-p2p/tachyon/transport/relayed"
	"github.com/tachyon-p2p/tachyon/transport/tcp"
	"github.com/tachyon-p2p/tachyon/transport/udpmux"
	"github.com/tachyon-p2p/tachyon/transport/webrtc"
	"github.com/tachyon-p2p/tachyon/transport/websocket"
	"github.com/tachyon-p2p/tachyon/transport/webtransport"
	"github.com/tachyon-p2p/tachyon/upgrader"
)

// Version is the tachyon release; the default agent version carries it.
const Version = "0.1.0"

// New builds and starts a host. It listens on the configured addresses
// before returning. On error, whatever it built is closed again.
//
// Without options, a host has a fresh Ed25519 identity, every transport
// (TCP, WebSocket, QUIC, WebTransport, WebRTC-direct), TLS and Noise, yamux,
// and listens nowhere (it only dials).
func New(opts ...Option) (_ *Host, err error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	id, err := peer.IDFromPrivateKey(cfg.key)
	if err != nil {
		return nil, fmt.Errorf("tachyon: peer ID of identity: %w", err)
	}
	// Metrics first: the limits report their refusals to them.
	if cfg.promReg != nil {
		if cfg.metrics, err = metrics.New(cfg.promReg); err != nil {
			return nil, fmt.Errorf("tachyon: %w", err)
		}
	}
	rm, lim, err := newResources(cfg)
	if err != nil {
		return nil, fmt.Errorf("tachyon: limits: %w", err)
	}
	cfg.rm = rm
	if lim != nil && cfg.handshakeTimout == 0 {
		cfg.handshakeTimout = lim.Config().HandshakeTimeout
	}
	up, err := newUpgrader(cfg, cfg.securityFor(TCP))
	if err != nil {
		return nil, err
	}
	transports, err := newTransports(cfg, up)
	if err != nil {
		return nil, err
	}
	var rt *relayed.Transport
	if !cfg.noRelayClient {
		rt = newRelayedTransport(cfg, up)
		transports = append(transports, rt)
	}
	pw, err := newPrivateWebRTC(cfg)
	if err != nil {
		return nil, err
	}
	if pw != nil {
		transports = append(transports, pw)
	}
	ps := cfg.peerstore
	if ps == nil {
		ps = peerstore.New()
	}
	rtts := dialrank.NewRTTs(nil)
	fails := new(dialFailures) // Status's recent dial failures
	scfg := &swarm.Config{DialTimeout: cfg.dialTimeout, Gater: cfg.gater, Log: cfg.log.With("component", "swarm"),
		RTTs: rtts, DialTrace: fails.hook(cfg.dialTrace), Tracer: cfg.metrics.Swarm()}
	labels := &protoLabels{}
	if st := cfg.metrics.Streams(); st != nil {
		labels.t = st
		scfg.Streams = labels
	}
	if cfg.resolver != nil {
		scfg.Resolver = cfg.resolver
	}
	sw := swarm.New(id, ps, transports, scfg)
	h := newHost(cfg, id, ps, sw, rm)
	h.labels = labels
	h.lim = lim
	h.rtts = rtts
	h.dialFails = fails
	h.relayed = rt
	h.webrtc = pw
	defer func() {
		if err != nil {
			h.Close()
		}
	}()
	if err := h.startServices(); err != nil {
		return nil, err
	}
	if err := h.startAutoNAT(); err != nil {
		return nil, err
	}
	// Hole punching first: the relay client's listener may hand over a
	// relayed connection at once.
	if err := h.startHolePunching(); err != nil {
		return nil, err
	}
	if err := h.startRelayClient(); err != nil {
		return nil, err
	}
	if err := h.startRelayService(); err != nil {
		return nil, err
	}
	if err := h.startPrivateWebRTC(); err != nil {
		return nil, err
	}
	h.startAddrsLoop()
	if len(cfg.listen) > 0 {
		if err := sw.Listen(cfg.listen...); err != nil {
			return nil, fmt.Errorf("tachyon: %w", err)
		}
		h.addrsChanged()
		h.pokeAddrs()
	}
	h.log.Info("host started", "peer", id, "addrs", h.Addrs())
	return h, nil
}

// newConfig applies the options over the defaults.
func newConfig(opts []Option) (config, error) {
	cfg := config{
		security:   []protocol.ID{TLS, Noise},
		muxers:     []protocol.ID{Yamux},
		transports: []TransportID{TCP, WebSocket, QUIC, WebTransport, WebRTCDirect, WebRTC},
		userAgent:  "tachyon/" + Version,
		connMgr:    &connmgr.Config{},
	}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return config{}, err
		}
	}
	if cfg.dialTimeout <= 0 {
		cfg.dialTimeout = DefaultDialTimeout
	}
	if cfg.log == nil {
		cfg.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.key == nil {
		k, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			return config{}, fmt.Errorf("tachyon: generating identity: %w", err)
		}
		cfg.key = k
	}
	return cfg, nil
}

// newUpgrader builds the security and muxer stack of TCP and WebSocket
// connections (QUIC, WebTransport and WebRTC bring their own).
func newUpgrader(cfg config, security []protocol.ID) (*upgrader.Upgrader, error) {
	var muxers []network.Multiplexer
	for _, m := range cfg.muxers {
		switch m {
		case Yamux:
			muxers = append(muxers, &yamux.Transport{Config: yamux.Config{Logger: cfg.log.With("component", "yamux")}})
		}
	}
	var secs []network.SecureTransport
	for _, sid := range security {
		switch sid {
		case Noise:
			t, err := noise.New(cfg.key, &noise.Config{Muxers: cfg.muxers})
			if err != nil {
				return nil, fmt.Errorf("tachyon: noise: %w", err)
			}
			secs = append(secs, t)
		case TLS:
			t, err := tlssec.New(cfg.key, &tlssec.Config{Muxers: cfg.muxers})
			if err != nil {
				return nil, fmt.Errorf("tachyon: tls: %w", err)
			}
			secs = append(secs, t)
		case Plaintext:
			t, err := plaintext.New(cfg.key)
			if err != nil {
				return nil, fmt.Errorf("tachyon: plaintext: %w", err)
			}
			secs = append(secs, t)
		}
	}
	return &upgrader.Upgrader{Security: secs, Muxers: muxers, Transport: "tcp", HandshakeTimeout: cfg.handshakeTimout, Resources: cfg.rm,
		Tracer: cfg.upgraderTracer()}, nil
}

// newTransports builds the chosen transports. Transports hold no resources
// until they listen or dial, so there is nothing to close on error.
func newTransports(cfg config, up *upgrader.Upgrader) ([]network.Transport, error) {
	on := func(t TransportID) bool { return slices.Contains(cfg.transports, t) }
	var out []network.Transport
	// TCP and WebSocket share listening ports: the first bytes of a
	// connection tell them apart.
	var ports *tcp.PortMux
	if on(TCP) || on(WebSocket) {
		// The shared sockets log as TCP's: what they drop never reached
		// either transport.
		ports = tcp.NewPortMux(&tcp.PortMuxConfig{SniffTimeout: cfg.handshakeTimout, Resources: cfg.rm, NoPortReuse: cfg.noPortReuse, Log: component(cfg, TCP)})
	}
	if on(TCP) {
		out = append(out, tcp.New(up, &tcp.Config{PortMux: ports, NoPortReuse: cfg.noPortReuse, Log: component(cfg, TCP)}))
	}
	if on(WebSocket) {
		wsUp := *up
		if sec := cfg.securityFor(WebSocket); !slices.Equal(sec, cfg.securityFor(TCP)) {
			u, err := newUpgrader(cfg, sec)
			if err != nil {
				return nil, err
			}
			wsUp = *u
		}
		wsUp.Transport = "websocket"
		out = append(out, websocket.New(&wsUp, &websocket.Config{
			PortMux:            ports,
			TLSConfig:          cfg.wsTLS,
			InsecureSkipVerify: cfg.wsInsecure,
			Log:                component(cfg, WebSocket),
		}))
	}
	// QUIC and WebTransport share one UDP socket per address, as peers
	// expect; WebRTC-direct listens on the STUN and DTLS share of the same
	// sockets (udpmux tells QUIC packets apart by their first byte), where
	// the OS allows it (SharedUDPPort).
	var udp *udpmux.Mux
	if on(QUIC) || on(WebTransport) {
		// Reset keys from the identity, so that a node restarted on the
		// same addresses resets its former self's connections. A key that
		// cannot be read (a custom PrivKey) leaves udpmux's random one.
		var reset *quicgo.StatelessResetKey
		secret, err := cfg.key.Raw()
		if err == nil {
			reset, err = udpmux.StatelessResetKeyFrom(secret)
		}
		if err != nil {
			cfg.log.Warn("QUIC stateless resets with a random key: connections to this node before a restart will wait for their idle timeout", "err", err)
		}
		udp = udpmux.New(&udpmux.Config{Resources: cfg.rm, HandshakeTimeout: cfg.handshakeTimout, Log: cfg.log.With("component", "udpmux"), Tracer: cfg.metrics.UDPMux(), StatelessResetKey: reset})
	}
	if on(QUIC) {
		qt, err := quic.New(cfg.key, udp, &quic.Config{Resources: cfg.rm, Log: component(cfg, QUIC), Tracer: cfg.metrics.QUIC()})
		if err != nil {
			return nil, fmt.Errorf("tachyon: quic: %w", err)
		}
		out = append(out, qt)
	}
	if on(WebTransport) {
		wt, err := webtransport.New(cfg.key, udp, &webtransport.Config{Resources: cfg.rm, Log: component(cfg, WebTransport), Tracer: cfg.metrics.WebTransport()})
		if err != nil {
			return nil, fmt.Errorf("tachyon: webtransport: %w", err)
		}
		out = append(out, wt)
	}
	if on(WebRTCDirect) {
		cert := cfg.webrtcCert
		if cert == nil {
			var err error
			if cert, err = webrtc.GenerateCertificate(); err != nil {
				return nil, fmt.Errorf("tachyon: webrtc certificate: %w", err)
			}
		}
		wrtcCfg := webrtc.Config{Resources: cfg.rm, Log: component(cfg, WebRTCDirect), Tracer: cfg.metrics.WebRTCDirect()}
		if udp != nil && udpmux.SharesNonQUIC {
			wrtcCfg.ListenPacket = udp.ListenNonQUIC
		}
		wrtc, err := webrtc.New(cfg.key, cert, &wrtcCfg)
		if err != nil {
			return nil, fmt.Errorf("tachyon: webrtc-direct: %w", err)
		}
		out = append(out, wrtc)
	}
	return out, nil
}

// component is the host's logger for one transport.
func component(cfg config, t TransportID) *slog.Logger {
	return cfg.log.With("component", string(t))
}

// startServices serves identify and ping.
func (h *Host) startServices() error {
	h.ids = identify.NewService(idHost{h}, h.cfg.userAgent)
	h.ids.Tracer = h.cfg.metrics.Identify()
	for _, s := range []struct {
		id      protocol.ID
		handler StreamHandler
		opts    []HandlerOption
	}{
		{identify.ID, h.ids.Handle, []HandlerOption{AllowLimitedConns(), answersAtOnce()}},
		{identify.PushID, h.handlePush, []HandlerOption{AllowLimitedConns()}},
		{ping.ID, new(ping.Listener).Handle, []HandlerOption{AllowLimitedConns(), answersAtOnce()}},
	} {
		if err := h.SetStreamHandler(s.id, s.handler, s.opts...); err != nil {
			return err
		}
	}
	h.swarm.SetStreamHandler(h.handleStream)
	h.swarm.Notify(notifiee{h})
	return nil
}

// idHost gives identify the narrow view of the host it needs.
type idHost struct{ h *Host }

func (i idHost) ID() peer.ID                { return i.h.id }
func (i idHost) PrivateKey() crypto.PrivKey { return i.h.key }
func (i idHost) ListenAddrs(remote ma.Multiaddr) []ma.Multiaddr {
	return i.h.advertisedTo(remote)
}
func (i idHost) Protocols() []protocol.ID { return i.h.Protocols() }

// SharedUDPPort says whether WebRTC-direct can listen on the UDP port of
// QUIC and WebTransport (Linux); elsewhere it needs a port of its own.
const SharedUDPPort = udpmux.SharesNonQUIC
