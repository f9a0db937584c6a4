package websocket

// RFC 6455 §5.2 frame header:
//
//	byte 0: FIN(1) RSV1-3(3) opcode(4)
//	byte 1: MASK(1) payload length(7): 0-125, 126 = u16 follows, 127 = u64 follows
//	then the extended length (big-endian), then the 4-byte masking key if MASK.

import (
	"encoding/binary"
	"errors"
	"fmt"
)

type opcode byte

const (
	opContinuation opcode = 0x0
	opText         opcode = 0x1
	opBinary       opcode = 0x2
	opClose        opcode = 0x8
	opPing         opcode = 0x9
	opPong         opcode = 0xA
)

func (o opcode) isControl() bool { return o&0x8 != 0 }

// maxHeaderLen is the longest frame header: 2 + 8 length + 4 mask.
const maxHeaderLen = 14

// maxControlPayload is the RFC limit for ping, pong and close payloads.
const maxControlPayload = 125

// MaxFrameSize bounds the payload of one data frame. Payloads are streamed
// to Read, never buffered whole, so this is a sanity bound only: go-libp2p
// and js-libp2p send one frame per write of their security layer (at most
// 64 KiB for Noise, 16 KiB records for TLS).
const MaxFrameSize = 64 << 20

var (
	errShortHeader  = errors.New("websocket: short frame header")
	errReservedBits = errors.New("websocket: reserved bits set")
	errFrameTooBig  = errors.New("websocket: frame too large")
)

type header struct {
	fin    bool
	op     opcode
	masked bool
	mask   [4]byte
	length uint64
}

// headerLen is the length of the header that starts with bytes b0 b1.
func headerLen(b1 byte) int {
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

// parseHeader parses the frame header at the start of b and returns it with
// its length in bytes. It returns errShortHeader when b does not hold the
// whole header, and an error for headers no peer may send: reserved bits
// (no extension is negotiated), unknown opcodes, fragmented or oversized
// control frames, and lengths over MaxFrameSize.
func parseHeader(b []byte) (header, int, error) {
	var h header
	if len(b) < 2 {
		return h, 0, errShortHeader
	}
	n := headerLen(b[1])
	if len(b) < n {
		return h, 0, errShortHeader
	}
	if b[0]&0x70 != 0 {
		return h, 0, errReservedBits
	}
	h.fin = b[0]&0x80 != 0
	h.op = opcode(b[0] & 0x0f)
	h.masked = b[1]&0x80 != 0
	i := 2
	switch l := b[1] & 0x7f; l {
	case 126:
		h.length = uint64(binary.BigEndian.Uint16(b[2:]))
		i += 2
	case 127:
		h.length = binary.BigEndian.Uint64(b[2:])
		i += 8
	default:
		h.length = uint64(l)
	}
	if h.masked {
		copy(h.mask[:], b[i:i+4])
	}
	switch h.op {
	case opContinuation, opText, opBinary:
		if h.length > MaxFrameSize {
			return h, 0, fmt.Errorf("%w: %d bytes", errFrameTooBig, h.length)
		}
	case opClose, opPing, opPong:
		if !h.fin {
			return h, 0, errors.New("websocket: fragmented control frame")
		}
		if h.length > maxControlPayload {
			return h, 0, fmt.Errorf("%w: %d-byte control frame", errFrameTooBig, h.length)
		}
	default:
		return h, 0, fmt.Errorf("websocket: unknown opcode %#x", byte(h.op))
	}
	return h, n, nil
}

// appendHeader appends the header h, in its shortest encoding, to b.
func appendHeader(b []byte, h header) []byte {
	b0 := byte(h.op)
	if h.fin {
		b0 |= 0x80
	}
	var m byte
	if h.masked {
		m = 0x80
	}
	switch {
	case h.length <= 125:
		b = append(b, b0, m|byte(h.length))
	case h.length <= 0xffff:
		b = append(b, b0, m|126)
		b = binary.BigEndian.AppendUint16(b, uint16(h.length))
	default:
		b = append(b, b0, m|127)
		b = binary.BigEndian.AppendUint64(b, h.length)
	}
	if h.masked {
		b = append(b, h.mask[:]...)
	}
	return b
}

// maskBytes XORs b with the key, starting at key offset pos, and returns
// the offset after b.
func maskBytes(key [4]byte, pos int, b []byte) int {
	pos &= 3
	i := 0
	// Align to the key, then XOR 8 bytes at a time.
	for ; i < len(b) && pos != 0; i++ {
		b[i] ^= key[pos]
		pos = (pos + 1) & 3
	}
	if i < len(b) {
		k := uint64(key[0]) | uint64(key[1])<<8 | uint64(key[2])<<16 | uint64(key[3])<<24
		k |= k << 32
		for ; i+8 <= len(b); i += 8 {
			binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])^k)
		}
		for ; i < len(b); i++ {
			b[i] ^= key[pos]
			pos = (pos + 1) & 3
		}
	}
	return pos
}
