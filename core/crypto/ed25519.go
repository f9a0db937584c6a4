package crypto

import (
	"crypto/ed25519"
	"crypto/subtle"
	"fmt"
	"io"
)

// Ed25519PublicKey is an Ed25519 public key.
type Ed25519PublicKey struct{ k ed25519.PublicKey }

// Ed25519PrivateKey is an Ed25519 private key.
type Ed25519PrivateKey struct{ k ed25519.PrivateKey }

// GenerateEd25519Key generates an Ed25519 key from src (nil = crypto/rand).
func GenerateEd25519Key(src io.Reader) (PrivKey, error) {
	_, k, err := ed25519.GenerateKey(src)
	if err != nil {
		return nil, fmt.Errorf("crypto: generating Ed25519 key: %w", err)
	}
	return &Ed25519PrivateKey{k}, nil
}

// Ed25519KeyFromSeed derives the Ed25519 key of a 32-byte seed.
func Ed25519KeyFromSeed(seed []byte) (PrivKey, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: Ed25519 seed is %d bytes, want %d", ErrBadKey, len(seed), ed25519.SeedSize)
	}
	return &Ed25519PrivateKey{ed25519.NewKeyFromSeed(seed)}, nil
}

// UnmarshalEd25519PublicKey decodes a 32-byte Ed25519 public key.
func UnmarshalEd25519PublicKey(raw []byte) (PubKey, error) {
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: Ed25519 public key is %d bytes, want %d", ErrBadKey, len(raw), ed25519.PublicKeySize)
	}
	return &Ed25519PublicKey{ed25519.PublicKey(append([]byte(nil), raw...))}, nil
}

// UnmarshalEd25519PrivateKey decodes seed‖pub (64 bytes) or the legacy
// seed‖pub‖pub (96 bytes). The public half must match the seed.
func UnmarshalEd25519PrivateKey(raw []byte) (PrivKey, error) {
	switch len(raw) {
	case ed25519.PrivateKeySize:
	case ed25519.PrivateKeySize + ed25519.PublicKeySize:
		if subtle.ConstantTimeCompare(raw[32:64], raw[64:]) != 1 {
			return nil, fmt.Errorf("%w: legacy Ed25519 private key has mismatched public halves", ErrBadKey)
		}
		raw = raw[:ed25519.PrivateKeySize]
	default:
		return nil, fmt.Errorf("%w: Ed25519 private key is %d bytes, want 64 or 96", ErrBadKey, len(raw))
	}
	k := ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize])
	if subtle.ConstantTimeCompare(k[32:], raw[32:64]) != 1 {
		return nil, fmt.Errorf("%w: Ed25519 public half does not match the seed", ErrBadKey)
	}
	return &Ed25519PrivateKey{k}, nil
}

func (k *Ed25519PublicKey) Type() KeyType        { return Ed25519 }
func (k *Ed25519PublicKey) Raw() ([]byte, error) { return append([]byte(nil), k.k...), nil }
func (k *Ed25519PublicKey) Equal(o PubKey) bool {
	if ok, isEd := o.(*Ed25519PublicKey); isEd {
		return k.k.Equal(ok.k)
	}
	return basicEqual(k, o)
}

// Verify checks a pure Ed25519 signature.
func (k *Ed25519PublicKey) Verify(data, sig []byte) (bool, error) {
	return ed25519.Verify(k.k, data, sig), nil
}

func (k *Ed25519PrivateKey) Type() KeyType        { return Ed25519 }
func (k *Ed25519PrivateKey) Raw() ([]byte, error) { return append([]byte(nil), k.k...), nil }
func (k *Ed25519PrivateKey) Sign(data []byte) ([]byte, error) {
	return ed25519.Sign(k.k, data), nil
}
func (k *Ed25519PrivateKey) GetPublic() PubKey {
	return &Ed25519PublicKey{k.k.Public().(ed25519.PublicKey)}
}
func (k *Ed25519PrivateKey) Equal(o PrivKey) bool {
	ok, isEd := o.(*Ed25519PrivateKey)
	return isEd && subtle.ConstantTimeCompare(k.k, ok.k) == 1
}
