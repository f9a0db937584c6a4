package peer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"
)

// libp2p TLS 1.3 as tls/tls.md specifies it.

// tlsExtensionOID is the libp2p Public Key Extension, 1.3.6.1.4.1.53594.1.1.
var tlsExtensionOID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 53594, 1, 1}

// tlsSigPrefix precedes the certificate key's SubjectPublicKeyInfo in what
// the host key signs.
const tlsSigPrefix = "libp2p-tls-handshake:"

// tlsSignedKey is SignedKey ::= SEQUENCE { publicKey OCTET STRING,
// signature OCTET STRING }.
type tlsSignedKey struct {
	PublicKey []byte
	Signature []byte
}

// newTLSCert makes a self-signed certificate with a fresh ECDSA P-256 key,
// unrelated to the host key as the spec asks, carrying the extension.
// The extension is marked critical, which the spec allows (rust does it) and
// which a peer must handle. edit, if not nil, may change the template;
// tests use it to build bad certificates.
func newTLSCert(id *Identity, edit func(*x509.Certificate)) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: generating certificate key: %w", err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: encoding certificate key: %w", err)
	}
	ext, err := asn1.Marshal(tlsSignedKey{
		PublicKey: id.PubKeyPB,
		Signature: id.Sign(append([]byte(tlsSigPrefix), spki...)),
	})
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: encoding SignedKey: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: serial number: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		// An hour of slack for clock skew; NotAfter past 2049 exercises the
		// peer's GeneralizedTime parsing, as the spec's vectors do.
		NotBefore:       now.Add(-time.Hour),
		NotAfter:        now.AddDate(100, 0, 0),
		ExtraExtensions: []pkix.Extension{{Id: tlsExtensionOID, Critical: true, Value: ext}},
	}
	if edit != nil {
		edit(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: creating certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// TLSConfig returns the libp2p TLS config of one side, with a fresh
// certificate. alpn is the ALPN list to offer (client) or accept (server):
// ["libp2p"] for QUIC; for TCP, [muxer ids..., "libp2p"] negotiates the
// muxer early, ["libp2p"] does not. A non-empty expectRemote fails the
// handshake unless the remote has that peer ID.
func TLSConfig(id *Identity, server bool, alpn []string, expectRemote string) (*tls.Config, error) {
	return tlsConfig(id, server, alpn, expectRemote, nil)
}

func tlsConfig(id *Identity, server bool, alpn []string, expectRemote string, edit func(*x509.Certificate)) (*tls.Config, error) {
	cert, err := newTLSCert(id, edit)
	if err != nil {
		return nil, err
	}
	conf := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		NextProtos:   slices.Clone(alpn),
		// The peer's certificate is checked against the spec, not against
		// a CA: crypto/tls's own verification must be off.
		InsecureSkipVerify: true,
		ClientAuth:         tls.RequireAnyClientCert,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			remote, err := verifyTLSChain(raw)
			if err != nil {
				return err
			}
			if expectRemote != "" && remote != expectRemote {
				return fmt.Errorf("tls: remote is peer %s, want %s", remote, expectRemote)
			}
			return nil
		},
		// ServerName stays empty: the spec forbids SNI for this version.
	}
	if server {
		// crypto/tls picks ALPN in server order, the spec wants the
		// client's first choice that the server supports. With no overlap
		// the original list stays and crypto/tls refuses the handshake, as
		// the spec requires.
		base := conf.Clone()
		conf.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			for _, p := range hello.SupportedProtos {
				if slices.Contains(alpn, p) {
					c := base.Clone()
					c.NextProtos = []string{p}
					return c, nil
				}
			}
			return nil, nil
		}
	}
	return conf, nil
}

// verifyTLSChain checks a received chain per tls.md and returns the peer ID
// it authenticates.
func verifyTLSChain(raw [][]byte) (string, error) {
	if len(raw) != 1 {
		return "", fmt.Errorf("tls: peer sent %d certificates, want exactly 1", len(raw))
	}
	cert, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return "", fmt.Errorf("tls: parsing peer certificate: %w", err)
	}
	now := time.Now()
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return "", fmt.Errorf("tls: peer certificate valid from %v to %v, not now", cert.NotBefore, cert.NotAfter)
	}
	// The libp2p extension may be critical; any other critical extension
	// is one we do not understand, and the spec says to abort on those.
	for _, oid := range cert.UnhandledCriticalExtensions {
		if !oid.Equal(tlsExtensionOID) {
			return "", fmt.Errorf("tls: peer certificate has unknown critical extension %v", oid)
		}
	}
	// Self-signed: the certificate's own key signs it. CheckSignatureFrom
	// would also demand CA basic constraints, which the spec does not.
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		return "", fmt.Errorf("tls: peer certificate self-signature: %w", err)
	}
	var ext []byte
	for _, e := range cert.Extensions {
		if e.Id.Equal(tlsExtensionOID) {
			if ext != nil {
				return "", errors.New("tls: peer certificate has the libp2p extension twice")
			}
			ext = e.Value
		}
	}
	if ext == nil {
		return "", errors.New("tls: peer certificate lacks the libp2p Public Key Extension")
	}
	var sk tlsSignedKey
	rest, err := asn1.Unmarshal(ext, &sk)
	if err != nil {
		return "", fmt.Errorf("tls: decoding SignedKey: %w", err)
	}
	if len(rest) != 0 {
		return "", fmt.Errorf("tls: %d bytes after SignedKey", len(rest))
	}
	if err := VerifySignature(sk.PublicKey, append([]byte(tlsSigPrefix), cert.RawSubjectPublicKeyInfo...), sk.Signature); err != nil {
		return "", fmt.Errorf("tls: SignedKey signature over the certificate key: %w", err)
	}
	id, err := PeerIDFromPublicKey(sk.PublicKey)
	if err != nil {
		return "", fmt.Errorf("tls: SignedKey public key: %w", err)
	}
	return id, nil
}

// TLSRemoteID returns the remote peer ID of a completed handshake.
func TLSRemoteID(cs tls.ConnectionState) (string, error) {
	raw := make([][]byte, len(cs.PeerCertificates))
	for i, c := range cs.PeerCertificates {
		raw[i] = c.Raw
	}
	return verifyTLSChain(raw)
}

// TLSHandshake runs the handshake over conn (as client when !server),
// bounded by ctx or DefaultTimeout. The returned conn is the *tls.Conn,
// whose CloseWrite sends close_notify (the remote reads EOF). alpnChosen is
// the negotiated protocol; it is empty if the client offered none, which the
// caller may treat as it sees fit.
//
// As a TLS 1.3 client completes before the server has checked its
// certificate, a client's handshake can succeed and its first read fail.
func TLSHandshake(ctx context.Context, conn net.Conn, id *Identity, server bool, alpn []string, expectRemote string) (c net.Conn, remoteID, alpnChosen string, err error) {
	conf, err := TLSConfig(id, server, alpn, expectRemote)
	if err != nil {
		return nil, "", "", err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	var tc *tls.Conn
	if server {
		tc = tls.Server(conn, conf)
	} else {
		tc = tls.Client(conn, conf)
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, "", "", fmt.Errorf("tls handshake (server=%v): %w", server, err)
	}
	cs := tc.ConnectionState()
	remoteID, err = TLSRemoteID(cs)
	if err != nil {
		return nil, "", "", err
	}
	return tc, remoteID, cs.NegotiatedProtocol, nil
}
