package record

import (
	"bytes"
	"errors"
	"fmt"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/pb"
)

// The standard peer record domain and payload type (multicodec 0x0301 as two
// big-endian bytes, not as a varint), emitted by go and js.
const PeerRecordDomain = "libp2p-peer-record"

// PeerRecordPayloadType returns the standard payload type bytes.
func PeerRecordPayloadType() []byte { return []byte{0x03, 0x01} }

// rust-libp2p identify still signs with the pair from the RFC text; accept it
// but never emit it.
const (
	legacyDomain      = "libp2p-routing-state"
	legacyPayloadType = "/libp2p/routing-state-record"
)

// PeerRecord is the set of addresses a peer announces, with a sequence number
// that must grow with every new record.
type PeerRecord struct {
	PeerID peer.ID
	Seq    uint64
	Addrs  []ma.Multiaddr
}

// Marshal encodes the PeerRecord protobuf.
func (r *PeerRecord) Marshal() []byte {
	n := len(r.PeerID) + 16
	for _, a := range r.Addrs {
		n += len(a.Bytes()) + 6
	}
	b := make([]byte, 0, n)
	if r.PeerID != "" {
		b = pb.AppendString(b, 1, string(r.PeerID))
	}
	if r.Seq != 0 {
		b = pb.AppendVarint(b, 2, r.Seq)
	}
	var info []byte
	for _, a := range r.Addrs {
		info = pb.AppendBytes(info[:0], 1, a.Bytes())
		b = pb.AppendBytes(b, 3, info)
	}
	return b
}

// UnmarshalPeerRecord decodes a PeerRecord protobuf. The peer ID and every
// address must be valid.
func UnmarshalPeerRecord(b []byte) (*PeerRecord, error) {
	var r PeerRecord
	err := pb.ForEach(b, func(f pb.Field) error {
		switch {
		case f.Num == 1 && f.Wire == pb.WireBytes:
			id, err := peer.IDFromBytes(f.Bytes)
			if err != nil {
				return err
			}
			r.PeerID = id
		case f.Num == 2 && f.Wire == pb.WireVarint:
			r.Seq = f.Varint
		case f.Num == 3 && f.Wire == pb.WireBytes:
			a, err := parseAddressInfo(f.Bytes)
			if err != nil {
				return err
			}
			if a != nil {
				r.Addrs = append(r.Addrs, a)
			}
		case f.Num <= 3:
			return fmt.Errorf("%w: peer record field %d has wire type %d", ErrMalformed, f.Num, f.Wire)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record: decoding peer record: %w", err)
	}
	if r.PeerID == "" {
		return nil, fmt.Errorf("%w: peer record without peer ID", ErrMalformed)
	}
	return &r, nil
}

func parseAddressInfo(b []byte) (ma.Multiaddr, error) {
	var addr ma.Multiaddr
	err := pb.ForEach(b, func(f pb.Field) error {
		if f.Num != 1 {
			return nil
		}
		if f.Wire != pb.WireBytes {
			return fmt.Errorf("%w: address field has wire type %d", ErrMalformed, f.Wire)
		}
		a, err := ma.NewMultiaddrBytes(f.Bytes)
		if err != nil {
			return fmt.Errorf("%w: address: %w", ErrMalformed, err)
		}
		addr = a
		return nil
	})
	return addr, err
}

// SealPeerRecord signs rec with key in the standard domain and returns the
// marshaled envelope. An empty rec.PeerID is filled from key; any other ID
// must be key's.
func SealPeerRecord(rec *PeerRecord, key crypto.PrivKey) ([]byte, error) {
	if rec == nil || key == nil {
		return nil, errors.New("record: sealing nil peer record or key")
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("record: sealing peer record: %w", err)
	}
	r := *rec
	if r.PeerID == "" {
		r.PeerID = id
	} else if r.PeerID != id {
		return nil, fmt.Errorf("record: sealing peer record of %s with the key of %s", r.PeerID, id)
	}
	env, err := Seal(PeerRecordDomain, PeerRecordPayloadType(), r.Marshal(), key)
	if err != nil {
		return nil, err
	}
	return env.Marshal()
}

// OpenPeerRecord decodes a signed peer record envelope, verifies it in the
// domain its payload type implies (standard or rust's legacy pair) and checks
// that the signing key derives the record's peer ID.
func OpenPeerRecord(data []byte) (*PeerRecord, *Envelope, error) {
	env, err := unmarshalEnvelope(data)
	if err != nil {
		return nil, nil, err
	}
	var domain string
	switch {
	case bytes.Equal(env.PayloadType, []byte{0x03, 0x01}):
		domain = PeerRecordDomain
	case string(env.PayloadType) == legacyPayloadType:
		domain = legacyDomain
	default:
		return nil, nil, fmt.Errorf("%w: envelope payload type %x is not a peer record", ErrMalformed, env.PayloadType)
	}
	if err := env.verify(domain); err != nil {
		return nil, nil, err
	}
	rec, err := UnmarshalPeerRecord(env.RawPayload)
	if err != nil {
		return nil, nil, err
	}
	if !rec.PeerID.MatchesPublicKey(env.PublicKey) {
		return nil, nil, fmt.Errorf("record: peer record of %s signed by another key", rec.PeerID)
	}
	return rec, env, nil
}
