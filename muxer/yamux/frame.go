package yamux

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// headerSize is the fixed size of every yamux frame header.
const headerSize = 12

// protoVersion is the only version the spec defines.
const protoVersion = 0

// Frame types.
const (
	typeData         uint8 = 0
	typeWindowUpdate uint8 = 1
	typePing         uint8 = 2
	typeGoAway       uint8 = 3
)

// Frame flags.
const (
	flagSYN uint16 = 1
	flagACK uint16 = 2
	flagFIN uint16 = 4
	flagRST uint16 = 8
)

// GoAway codes.
const (
	GoAwayNormal        uint32 = 0
	GoAwayProtocolError uint32 = 1
	GoAwayInternalError uint32 = 2
)

// initialWindow is the window every stream starts with in each direction,
// fixed by the spec; a larger window is announced with a delta on SYN/ACK.
const initialWindow = 256 * 1024

// header is a decoded frame header.
type header struct {
	typ    uint8
	flags  uint16
	stream uint32
	length uint32
}

var errShortHeader = errors.New("yamux: short frame header")

// appendHeader appends the 12-byte big-endian encoding of h to b.
func appendHeader(b []byte, h header) []byte {
	b = append(b, protoVersion, h.typ)
	b = binary.BigEndian.AppendUint16(b, h.flags)
	b = binary.BigEndian.AppendUint32(b, h.stream)
	return binary.BigEndian.AppendUint32(b, h.length)
}

// putHeader writes h into b[:12].
func putHeader(b []byte, h header) {
	_ = b[headerSize-1]
	b[0] = protoVersion
	b[1] = h.typ
	binary.BigEndian.PutUint16(b[2:], h.flags)
	binary.BigEndian.PutUint32(b[4:], h.stream)
	binary.BigEndian.PutUint32(b[8:], h.length)
}

// parseHeader decodes and validates a frame header: it rejects unknown
// versions and types and frames that make no sense on their stream ID
// (session frames on a stream, stream frames on ID 0).
func parseHeader(b []byte) (header, error) {
	if len(b) < headerSize {
		return header{}, errShortHeader
	}
	if b[0] != protoVersion {
		return header{}, fmt.Errorf("%w: unsupported version %d", ErrProtocol, b[0])
	}
	h := header{
		typ:    b[1],
		flags:  binary.BigEndian.Uint16(b[2:]),
		stream: binary.BigEndian.Uint32(b[4:]),
		length: binary.BigEndian.Uint32(b[8:]),
	}
	switch h.typ {
	case typeData, typeWindowUpdate:
		if h.stream == 0 {
			return header{}, fmt.Errorf("%w: stream frame type %d on session ID 0", ErrProtocol, h.typ)
		}
	case typePing, typeGoAway:
		if h.stream != 0 {
			return header{}, fmt.Errorf("%w: session frame type %d on stream %d", ErrProtocol, h.typ, h.stream)
		}
	default:
		return header{}, fmt.Errorf("%w: unknown frame type %d", ErrProtocol, h.typ)
	}
	return h, nil
}

func (h header) String() string {
	return fmt.Sprintf("type=%d flags=%#x stream=%d length=%d", h.typ, h.flags, h.stream, h.length)
}
