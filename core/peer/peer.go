// Package peer defines peer IDs (multihashes of public keys) and the address
// bundle of a peer.
package peer

import (
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"

	"github.com/mr-tron/base58"
	"github.com/multiformats/go-multibase"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/internal/varint"
)

// ID is a peer identity: the binary multihash of its encoded public key.
type ID string

// Multihash and multicodec codes used by peer IDs.
const (
	codeIdentity   = 0x00
	codeSHA256     = 0x12
	codecLibp2pKey = 0x72
	cidV1          = 0x01
	// maxInlineKeyLen is the largest encoded PublicKey that is embedded
	// verbatim (identity multihash) rather than hashed.
	maxInlineKeyLen = 42
)

var (
	// ErrNoPublicKey is returned by ExtractPublicKey for IDs that hash the key.
	ErrNoPublicKey = errors.New("peer: public key is not embedded in peer ID")
	// ErrEmptyID is returned for the empty ID.
	ErrEmptyID = errors.New("peer: empty peer ID")
	// ErrBadID is wrapped by every error about a malformed ID.
	ErrBadID = errors.New("peer: malformed peer ID")
)

var base32Lower = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// IDFromPublicKey derives the ID of k.
func IDFromPublicKey(k crypto.PubKey) (ID, error) {
	b, err := crypto.MarshalPublicKey(k)
	if err != nil {
		return "", fmt.Errorf("peer: deriving ID: %w", err)
	}
	if len(b) <= maxInlineKeyLen {
		out := make([]byte, 0, 2+len(b))
		out = append(out, codeIdentity)
		out = varint.Append(out, uint64(len(b)))
		return ID(append(out, b...)), nil
	}
	sum := sha256.Sum256(b)
	out := make([]byte, 0, 2+len(sum))
	out = append(out, codeSHA256, byte(len(sum)))
	return ID(append(out, sum[:]...)), nil
}

// IDFromPrivateKey derives the ID of k's public key.
func IDFromPrivateKey(k crypto.PrivKey) (ID, error) {
	if k == nil {
		return "", errors.New("peer: deriving ID of nil private key")
	}
	return IDFromPublicKey(k.GetPublic())
}

// IDFromBytes validates b as a peer ID multihash (identity of at most 42
// bytes, or sha2-256) and returns it as an ID.
func IDFromBytes(b []byte) (ID, error) {
	if _, _, err := splitMultihash(b); err != nil {
		return "", err
	}
	return ID(b), nil
}

// splitMultihash returns the code and digest of a multihash that must span
// all of b.
func splitMultihash(b []byte) (uint64, []byte, error) {
	if len(b) == 0 {
		return 0, nil, ErrEmptyID
	}
	code, n, err := varint.Decode(b)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: multihash code: %w", ErrBadID, err)
	}
	l, m, err := varint.Decode(b[n:])
	if err != nil {
		return 0, nil, fmt.Errorf("%w: multihash length: %w", ErrBadID, err)
	}
	digest := b[n+m:]
	if uint64(len(digest)) != l {
		return 0, nil, fmt.Errorf("%w: multihash digest is %d bytes, header says %d", ErrBadID, len(digest), l)
	}
	// Like rust-libp2p, accept only the two multihashes IDs are made of;
	// every other code would also break the base58 "Qm"/"1" text detection.
	switch {
	case code == codeSHA256 && l == sha256.Size:
	case code == codeIdentity && l <= maxInlineKeyLen:
	default:
		return 0, nil, fmt.Errorf("%w: multihash code 0x%x with %d-byte digest", ErrBadID, code, l)
	}
	return code, digest, nil
}

// Decode parses the text form of an ID: legacy base58btc ("Qm…", "12D3…",
// "16Uiu2…") or a CIDv1 with codec libp2p-key in any multibase.
func Decode(s string) (ID, error) {
	if strings.HasPrefix(s, "Qm") || strings.HasPrefix(s, "1") {
		b, err := base58.Decode(s)
		if err != nil {
			return "", fmt.Errorf("%w: base58: %w", ErrBadID, err)
		}
		return IDFromBytes(b)
	}
	_, b, err := multibase.Decode(s)
	if err != nil {
		return "", fmt.Errorf("%w: multibase: %w", ErrBadID, err)
	}
	ver, n, err := varint.Decode(b)
	if err != nil || ver != cidV1 {
		return "", fmt.Errorf("%w: not a CIDv1", ErrBadID)
	}
	codec, m, err := varint.Decode(b[n:])
	if err != nil {
		return "", fmt.Errorf("%w: CID codec: %w", ErrBadID, err)
	}
	if codec != codecLibp2pKey {
		return "", fmt.Errorf("%w: CID codec 0x%x, want libp2p-key (0x72)", ErrBadID, codec)
	}
	return IDFromBytes(b[n+m:])
}

// String returns the legacy base58btc form, which every implementation parses.
func (id ID) String() string { return base58.Encode([]byte(id)) }

// ShortString abbreviates the ID for logs.
func (id ID) ShortString() string {
	s := id.String()
	if len(s) <= 10 {
		return s
	}
	return s[:2] + "*" + s[len(s)-6:]
}

// ToCid returns the CIDv1 text form (base32, codec libp2p-key).
func (id ID) ToCid() string {
	b := make([]byte, 0, 2+len(id))
	b = append(b, cidV1, codecLibp2pKey)
	b = append(b, id...)
	return "b" + base32Lower.EncodeToString(b)
}

// Validate checks that id is a well-formed multihash.
func (id ID) Validate() error {
	_, _, err := splitMultihash([]byte(id))
	return err
}

// ExtractPublicKey returns the key embedded in an identity-multihash ID.
func (id ID) ExtractPublicKey() (crypto.PubKey, error) {
	code, digest, err := splitMultihash([]byte(id))
	if err != nil {
		return nil, err
	}
	if code != codeIdentity {
		return nil, ErrNoPublicKey
	}
	k, err := crypto.UnmarshalPublicKey(digest)
	if err != nil {
		return nil, fmt.Errorf("peer: extracting public key from %s: %w", id, err)
	}
	return k, nil
}

// MatchesPublicKey reports whether id is the ID of k.
func (id ID) MatchesPublicKey(k crypto.PubKey) bool {
	other, err := IDFromPublicKey(k)
	return err == nil && other == id
}

// MatchesPrivateKey reports whether id is the ID of k.
func (id ID) MatchesPrivateKey(k crypto.PrivKey) bool {
	return k != nil && id.MatchesPublicKey(k.GetPublic())
}
