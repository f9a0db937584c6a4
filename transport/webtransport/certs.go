package webtransport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"sync"
	"time"
)

// Certificate rotation.
//
// Browsers accept a certificate by hash only if it is valid for at most 14
// days (W3C WebTransport, serverCertificateHashes). Time is cut into epochs
// of rotatePeriod (7 days) from the moment the transport was created. The
// certificate of epoch k is valid from the start of epoch k minus
// clockSkew, for certValidity (14 days), and is served throughout epoch k.
//
//	epoch:     |    k-1    |     k     |    k+1    |
//	cert k-1:  [=======================]              served in k-1
//	cert k:                [=======================]  served in k
//	cert k+1:                          [=============  served in k+1
//
// Addresses advertise the hashes of cert k and cert k+1, so an address
// learnt in epoch k still reaches us in epoch k+1, when cert k+1 is served.
// The Noise extension lists cert k-1 (if it was ever used), k and k+1, so
// that a client holding the address of epoch k-1 still finds every hash it
// dialed with.
const (
	rotatePeriod = 7 * 24 * time.Hour
	certValidity = 14 * 24 * time.Hour
	clockSkew    = time.Hour
)

type certEntry struct {
	tls  tls.Certificate
	hash []byte // sha2-256 multihash of the DER certificate
}

// certManager creates certificates lazily, from the clock, when they are
// needed; it has no goroutine.
type certManager struct {
	clock  func() time.Time
	anchor time.Time

	mu    sync.Mutex
	certs map[int64]*certEntry // by epoch; at most epochs k-1..k+1 are kept
}

func newCertManager(clock func() time.Time) *certManager {
	return &certManager{clock: clock, anchor: clock(), certs: map[int64]*certEntry{}}
}

func (m *certManager) epoch(now time.Time) int64 {
	d := now.Sub(m.anchor)
	k := int64(d / rotatePeriod)
	if d < 0 && d%rotatePeriod != 0 {
		k-- // floor for a clock that went backwards
	}
	return k
}

// current returns the certificate to serve now, the hashes to advertise
// (current and next) and the hashes for the Noise extension (previous,
// current and next).
func (m *certManager) current() (serve *tls.Certificate, advertise, extension [][]byte, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := m.epoch(m.clock())
	for e := range m.certs {
		if e < k-1 || e > k+1 {
			delete(m.certs, e)
		}
	}
	for _, e := range []int64{k, k + 1} {
		if m.certs[e] == nil {
			c, err := m.generate(e)
			if err != nil {
				return nil, nil, nil, err
			}
			m.certs[e] = c
		}
	}
	cur, next := m.certs[k], m.certs[k+1]
	advertise = [][]byte{cur.hash, next.hash}
	if prev := m.certs[k-1]; prev != nil {
		extension = append(extension, prev.hash)
	}
	extension = append(extension, cur.hash, next.hash)
	return &cur.tls, advertise, extension, nil
}

// generate makes the self-signed ECDSA P-256 certificate of epoch e.
func (m *certManager) generate(e int64) (*certEntry, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("webtransport: generating certificate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("webtransport: generating serial: %w", err)
	}
	notBefore := m.anchor.Add(time.Duration(e) * rotatePeriod).Add(-clockSkew)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "libp2p-webtransport"},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(certValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("webtransport: creating certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("webtransport: parsing our certificate: %w", err)
	}
	return &certEntry{
		tls:  tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		hash: certHash(der),
	}, nil
}
