package webrtc

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	mh "github.com/multiformats/go-multihash"
	pion "github.com/pion/webrtc/v4"
)

// Certificate is the DTLS certificate a listener presents. Its SHA-256
// fingerprint is the /certhash of the listen addresses, so a host keeps the
// same Certificate across restarts (stored next to its key file with
// MarshalPEM) for its addresses to stay valid.
type Certificate struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
}

// certValidity is long because the fingerprint, not the validity period, is
// what peers check, and a persisted certificate must not expire under a
// running node (pion refuses expired certificates).
const certValidity = 100 * 365 * 24 * time.Hour

// GenerateCertificate creates a self-signed ECDSA P-256 certificate, the
// kind browsers create for WebRTC.
func GenerateCertificate() (*Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("webrtc: generating certificate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, fmt.Errorf("webrtc: generating serial number: %w", err)
	}
	now := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	tpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "libp2p-webrtc"},
		NotBefore:             now,
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("webrtc: creating certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("webrtc: parsing new certificate: %w", err)
	}
	return &Certificate{key: key, cert: cert}, nil
}

// MarshalPEM encodes the certificate and its private key as two PEM blocks,
// "CERTIFICATE" then "PRIVATE KEY" (PKCS #8).
func (c *Certificate) MarshalPEM() ([]byte, error) {
	k, err := x509.MarshalPKCS8PrivateKey(c.key)
	if err != nil {
		return nil, fmt.Errorf("webrtc: encoding certificate key: %w", err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw})
	return append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k})...), nil
}

// ParseCertificatePEM decodes what MarshalPEM wrote. It checks that the key
// matches the certificate and that the certificate has not expired.
func ParseCertificatePEM(data []byte) (*Certificate, error) {
	var c Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		switch b.Type {
		case "CERTIFICATE":
			if c.cert != nil {
				return nil, errors.New("webrtc: more than one CERTIFICATE block")
			}
			cert, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("webrtc: parsing certificate: %w", err)
			}
			c.cert = cert
		case "PRIVATE KEY":
			if c.key != nil {
				return nil, errors.New("webrtc: more than one PRIVATE KEY block")
			}
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("webrtc: parsing certificate key: %w", err)
			}
			ek, ok := k.(*ecdsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("webrtc: certificate key is %T, want ECDSA", k)
			}
			c.key = ek
		default:
			return nil, fmt.Errorf("webrtc: unexpected PEM block %q", b.Type)
		}
	}
	if c.cert == nil || c.key == nil {
		return nil, errors.New("webrtc: PEM needs a CERTIFICATE and a PRIVATE KEY block")
	}
	pub, ok := c.cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&c.key.PublicKey) {
		return nil, errors.New("webrtc: private key does not match the certificate")
	}
	if time.Now().After(c.cert.NotAfter) {
		return nil, fmt.Errorf("webrtc: certificate expired on %s", c.cert.NotAfter)
	}
	return &c, nil
}

// Fingerprint is the SHA-256 digest of the DER certificate.
func (c *Certificate) Fingerprint() [32]byte { return sha256.Sum256(c.cert.Raw) }

// CertHash is the fingerprint as a sha2-256 multihash, the binary value of
// the /certhash component.
func (c *Certificate) CertHash() []byte {
	fp := c.Fingerprint()
	return fingerprintMultihash(fp[:])
}

func (c *Certificate) pion() pion.Certificate { return pion.CertificateFromX509(c.key, c.cert) }

func fingerprintMultihash(fp []byte) []byte {
	h, err := mh.Encode(fp, mh.SHA2_256)
	if err != nil {
		panic(err) // only on a wrong digest length, which callers rule out
	}
	return h
}
