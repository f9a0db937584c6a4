package crypto

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	secpecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

// Secp256k1PublicKey is a secp256k1 public key.
type Secp256k1PublicKey struct{ k *secp256k1.PublicKey }

// Secp256k1PrivateKey is a secp256k1 private key.
type Secp256k1PrivateKey struct{ k *secp256k1.PrivateKey }

// GenerateSecp256k1Key generates a secp256k1 key from src (nil = crypto/rand).
func GenerateSecp256k1Key(src io.Reader) (PrivKey, error) {
	if src == nil {
		src = rand.Reader
	}
	k, err := secp256k1.GeneratePrivateKeyFromRand(src)
	if err != nil {
		return nil, fmt.Errorf("crypto: generating secp256k1 key: %w", err)
	}
	return &Secp256k1PrivateKey{k}, nil
}

// UnmarshalSecp256k1PublicKey decodes a compressed (33-byte) or uncompressed
// (65-byte) point; it is always re-encoded compressed.
func UnmarshalSecp256k1PublicKey(raw []byte) (PubKey, error) {
	k, err := secp256k1.ParsePubKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: secp256k1 public key: %w", ErrBadKey, err)
	}
	return &Secp256k1PublicKey{k}, nil
}

// UnmarshalSecp256k1PrivateKey decodes a 32-byte scalar in [1, N-1].
func UnmarshalSecp256k1PrivateKey(raw []byte) (PrivKey, error) {
	if len(raw) != 32 {
		return nil, fmt.Errorf("%w: secp256k1 private key is %d bytes, want 32", ErrBadKey, len(raw))
	}
	var s secp256k1.ModNScalar
	if overflow := s.SetByteSlice(raw); overflow || s.IsZero() {
		return nil, fmt.Errorf("%w: secp256k1 private key out of range", ErrBadKey)
	}
	return &Secp256k1PrivateKey{secp256k1.NewPrivateKey(&s)}, nil
}

func (k *Secp256k1PublicKey) Type() KeyType { return Secp256k1 }
func (k *Secp256k1PublicKey) Raw() ([]byte, error) {
	return k.k.SerializeCompressed(), nil
}
func (k *Secp256k1PublicKey) Equal(o PubKey) bool {
	if ok, is := o.(*Secp256k1PublicKey); is {
		return k.k.IsEqual(ok.k)
	}
	return basicEqual(k, o)
}

// Verify checks a DER ECDSA signature over SHA-256(data).
func (k *Secp256k1PublicKey) Verify(data, sig []byte) (bool, error) {
	s, err := secpecdsa.ParseDERSignature(sig)
	if err != nil {
		return false, nil
	}
	h := sha256.Sum256(data)
	return s.Verify(h[:], k.k), nil
}

func (k *Secp256k1PrivateKey) Type() KeyType { return Secp256k1 }
func (k *Secp256k1PrivateKey) Raw() ([]byte, error) {
	return k.k.Serialize(), nil
}

// Sign makes a deterministic (RFC 6979), low-S DER signature of SHA-256(data).
func (k *Secp256k1PrivateKey) Sign(data []byte) ([]byte, error) {
	h := sha256.Sum256(data)
	return secpecdsa.Sign(k.k, h[:]).Serialize(), nil
}
func (k *Secp256k1PrivateKey) GetPublic() PubKey { return &Secp256k1PublicKey{k.k.PubKey()} }
func (k *Secp256k1PrivateKey) Equal(o PrivKey) bool {
	ok, is := o.(*Secp256k1PrivateKey)
	return is && subtle.ConstantTimeCompare(k.k.Serialize(), ok.k.Serialize()) == 1
}
