package crypto

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"io"
)

// ECDSAPublicKey is an ECDSA public key (P-256, P-384 or P-521), encoded as
// PKIX SubjectPublicKeyInfo DER.
type ECDSAPublicKey struct{ k *ecdsa.PublicKey }

// ECDSAPrivateKey is an ECDSA private key, encoded as SEC1 ECPrivateKey DER.
type ECDSAPrivateKey struct{ k *ecdsa.PrivateKey }

// GenerateECDSAKey generates a P-256 key.
func GenerateECDSAKey(src io.Reader) (PrivKey, error) {
	if src == nil {
		src = rand.Reader
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), src)
	if err != nil {
		return nil, fmt.Errorf("crypto: generating ECDSA key: %w", err)
	}
	return &ECDSAPrivateKey{k}, nil
}

// UnmarshalECDSAPublicKey decodes a PKIX SubjectPublicKeyInfo DER key.
func UnmarshalECDSAPublicKey(raw []byte) (PubKey, error) {
	k, err := x509.ParsePKIXPublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: ECDSA public key: %w", ErrBadKey, err)
	}
	ek, ok := k.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: ECDSA public key holds a %T", ErrBadKey, k)
	}
	return &ECDSAPublicKey{ek}, nil
}

// UnmarshalECDSAPrivateKey decodes a SEC1 ECPrivateKey DER key.
func UnmarshalECDSAPrivateKey(raw []byte) (PrivKey, error) {
	k, err := x509.ParseECPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: ECDSA private key: %w", ErrBadKey, err)
	}
	return &ECDSAPrivateKey{k}, nil
}

func (k *ECDSAPublicKey) Type() KeyType { return ECDSA }
func (k *ECDSAPublicKey) Raw() ([]byte, error) {
	b, err := x509.MarshalPKIXPublicKey(k.k)
	if err != nil {
		return nil, fmt.Errorf("crypto: encoding ECDSA public key: %w", err)
	}
	return b, nil
}
func (k *ECDSAPublicKey) Equal(o PubKey) bool {
	if ok, is := o.(*ECDSAPublicKey); is {
		return k.k.Equal(ok.k)
	}
	return basicEqual(k, o)
}

// Verify checks an ASN.1 DER ECDSA signature over SHA-256(data).
func (k *ECDSAPublicKey) Verify(data, sig []byte) (bool, error) {
	h := sha256.Sum256(data)
	return ecdsa.VerifyASN1(k.k, h[:], sig), nil
}

func (k *ECDSAPrivateKey) Type() KeyType { return ECDSA }
func (k *ECDSAPrivateKey) Raw() ([]byte, error) {
	b, err := x509.MarshalECPrivateKey(k.k)
	if err != nil {
		return nil, fmt.Errorf("crypto: encoding ECDSA private key: %w", err)
	}
	return b, nil
}
func (k *ECDSAPrivateKey) Sign(data []byte) ([]byte, error) {
	h := sha256.Sum256(data)
	sig, err := ecdsa.SignASN1(rand.Reader, k.k, h[:])
	if err != nil {
		return nil, fmt.Errorf("crypto: ECDSA signing: %w", err)
	}
	return sig, nil
}
func (k *ECDSAPrivateKey) GetPublic() PubKey { return &ECDSAPublicKey{&k.k.PublicKey} }
func (k *ECDSAPrivateKey) Equal(o PrivKey) bool {
	ok, is := o.(*ECDSAPrivateKey)
	return is && k.k.Equal(ok.k)
}
