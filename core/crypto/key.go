// Package crypto implements the four libp2p key types and their protobuf
// encoding (peer-ids/peer-ids.md).
//
// Keys travel as a PublicKey/PrivateKey protobuf {Type=1, Data=2}. Peer IDs
// and signatures are computed over those exact bytes, so Marshal always emits
// the canonical form (type then data, nothing else) and Unmarshal accepts
// only that shape.
package crypto

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/tachyon-p2p/tachyon/internal/pb"
)

// KeyType is the KeyType enum of the key protobuf.
type KeyType int32

// Key types, numbered as on the wire.
const (
	RSA       KeyType = 0
	Ed25519   KeyType = 1
	Secp256k1 KeyType = 2
	ECDSA     KeyType = 3
)

func (t KeyType) String() string {
	switch t {
	case RSA:
		return "RSA"
	case Ed25519:
		return "Ed25519"
	case Secp256k1:
		return "Secp256k1"
	case ECDSA:
		return "ECDSA"
	default:
		return "KeyType(" + strconv.Itoa(int(t)) + ")"
	}
}

// Errors callers may branch on.
var (
	// ErrBadKeyType is returned for a key type this package does not know.
	ErrBadKeyType = errors.New("crypto: unsupported key type")
	// ErrBadKey is wrapped by every error about malformed key bytes.
	ErrBadKey = errors.New("crypto: malformed key")
	// ErrRSAKeySize is returned for RSA keys outside 2048..8192 bits.
	ErrRSAKeySize = errors.New("crypto: RSA key size out of range")
)

// RSA key size bounds, as go-libp2p enforces them.
const (
	MinRSAKeyBits = 2048
	MaxRSAKeyBits = 8192
)

// PubKey is a public key that can verify signatures.
type PubKey interface {
	Type() KeyType
	// Raw returns the Data field of the PublicKey protobuf.
	Raw() ([]byte, error)
	// Verify reports whether sig is a valid signature of data. A malformed
	// signature is reported as (false, nil) or as an error, never a panic.
	Verify(data, sig []byte) (bool, error)
	Equal(PubKey) bool
}

// PrivKey is a private key that can sign.
type PrivKey interface {
	Type() KeyType
	// Raw returns the Data field of the PrivateKey protobuf.
	Raw() ([]byte, error)
	Sign(data []byte) ([]byte, error)
	GetPublic() PubKey
	Equal(PrivKey) bool
}

// GenerateKeyPair generates a key of the given type. bits is used only for
// RSA. src nil means crypto/rand (and some of Go's generators ignore src).
func GenerateKeyPair(typ KeyType, bits int, src io.Reader) (PrivKey, PubKey, error) {
	if src == nil {
		src = rand.Reader
	}
	var (
		k   PrivKey
		err error
	)
	switch typ {
	case Ed25519:
		k, err = GenerateEd25519Key(src)
	case Secp256k1:
		k, err = GenerateSecp256k1Key(src)
	case ECDSA:
		k, err = GenerateECDSAKey(src)
	case RSA:
		k, err = GenerateRSAKey(bits, src)
	default:
		return nil, nil, fmt.Errorf("%w: %v", ErrBadKeyType, typ)
	}
	if err != nil {
		return nil, nil, err
	}
	return k, k.GetPublic(), nil
}

// MarshalPublicKey encodes k as a PublicKey protobuf.
func MarshalPublicKey(k PubKey) ([]byte, error) {
	if k == nil {
		return nil, errors.New("crypto: marshal nil public key")
	}
	raw, err := k.Raw()
	if err != nil {
		return nil, err
	}
	return appendKeyPB(make([]byte, 0, len(raw)+8), k.Type(), raw), nil
}

// MarshalPrivateKey encodes k as a PrivateKey protobuf.
func MarshalPrivateKey(k PrivKey) ([]byte, error) {
	if k == nil {
		return nil, errors.New("crypto: marshal nil private key")
	}
	raw, err := k.Raw()
	if err != nil {
		return nil, err
	}
	return appendKeyPB(make([]byte, 0, len(raw)+8), k.Type(), raw), nil
}

func appendKeyPB(b []byte, t KeyType, raw []byte) []byte {
	b = pb.AppendVarint(b, 1, uint64(t))
	return pb.AppendBytes(b, 2, raw)
}

// UnmarshalPublicKey decodes a PublicKey protobuf.
func UnmarshalPublicKey(b []byte) (PubKey, error) {
	t, data, err := parseKeyPB(b)
	if err != nil {
		return nil, fmt.Errorf("crypto: decoding public key: %w", err)
	}
	return UnmarshalPublicKeyRaw(t, data)
}

// UnmarshalPublicKeyRaw decodes the Data field of a public key of type t.
func UnmarshalPublicKeyRaw(t KeyType, data []byte) (PubKey, error) {
	switch t {
	case Ed25519:
		return UnmarshalEd25519PublicKey(data)
	case Secp256k1:
		return UnmarshalSecp256k1PublicKey(data)
	case ECDSA:
		return UnmarshalECDSAPublicKey(data)
	case RSA:
		return UnmarshalRSAPublicKey(data)
	default:
		return nil, fmt.Errorf("%w: %v", ErrBadKeyType, t)
	}
}

// UnmarshalPrivateKey decodes a PrivateKey protobuf.
func UnmarshalPrivateKey(b []byte) (PrivKey, error) {
	t, data, err := parseKeyPB(b)
	if err != nil {
		return nil, fmt.Errorf("crypto: decoding private key: %w", err)
	}
	return UnmarshalPrivateKeyRaw(t, data)
}

// UnmarshalPrivateKeyRaw decodes the Data field of a private key of type t.
func UnmarshalPrivateKeyRaw(t KeyType, data []byte) (PrivKey, error) {
	switch t {
	case Ed25519:
		return UnmarshalEd25519PrivateKey(data)
	case Secp256k1:
		return UnmarshalSecp256k1PrivateKey(data)
	case ECDSA:
		return UnmarshalECDSAPrivateKey(data)
	case RSA:
		return UnmarshalRSAPrivateKey(data)
	default:
		return nil, fmt.Errorf("%w: %v", ErrBadKeyType, t)
	}
}

// parseKeyPB accepts exactly one Type and one Data field. Anything else
// (unknown or repeated fields) is refused: the bytes of a key must have one
// meaning, since peer IDs are derived from them.
func parseKeyPB(b []byte) (KeyType, []byte, error) {
	var (
		t            KeyType
		data         []byte
		seenT, seenD bool
	)
	err := pb.ForEach(b, func(f pb.Field) error {
		switch {
		case f.Num == 1 && f.Wire == pb.WireVarint && !seenT:
			if f.Varint > 3 {
				return fmt.Errorf("%w: %d", ErrBadKeyType, f.Varint)
			}
			t, seenT = KeyType(f.Varint), true
		case f.Num == 2 && f.Wire == pb.WireBytes && !seenD:
			data, seenD = f.Bytes, true
		default:
			return fmt.Errorf("%w: unexpected field %d (wire type %d)", ErrBadKey, f.Num, f.Wire)
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	if !seenT || !seenD {
		return 0, nil, fmt.Errorf("%w: missing type or data field", ErrBadKey)
	}
	return t, data, nil
}

// basicEqual compares keys through their encodings; it serves the key types
// whose encoding is canonical.
func basicEqual(a, b PubKey) bool {
	if a == nil || b == nil || a.Type() != b.Type() {
		return false
	}
	ra, err1 := a.Raw()
	rb, err2 := b.Raw()
	return err1 == nil && err2 == nil && string(ra) == string(rb)
}
