// Package tlstest makes libp2p TLS certificates (libp2p/specs tls/tls.md)
// for tests: a genuine one, and forged ones that a peer must refuse, so that
// a test can present them in a real handshake (TCP or QUIC) and check that
// the handshake fails. It is written from the spec, not from package tls,
// so that a mistake there is not copied here.
package tlstest

import (
	stdcrypto "crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"time"

	"github.com/tachyon-p2p/tachyon/core/crypto"
)

// Forgery says what is wrong with a certificate from Certificate.
type Forgery int

const (
	// Genuine is a valid certificate for the host key.
	Genuine Forgery = iota
	// WrongSigner claims the host key in the extension, but another host
	// key signed the certificate key.
	WrongSigner
	// CopiedExtension carries the host key's genuine extension taken from
	// another certificate: the signature covers that certificate's key,
	// not this one's. Anyone who saw a handshake of the host can make it.
	CopiedExtension
	// Expired has valid signatures but its NotAfter is in the past.
	Expired
	// NotYetValid has valid signatures but its NotBefore is in the future.
	NotYetValid
	// BadSelfSignature is signed by a key other than its own (the
	// extension is valid for its own key).
	BadSelfSignature
	// NoExtension lacks the libp2p public key extension.
	NoExtension
)

// Forgeries lists every forged kind, for tests that try them all.
var Forgeries = []Forgery{WrongSigner, CopiedExtension, Expired, NotYetValid, BadSelfSignature, NoExtension}

func (f Forgery) String() string {
	switch f {
	case Genuine:
		return "genuine"
	case WrongSigner:
		return "wrong-signer"
	case CopiedExtension:
		return "copied-extension"
	case Expired:
		return "expired"
	case NotYetValid:
		return "not-yet-valid"
	case BadSelfSignature:
		return "bad-self-signature"
	case NoExtension:
		return "no-extension"
	}
	return fmt.Sprintf("Forgery(%d)", int(f))
}

// extensionOID is the libp2p Public Key Extension, 1.3.6.1.4.1.53594.1.1.
var extensionOID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 53594, 1, 1}

// signedKey is SignedKey ::= SEQUENCE { publicKey OCTET STRING,
// signature OCTET STRING }.
type signedKey struct {
	PublicKey []byte
	Signature []byte
}

// Certificate returns a certificate that claims host's identity, wrong as
// f says, with the private key of its certificate key, so that it can be
// presented in a TLS handshake (the CertificateVerify signature is always
// valid: only the libp2p checks can refuse it).
func Certificate(host crypto.PrivKey, f Forgery) (tls.Certificate, error) {
	certKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlstest: generating certificate key: %w", err)
	}
	return certificate(host, f, certKey)
}

// CertificateKeyed returns a genuine certificate for host whose own key
// (the one that self-signs it and signs the handshake) is certKey: the
// spec lets a peer pick any key type the other side can verify.
func CertificateKeyed(host crypto.PrivKey, certKey stdcrypto.Signer) (tls.Certificate, error) {
	return certificate(host, Genuine, certKey)
}

func certificate(host crypto.PrivKey, f Forgery, certKey stdcrypto.Signer) (tls.Certificate, error) {
	var err error
	signer, covered := host, certKey.Public()
	switch f {
	case WrongSigner:
		if signer, err = crypto.GenerateEd25519Key(nil); err != nil {
			return tls.Certificate{}, fmt.Errorf("tlstest: generating the other host key: %w", err)
		}
	case CopiedExtension:
		other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("tlstest: generating the other certificate key: %w", err)
		}
		covered = other.Public()
	}
	ext, err := extension(host.GetPublic(), signer, covered)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlstest: drawing serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:    serial,
		NotBefore:       now.Add(-time.Hour),
		NotAfter:        now.Add(24 * time.Hour),
		ExtraExtensions: []pkix.Extension{ext},
	}
	var selfSigner stdcrypto.Signer = certKey
	switch f {
	case Expired:
		tmpl.NotBefore, tmpl.NotAfter = now.Add(-48*time.Hour), now.Add(-24*time.Hour)
	case NotYetValid:
		tmpl.NotBefore, tmpl.NotAfter = now.Add(24*time.Hour), now.Add(48*time.Hour)
	case BadSelfSignature:
		if selfSigner, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return tls.Certificate{}, fmt.Errorf("tlstest: generating the other signing key: %w", err)
		}
	case NoExtension:
		tmpl.ExtraExtensions = nil
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, certKey.Public(), selfSigner)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlstest: creating certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlstest: parsing the certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: certKey, Leaf: leaf}, nil
}

// extension encodes the libp2p extension claiming claimed, with signer's
// signature over covered's SubjectPublicKeyInfo.
func extension(claimed crypto.PubKey, signer crypto.PrivKey, covered any) (pkix.Extension, error) {
	spki, err := x509.MarshalPKIXPublicKey(covered)
	if err != nil {
		return pkix.Extension{}, fmt.Errorf("tlstest: encoding certificate key: %w", err)
	}
	pub, err := crypto.MarshalPublicKey(claimed)
	if err != nil {
		return pkix.Extension{}, fmt.Errorf("tlstest: encoding host key: %w", err)
	}
	sig, err := signer.Sign(append([]byte("libp2p-tls-handshake:"), spki...))
	if err != nil {
		return pkix.Extension{}, fmt.Errorf("tlstest: signing certificate key: %w", err)
	}
	value, err := asn1.Marshal(signedKey{PublicKey: pub, Signature: sig})
	if err != nil {
		return pkix.Extension{}, fmt.Errorf("tlstest: encoding extension: %w", err)
	}
	return pkix.Extension{Id: extensionOID, Value: value}, nil
}

// ClientConfig returns a TLS 1.3 client config that presents cert (also
// as client certificate), offers alpn and accepts any server certificate:
// a peer that does no checks of its own, so that only the other side's
// checks decide.
func ClientConfig(cert tls.Certificate, alpn ...string) *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		InsecureSkipVerify:     true,
		Certificates:           []tls.Certificate{cert},
		NextProtos:             alpn,
		SessionTicketsDisabled: true,
	}
}

// ServerConfig returns a TLS 1.3 server config that presents cert, accepts
// alpn and asks for a client certificate without checking it.
func ServerConfig(cert tls.Certificate, alpn ...string) *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		ClientAuth:             tls.RequireAnyClientCert,
		Certificates:           []tls.Certificate{cert},
		NextProtos:             alpn,
		SessionTicketsDisabled: true,
	}
}
