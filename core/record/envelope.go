// Package record implements signed envelopes (RFC 0002) and the peer records
// they carry (RFC 0003).
//
// An envelope signs uvarint(len(domain)) ‖ domain ‖ uvarint(len(type)) ‖ type
// ‖ uvarint(len(payload)) ‖ payload. The domain is never sent: the receiver
// supplies the one it expects, so a signature made for one purpose cannot be
// replayed for another.
package record

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/internal/pb"
	"github.com/tachyon-p2p/tachyon/internal/varint"
)

var (
	// ErrInvalidSignature is returned when an envelope's signature does not
	// verify for the expected domain.
	ErrInvalidSignature = errors.New("record: invalid envelope signature")
	// ErrMalformed is wrapped by every error about undecodable records.
	ErrMalformed = errors.New("record: malformed")
)

// Envelope is a payload signed by PublicKey for a domain.
type Envelope struct {
	PublicKey   crypto.PubKey
	PayloadType []byte
	RawPayload  []byte
	Signature   []byte
}

// Envelope protobuf field numbers (field 4 is unused).
const (
	envPublicKey   = 1
	envPayloadType = 2
	envPayload     = 3
	envSignature   = 5
)

// Seal signs payload for domain with key.
func Seal(domain string, payloadType, payload []byte, key crypto.PrivKey) (*Envelope, error) {
	if key == nil {
		return nil, errors.New("record: sealing with a nil key")
	}
	if domain == "" {
		return nil, errors.New("record: sealing with an empty domain")
	}
	sig, err := key.Sign(signedBytes(domain, payloadType, payload))
	if err != nil {
		return nil, fmt.Errorf("record: signing envelope for %q: %w", domain, err)
	}
	return &Envelope{
		PublicKey:   key.GetPublic(),
		PayloadType: payloadType,
		RawPayload:  payload,
		Signature:   sig,
	}, nil
}

func signedBytes(domain string, payloadType, payload []byte) []byte {
	n := varint.Len(uint64(len(domain))) + len(domain) +
		varint.Len(uint64(len(payloadType))) + len(payloadType) +
		varint.Len(uint64(len(payload))) + len(payload)
	b := make([]byte, 0, n)
	b = varint.Append(b, uint64(len(domain)))
	b = append(b, domain...)
	b = varint.Append(b, uint64(len(payloadType)))
	b = append(b, payloadType...)
	b = varint.Append(b, uint64(len(payload)))
	return append(b, payload...)
}

// Marshal encodes the envelope protobuf (proto3: empty fields are omitted).
func (e *Envelope) Marshal() ([]byte, error) {
	key, err := crypto.MarshalPublicKey(e.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("record: marshaling envelope: %w", err)
	}
	b := make([]byte, 0, len(key)+len(e.PayloadType)+len(e.RawPayload)+len(e.Signature)+16)
	b = pb.AppendBytes(b, envPublicKey, key)
	if len(e.PayloadType) > 0 {
		b = pb.AppendBytes(b, envPayloadType, e.PayloadType)
	}
	if len(e.RawPayload) > 0 {
		b = pb.AppendBytes(b, envPayload, e.RawPayload)
	}
	if len(e.Signature) > 0 {
		b = pb.AppendBytes(b, envSignature, e.Signature)
	}
	return b, nil
}

// Equal reports whether two envelopes have the same key, type, payload and
// signature.
func (e *Envelope) Equal(o *Envelope) bool {
	if e == nil || o == nil {
		return e == o
	}
	return e.PublicKey.Equal(o.PublicKey) && bytes.Equal(e.PayloadType, o.PayloadType) &&
		bytes.Equal(e.RawPayload, o.RawPayload) && bytes.Equal(e.Signature, o.Signature)
}

// ConsumeEnvelope decodes an envelope and verifies its signature for domain.
// The returned slices alias data.
func ConsumeEnvelope(data []byte, domain string) (*Envelope, error) {
	e, err := unmarshalEnvelope(data)
	if err != nil {
		return nil, err
	}
	if err := e.verify(domain); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *Envelope) verify(domain string) error {
	ok, err := e.PublicKey.Verify(signedBytes(domain, e.PayloadType, e.RawPayload), e.Signature)
	if err != nil {
		return fmt.Errorf("record: verifying envelope for %q: %w", domain, err)
	}
	if !ok {
		return fmt.Errorf("%w (domain %q)", ErrInvalidSignature, domain)
	}
	return nil
}

// unmarshalEnvelope decodes without verifying. Unknown fields are skipped,
// as proto3 requires.
func unmarshalEnvelope(data []byte) (*Envelope, error) {
	var (
		e      Envelope
		rawKey []byte
	)
	err := pb.ForEach(data, func(f pb.Field) error {
		if f.Wire != pb.WireBytes {
			switch f.Num {
			case envPublicKey, envPayloadType, envPayload, envSignature:
				return fmt.Errorf("%w: envelope field %d has wire type %d", ErrMalformed, f.Num, f.Wire)
			}
			return nil
		}
		switch f.Num {
		case envPublicKey:
			// Protobuf merges repeated occurrences of this embedded message,
			// so taking the last alone could accept what other peers reject.
			if rawKey != nil {
				return fmt.Errorf("%w: envelope with more than one public key", ErrMalformed)
			}
			rawKey = f.Bytes
		case envPayloadType:
			e.PayloadType = f.Bytes
		case envPayload:
			e.RawPayload = f.Bytes
		case envSignature:
			e.Signature = f.Bytes
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record: decoding envelope: %w", err)
	}
	if rawKey == nil {
		return nil, fmt.Errorf("%w: envelope without public key", ErrMalformed)
	}
	e.PublicKey, err = crypto.UnmarshalPublicKey(rawKey)
	if err != nil {
		return nil, fmt.Errorf("record: decoding envelope key: %w", err)
	}
	return &e, nil
}
