package crypto

import (
	stdcrypto "crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"io"
)

// RSAPublicKey is an RSA public key, encoded as PKIX DER.
type RSAPublicKey struct{ k *rsa.PublicKey }

// RSAPrivateKey is an RSA private key, encoded as PKCS#1 DER.
type RSAPrivateKey struct{ k *rsa.PrivateKey }

// GenerateRSAKey generates an RSA key of bits bits (2048..8192).
func GenerateRSAKey(bits int, src io.Reader) (PrivKey, error) {
	if bits < MinRSAKeyBits || bits > MaxRSAKeyBits {
		return nil, fmt.Errorf("%w: %d bits", ErrRSAKeySize, bits)
	}
	if src == nil {
		src = rand.Reader
	}
	k, err := rsa.GenerateKey(src, bits)
	if err != nil {
		return nil, fmt.Errorf("crypto: generating RSA key: %w", err)
	}
	return &RSAPrivateKey{k}, nil
}

func checkRSASize(k *rsa.PublicKey) error {
	if bits := k.N.BitLen(); bits < MinRSAKeyBits || bits > MaxRSAKeyBits {
		return fmt.Errorf("%w: %d bits", ErrRSAKeySize, bits)
	}
	return nil
}

// UnmarshalRSAPublicKey decodes a PKIX DER RSA key.
func UnmarshalRSAPublicKey(raw []byte) (PubKey, error) {
	k, err := x509.ParsePKIXPublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: RSA public key: %w", ErrBadKey, err)
	}
	rk, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: RSA public key holds a %T", ErrBadKey, k)
	}
	if err := checkRSASize(rk); err != nil {
		return nil, err
	}
	return &RSAPublicKey{rk}, nil
}

// UnmarshalRSAPrivateKey decodes a PKCS#1 DER RSA key.
func UnmarshalRSAPrivateKey(raw []byte) (PrivKey, error) {
	k, err := x509.ParsePKCS1PrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: RSA private key: %w", ErrBadKey, err)
	}
	if err := checkRSASize(&k.PublicKey); err != nil {
		return nil, err
	}
	return &RSAPrivateKey{k}, nil
}

func (k *RSAPublicKey) Type() KeyType { return RSA }
func (k *RSAPublicKey) Raw() ([]byte, error) {
	b, err := x509.MarshalPKIXPublicKey(k.k)
	if err != nil {
		return nil, fmt.Errorf("crypto: encoding RSA public key: %w", err)
	}
	return b, nil
}
func (k *RSAPublicKey) Equal(o PubKey) bool {
	if ok, is := o.(*RSAPublicKey); is {
		return k.k.Equal(ok.k)
	}
	return basicEqual(k, o)
}

// Verify checks a PKCS#1 v1.5 signature over SHA-256(data).
func (k *RSAPublicKey) Verify(data, sig []byte) (bool, error) {
	h := sha256.Sum256(data)
	return rsa.VerifyPKCS1v15(k.k, stdcrypto.SHA256, h[:], sig) == nil, nil
}

func (k *RSAPrivateKey) Type() KeyType        { return RSA }
func (k *RSAPrivateKey) Raw() ([]byte, error) { return x509.MarshalPKCS1PrivateKey(k.k), nil }
func (k *RSAPrivateKey) Sign(data []byte) ([]byte, error) {
	h := sha256.Sum256(data)
	sig, err := rsa.SignPKCS1v15(nil, k.k, stdcrypto.SHA256, h[:])
	if err != nil {
		return nil, fmt.Errorf("crypto: RSA signing: %w", err)
	}
	return sig, nil
}
func (k *RSAPrivateKey) GetPublic() PubKey { return &RSAPublicKey{&k.k.PublicKey} }
func (k *RSAPrivateKey) Equal(o PrivKey) bool {
	ok, is := o.(*RSAPrivateKey)
	return is && k.k.Equal(ok.k)
}
