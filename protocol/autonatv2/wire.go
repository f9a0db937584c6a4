// Package autonatv2 implements AutoNAT v2 (autonat/autonat-v2.md): a node
// asks a server to dial one of its addresses back and learns, address by
// address, whether it is reachable.
//
// The client opens DialRequestID and sends a DialRequest: its addresses in
// priority order and a random nonce. The server picks the first address it
// is willing to dial; when that address's IP is not the one the request
// came from, it first asks for 30-100 kB of dial data, so that it cannot be
// used to aim handshakes at a third party for free. It then dials the
// address from another identity, opens DialBackID, sends the nonce, waits
// for the (empty) DialBackResponse, and answers the request with the
// outcome. The client trusts an OK only when the nonce came back to it on
// a connection of the tested address's kind: the peer ID of the dial-back
// is not the server's, so the nonce alone ties the two together.
//
// wire.go holds the messages; server.go and client.go the two roles.
package autonatv2

import (
	"errors"
	"fmt"
	"io"

	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/lp"
	"github.com/tachyon-p2p/tachyon/internal/pb"
)

// Protocol ids.
const (
	DialRequestID protocol.ID = "/libp2p/autonat/2/dial-request"
	DialBackID    protocol.ID = "/libp2p/autonat/2/dial-back"
)

const (
	// MaxMessageSize bounds a Message on the dial-request stream, as
	// go-libp2p and js-libp2p do.
	MaxMessageSize = 8192
	// MaxDialBackMessageSize bounds DialBack and DialBackResponse (go's
	// value): both hold at most a few bytes.
	MaxDialBackMessageSize = 1024
	// MaxDataChunk bounds DialDataResponse.data (the spec's limit).
	MaxDataChunk = 4096
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("autonatv2: malformed message")

// ResponseStatus is DialResponse.status. proto3 enums are open: a value
// not listed here is kept as a number, and callers treat it as an error.
type ResponseStatus int32

const (
	StatusInternalError   ResponseStatus = 0
	StatusRequestRejected ResponseStatus = 100
	StatusDialRefused     ResponseStatus = 101
	StatusOK              ResponseStatus = 200
)

func (s ResponseStatus) String() string {
	switch s {
	case StatusInternalError:
		return "E_INTERNAL_ERROR"
	case StatusRequestRejected:
		return "E_REQUEST_REJECTED"
	case StatusDialRefused:
		return "E_DIAL_REFUSED"
	case StatusOK:
		return "OK"
	}
	return fmt.Sprintf("ResponseStatus(%d)", int32(s))
}

// DialStatus is DialResponse.dialStatus, open like ResponseStatus.
type DialStatus int32

const (
	DialStatusUnused        DialStatus = 0
	DialStatusDialError     DialStatus = 100
	DialStatusDialBackError DialStatus = 101
	DialStatusOK            DialStatus = 200
)

func (s DialStatus) String() string {
	switch s {
	case DialStatusUnused:
		return "UNUSED"
	case DialStatusDialError:
		return "E_DIAL_ERROR"
	case DialStatusDialBackError:
		return "E_DIAL_BACK_ERROR"
	case DialStatusOK:
		return "OK"
	}
	return fmt.Sprintf("DialStatus(%d)", int32(s))
}

// DialBackStatus is DialBackResponse.status; OK is its zero value.
type DialBackStatus int32

const DialBackStatusOK DialBackStatus = 0

func (s DialBackStatus) String() string {
	if s == DialBackStatusOK {
		return "OK"
	}
	return fmt.Sprintf("DialBackStatus(%d)", int32(s))
}

// Message is what travels on the dial-request stream: a oneof of four
// members. Marshal encodes the members that are set, in field order (a
// sender sets one); Unmarshal sets at most one, the last on the wire, as
// protobuf does. A message with none set is valid protobuf, and callers
// reject it as unexpected.
type Message struct {
	DialRequest      *DialRequest
	DialResponse     *DialResponse
	DialDataRequest  *DialDataRequest
	DialDataResponse *DialDataResponse
}

// DialRequest asks the server to dial one of Addrs. Addrs stay raw bytes:
// the server's addrIdx counts undecodable entries too.
type DialRequest struct {
	Addrs [][]byte
	Nonce uint64
}

// DialResponse is the server's answer. AddrIdx and DialStatus mean
// something only when Status is StatusOK.
type DialResponse struct {
	Status     ResponseStatus
	AddrIdx    uint32
	DialStatus DialStatus
}

// DialDataRequest asks the client to send NumBytes of data before the
// server dials Addrs[AddrIdx].
type DialDataRequest struct {
	AddrIdx  uint32
	NumBytes uint64
}

// DialDataResponse carries a chunk of dial data (at most MaxDataChunk).
type DialDataResponse struct {
	Data []byte
}

// DialBack is the server's message on the dial-back stream.
type DialBack struct {
	Nonce uint64
}

// DialBackResponse is the client's answer; with status OK it encodes as
// zero bytes.
type DialBackResponse struct {
	Status DialBackStatus
}

// Field numbers.
const (
	fMsgDialRequest      = 1
	fMsgDialResponse     = 2
	fMsgDialDataRequest  = 3
	fMsgDialDataResponse = 4

	fReqAddrs  = 1
	fReqNonce  = 2
	fRespStat  = 1
	fRespIdx   = 2
	fRespDial  = 3
	fDDReqIdx  = 1
	fDDReqNum  = 2
	fDDRespDat = 1
	fBackNonce = 1
	fBackStat  = 1
)

// Marshal encodes m.
func (m *Message) Marshal() []byte {
	var b []byte
	if m.DialRequest != nil {
		b = pb.AppendBytes(b, fMsgDialRequest, m.DialRequest.Marshal())
	}
	if m.DialResponse != nil {
		b = pb.AppendBytes(b, fMsgDialResponse, m.DialResponse.Marshal())
	}
	if m.DialDataRequest != nil {
		b = pb.AppendBytes(b, fMsgDialDataRequest, m.DialDataRequest.Marshal())
	}
	if m.DialDataResponse != nil {
		b = pb.AppendBytes(b, fMsgDialDataResponse, m.DialDataResponse.Marshal())
	}
	return b
}

// Marshal encodes r. proto3 leaves out zero values, a zero nonce included.
func (r *DialRequest) Marshal() []byte {
	var b []byte
	for _, a := range r.Addrs {
		b = pb.AppendBytes(b, fReqAddrs, a)
	}
	if r.Nonce != 0 {
		b = pb.AppendFixed64(b, fReqNonce, r.Nonce)
	}
	return b
}

// Marshal encodes r.
func (r *DialResponse) Marshal() []byte {
	var b []byte
	if r.Status != 0 {
		b = appendEnum(b, fRespStat, int32(r.Status))
	}
	if r.AddrIdx != 0 {
		b = pb.AppendVarint(b, fRespIdx, uint64(r.AddrIdx))
	}
	if r.DialStatus != 0 {
		b = appendEnum(b, fRespDial, int32(r.DialStatus))
	}
	return b
}

// Marshal encodes r.
func (r *DialDataRequest) Marshal() []byte {
	var b []byte
	if r.AddrIdx != 0 {
		b = pb.AppendVarint(b, fDDReqIdx, uint64(r.AddrIdx))
	}
	if r.NumBytes != 0 {
		b = pb.AppendVarint(b, fDDReqNum, r.NumBytes)
	}
	return b
}

// Marshal encodes r.
func (r *DialDataResponse) Marshal() []byte {
	if len(r.Data) == 0 {
		return nil
	}
	return pb.AppendBytes(nil, fDDRespDat, r.Data)
}

// Marshal encodes d.
func (d *DialBack) Marshal() []byte {
	if d.Nonce == 0 {
		return nil
	}
	return pb.AppendFixed64(nil, fBackNonce, d.Nonce)
}

// Marshal encodes r: nothing at all for OK.
func (r *DialBackResponse) Marshal() []byte {
	if r.Status == 0 {
		return nil
	}
	return appendEnum(nil, fBackStat, int32(r.Status))
}

// appendEnum encodes an enum as protobuf does: a negative value is
// sign-extended to 64 bits.
func appendEnum(b []byte, field int, v int32) []byte {
	return pb.AppendVarint(b, field, uint64(int64(v)))
}

// UnmarshalMessage decodes a Message. Repeated occurrences of one member
// merge, and a member replaces any other set before it (protobuf's oneof
// rules). A field of the wrong wire type is malformed; unknown fields are
// skipped.
func UnmarshalMessage(b []byte) (*Message, error) {
	// The member being built: its field number and the concatenation of
	// its encodings, which protobuf merging equals decoding.
	var cur int
	var raw []byte
	err := pb.ForEach(b, func(f pb.Field) error {
		switch f.Num {
		case fMsgDialRequest, fMsgDialResponse, fMsgDialDataRequest, fMsgDialDataResponse:
			if f.Wire != pb.WireBytes {
				return wireErr("Message", f.Num)
			}
			if cur != f.Num {
				cur, raw = f.Num, nil
			}
			raw = append(raw, f.Bytes...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	var m Message
	switch cur {
	case fMsgDialRequest:
		m.DialRequest, err = unmarshalDialRequest(raw)
	case fMsgDialResponse:
		m.DialResponse, err = unmarshalDialResponse(raw)
	case fMsgDialDataRequest:
		m.DialDataRequest, err = unmarshalDialDataRequest(raw)
	case fMsgDialDataResponse:
		m.DialDataResponse, err = unmarshalDialDataResponse(raw)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return &m, nil
}

func unmarshalDialRequest(b []byte) (*DialRequest, error) {
	var r DialRequest
	err := pb.ForEach(b, func(f pb.Field) error {
		switch f.Num {
		case fReqAddrs:
			if f.Wire != pb.WireBytes {
				return wireErr("DialRequest", f.Num)
			}
			r.Addrs = append(r.Addrs, f.Bytes)
		case fReqNonce:
			if f.Wire != pb.WireFixed64 {
				return wireErr("DialRequest", f.Num)
			}
			r.Nonce = f.Varint
		}
		return nil
	})
	return &r, err
}

func unmarshalDialResponse(b []byte) (*DialResponse, error) {
	var r DialResponse
	err := pb.ForEach(b, func(f pb.Field) error {
		switch f.Num {
		case fRespStat, fRespIdx, fRespDial:
			if f.Wire != pb.WireVarint {
				return wireErr("DialResponse", f.Num)
			}
		}
		// Narrowing as protobuf does: int32 and uint32 keep the low bits.
		switch f.Num {
		case fRespStat:
			r.Status = ResponseStatus(int32(f.Varint))
		case fRespIdx:
			r.AddrIdx = uint32(f.Varint)
		case fRespDial:
			r.DialStatus = DialStatus(int32(f.Varint))
		}
		return nil
	})
	return &r, err
}

func unmarshalDialDataRequest(b []byte) (*DialDataRequest, error) {
	var r DialDataRequest
	err := pb.ForEach(b, func(f pb.Field) error {
		switch f.Num {
		case fDDReqIdx, fDDReqNum:
			if f.Wire != pb.WireVarint {
				return wireErr("DialDataRequest", f.Num)
			}
		}
		switch f.Num {
		case fDDReqIdx:
			r.AddrIdx = uint32(f.Varint)
		case fDDReqNum:
			r.NumBytes = f.Varint
		}
		return nil
	})
	return &r, err
}

func unmarshalDialDataResponse(b []byte) (*DialDataResponse, error) {
	var r DialDataResponse
	err := pb.ForEach(b, func(f pb.Field) error {
		if f.Num == fDDRespDat {
			if f.Wire != pb.WireBytes {
				return wireErr("DialDataResponse", f.Num)
			}
			r.Data = f.Bytes // the last occurrence wins
		}
		return nil
	})
	return &r, err
}

// UnmarshalDialBack decodes a DialBack. An empty one is valid: its nonce
// is zero, which no client of ours registers.
func UnmarshalDialBack(b []byte) (*DialBack, error) {
	var d DialBack
	err := pb.ForEach(b, func(f pb.Field) error {
		if f.Num == fBackNonce {
			if f.Wire != pb.WireFixed64 {
				return wireErr("DialBack", f.Num)
			}
			d.Nonce = f.Varint
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return &d, nil
}

// UnmarshalDialBackResponse decodes a DialBackResponse; zero bytes are
// status OK.
func UnmarshalDialBackResponse(b []byte) (*DialBackResponse, error) {
	var r DialBackResponse
	err := pb.ForEach(b, func(f pb.Field) error {
		if f.Num == fBackStat {
			if f.Wire != pb.WireVarint {
				return wireErr("DialBackResponse", f.Num)
			}
			r.Status = DialBackStatus(int32(f.Varint))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return &r, nil
}

func wireErr(msg string, field int) error {
	return fmt.Errorf("%s field %d has the wrong wire type", msg, field)
}

// Marshaler is any message of this package.
type Marshaler interface {
	Marshal() []byte
}

// Write writes m length-prefixed, in one Write.
func Write(w io.Writer, m Marshaler) error {
	return lp.WriteMsg(w, m.Marshal())
}

// ReadMessage reads one length-prefixed Message of at most MaxMessageSize.
func ReadMessage(r io.Reader) (*Message, error) {
	b, err := lp.ReadMsg(r, MaxMessageSize)
	if err != nil {
		return nil, err
	}
	return UnmarshalMessage(b)
}

// ReadDialBack reads one length-prefixed DialBack.
func ReadDialBack(r io.Reader) (*DialBack, error) {
	b, err := lp.ReadMsg(r, MaxDialBackMessageSize)
	if err != nil {
		return nil, err
	}
	return UnmarshalDialBack(b)
}

// ReadDialBackResponse reads one length-prefixed DialBackResponse.
func ReadDialBackResponse(r io.Reader) (*DialBackResponse, error) {
	b, err := lp.ReadMsg(r, MaxDialBackMessageSize)
	if err != nil {
		return nil, err
	}
	return UnmarshalDialBackResponse(b)
}

// kind names the member of m that is set, for errors.
func (m *Message) kind() string {
	switch {
	case m.DialRequest != nil:
		return "a DialRequest"
	case m.DialResponse != nil:
		return "a DialResponse"
	case m.DialDataRequest != nil:
		return "a DialDataRequest"
	case m.DialDataResponse != nil:
		return "a DialDataResponse"
	}
	return "an empty Message"
}
