package tachyon

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tachyon-p2p/tachyon/connmgr"
	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/dialrank"
	"github.com/tachyon-p2p/tachyon/limits"
	"github.com/tachyon-p2p/tachyon/metrics"
	"github.com/tachyon-p2p/tachyon/muxer/yamux"
	"github.com/tachyon-p2p/tachyon/otelbridge"
	"github.com/tachyon-p2p/tachyon/peerstore"
	"github.com/tachyon-p2p/tachyon/protocol/holepunch"
	"github.com/tachyon-p2p/tachyon/protocol/relay"
	"github.com/tachyon-p2p/tachyon/resolve"
	"github.com/tachyon-p2p/tachyon/transport/webrtc"
)

// Security protocol ids accepted by the Security option.
const (
	Noise protocol.ID = "/noise"
	TLS   protocol.ID = "/tls/1.0.0"
	// Plaintext authenticates nothing and encrypts nothing; it exists for
	// tests and the daemon interop suite, and is never on by default.
	Plaintext protocol.ID = "/plaintext/2.0.0"
)

// Yamux is the stream multiplexer id accepted by the Muxers option.
const Yamux protocol.ID = yamux.ID

// TransportID names a transport for the Transports option. The names are
// those connections report in network.ConnState.Transport.
type TransportID string

// Transports a host can run.
const (
	TCP          TransportID = "tcp"
	WebSocket    TransportID = "websocket"     // /ws and /tls/ws (/wss), sharing TCP's ports
	QUIC         TransportID = "quic-v1"       // /quic-v1
	WebTransport TransportID = "webtransport"  // /quic-v1/webtransport, sharing QUIC's sockets
	WebRTCDirect TransportID = "webrtc-direct" // /webrtc-direct
	// WebRTC is WebRTC between peers behind NATs (/webrtc): signalling
	// through a relay, then a direct connection. It needs the relay client.
	WebRTC TransportID = "webrtc" // <relay>/p2p-circuit/webrtc
)

// Option configures a Host.
type Option func(*config) error

type config struct {
	key             crypto.PrivKey
	listen          []ma.Multiaddr
	security        []protocol.ID
	transportSec    map[TransportID][]protocol.ID // per transport, over security
	userAgent       string
	log             *slog.Logger
	dialTimeout     time.Duration
	dialTrace       func(*dialrank.Trace)
	handshakeTimout time.Duration
	wsTLS           *tls.Config
	wsInsecure      bool
	webrtcCert      *webrtc.Certificate
	transports      []TransportID
	muxers          []protocol.ID
	peerstore       *peerstore.Peerstore
	gater           network.ConnectionGater
	noIdentifyPush  bool
	resolver        *resolve.Resolver
	connMgr         *connmgr.Config // nil: none
	limits          *limits.Config  // nil: limits.Default()
	noLimits        bool
	promReg         prometheus.Registerer   // nil: no metrics
	metrics         *metrics.Metrics        // built by New from promReg; nil-safe
	otel            *otelbridge.Tracer      // OpenTelemetryTracing; nil: no spans
	rm              network.ResourceManager // built by New from the above
	noPortReuse     bool                    // TCP dials from ephemeral ports (the dial-back dialer)
	publicPrefixes  []netip.Prefix
	autonat         *AutoNATConfig
	noAutoNAT       bool
	stunServers     []string // for /webrtc's ICE
	iceFilter       func(netip.Addr) bool

	noRelayClient     bool
	staticRelays      []peer.AddrInfo
	relayReservations int
	reachability      network.Reachability
	relayService      *relay.Config // nil: not a relay
	holePunch         *holepunch.Config
	noHolePunch       bool
}

// Transports sets the transports the host runs; only these are built. The
// default runs all of TCP, WebSocket, QUIC, WebTransport and WebRTCDirect.
// A host listens only on addresses of its transports and dials only
// addresses of its transports.
//
//	tachyon.New(tachyon.Transports(tachyon.TCP))                 // TCP only
//	tachyon.New(tachyon.Transports(tachyon.QUIC, tachyon.TCP))   // QUIC and TCP
func Transports(ts ...TransportID) Option {
	return func(c *config) error {
		if len(ts) == 0 {
			return fmt.Errorf("tachyon: Transports: none given")
		}
		for _, t := range ts {
			switch t {
			case TCP, WebSocket, QUIC, WebTransport, WebRTCDirect, WebRTC:
			default:
				return fmt.Errorf("tachyon: unknown transport %q", t)
			}
		}
		c.transports = ts
		return nil
	}
}

// Muxers sets the stream multiplexers of TCP and WebSocket connections, in
// preference order (QUIC, WebTransport and WebRTC-direct have streams of
// their own). Yamux is the only one, and the default.
func Muxers(ids ...protocol.ID) Option {
	return func(c *config) error {
		if len(ids) == 0 {
			return fmt.Errorf("tachyon: Muxers: none given")
		}
		for _, id := range ids {
			if id != Yamux {
				return fmt.Errorf("tachyon: unknown muxer %q", id)
			}
		}
		c.muxers = ids
		return nil
	}
}

// Peerstore makes the host keep what it learns about peers in ps, which
// may be shared with other code (and outlive the host). Default: a new one.
func Peerstore(ps *peerstore.Peerstore) Option {
	return func(c *config) error {
		if ps == nil {
			return fmt.Errorf("tachyon: Peerstore: nil")
		}
		c.peerstore = ps
		return nil
	}
}

// ConnectionGater makes the host ask g before it dials a peer or an
// address and before it keeps a connection (see network.ConnectionGater).
func ConnectionGater(g network.ConnectionGater) Option {
	return func(c *config) error {
		c.gater = g
		return nil
	}
}

// Resolver sets how /dns, /dns4, /dns6 and /dnsaddr addresses are resolved
// before dialing (its Backend, and bounds on depth, results and queries).
// Without it the system resolver is used with the package's defaults.
func Resolver(r *resolve.Resolver) Option {
	return func(c *config) error {
		c.resolver = r
		return nil
	}
}

// DisableIdentifyPush stops the host from telling connected peers when its
// protocols or addresses change (identify push). Pushes from peers are
// still taken.
func DisableIdentifyPush() Option {
	return func(c *config) error {
		c.noIdentifyPush = true
		return nil
	}
}

// WebRTCCertificate sets the DTLS certificate of WebRTC-direct listeners.
// Its hash is part of the advertised address, so keep it with the identity
// (webrtc.GenerateCertificate, MarshalPEM, ParseCertificatePEM) for the
// address to survive restarts. Without it a fresh one is made.
func WebRTCCertificate(c *webrtc.Certificate) Option {
	return func(cf *config) error {
		cf.webrtcCert = c
		return nil
	}
}

// WebSocketTLS sets the certificate served on /tls/ws (/wss) listen
// addresses. Browsers need one they trust.
func WebSocketTLS(conf *tls.Config) Option {
	return func(c *config) error {
		c.wsTLS = conf
		return nil
	}
}

// WebSocketInsecureSkipVerify dials /tls/ws without checking the server's
// certificate, for self-signed test setups. The libp2p handshake inside the
// WebSocket still authenticates the peer.
func WebSocketInsecureSkipVerify() Option {
	return func(c *config) error {
		c.wsInsecure = true
		return nil
	}
}

// Identity sets the node's private key. Without it a fresh Ed25519 key is
// generated.
func Identity(k crypto.PrivKey) Option {
	return func(c *config) error {
		if k == nil {
			return fmt.Errorf("tachyon: Identity: nil key")
		}
		c.key = k
		return nil
	}
}

// ListenAddrs sets the addresses to listen on. Without it the host only
// dials.
func ListenAddrs(addrs ...ma.Multiaddr) Option {
	return func(c *config) error {
		c.listen = append(c.listen, addrs...)
		return nil
	}
}

// ListenAddrStrings is ListenAddrs with multiaddrs in text form.
func ListenAddrStrings(addrs ...string) Option {
	return func(c *config) error {
		for _, s := range addrs {
			a, err := ma.NewMultiaddr(s)
			if err != nil {
				return fmt.Errorf("tachyon: listen address %q: %w", s, err)
			}
			c.listen = append(c.listen, a)
		}
		return nil
	}
}

// Security sets the security protocols, in preference order (Noise, TLS,
// Plaintext).
// The default offers TLS first and Noise second, as go-libp2p does.
func Security(ids ...protocol.ID) Option {
	return func(c *config) error {
		for _, id := range ids {
			if id != Noise && id != TLS && id != Plaintext {
				return fmt.Errorf("tachyon: unknown security protocol %q", id)
			}
		}
		c.security = ids
		return nil
	}
}

// TransportSecurity sets the security protocols, in preference order, of
// one transport, over Security's. Only TCP and WebSocket choose: QUIC
// secures itself with TLS 1.3, and WebTransport and WebRTC-direct with
// Noise, as their specs say.
//
//	tachyon.New(tachyon.TransportSecurity(tachyon.WebSocket, tachyon.Noise)) // what browsers speak
func TransportSecurity(t TransportID, ids ...protocol.ID) Option {
	return func(c *config) error {
		if t != TCP && t != WebSocket {
			return fmt.Errorf("tachyon: TransportSecurity(%s): only TCP and WebSocket choose their security; the others' is fixed by their specs", t)
		}
		if len(ids) == 0 {
			return fmt.Errorf("tachyon: TransportSecurity(%s): no security protocol given", t)
		}
		if err := Security(ids...)(&config{}); err != nil {
			return err
		}
		if c.transportSec == nil {
			c.transportSec = make(map[TransportID][]protocol.ID)
		}
		c.transportSec[t] = ids
		return nil
	}
}

// securityFor is the security list of transport t.
func (c *config) securityFor(t TransportID) []protocol.ID {
	if ids, ok := c.transportSec[t]; ok {
		return ids
	}
	return c.security
}

// UserAgent sets the agent version identify reports.
func UserAgent(s string) Option {
	return func(c *config) error {
		c.userAgent = s
		return nil
	}
}

// Logger sets where the host, the swarm and the transports log. Records of
// the swarm and the transports carry a "component" attribute ("swarm",
// "tcp", "websocket", "quic-v1", "webtransport", "webrtc-direct", "udpmux"
// for the UDP sockets QUIC and WebTransport share); at Debug they tell why
// inbound connections and dials of single addresses failed. Default:
// discard.
func Logger(l *slog.Logger) Option {
	return func(c *config) error {
		c.log = l
		return nil
	}
}

// DialTimeout bounds how long Connect and NewStream spend dialing a peer
// (default DefaultDialTimeout). A shorter deadline on the call's context
// wins.
func DialTimeout(d time.Duration) Option {
	return func(c *config) error {
		c.dialTimeout = d
		return nil
	}
}

// DialTrace calls f with the record of every dial the host makes once it
// ended: the addresses ranked and skipped (and why), when each attempt
// started and how it ended. f runs on the dialing goroutine and must not
// block. For debugging and for tests that count dials. Several DialTrace
// options (and OpenTelemetryTracing) are all called, in order.
func DialTrace(f func(*dialrank.Trace)) Option {
	return func(c *config) error {
		c.dialTrace = teeDialTrace(c.dialTrace, f)
		return nil
	}
}

// ConnManager sets the connection manager's watermarks, grace period and
// silence period (zero fields take connmgr's defaults: trim to 160 past
// 192, new connections safe for a minute). A host has one by default;
// Host.ConnManager protects and tags peers.
func ConnManager(cfg connmgr.Config) Option {
	return func(c *config) error {
		if cfg.Low < 0 || cfg.High < 0 || (cfg.High > 0 && cfg.Low > cfg.High) {
			return fmt.Errorf("tachyon: ConnManager: watermarks low %d, high %d: want 0 <= low <= high", cfg.Low, cfg.High)
		}
		c.connMgr = &cfg
		return nil
	}
}

// NoConnManager turns the connection manager off: connections stay open
// until they close or the limits refuse new ones.
func NoConnManager() Option {
	return func(c *config) error {
		c.connMgr = nil
		return nil
	}
}

// PrometheusRegisterer turns metrics on: the host registers its collectors
// (docs/metrics.md lists them) with r. Without it no metric is kept and the
// packages' tracers cost nothing. Two hosts need two registries.
func PrometheusRegisterer(r prometheus.Registerer) Option {
	return func(c *config) error {
		if r == nil {
			return fmt.Errorf("tachyon: PrometheusRegisterer: nil registerer")
		}
		c.promReg = r
		return nil
	}
}

// Metrics returns the host's collectors (PrometheusRegisterer), nil when
// metrics are off. Commands use it to hand their own protocol runs (perf,
// the daemon's control requests) the tracers the host's packages use.
func (h *Host) Metrics() *metrics.Metrics { return h.cfg.metrics }
