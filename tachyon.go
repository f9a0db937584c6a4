// Package tachyon is a libp2p node. New wires the stack together:
//
//	tachyon.Host ── protocols (ping, identify) ── swarm ── transports: tcp, ws ── upgrader ── security (noise, tls) ── muxer (yamux)
//	                                                                  quic-v1, webtransport, webrtc-direct (pion)
//	                                                                  (one UDP socket per address: udpmux)
//
// This file is the only place where concrete transports, security protocols
// and services are named.
package tachyon

import (
	"fmt"
	"io"
	"log/slog"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/muxer/yamux"
	"github.com/tachyon-p2p/tachyon/peerstore"
	"github.com/tachyon-p2p/tachyon/protocol/identify"
	"github.com/tachyon-p2p/tachyon/protocol/ping"
	"github.com/tachyon-p2p/tachyon/security/noise"
	"github.com/tachyon-p2p/tachyon/security/plaintext"
	tlssec "github.com/tachyon-p2p/tachyon/security/tls"
	"github.com/tachyon-p2p/tachyon/swarm"
	"github.com/tachyon-p2p/tachyon/transport/quic"
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
// before returning.
func New(opts ...Option) (*Host, error) {
	cfg := config{
		security:  []protocol.ID{TLS, Noise},
		userAgent: "tachyon/" + Version,
	}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.log == nil {
		cfg.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.key == nil {
		k, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			return nil, fmt.Errorf("tachyon: generating identity: %w", err)
		}
		cfg.key = k
	}
	id, err := peer.IDFromPrivateKey(cfg.key)
	if err != nil {
		return nil, fmt.Errorf("tachyon: peer ID of identity: %w", err)
	}

	muxers := []network.Multiplexer{&yamux.Transport{}}
	muxerIDs := []protocol.ID{yamux.ID}
	var secs []network.SecureTransport
	for _, sid := range cfg.security {
		switch sid {
		case Noise:
			t, err := noise.New(cfg.key, &noise.Config{Muxers: muxerIDs})
			if err != nil {
				return nil, fmt.Errorf("tachyon: noise: %w", err)
			}
			secs = append(secs, t)
		case TLS:
			t, err := tlssec.New(cfg.key, &tlssec.Config{Muxers: muxerIDs})
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
	up := &upgrader.Upgrader{Security: secs, Muxers: muxers, Transport: "tcp", HandshakeTimeout: cfg.handshakeTimout}
	// QUIC and WebTransport share one UDP socket per address, as peers expect.
	udp := udpmux.New(nil)
	qt, err := quic.New(cfg.key, udp, nil)
	if err != nil {
		return nil, fmt.Errorf("tachyon: quic: %w", err)
	}
	wt, err := webtransport.New(cfg.key, udp, nil)
	if err != nil {
		return nil, fmt.Errorf("tachyon: webtransport: %w", err)
	}
	// TCP and WebSocket share listening ports: the first bytes of a
	// connection tell them apart.
	ports := tcp.NewPortMux(&tcp.PortMuxConfig{SniffTimeout: cfg.handshakeTimout})
	wsUp := *up
	wsUp.Transport = "websocket"
	ws := websocket.New(&wsUp, &websocket.Config{
		PortMux:            ports,
		TLSConfig:          cfg.wsTLS,
		InsecureSkipVerify: cfg.wsInsecure,
	})
	if cfg.webrtcCert == nil {
		if cfg.webrtcCert, err = webrtc.GenerateCertificate(); err != nil {
			return nil, fmt.Errorf("tachyon: webrtc certificate: %w", err)
		}
	}
	// WebRTC-direct listens on the STUN and DTLS share of the same UDP
	// sockets (udpmux tells QUIC packets apart by their first byte), where
	// the OS allows it (SharedUDPPort).
	var wrtcCfg webrtc.Config
	if udpmux.SharesNonQUIC {
		wrtcCfg.ListenPacket = udp.ListenNonQUIC
	}
	wrtc, err := webrtc.New(cfg.key, cfg.webrtcCert, &wrtcCfg)
	if err != nil {
		return nil, fmt.Errorf("tachyon: webrtc-direct: %w", err)
	}
	transports := []network.Transport{tcp.New(up, &tcp.Config{PortMux: ports}), ws, qt, wt, wrtc}

	ps := peerstore.New()
	ps.AddPubKey(id, cfg.key.GetPublic())
	sw := swarm.New(id, ps, transports, &swarm.Config{DialTimeout: cfg.dialTimeout})
	h := newHost(cfg, id, ps, sw)

	h.ids = identify.NewService(idHost{h}, cfg.userAgent)
	h.SetStreamHandler(identify.ID, h.ids.Handle)
	h.SetStreamHandler(identify.PushID, h.handlePush)
	h.SetStreamHandler(ping.ID, new(ping.Listener).Handle)

	sw.SetStreamHandler(h.handleStream)
	sw.SetNotifiee(h)
	if len(cfg.listen) > 0 {
		if err := sw.Listen(cfg.listen...); err != nil {
			h.Close()
			return nil, fmt.Errorf("tachyon: %w", err)
		}
	}
	h.log.Info("host started", "peer", id, "addrs", h.Addrs())
	return h, nil
}

// idHost gives identify the narrow view of the host it needs.
type idHost struct{ h *Host }

func (i idHost) ID() peer.ID                 { return i.h.id }
func (i idHost) PrivateKey() crypto.PrivKey  { return i.h.key }
func (i idHost) ListenAddrs() []ma.Multiaddr { return i.h.Addrs() }
func (i idHost) Protocols() []protocol.ID    { return i.h.Protocols() }

// SharedUDPPort says whether WebRTC-direct can listen on the UDP port of
// QUIC and WebTransport (Linux); elsewhere it needs a port of its own.
const SharedUDPPort = udpmux.SharesNonQUIC
