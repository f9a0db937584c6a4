package webrtc

import (
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/lp"
	"github.com/tachyon-p2p/tachyon/internal/pb"
)

// SignalingProtocol is the protocol of the stream over which two peers
// joined by a (usually relayed) connection exchange the SDP offer, answer
// and ICE candidates of a /webrtc connection (libp2p/specs webrtc/webrtc.md).
const SignalingProtocol protocol.ID = "/webrtc-signaling/0.0.1"

// Signalling messages (js-libp2p private-to-private/pb/message.proto):
//
//	message Message {
//	  enum Type { SDP_OFFER = 0; SDP_ANSWER = 1; ICE_CANDIDATE = 2; }
//	  optional Type type = 1;
//	  optional string data = 2;
//	}
//
// each varint-length-prefixed. data is RTCSessionDescription.sdp for the
// first two types and JSON.stringify(RTCIceCandidate.toJSON()) for the
// third.

// maxSignalMessage bounds one signalling message. js-libp2p sets no bound
// (pbStream without maxDataLength); an SDP offer or answer for one data
// channel is about 1 KB and a candidate under 300 B, so 64 KiB leaves room
// for verbose SDP while a peer cannot make us buffer much.
const maxSignalMessage = 64 << 10

// maxSignalCandidates bounds the candidates one peer may trickle in a
// signalling session: each costs ICE checks. A browser on a multi-homed
// host sends a few dozen at most.
const maxSignalCandidates = 128

// signalType is Message.type.
type signalType int32

const (
	sigOffer     signalType = 0
	sigAnswer    signalType = 1
	sigCandidate signalType = 2
)

func (t signalType) String() string {
	switch t {
	case sigOffer:
		return "SDP_OFFER"
	case sigAnswer:
		return "SDP_ANSWER"
	case sigCandidate:
		return "ICE_CANDIDATE"
	}
	return fmt.Sprintf("type(%d)", int32(t))
}

// signalMessage is one decoded signalling message.
type signalMessage struct {
	typ  signalType
	data string
}

var errBadSignal = errors.New("webrtc: malformed signalling message")

// marshalSignal encodes m. The type is always written, SDP_OFFER (0)
// included: proto3 "optional" keeps presence, and js writes it.
func marshalSignal(m signalMessage) []byte {
	b := pb.AppendVarint(nil, 1, uint64(m.typ))
	return pb.AppendString(b, 2, m.data)
}

// unmarshalSignal decodes a Message body. A missing type reads as
// SDP_OFFER (a proto3 encoder may leave the zero value off), an unknown
// type value is kept (proto3 enums are open) for the caller to refuse,
// unknown fields are skipped, and data must be UTF-8 (a proto3 string).
func unmarshalSignal(b []byte) (signalMessage, error) {
	var m signalMessage
	err := pb.ForEach(b, func(f pb.Field) error {
		switch {
		case f.Num == 1 && f.Wire == pb.WireVarint:
			m.typ = signalType(int32(f.Varint))
		case f.Num == 2 && f.Wire == pb.WireBytes:
			if !utf8.Valid(f.Bytes) {
				return errors.New("data is not UTF-8")
			}
			m.data = string(f.Bytes)
		case f.Num == 1 || f.Num == 2:
			return fmt.Errorf("field %d has wire type %d", f.Num, f.Wire)
		}
		return nil
	})
	if err != nil {
		return signalMessage{}, fmt.Errorf("%w: %w", errBadSignal, err)
	}
	return m, nil
}

// writeSignal writes m length-prefixed, in one Write.
func writeSignal(w io.Writer, m signalMessage) error {
	return lp.WriteMsg(w, marshalSignal(m))
}

// readSignal reads one length-prefixed message of at most
// maxSignalMessage bytes.
func readSignal(r io.Reader) (signalMessage, error) {
	b, err := lp.ReadMsg(r, maxSignalMessage)
	if err != nil {
		return signalMessage{}, err
	}
	return unmarshalSignal(b)
}
