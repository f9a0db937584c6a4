// Package varint encodes and decodes multiformats unsigned varints.
//
// Decoding is strict: peers (go-varint in particular) reject non-minimal
// encodings, so we reject them too rather than accept what others refuse.
package varint

import (
	"errors"
	"io"
)

// MaxLen is the longest encoding of a 63-bit value that multiformats allows.
const MaxLen = 9

var (
	ErrNotMinimal = errors.New("varint: not minimally encoded")
	ErrOverflow   = errors.New("varint: value exceeds 63 bits")
)

// Append appends the encoding of v to b.
func Append(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// Len is the number of bytes Append would write for v.
func Len(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// Decode reads one varint from the front of b and returns it with the number
// of bytes used. A truncated varint yields io.ErrUnexpectedEOF.
func Decode(b []byte) (uint64, int, error) {
	var v uint64
	for i := 0; i < len(b); i++ {
		if i == MaxLen {
			return 0, 0, ErrOverflow
		}
		c := b[i]
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			if c == 0 && i > 0 {
				return 0, 0, ErrNotMinimal
			}
			return v, i + 1, nil
		}
	}
	if len(b) >= MaxLen {
		return 0, 0, ErrOverflow
	}
	return 0, 0, io.ErrUnexpectedEOF
}

// Read reads one varint a byte at a time, so it never consumes bytes that
// belong to whatever follows. EOF before the first byte is io.EOF; EOF in the
// middle is io.ErrUnexpectedEOF.
func Read(r io.ByteReader) (uint64, error) {
	var v uint64
	for i := 0; ; i++ {
		if i == MaxLen {
			return 0, ErrOverflow
		}
		c, err := r.ReadByte()
		if err != nil {
			if i > 0 && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			if c == 0 && i > 0 {
				return 0, ErrNotMinimal
			}
			return v, nil
		}
	}
}
