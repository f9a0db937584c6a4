// Package tls secures connections with the libp2p TLS 1.3 handshake
// (libp2p/specs tls/tls.md): both sides present a self-signed certificate
// whose libp2p extension binds it to the host key, and ALPN carries early
// stream-muxer negotiation (connections/inlined-muxer-negotiation.md).
package tls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/netbuf"
	"github.com/tachyon-p2p/tachyon/internal/verified"
)

// ID is the multistream-select protocol id of libp2p TLS.
const ID protocol.ID = "/tls/1.0.0"

// alpnLibp2p is the ALPN token that ends every client list; agreeing on it
// means "no early muxer, use multistream-select".
const alpnLibp2p = "libp2p"

// certLifetime bounds how long one certificate key is reused before a new
// one is generated (tls.md allows reuse across connections).
const certLifetime = 24 * time.Hour

// Config tunes a Transport. The zero value is valid.
type Config struct {
	// Muxers lists the stream muxers offered through ALPN, most preferred
	// first. The server picks the client's first one it also lists.
	Muxers []protocol.ID
}

// Transport runs the libp2p TLS handshake for one host key. It is safe for
// concurrent use.
type Transport struct {
	key     crypto.PrivKey
	localID peer.ID
	muxers  []protocol.ID
	alpn    []string // muxers..., "libp2p"

	checked *verified.Table[checkedCert] // see checkOnce

	mu      sync.Mutex
	cert    *tls.Certificate // replaced on rotation, never modified
	certAge time.Time
	// anyPeerLate accepts any peer with cert, counting the client's chain
	// only: SecureInbound (see acceptCheck) and ServerConfig's callers (see
	// CheckPeer) run the checks once the handshake is complete. Shared,
	// never modified.
	anyPeerLate *tls.Config
}

var _ network.SecureTransport = (*Transport)(nil)

// New returns a TLS transport authenticating as key.
func New(key crypto.PrivKey, cfg *Config) (*Transport, error) {
	if key == nil {
		return nil, errors.New("tls: nil host key")
	}
	if cfg == nil {
		cfg = &Config{}
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("tls: deriving local peer ID: %w", err)
	}
	t := &Transport{key: key, localID: id, muxers: slices.Clone(cfg.Muxers), checked: verified.New[checkedCert](512)}
	for _, m := range cfg.Muxers {
		t.alpn = append(t.alpn, string(m))
	}
	t.alpn = append(t.alpn, alpnLibp2p)
	if _, _, err := t.certificate(); err != nil {
		return nil, err
	}
	return t, nil
}

// ID returns "/tls/1.0.0".
func (t *Transport) ID() protocol.ID { return ID }

// LocalPeer returns the peer ID this transport authenticates as.
func (t *Transport) LocalPeer() peer.ID { return t.localID }

// certificate returns the current certificate and the server config
// shared by the handshakes that accept any peer (SecureInbound's and
// ServerConfig's).
func (t *Transport) certificate() (*tls.Certificate, *tls.Config, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.rotateLocked(); err != nil {
		return nil, nil, err
	}
	return t.cert, t.anyPeerLate, nil
}

// rotateLocked replaces the certificate once it is older than
// certLifetime.
func (t *Transport) rotateLocked() error {
	if t.cert != nil && time.Since(t.certAge) <= certLifetime {
		return nil
	}
	cert, err := newCertificate(t.key)
	if err != nil {
		return err
	}
	t.cert, t.certAge = &cert, time.Now()
	t.anyPeerLate = t.newServerConfig(&cert)
	return nil
}

// ClientConfig returns a TLS 1.3 config for dialling remote: it presents our
// certificate, sends no SNI, offers ALPN [muxers..., "libp2p"] and accepts
// only a certificate that authenticates remote (any peer when remote is
// empty), checked in VerifyConnection and not kept (DialConfig checks later
// and keeps). After the handshake, CheckPeer on PeerCertificates yields the
// remote host key.
func (t *Transport) ClientConfig(remote peer.ID) (*tls.Config, error) {
	cert, _, err := t.certificate()
	if err != nil {
		return nil, err
	}
	return t.clientConfig(cert, remote), nil
}

// DialConfig is ClientConfig with SecureOutbound's checks (see dialCheck):
// the server's certificate is checked after its CertificateVerify and
// Finished, before our certificate leaves, and a certificate that passed
// before is not checked again. Call verified once the handshake is over:
// it runs the checks if the server asked for no certificate, and returns
// the server's host key and peer ID, or why they are not to be trusted.
// The config is for one handshake.
func (t *Transport) DialConfig(remote peer.ID) (conf *tls.Config, verified func() (crypto.PubKey, peer.ID, error), err error) {
	cert, _, err := t.certificate()
	if err != nil {
		return nil, nil, err
	}
	conf, d := t.dialConfig(cert, remote)
	return conf, func() (crypto.PubKey, peer.ID, error) {
		if err := d.check(); err != nil {
			return nil, "", err
		}
		return d.passed.pub, d.passed.id, nil
	}, nil
}

// ServerConfig returns a TLS 1.3 config for accepting (QUIC listeners): it
// requires a client certificate and answers ALPN with the client's first
// muxer that we support, or "libp2p". It refuses a chain of any length but
// one and checks nothing else: once the handshake is complete, CheckPeer on
// the connection's PeerCertificates runs the checks tls.md asks for and
// yields the peer's host key and ID. Trust nothing of a connection before.
//
// A listener keeps the config for its lifetime, so the certificate is
// looked up per handshake: it rotates as SecureInbound's does.
func (t *Transport) ServerConfig() (*tls.Config, error) {
	_, conf, err := t.certificate()
	if err != nil {
		return nil, err
	}
	c := conf.Clone()
	c.Certificates = nil
	c.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		cert, _, err := t.certificate()
		return cert, err
	}
	c.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		_, cur, err := t.certificate()
		if err != nil {
			return nil, err
		}
		return cur.GetConfigForClient(hello)
	}
	return c, nil
}

// CheckPeer checks the certificate chain of a completed handshake as tls.md
// says and returns the host key and peer ID it proves. It keeps the
// certificates that pass (see checkOnce), so call it only on a chain whose
// sender crypto/tls has seen sign the handshake (its CertificateVerify and
// Finished verified, as they are once the handshake is complete): a peer
// without the certificate's key must learn nothing from the time it takes.
func (t *Transport) CheckPeer(chain []*x509.Certificate) (crypto.PubKey, peer.ID, error) {
	c, err := t.checkAs(chain, "")
	if err != nil {
		return nil, "", err
	}
	return c.pub, c.id, nil
}

// verifier returns a VerifyConnection callback checking the peer's chain
// as tls.md says and, when remote is set, its peer ID. It uses the
// certificates crypto/tls has parsed already (VerifyPeerCertificate would
// hand over raw ones to parse a second time), and keeps nothing.
func verifier(remote peer.ID) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		pub, err := PubKeyFromCertChain(cs.PeerCertificates)
		if err != nil {
			return err
		}
		if remote == "" {
			return nil
		}
		id, err := peer.IDFromPublicKey(pub)
		if err != nil {
			return fmt.Errorf("tls: deriving peer ID: %w", err)
		}
		if id != remote {
			return &network.PeerIDMismatchError{Expected: remote, Actual: id}
		}
		return nil
	}
}

func (t *Transport) clientConfig(cert *tls.Certificate, remote peer.ID) *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		InsecureSkipVerify:     true, // the libp2p checks run in VerifyConnection
		VerifyConnection:       verifier(remote),
		GetClientCertificate:   func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil },
		NextProtos:             t.alpn,
		SessionTicketsDisabled: true,
	}
}

// dialCheck runs one dial's certificate checks late: not in
// VerifyConnection, which crypto/tls calls before it has checked the
// server's CertificateVerify, but in GetClientCertificate, which it calls
// once the server's CertificateVerify and Finished have verified (the
// server holds the certificate's key) and before our certificate leaves.
// Only from there may a certificate that passed before skip its checks
// (checkOnce): earlier, a server without the key could present a copied
// certificate and tell from the time to our alert whether this node had
// met its owner. A server that asks for no certificate (which tls.md does
// not allow) gets the checks once the handshake is over.
type dialCheck struct {
	t      *Transport
	remote peer.ID
	own    *tls.Certificate
	chain  []*x509.Certificate // the server's, as crypto/tls parsed it
	passed *checkedCert        // set once the checks passed
}

func (t *Transport) dialConfig(own *tls.Certificate, remote peer.ID) (*tls.Config, *dialCheck) {
	d := &dialCheck{t: t, remote: remote, own: own}
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		InsecureSkipVerify:     true, // the libp2p checks run in d.certificate
		VerifyConnection:       d.keep,
		GetClientCertificate:   d.certificate,
		NextProtos:             t.alpn,
		SessionTicketsDisabled: true,
	}, d
}

// keep holds the server's chain for the checks; a chain of another length
// is refused at once, whoever sent it.
func (d *dialCheck) keep(cs tls.ConnectionState) error {
	if err := oneCertificate(cs); err != nil {
		return err
	}
	d.chain = cs.PeerCertificates
	return nil
}

// certificate checks the server's chain and, if it passes, gives crypto/tls
// our certificate to send. An error ends the handshake with our
// certificate unsent and no alert (crypto/tls sends none for it).
func (d *dialCheck) certificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	return d.own, nil
}

func (d *dialCheck) check() error {
	if d.passed != nil {
		return nil
	}
	if d.chain == nil {
		return errors.New("tls: no server certificate to check")
	}
	c, err := d.t.checkAs(d.chain, d.remote)
	if err != nil {
		return err
	}
	d.passed = &c
	return nil
}

// checkedCert is what a certificate that passed PubKeyFromCertChain proves.
type checkedCert struct {
	pub crypto.PubKey
	id  peer.ID
}

// certDigestDomain names the digests of checked certificates.
const certDigestDomain = "libp2p-tls-certificate"

// checkAs runs checkOnce and, when remote is set, requires its peer.
func (t *Transport) checkAs(chain []*x509.Certificate, remote peer.ID) (checkedCert, error) {
	c, err := t.checkOnce(chain)
	if err != nil {
		return checkedCert{}, err
	}
	if remote != "" && c.id != remote {
		return checkedCert{}, &network.PeerIDMismatchError{Expected: remote, Actual: c.id}
	}
	return c, nil
}

// checkOnce checks a one-certificate chain as PubKeyFromCertChain does. It
// keeps the certificates that passed, by a digest of their DER encoding
// (which covers everything checked but the time), in a table of the
// transport's own (so one host's handshakes tell nothing of another's), so
// that a peer met again with the same certificate (tachyon keeps one for a
// day) costs a hash instead of an ECDSA and a host-key verification. Only
// dialCheck, acceptCheck and CheckPeer call it, once the peer has proved it
// holds the certificate's key.
func (t *Transport) checkOnce(chain []*x509.Certificate) (checkedCert, error) {
	if err := oneCert(chain); err != nil {
		return checkedCert{}, err
	}
	checkOnceHook(t, chain)
	cert := chain[0]
	key := verified.Sum(certDigestDomain, cert.Raw)
	if c, ok := t.checked.Get(key); ok {
		if err := validNow(cert); err != nil {
			return checkedCert{}, err
		}
		return c, nil
	}
	pub, err := checkChain(chain)
	if err != nil {
		return checkedCert{}, err
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		return checkedCert{}, fmt.Errorf("tls: deriving peer ID: %w", err)
	}
	c := checkedCert{pub: pub, id: id}
	t.checked.Add(key, c)
	return c, nil
}

// Test hooks: checkChain is PubKeyFromCertChain, checkOnceHook sees every
// lookup; tests count their calls.
var (
	checkChain    = PubKeyFromCertChain
	checkOnceHook = func(*Transport, []*x509.Certificate) {}
)

// newServerConfig builds a server config for cert accepting any peer and
// checking only that the client sent one certificate: the libp2p checks
// run once the handshake is complete (acceptCheck, CheckPeer), when a
// certificate that passed before may skip them. crypto/tls picks ALPN in
// server order; the spec wants the client's, so GetConfigForClient answers
// with a config whose NextProtos is our pick alone: one prepared per
// possible pick, shared by all handshakes rather than cloned for each.
func (t *Transport) newServerConfig(cert *tls.Certificate) *tls.Config {
	base := &tls.Config{
		MinVersion:             tls.VersionTLS13,
		ClientAuth:             tls.RequireAnyClientCert,
		VerifyConnection:       oneCertificate,
		Certificates:           []tls.Certificate{*cert},
		NextProtos:             t.alpn,
		SessionTicketsDisabled: true,
	}
	byPick := make(map[string]*tls.Config, len(t.alpn))
	for _, p := range t.alpn {
		c := base.Clone()
		c.NextProtos = []string{p}
		byPick[p] = c
	}
	cfg := base.Clone()
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		return byPick[t.pickALPN(hello.SupportedProtos)], nil
	}
	return cfg
}

// pickALPN returns the client's first muxer we support, else "libp2p".
func (t *Transport) pickALPN(offered []string) string {
	for _, p := range offered {
		if p != alpnLibp2p && slices.Contains(t.alpn, p) {
			return p
		}
	}
	return alpnLibp2p
}

// SecureInbound runs the handshake as the TLS server. When remote is not
// empty the client must prove it is that peer.
func (t *Transport) SecureInbound(ctx context.Context, insecure net.Conn, remote peer.ID) (network.SecureConn, error) {
	_, cfg, err := t.certificate()
	if err != nil {
		insecure.Close()
		return nil, err
	}
	c := &Conn{localPeer: t.localID, batch: &batchConn{Conn: insecure}, accept: &acceptCheck{t: t, remote: remote}}
	return c.handshake(ctx, tls.Server(c.batch, cfg), insecure)
}

// acceptCheck runs an inbound handshake's certificate checks once
// crypto/tls has checked the client's CertificateVerify and Finished (the
// client holds the certificate's key), so that a certificate that passed
// before may skip them (checkOnce) without its time telling anything to a
// client without the key. Before that the client's chain is only counted
// (oneCertificate). A client that fails them sees the connection close
// after its Finished, as tls.md tells clients to expect, and we have read
// nothing it sent.
type acceptCheck struct {
	t      *Transport
	remote peer.ID
}

func (a *acceptCheck) check(chain []*x509.Certificate) (checkedCert, error) {
	return a.t.checkAs(chain, a.remote)
}

// oneCertificate refuses a chain of any length but one, whoever sent it.
func oneCertificate(cs tls.ConnectionState) error {
	return oneCert(cs.PeerCertificates)
}

// SecureOutbound runs the handshake as the TLS client and fails unless the
// server proves it is remote.
func (t *Transport) SecureOutbound(ctx context.Context, insecure net.Conn, remote peer.ID) (network.SecureConn, error) {
	if remote == "" {
		insecure.Close()
		return nil, errors.New("tls: outbound handshake needs the remote peer ID")
	}
	cert, _, err := t.certificate()
	if err != nil {
		insecure.Close()
		return nil, err
	}
	c := &Conn{localPeer: t.localID, batch: &batchConn{Conn: insecure}}
	cfg, check := t.dialConfig(cert, remote)
	c.check = check
	return c.handshake(ctx, tls.Client(c.batch, cfg), insecure)
}

// Conn is a TLS-secured connection. It implements network.SecureConn; the
// embedded *tls.Conn gives Read, Close, CloseWrite (close_notify),
// deadlines and ConnectionState; Write gathers records (see batchConn).
type Conn struct {
	*tls.Conn
	batch      *batchConn // under Conn; nil: crypto/tls writes each record itself
	localPeer  peer.ID
	remotePeer peer.ID
	remoteKey  crypto.PubKey
	state      network.ConnState
	check      *dialCheck   // outbound: the checks of the server's chain
	accept     *acceptCheck // inbound: the checks of the client's chain
}

var _ network.SecureConn = (*Conn)(nil)

// handshake drives the TLS handshake under ctx: its deadline applies to the
// raw connection and cancelling it aborts the handshake. Any failure closes
// the connection.
func (c *Conn) handshake(ctx context.Context, tc *tls.Conn, raw net.Conn) (*Conn, error) {
	fail := func(err error) (*Conn, error) {
		raw.Close()
		return nil, &handshakeError{err: err}
	}
	if dl, ok := ctx.Deadline(); ok {
		if err := raw.SetDeadline(dl); err != nil {
			return fail(err)
		}
	}
	// HandshakeContext closes the connection when ctx is cancelled.
	if err := tc.HandshakeContext(ctx); err != nil {
		cerr := ctx.Err()
		var ne net.Error
		if _, ok := ctx.Deadline(); ok && cerr == nil && errors.As(err, &ne) && ne.Timeout() {
			cerr = context.DeadlineExceeded // the socket deadline fired first
		}
		if cerr != nil && !errors.Is(err, cerr) {
			raw.Close()
			return nil, &handshakeError{ctx: cerr, err: err}
		}
		return fail(err)
	}
	if _, ok := ctx.Deadline(); ok {
		if err := raw.SetDeadline(time.Time{}); err != nil {
			return fail(err)
		}
	}
	st := tc.ConnectionState()
	switch {
	case c.check != nil:
		if err := c.check.check(); err != nil { // done unless no certificate was asked for
			return fail(err)
		}
		c.remoteKey, c.remotePeer = c.check.passed.pub, c.check.passed.id
		c.check = nil
	case c.accept != nil:
		passed, err := c.accept.check(st.PeerCertificates)
		if err != nil {
			return fail(err)
		}
		c.remoteKey, c.remotePeer = passed.pub, passed.id
		c.accept = nil
	default: // every handshake of this package has one of the two
		return fail(errors.New("tls: no certificate check for this handshake"))
	}
	c.Conn = tc
	// Not before: the handshake reads as crypto/tls asks, byte for byte.
	// Only on a connection that counts exactly: over one that does not (a
	// WebSocket), a read ahead could wait holding its buffer, and a peer
	// sending control frames could make every connection hold one.
	c.batch.rd.on = netbuf.Exact(raw)
	c.state.Security = ID
	if p := st.NegotiatedProtocol; p != alpnLibp2p {
		c.state.Muxer = protocol.ID(p)
	}
	return c, nil
}

// handshakeError reads "tls: handshake: <cause>"; the caller names the peer
// and address (the upgrader, the swarm), so it is not repeated. The cause,
// ours or crypto/tls's, usually says "tls: " too ("tls: peer ID mismatch",
// "remote error: tls: bad certificate"): it is said once, up front.
type handshakeError struct {
	ctx error // the context error that ended the handshake, if any
	err error
}

func (e *handshakeError) Error() string {
	msg := strings.ReplaceAll(e.err.Error(), "tls: ", "")
	if e.ctx != nil {
		msg = e.ctx.Error() + " (" + msg + ")"
	}
	return "tls: handshake: " + msg
}

func (e *handshakeError) Unwrap() []error {
	if e.ctx != nil {
		return []error{e.ctx, e.err}
	}
	return []error{e.err}
}

// LocalPeer returns our peer ID.
func (c *Conn) LocalPeer() peer.ID { return c.localPeer }

// RemotePeer returns the authenticated peer ID of the other side.
func (c *Conn) RemotePeer() peer.ID { return c.remotePeer }

// RemotePublicKey returns the other side's host key.
func (c *Conn) RemotePublicKey() crypto.PubKey { return c.remoteKey }

// ConnState reports "/tls/1.0.0" and the muxer agreed through ALPN (empty
// when the peers fell back to "libp2p").
func (c *Conn) ConnState() network.ConnState { return c.state }
