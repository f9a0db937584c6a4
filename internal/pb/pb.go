// Package pb is a minimal protobuf wire-format encoder and decoder.
//
// libp2p messages are small and few; hand-written Append/Parse functions over
// this package keep reflection and generated code off the handshake path.
// Encoders always emit fields in ascending order, which makes the output
// deterministic as signatures require.
package pb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/tachyon-p2p/tachyon/internal/varint"
)

// Wire types.
const (
	WireVarint  = 0
	WireFixed64 = 1
	WireBytes   = 2
	WireFixed32 = 5
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("pb: malformed message")

// AppendTag appends a field key.
func AppendTag(b []byte, field, wire int) []byte {
	return varint.Append(b, uint64(field)<<3|uint64(wire))
}

// AppendVarint appends a varint field.
func AppendVarint(b []byte, field int, v uint64) []byte {
	return varint.Append(AppendTag(b, field, WireVarint), v)
}

// AppendBytes appends a length-delimited field.
func AppendBytes(b []byte, field int, v []byte) []byte {
	b = varint.Append(AppendTag(b, field, WireBytes), uint64(len(v)))
	return append(b, v...)
}

// AppendString appends a string field.
func AppendString(b []byte, field int, v string) []byte {
	b = varint.Append(AppendTag(b, field, WireBytes), uint64(len(v)))
	return append(b, v...)
}

// AppendFixed64 appends a fixed64 field (little-endian).
func AppendFixed64(b []byte, field int, v uint64) []byte {
	return binary.LittleEndian.AppendUint64(AppendTag(b, field, WireFixed64), v)
}

// Field is one decoded field. For WireBytes, Bytes aliases the input.
type Field struct {
	Num    int
	Wire   int
	Varint uint64 // WireVarint, WireFixed64 and WireFixed32 values
	Bytes  []byte // WireBytes value
}

// Next decodes the field at the front of b and returns the remainder.
func Next(b []byte) (Field, []byte, error) {
	key, n, err := decodeVarint(b)
	if err != nil {
		return Field{}, nil, err
	}
	b = b[n:]
	f := Field{Num: int(key >> 3), Wire: int(key & 7)}
	if f.Num <= 0 || key>>3 > 1<<29-1 {
		return Field{}, nil, fmt.Errorf("%w: field number %d", ErrMalformed, key>>3)
	}
	switch f.Wire {
	case WireVarint:
		f.Varint, n, err = decodeVarint(b)
		if err != nil {
			return Field{}, nil, err
		}
		return f, b[n:], nil
	case WireFixed64:
		if len(b) < 8 {
			return Field{}, nil, fmt.Errorf("%w: truncated fixed64", ErrMalformed)
		}
		f.Varint = binary.LittleEndian.Uint64(b)
		return f, b[8:], nil
	case WireFixed32:
		if len(b) < 4 {
			return Field{}, nil, fmt.Errorf("%w: truncated fixed32", ErrMalformed)
		}
		f.Varint = uint64(binary.LittleEndian.Uint32(b))
		return f, b[4:], nil
	case WireBytes:
		l, n, err := decodeVarint(b)
		if err != nil {
			return Field{}, nil, err
		}
		b = b[n:]
		if l > uint64(len(b)) {
			return Field{}, nil, fmt.Errorf("%w: field %d length %d exceeds %d remaining bytes", ErrMalformed, f.Num, l, len(b))
		}
		f.Bytes = b[:l:l]
		return f, b[l:], nil
	default:
		return Field{}, nil, fmt.Errorf("%w: unsupported wire type %d", ErrMalformed, f.Wire)
	}
}

// ForEach calls fn for every field of msg in order.
func ForEach(msg []byte, fn func(Field) error) error {
	for len(msg) > 0 {
		f, rest, err := Next(msg)
		if err != nil {
			return err
		}
		if err := fn(f); err != nil {
			return err
		}
		msg = rest
	}
	return nil
}

// Protobuf varints need not be minimal (unlike multiformats ones), so accept
// any well-formed encoding up to 10 bytes, but not one whose 10th byte holds
// bits beyond the 64th: protobuf rejects those, and dropping the bits would
// read, say, a 10-byte tag as a small field number.
func decodeVarint(b []byte) (uint64, int, error) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		c := b[i]
		if i == 9 && c > 1 {
			return 0, 0, fmt.Errorf("%w: varint overflows 64 bits", ErrMalformed)
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v, i + 1, nil
		}
	}
	if len(b) < 10 {
		return 0, 0, fmt.Errorf("%w: truncated varint: %w", ErrMalformed, io.ErrUnexpectedEOF)
	}
	return 0, 0, fmt.Errorf("%w: varint too long", ErrMalformed)
}
