package webrtc

import (
	"errors"
	"fmt"
	"io"

	"github.com/tachyon-p2p/tachyon/internal/pb"
	"github.com/tachyon-p2p/tachyon/internal/varint"
)

// Stream framing (libp2p/specs webrtc/README.md, "Multiplexing"): every data
// channel carries varint-length-prefixed protobuf messages
//
//	message Message {
//	  enum Flag { FIN = 0; STOP_SENDING = 1; RESET_STREAM = 2; FIN_ACK = 3; }
//	  optional Flag flag = 1;
//	  optional bytes message = 2;
//	}
//
// and one framed message, prefix included, is at most maxMessageSize bytes
// because browsers drop larger data channel messages.

// maxMessageSize bounds an encoded message including its length prefix.
const maxMessageSize = 16384

// maxPayload is the largest Message.message that fits in maxMessageSize:
// prefix (2) + tag (1) + length (2) + payload.
const maxPayload = maxMessageSize - 2 - 1 - 2

// flag is the Message.flag enum. noFlag marks a message without one.
type flag int32

const (
	flagFIN         flag = 0
	flagStopSending flag = 1
	flagReset       flag = 2
	flagFINACK      flag = 3
	noFlag          flag = -1
)

func (f flag) String() string {
	switch f {
	case flagFIN:
		return "FIN"
	case flagStopSending:
		return "STOP_SENDING"
	case flagReset:
		return "RESET_STREAM"
	case flagFINACK:
		return "FIN_ACK"
	case noFlag:
		return "none"
	}
	return fmt.Sprintf("flag(%d)", int32(f))
}

// message is one decoded Message. payload aliases the input.
type message struct {
	flag    flag
	payload []byte
}

var errOversized = errors.New("webrtc: message exceeds 16384 bytes")

// appendMessage appends LP(Message{flag, payload}) to b. The caller keeps
// len(payload) <= maxPayload.
func appendMessage(b []byte, f flag, payload []byte) []byte {
	n := 0
	if f != noFlag {
		n += 1 + varint.Len(uint64(f))
	}
	if payload != nil {
		n += 1 + varint.Len(uint64(len(payload))) + len(payload)
	}
	b = varint.Append(b, uint64(n))
	if f != noFlag {
		b = pb.AppendVarint(b, 1, uint64(f))
	}
	if payload != nil {
		b = pb.AppendBytes(b, 2, payload)
	}
	return b
}

// parseFrame decodes the length-prefixed message at the front of b and
// returns it with the number of bytes it used. It returns io.ErrUnexpectedEOF
// when b holds only part of a frame, and errOversized when the frame would
// exceed maxMessageSize.
func parseFrame(b []byte) (message, int, error) {
	l, n, err := varint.Decode(b)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return message{}, 0, io.ErrUnexpectedEOF
		}
		return message{}, 0, fmt.Errorf("webrtc: bad message length: %w", err)
	}
	if l > maxMessageSize || uint64(n)+l > maxMessageSize {
		return message{}, 0, errOversized
	}
	if uint64(len(b)-n) < l {
		return message{}, 0, io.ErrUnexpectedEOF
	}
	m, err := parseMessage(b[n : n+int(l)])
	if err != nil {
		return message{}, 0, err
	}
	return m, n + int(l), nil
}

// parseMessage decodes a Message body. Unknown fields (go's errorCode=3
// among them) are skipped; an unknown flag value is an error.
func parseMessage(b []byte) (message, error) {
	m := message{flag: noFlag}
	err := pb.ForEach(b, func(f pb.Field) error {
		switch {
		case f.Num == 1 && f.Wire == pb.WireVarint:
			if f.Varint > uint64(flagFINACK) {
				return fmt.Errorf("webrtc: unknown message flag %d", f.Varint)
			}
			m.flag = flag(f.Varint)
		case f.Num == 2 && f.Wire == pb.WireBytes:
			m.payload = f.Bytes
		case f.Num == 1 || f.Num == 2:
			return fmt.Errorf("webrtc: field %d has wire type %d", f.Num, f.Wire)
		}
		return nil
	})
	if err != nil {
		return message{}, fmt.Errorf("webrtc: bad message: %w", err)
	}
	return m, nil
}
