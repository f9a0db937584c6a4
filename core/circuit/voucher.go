package circuit

import (
	"bytes"
	"fmt"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/record"
	"github.com/tachyon-p2p/tachyon/internal/pb"
)

// VoucherDomain and VoucherPayloadType sign a reservation voucher: the
// multicodec 0x0302 as two big-endian bytes, like the peer record's 0x0301.
const VoucherDomain = "libp2p-relay-rsvp"

var VoucherPayloadType = []byte{0x03, 0x02}

// Voucher is the relay's signed statement that Peer holds a reservation on
// Relay until Expiration (Unix seconds). It is advisory: nothing requires a
// dialer to present it.
type Voucher struct {
	Relay      peer.ID
	Peer       peer.ID
	Expiration uint64
}

const (
	voucherRelay      = 1
	voucherPeer       = 2
	voucherExpiration = 3
)

func (v *Voucher) marshal() []byte {
	b := pb.AppendBytes(nil, voucherRelay, []byte(v.Relay))
	b = pb.AppendBytes(b, voucherPeer, []byte(v.Peer))
	return pb.AppendVarint(b, voucherExpiration, v.Expiration)
}

// SealVoucher signs v with the relay's key and returns the marshaled envelope.
func SealVoucher(v *Voucher, key crypto.PrivKey) ([]byte, error) {
	env, err := record.Seal(VoucherDomain, VoucherPayloadType, v.marshal(), key)
	if err != nil {
		return nil, fmt.Errorf("circuit: sealing voucher: %w", err)
	}
	return env.Marshal()
}

// OpenVoucher verifies a marshaled voucher envelope and decodes it. It
// checks that the envelope was signed by the relay the voucher names.
func OpenVoucher(data []byte) (*Voucher, error) {
	env, err := record.ConsumeEnvelope(data, VoucherDomain)
	if err != nil {
		return nil, fmt.Errorf("circuit: voucher: %w", err)
	}
	if !bytes.Equal(env.PayloadType, VoucherPayloadType) {
		return nil, fmt.Errorf("%w: voucher payload type %x", ErrMalformed, env.PayloadType)
	}
	var v Voucher
	err = pb.ForEach(env.RawPayload, func(f pb.Field) error {
		var err error
		switch f.Num {
		case voucherRelay, voucherPeer:
			if f.Wire != pb.WireBytes {
				return wireErr("Voucher id")
			}
			var id peer.ID
			if id, err = peer.IDFromBytes(f.Bytes); err != nil {
				return err
			}
			if f.Num == voucherRelay {
				v.Relay = id
			} else {
				v.Peer = id
			}
		case voucherExpiration:
			if f.Wire != pb.WireVarint {
				return wireErr("Voucher.expiration")
			}
			v.Expiration = f.Varint
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: voucher: %w", ErrMalformed, err)
	}
	signer, err := peer.IDFromPublicKey(env.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("circuit: voucher signer: %w", err)
	}
	if signer != v.Relay {
		return nil, fmt.Errorf("%w: voucher for relay %s signed by %s", ErrMalformed, v.Relay, signer)
	}
	return &v, nil
}
