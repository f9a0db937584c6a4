package tls

import (
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
	"time"

	"github.com/tachyon-p2p/tachyon/core/crypto"
)

// The libp2p certificate (tls/tls.md, "libp2p Public Key Extension"): a
// self-signed certificate for a throwaway key, carrying the host key and the
// host key's signature over the certificate key in an extension.

// extensionOID is 1.3.6.1.4.1.53594.1.1, allocated to libp2p by IANA.
var extensionOID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 53594, 1, 1}

// certSignaturePrefix precedes the certificate's SubjectPublicKeyInfo when
// the host key signs it.
const certSignaturePrefix = "libp2p-tls-handshake:"

// signedKey is the extension's value:
//
//	SignedKey ::= SEQUENCE { publicKey OCTET STRING, signature OCTET STRING }
type signedKey struct {
	PublicKey []byte // PublicKey protobuf of the host key
	Signature []byte
}

// certValidity is how long our certificates claim to be valid; rotation,
// not expiry, bounds how long one is used.
const certValidity = 100 * 365 * 24 * time.Hour

// newCertificate creates a certificate for a fresh ECDSA P-256 key (the
// cheapest to sign with, and accepted by go, rust and js), authenticated by
// the host key.
func newCertificate(host crypto.PrivKey) (tls.Certificate, error) {
	certKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: generating certificate key: %w", err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&certKey.PublicKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: encoding certificate key: %w", err)
	}
	hostPub, err := crypto.MarshalPublicKey(host.GetPublic())
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: encoding host key: %w", err)
	}
	sig, err := host.Sign(append([]byte(certSignaturePrefix), spki...))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: signing certificate key: %w", err)
	}
	value, err := asn1.Marshal(signedKey{PublicKey: hostPub, Signature: sig})
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: encoding extension: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: drawing serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:    serial,
		NotBefore:       now.Add(-time.Hour),
		NotAfter:        now.Add(certValidity),
		ExtraExtensions: []pkix.Extension{{Id: extensionOID, Value: value}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &certKey.PublicKey, certKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: creating certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls: parsing our certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: certKey, Leaf: leaf}, nil
}

// extensionOf decodes cert's one libp2p extension.
func extensionOf(cert *x509.Certificate) (signedKey, error) {
	var value []byte
	for _, ext := range cert.Extensions {
		if ext.Id.Equal(extensionOID) {
			if value != nil {
				return signedKey{}, errors.New("tls: duplicate libp2p extension")
			}
			value = ext.Value
		}
	}
	if value == nil {
		return signedKey{}, errors.New("tls: certificate has no libp2p public key extension")
	}
	var sk signedKey
	rest, err := asn1.Unmarshal(value, &sk)
	if err != nil {
		return signedKey{}, fmt.Errorf("tls: decoding libp2p extension: %w", err)
	}
	if len(rest) != 0 {
		return signedKey{}, errors.New("tls: trailing bytes after libp2p extension")
	}
	return sk, nil
}

// PubKeyFromCertChain checks a peer's certificate chain the way tls/tls.md
// requires and returns the host key it authenticates:
//   - exactly one certificate;
//   - valid now (NotBefore <= now <= NotAfter);
//   - its self-signature verifies with its own key;
//   - it carries the libp2p extension (critical or not), whose signature by
//     the host key over "libp2p-tls-handshake:" || SPKI verifies.
//
// ClientConfig runs it in VerifyConnection; the other handshakes of this
// package run it through checkOnce once the peer has proved it holds the
// certificate's key (dialCheck, acceptCheck, CheckPeer).
func PubKeyFromCertChain(chain []*x509.Certificate) (crypto.PubKey, error) {
	if err := oneCert(chain); err != nil {
		return nil, err
	}
	cert := chain[0]
	if err := validNow(cert); err != nil {
		return nil, err
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		return nil, fmt.Errorf("tls: certificate self-signature: %w", err)
	}
	sk, err := extensionOf(cert)
	if err != nil {
		return nil, err
	}
	pub, err := crypto.UnmarshalPublicKey(sk.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("tls: decoding host key in extension: %w", err)
	}
	ok, err := pub.Verify(append([]byte(certSignaturePrefix), cert.RawSubjectPublicKeyInfo...), sk.Signature)
	if err != nil || !ok {
		return nil, fmt.Errorf("tls: host key signature over certificate key is invalid (%v)", err)
	}
	return pub, nil
}

// oneCert refuses a chain of any length but one (tls.md).
func oneCert(chain []*x509.Certificate) error {
	if len(chain) != 1 {
		return fmt.Errorf("tls: expected exactly one certificate, got %d", len(chain))
	}
	return nil
}

// validNow checks NotBefore <= now <= NotAfter.
func validNow(cert *x509.Certificate) error {
	now := time.Now()
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return fmt.Errorf("tls: certificate not valid now (valid %s to %s)", cert.NotBefore.Format(time.RFC3339), cert.NotAfter.Format(time.RFC3339))
	}
	return nil
}
