package noise

import (
	"errors"
	"fmt"

	"github.com/tachyon-p2p/tachyon/internal/pb"
)

// The libp2p handshake payload (noise/README.md, "The libp2p Handshake
// Payload"), carried encrypted in messages 2 and 3:
//
//	message NoiseExtensions {
//	    repeated bytes  webtransport_certhashes = 1;
//	    repeated string stream_muxers           = 2;
//	}
//	message NoiseHandshakePayload {
//	    optional bytes           identity_key = 1;
//	    optional bytes           identity_sig = 2;
//	    optional NoiseExtensions extensions   = 4;
//	}

// Limits on what a peer may list in its extensions; go-libp2p caps these too.
const (
	maxMuxers     = 32
	maxCertHashes = 32
)

var errPayload = errors.New("malformed handshake payload")

// payload is a decoded NoiseHandshakePayload. Slices alias the input.
type payload struct {
	identityKey []byte
	identitySig []byte
	certHashes  [][]byte
	muxers      []string
}

// appendPayload encodes p. Both identity fields are always written (rust
// decodes the message as proto3); the extensions only when non-empty.
func appendPayload(b []byte, p *payload) []byte {
	b = pb.AppendBytes(b, 1, p.identityKey)
	b = pb.AppendBytes(b, 2, p.identitySig)
	var ext []byte
	for _, h := range p.certHashes {
		ext = pb.AppendBytes(ext, 1, h)
	}
	for _, m := range p.muxers {
		ext = pb.AppendString(ext, 2, m)
	}
	if len(ext) > 0 {
		b = pb.AppendBytes(b, 4, ext)
	}
	return b
}

// parsePayload decodes a NoiseHandshakePayload. Unknown fields are skipped;
// a field of a known number with the wrong wire type is an error.
func parsePayload(b []byte) (payload, error) {
	var p payload
	err := pb.ForEach(b, func(f pb.Field) error {
		switch f.Num {
		case 1, 2, 4:
			if f.Wire != pb.WireBytes {
				return fmt.Errorf("%w: field %d has wire type %d", errPayload, f.Num, f.Wire)
			}
		default:
			return nil
		}
		switch f.Num {
		case 1:
			p.identityKey = f.Bytes
		case 2:
			p.identitySig = f.Bytes
		case 4:
			return parseExtensions(f.Bytes, &p)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, errPayload) {
			return payload{}, err
		}
		return payload{}, fmt.Errorf("%w: %w", errPayload, err)
	}
	return p, nil
}

func parseExtensions(b []byte, p *payload) error {
	return pb.ForEach(b, func(f pb.Field) error {
		if f.Num != 1 && f.Num != 2 {
			return nil
		}
		if f.Wire != pb.WireBytes {
			return fmt.Errorf("%w: extension field %d has wire type %d", errPayload, f.Num, f.Wire)
		}
		switch f.Num {
		case 1:
			if len(p.certHashes) >= maxCertHashes {
				return fmt.Errorf("%w: more than %d certhashes", errPayload, maxCertHashes)
			}
			p.certHashes = append(p.certHashes, f.Bytes)
		case 2:
			if len(p.muxers) >= maxMuxers {
				return fmt.Errorf("%w: more than %d stream muxers", errPayload, maxMuxers)
			}
			p.muxers = append(p.muxers, string(f.Bytes))
		}
		return nil
	})
}
