// Package webtransport is the libp2p WebTransport transport
// (libp2p/specs webtransport/README.md) on quic-go/webtransport-go:
// /ip4|ip6/…/udp/N/quic-v1/webtransport/certhash/<mh>….
//
// Handshake, in wire order:
//  1. QUIC + TLS with ALPN "h3". The server presents a self-signed ECDSA
//     certificate (see certs.go); the client accepts it only if its sha2-256
//     hash is one of the dialed /certhash components.
//  2. HTTP/3 CONNECT to /.well-known/libp2p-webtransport?type=noise.
//  3. The client opens the first stream and runs Noise XX as initiator
//     (empty prologue). The server's message 2 lists its certificate hashes
//     in the webtransport_certhashes extension; the client fails unless
//     every hash it dialed is listed. The stream is then closed.
//  4. Every later bidirectional stream is one libp2p stream (QUIC's TLS
//     already encrypts it).
//
// Listeners share the UDP socket with QUIC through udpmux.
package webtransport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/quic-go/quic-go/http3"
	wt "github.com/quic-go/webtransport-go"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/logs"
	"github.com/tachyon-p2p/tachyon/security/noise"
	tquic "github.com/tachyon-p2p/tachyon/transport/quic"
	"github.com/tachyon-p2p/tachyon/transport/udpmux"
)

// Path is the HTTP/3 endpoint of libp2p WebTransport.
const Path = "/.well-known/libp2p-webtransport"

// Config tunes the transport. The zero value is ready to use.
type Config struct {
	// HandshakeTimeout bounds the whole handshake (QUIC, CONNECT, Noise) on
	// both sides. Default 15 s.
	HandshakeTimeout time.Duration
	// Clock drives certificate rotation; nil means time.Now. Tests inject
	// one to step through epochs.
	Clock func() time.Time
	// Resources, when set, admits each session, inbound and outbound, once
	// Noise has authenticated the peer (OpenConn; a refused one is closed
	// with RESOURCE_LIMIT_EXCEEDED), and its connection window growth.
	// Inbound QUIC handshakes are admitted by the udpmux.Mux (its
	// Config.Resources).
	Resources network.ResourceManager
	// Log receives inbound sessions that fail (CONNECT, Noise, timeout;
	// Debug) and accept loops that stop on an error (Warn). QUIC handshakes
	// that fail are logged by the udpmux.Mux. Nil discards.
	Log *slog.Logger
	// Tracer, if set, is told about handshakes: dials, and inbound
	// sessions from the WebTransport upgrade to the end of Noise (udpmux
	// traces the QUIC handshake before it).
	Tracer Tracer
}

// Tracer is told when one of our handshakes starts (delta 1) and ends
// (delta -1), for the WebTransport session and its Noise handshake. It must not block.
type Tracer interface {
	Handshakes(delta int)
}

// traceHandshake tells the tracer a handshake started and returns what
// tells it the handshake ended.
func (t *Transport) traceHandshake() (end func()) {
	return udpmux.TraceHandshake(t.cfg.Tracer)
}

// Transport is the WebTransport transport. It is safe for concurrent use.
type Transport struct {
	key     crypto.PrivKey
	localID peer.ID
	mux     *udpmux.Mux
	cfg     Config
	certs   *certManager
	noise   *noise.Transport // initiator side; certhashes unused
	wtr     *wt.Transport
}

var _ network.Transport = (*Transport)(nil)

// New returns a WebTransport transport authenticating as key, on sockets
// from mux (share it with the QUIC transport to share the port).
func New(key crypto.PrivKey, mux *udpmux.Mux, cfg *Config) (*Transport, error) {
	if mux == nil {
		return nil, errors.New("webtransport: nil udpmux.Mux")
	}
	n, err := noise.New(key, &noise.Config{})
	if err != nil {
		return nil, fmt.Errorf("webtransport: setting up Noise: %w", err)
	}
	t := &Transport{key: key, localID: n.LocalPeer(), mux: mux, noise: n, wtr: &wt.Transport{}}
	if cfg != nil {
		t.cfg = *cfg
	}
	if t.cfg.HandshakeTimeout <= 0 {
		t.cfg.HandshakeTimeout = 15 * time.Second
	}
	if t.cfg.Clock == nil {
		t.cfg.Clock = time.Now
	}
	t.cfg.Log = logs.Or(t.cfg.Log)
	t.certs = newCertManager(t.cfg.Clock)
	return t, nil
}

// Name returns "webtransport".
func (t *Transport) Name() string { return "webtransport" }

// CanDial accepts WebTransport addresses with at least one certhash.
func (t *Transport) CanDial(addr ma.Multiaddr) bool {
	ap, hashes, err := ParseAddr(addr)
	return err == nil && len(hashes) > 0 && ap.Port() != 0 && !ap.Addr().IsUnspecified()
}

// CanListen accepts …/udp/N/quic-v1/webtransport without certhashes (the
// listener makes its own), with port 0 and unspecified IPs allowed.
func (t *Transport) CanListen(addr ma.Multiaddr) bool {
	_, hashes, err := ParseAddr(addr)
	return err == nil && len(hashes) == 0
}

// Dial connects to p at addr, which must carry at least one /certhash.
func (t *Transport) Dial(ctx context.Context, addr ma.Multiaddr, p peer.ID) (network.TransportConn, error) {
	if p == "" {
		return nil, fmt.Errorf("webtransport: dial %s: the remote peer ID is required", addr)
	}
	ap, hashes, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	if len(hashes) == 0 {
		return nil, fmt.Errorf("%w: %s", errNoCertHash, addr)
	}
	ctx, cancel := context.WithTimeout(ctx, t.cfg.HandshakeTimeout)
	defer cancel()
	end := t.traceHandshake()
	c, err := t.dial(ctx, ap, hashes, p)
	end()
	if err != nil {
		return nil, fmt.Errorf("webtransport: dial %s at %s: %w", p, addr, err)
	}
	return c, nil
}

func (t *Transport) dial(ctx context.Context, raddr netip.AddrPort, hashes [][]byte, p peer.ID) (*Conn, error) {
	hostport := raddr.String()
	conf := &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{http3.NextProtoH3},
		// Not insecure: the certificate is pinned by its hash below
		// (W3C WebTransport serverCertificateHashes).
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("webtransport: server sent no certificate")
			}
			cert, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return fmt.Errorf("webtransport: parsing server certificate: %w", err)
			}
			if cert.NotAfter.Sub(cert.NotBefore) > certValidity {
				return errors.New("webtransport: server certificate is valid for more than 14 days")
			}
			return matchCertHash(raw[0], hashes)
		},
	}
	qc, err := t.mux.Dial(ctx, raddr, conf)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Conn, error) {
		qc.CloseWithError(0, "")
		return nil, err
	}
	cc, err := t.wtr.NewClientConn(qc)
	if err != nil {
		return fail(err)
	}
	url := "https://" + hostport + Path + "?type=noise"
	rsp, sess, err := cc.Dial(ctx, url, nil)
	if err != nil {
		return fail(fmt.Errorf("CONNECT %s: %w", url, err))
	}
	if rsp.StatusCode < 200 || rsp.StatusCode > 299 {
		return fail(fmt.Errorf("CONNECT %s: status %d", url, rsp.StatusCode))
	}
	str, err := sess.OpenStreamSync(ctx)
	if err != nil {
		return fail(fmt.Errorf("opening the Noise stream: %w", err))
	}
	sc, err := t.noise.SecureOutbound(ctx, &streamConn{Stream: str, sess: sess}, p)
	if err != nil {
		return fail(err) // SecureOutbound closed the stream
	}
	nc := sc.(*noise.Conn)
	got := nc.RemoteCertHashes()
	for _, h := range hashes {
		if !slices.ContainsFunc(got, func(g []byte) bool { return string(g) == string(h) }) {
			nc.Close()
			return fail(fmt.Errorf("certhash %x was dialed but the server does not list it", h))
		}
	}
	nc.Close() // the handshake is over; the server may already have stopped the stream
	c := newConn(sess, qc, t.localID, nc.RemotePeer(), nc.RemotePublicKey(), network.DirOutbound)
	if err := t.admit(c); err != nil {
		return nil, err
	}
	return c, nil
}

// ErrRefused is wrapped by the error of a session that the
// ResourceManager refused; so is the manager's own error.
var ErrRefused = errors.New("refused by the resource manager")

// admit opens c's scope with the ResourceManager, or closes c when it is
// refused. The scope is closed when the QUIC connection closes.
func (t *Transport) admit(c *Conn) error {
	if t.cfg.Resources == nil {
		return nil
	}
	scope, err := t.cfg.Resources.OpenConn(c.dir, c.remotePeer, c.raddr)
	if err != nil {
		c.sess.CloseWithError(0, "")
		c.qc.CloseWithError(tquic.CodeResourceLimitExceeded, "resource limit exceeded")
		return fmt.Errorf("session with %s %w: %w", c.remotePeer, ErrRefused, err)
	}
	c.scope = scope
	context.AfterFunc(c.qc.Context(), scope.Close)
	t.mux.SetScope(c.qc, scope)
	return nil
}

// streamConn adapts the handshake stream to the net.Conn Noise runs on.
type streamConn struct {
	*wt.Stream
	sess *wt.Session
	// finOnly makes Close send only our FIN. The listener uses it: js-libp2p
	// half-closes the handshake stream after the handshake, and a
	// STOP_SENDING that reaches it first fails its whole dial ("Received
	// STOP_SENDING"). The peer's FIN then ends the stream.
	finOnly bool
}

func (c *streamConn) LocalAddr() net.Addr  { return c.sess.LocalAddr() }
func (c *streamConn) RemoteAddr() net.Addr { return c.sess.RemoteAddr() }

// Close ends the handshake stream in both directions. The peer may have
// done so first, so the error of the FIN is not interesting.
func (c *streamConn) Close() error {
	c.Stream.Close()
	if !c.finOnly {
		c.Stream.CancelRead(0)
	}
	return nil
}
