package peer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"github.com/mr-tron/base58"
)

// Key types of the libp2p PublicKey protobuf (peer-ids/peer-ids.md).
const (
	keyTypeRSA       = 0
	keyTypeEd25519   = 1
	keyTypeSecp256k1 = 2
	keyTypeECDSA     = 3
)

// Identity is a libp2p host identity with an Ed25519 key.
type Identity struct {
	Priv ed25519.PrivateKey
	// PubKeyPB is the PublicKey protobuf (Type=Ed25519, Data=32 bytes),
	// encoded deterministically: signatures and the peer ID cover these bytes.
	PubKeyPB []byte
	// ID is the base58btc peer ID.
	ID string
}

// NewIdentity returns a fresh random Ed25519 identity.
func NewIdentity() (*Identity, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("generating identity seed: %w", err)
	}
	return NewIdentityFromSeed(seed)
}

// NewIdentityFromSeed returns the Ed25519 identity of a 32-byte seed, for
// fixed peer IDs (the perf harness server uses the all-zero seed).
func NewIdentityFromSeed(seed []byte) (*Identity, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("identity seed is %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pb := encodePublicKey(keyTypeEd25519, priv.Public().(ed25519.PublicKey))
	id, err := PeerIDFromPublicKey(pb)
	if err != nil {
		return nil, err
	}
	return &Identity{Priv: priv, PubKeyPB: pb, ID: id}, nil
}

// Sign signs data with the identity's key.
func (id *Identity) Sign(data []byte) []byte { return ed25519.Sign(id.Priv, data) }

// encodePublicKey encodes PublicKey{Type=1, Data=2} with both fields present
// and in field order, as the spec's deterministic encoding requires.
func encodePublicKey(keyType uint64, data []byte) []byte {
	b := secAppendVarintField(nil, 1, keyType)
	return secAppendBytesField(b, 2, data)
}

// decodePublicKey parses a PublicKey protobuf. Both fields are proto2
// "required", so a missing one is an error.
func decodePublicKey(pb []byte) (keyType uint64, data []byte, err error) {
	var haveType, haveData bool
	err = secParseFields(pb, func(num int, wt int, v uint64, b []byte) error {
		switch {
		case num == 1 && wt == secWireVarint:
			keyType, haveType = v, true
		case num == 2 && wt == secWireBytes:
			data, haveData = b, true
		}
		return nil
	})
	if err != nil {
		return 0, nil, fmt.Errorf("decoding PublicKey protobuf: %w", err)
	}
	if !haveType || !haveData {
		return 0, nil, fmt.Errorf("decoding PublicKey protobuf: missing required field (Type present: %v, Data present: %v)", haveType, haveData)
	}
	return keyType, data, nil
}

// PeerIDFromPublicKey derives the base58btc peer ID of a PublicKey protobuf:
// the identity multihash of the encoded key if it is at most 42 bytes, its
// sha2-256 multihash otherwise. The threshold applies to the encoded
// protobuf, not to the raw key.
func PeerIDFromPublicKey(pb []byte) (string, error) {
	if _, _, err := decodePublicKey(pb); err != nil {
		return "", err
	}
	var mh []byte
	if len(pb) <= 42 {
		mh = append([]byte{0x00, byte(len(pb))}, pb...) // len <= 42 fits a one-byte varint
	} else {
		sum := sha256.Sum256(pb)
		mh = append([]byte{0x12, 0x20}, sum[:]...)
	}
	return base58.Encode(mh), nil
}

// VerifySignature checks sig over data with the key in a PublicKey protobuf,
// following the signing rules of peer-ids.md for each key type.
func VerifySignature(pubKeyPB, data, sig []byte) error {
	keyType, key, err := decodePublicKey(pubKeyPB)
	if err != nil {
		return err
	}
	switch keyType {
	case keyTypeEd25519:
		if len(key) != ed25519.PublicKeySize {
			return fmt.Errorf("ed25519 public key is %d bytes, want %d", len(key), ed25519.PublicKeySize)
		}
		if !ed25519.Verify(ed25519.PublicKey(key), data, sig) {
			return errors.New("ed25519 signature does not verify")
		}
		return nil
	case keyTypeRSA:
		pub, err := secParsePKIX(key)
		if err != nil {
			return fmt.Errorf("parsing RSA public key: %w", err)
		}
		rk, ok := pub.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("key of type RSA holds a %T", pub)
		}
		h := sha256.Sum256(data)
		if err := rsa.VerifyPKCS1v15(rk, crypto.SHA256, h[:], sig); err != nil {
			return fmt.Errorf("RSA signature does not verify: %w", err)
		}
		return nil
	case keyTypeECDSA:
		pub, err := secParsePKIX(key)
		if err != nil {
			return fmt.Errorf("parsing ECDSA public key: %w", err)
		}
		ek, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return fmt.Errorf("key of type ECDSA holds a %T", pub)
		}
		h := sha256.Sum256(data)
		if !ecdsa.VerifyASN1(ek, h[:], sig) {
			return errors.New("ECDSA signature does not verify")
		}
		return nil
	case keyTypeSecp256k1:
		return verifySecp256k1(key, data, sig)
	}
	return fmt.Errorf("unsupported key type %d", keyType)
}

// secp256k1 domain parameters (SEC 2, section 2.4.1). The standard library
// has no secp256k1, and verification is short enough to do with math/big;
// it handles only public data, so constant time does not matter.
var (
	secpP, _  = new(big.Int).SetString("fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f", 16)
	secpN, _  = new(big.Int).SetString("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", 16)
	secpGx, _ = new(big.Int).SetString("79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798", 16)
	secpGy, _ = new(big.Int).SetString("483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8", 16)
)

// secpPoint is an affine point; nil x means the point at infinity.
type secpPoint struct{ x, y *big.Int }

func secpAdd(a, b secpPoint) secpPoint {
	p := secpP
	if a.x == nil {
		return b
	}
	if b.x == nil {
		return a
	}
	var num, den *big.Int
	if a.x.Cmp(b.x) == 0 {
		if a.y.Cmp(b.y) != 0 || a.y.Sign() == 0 {
			return secpPoint{} // a = -b
		}
		// Doubling: lambda = 3x^2 / 2y (the curve's a is 0).
		num = new(big.Int).Mul(a.x, a.x)
		num.Mul(num, big.NewInt(3))
		den = new(big.Int).Lsh(a.y, 1)
	} else {
		num = new(big.Int).Sub(b.y, a.y)
		den = new(big.Int).Sub(b.x, a.x)
	}
	den.Mod(den, p)
	inv := new(big.Int).ModInverse(den, p)
	lambda := num.Mul(num, inv)
	lambda.Mod(lambda, p)
	x := new(big.Int).Mul(lambda, lambda)
	x.Sub(x, a.x).Sub(x, b.x).Mod(x, p)
	y := new(big.Int).Sub(a.x, x)
	y.Mul(y, lambda).Sub(y, a.y).Mod(y, p)
	return secpPoint{x, y}
}

func secpMul(pt secpPoint, k *big.Int) secpPoint {
	var r secpPoint
	for i := k.BitLen() - 1; i >= 0; i-- {
		r = secpAdd(r, r)
		if k.Bit(i) == 1 {
			r = secpAdd(r, pt)
		}
	}
	return r
}

// secpParsePoint accepts the compressed form the spec mandates and, like
// other implementations, the uncompressed one.
func secpParsePoint(b []byte) (secpPoint, error) {
	p := secpP
	switch {
	case len(b) == 33 && (b[0] == 2 || b[0] == 3):
		x := new(big.Int).SetBytes(b[1:])
		if x.Cmp(p) >= 0 {
			return secpPoint{}, errors.New("secp256k1 x coordinate out of range")
		}
		rhs := new(big.Int).Exp(x, big.NewInt(3), p)
		rhs.Add(rhs, big.NewInt(7)).Mod(rhs, p)
		// p = 3 mod 4, so a square root is rhs^((p+1)/4).
		e := new(big.Int).Add(p, big.NewInt(1))
		e.Rsh(e, 2)
		y := new(big.Int).Exp(rhs, e, p)
		if new(big.Int).Exp(y, big.NewInt(2), p).Cmp(rhs) != 0 {
			return secpPoint{}, errors.New("secp256k1 point is not on the curve")
		}
		if y.Bit(0) != uint(b[0]&1) {
			y.Sub(p, y)
		}
		return secpPoint{x, y}, nil
	case len(b) == 65 && b[0] == 4:
		x, y := new(big.Int).SetBytes(b[1:33]), new(big.Int).SetBytes(b[33:])
		if x.Cmp(p) >= 0 || y.Cmp(p) >= 0 {
			return secpPoint{}, errors.New("secp256k1 coordinate out of range")
		}
		lhs := new(big.Int).Mul(y, y)
		lhs.Mod(lhs, p)
		rhs := new(big.Int).Exp(x, big.NewInt(3), p)
		rhs.Add(rhs, big.NewInt(7)).Mod(rhs, p)
		if lhs.Cmp(rhs) != 0 {
			return secpPoint{}, errors.New("secp256k1 point is not on the curve")
		}
		return secpPoint{x, y}, nil
	}
	return secpPoint{}, fmt.Errorf("secp256k1 public key of %d bytes is neither compressed nor uncompressed", len(b))
}

// verifySecp256k1 checks a DER ECDSA signature over SHA-256(data).
func verifySecp256k1(key, data, sig []byte) error {
	q, err := secpParsePoint(key)
	if err != nil {
		return err
	}
	var rs struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(sig, &rs)
	if err != nil {
		return fmt.Errorf("parsing secp256k1 DER signature: %w", err)
	}
	if len(rest) != 0 {
		return errors.New("parsing secp256k1 DER signature: trailing bytes")
	}
	n := secpN
	if rs.R.Sign() <= 0 || rs.S.Sign() <= 0 || rs.R.Cmp(n) >= 0 || rs.S.Cmp(n) >= 0 {
		return errors.New("secp256k1 signature values out of range")
	}
	h := sha256.Sum256(data)
	e := new(big.Int).SetBytes(h[:])
	w := new(big.Int).ModInverse(rs.S, n)
	u1 := new(big.Int).Mul(e, w)
	u1.Mod(u1, n)
	u2 := new(big.Int).Mul(rs.R, w)
	u2.Mod(u2, n)
	pt := secpAdd(secpMul(secpPoint{secpGx, secpGy}, u1), secpMul(q, u2))
	if pt.x == nil {
		return errors.New("secp256k1 signature does not verify")
	}
	if new(big.Int).Mod(pt.x, n).Cmp(rs.R) != 0 {
		return errors.New("secp256k1 signature does not verify")
	}
	return nil
}

func secParsePKIX(der []byte) (any, error) { return x509.ParsePKIXPublicKey(der) }

// Protobuf wire helpers, kept minimal and prefixed so they cannot clash with
// other files of the package.

const (
	secWireVarint = 0
	secWireI64    = 1
	secWireBytes  = 2
	secWireI32    = 5
)

func secAppendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func secAppendVarintField(b []byte, num int, v uint64) []byte {
	b = secAppendVarint(b, uint64(num)<<3|secWireVarint)
	return secAppendVarint(b, v)
}

func secAppendBytesField(b []byte, num int, v []byte) []byte {
	b = secAppendVarint(b, uint64(num)<<3|secWireBytes)
	b = secAppendVarint(b, uint64(len(v)))
	return append(b, v...)
}

// secReadVarint decodes a varint, rejecting overlong and truncated ones.
func secReadVarint(b []byte) (uint64, int, error) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i] < 0x80 {
			if i == 9 && b[i] > 1 {
				return 0, 0, errors.New("varint overflows 64 bits")
			}
			return v, i + 1, nil
		}
	}
	return 0, 0, errors.New("truncated varint")
}

// secParseFields walks a protobuf message, calling f for each field (v for
// varints and fixed ints, b for length-delimited ones). Unknown fields are
// the caller's to skip: f sees them all.
func secParseFields(msg []byte, f func(num int, wt int, v uint64, b []byte) error) error {
	for len(msg) > 0 {
		key, n, err := secReadVarint(msg)
		if err != nil {
			return fmt.Errorf("field key: %w", err)
		}
		msg = msg[n:]
		num, wt := key>>3, int(key&7)
		if num == 0 || num > 1<<29-1 {
			return fmt.Errorf("invalid field number %d", num)
		}
		var v uint64
		var b []byte
		switch wt {
		case secWireVarint:
			v, n, err = secReadVarint(msg)
			if err != nil {
				return fmt.Errorf("field %d: %w", num, err)
			}
			msg = msg[n:]
		case secWireI64:
			if len(msg) < 8 {
				return fmt.Errorf("field %d: truncated fixed64", num)
			}
			for i := 7; i >= 0; i-- {
				v = v<<8 | uint64(msg[i])
			}
			msg = msg[8:]
		case secWireI32:
			if len(msg) < 4 {
				return fmt.Errorf("field %d: truncated fixed32", num)
			}
			for i := 3; i >= 0; i-- {
				v = v<<8 | uint64(msg[i])
			}
			msg = msg[4:]
		case secWireBytes:
			l, n, err := secReadVarint(msg)
			if err != nil {
				return fmt.Errorf("field %d length: %w", num, err)
			}
			msg = msg[n:]
			if l > uint64(len(msg)) {
				return fmt.Errorf("field %d: length %d exceeds the %d bytes left", num, l, len(msg))
			}
			b, msg = msg[:l], msg[l:]
		default:
			return fmt.Errorf("field %d: unsupported wire type %d", num, wt)
		}
		if err := f(int(num), wt, v, b); err != nil {
			return err
		}
	}
	return nil
}
