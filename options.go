package tachyon

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/protocol"
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

// Option configures a Host.
type Option func(*config) error

type config struct {
	key             crypto.PrivKey
	listen          []ma.Multiaddr
	security        []protocol.ID
	userAgent       string
	log             *slog.Logger
	dialTimeout     time.Duration
	handshakeTimout time.Duration
	wsTLS           *tls.Config
	wsInsecure      bool
	webrtcCert      *webrtc.Certificate
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

// UserAgent sets the agent version identify reports.
func UserAgent(s string) Option {
	return func(c *config) error {
		c.userAgent = s
		return nil
	}
}

// Logger sets where the host logs. Default: discard.
func Logger(l *slog.Logger) Option {
	return func(c *config) error {
		c.log = l
		return nil
	}
}

// DialTimeout bounds how long Connect and NewStream spend dialing a peer.
func DialTimeout(d time.Duration) Option {
	return func(c *config) error {
		c.dialTimeout = d
		return nil
	}
}
