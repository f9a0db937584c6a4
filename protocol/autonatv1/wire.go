// Package autonatv1 answers the legacy AutoNAT protocol
// (autonat/autonat-v1.md, /libp2p/autonat/1.0.0): a peer asks us to dial it
// back at the addresses it lists, and we say whether one of them connected.
// Old go-libp2p and js-libp2p nodes still learn their reachability this
// way; tachyon's own nodes use AutoNAT v2.
//
// The package holds the server (Service) and a one-shot client (Check).
// One exchange is one stream: the client sends a DIAL message, the server
// answers with one DIAL_RESPONSE and closes.
//
// The server follows go-libp2p's (p2p/host/autonat/svc.go): the same
// limits (16 addresses, 15 s dial, 60 s stream, 30 dial-backs a minute
// and 3 per peer), status codes and texts, and a failed dial-back answered
// only at the dial timeout. Where it differs:
//   - An address on another IP than the request's is dropped, as
//     js-libp2p does; go instead swaps the IP for the observed one and
//     dials that. Both keep to the spec's rule (dial only the observed
//     IP); dropping never dials a port the client did not name for that
//     IP. For the same reason the observed address itself (go dials it
//     first) is not added: for TCP it is usually an ephemeral port.
//   - A complete message that does not decode, or is not a DIAL, gets
//     E_BAD_REQUEST (js answers a missing dial so); go resets the stream.
//     Incomplete or oversized messages are reset, as go does.
//   - The rate limits are a sliding window; go resets counters every
//     minute plus jitter, which lets a burst straddle the reset.
//   - An absent peer ID is accepted, as go does (js refuses it); a present
//     one must be the stream's peer.
package autonatv1

import (
	"errors"
	"fmt"
	"io"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/lp"
	"github.com/tachyon-p2p/tachyon/internal/pb"
)

// ID is the AutoNAT v1 protocol id.
const ID protocol.ID = "/libp2p/autonat/1.0.0"

// MaxMessageSize bounds a message in both directions. go-libp2p reads at
// most 4096 bytes and js-libp2p 8192, so 4096 is what both accept.
const MaxMessageSize = 4096

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("autonatv1: malformed message")

// Type is Message.type.
type Type int32

const (
	TypeDial         Type = 0
	TypeDialResponse Type = 1
)

func (t Type) String() string {
	switch t {
	case TypeDial:
		return "DIAL"
	case TypeDialResponse:
		return "DIAL_RESPONSE"
	}
	return fmt.Sprintf("Type(%d)", int32(t))
}

// Status is DialResponse.status.
type Status int32

const (
	StatusOK            Status = 0
	StatusDialError     Status = 100
	StatusDialRefused   Status = 101
	StatusBadRequest    Status = 200
	StatusInternalError Status = 300
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "OK"
	case StatusDialError:
		return "E_DIAL_ERROR"
	case StatusDialRefused:
		return "E_DIAL_REFUSED"
	case StatusBadRequest:
		return "E_BAD_REQUEST"
	case StatusInternalError:
		return "E_INTERNAL_ERROR"
	}
	return fmt.Sprintf("Status(%d)", int32(s))
}

// Message is the one message of the protocol (proto2, every field
// optional). A missing type reads as DIAL and a missing status as OK, the
// proto2 defaults. Unlike proto2, an enum value outside the definition is
// kept as it is rather than set aside, so that an unknown type or status
// is never mistaken for the default.
type Message struct {
	Type         Type
	Dial         *Dial
	DialResponse *DialResponse
}

// Dial is the request: the client's peer info.
type Dial struct {
	Peer *PeerInfo
}

// PeerInfo is the client's peer ID and addresses.
type PeerInfo struct {
	// ID is the peer ID bytes as sent, nil when absent; the server parses
	// it.
	ID []byte
	// Addrs are the addresses to dial back; undecodable ones are dropped.
	Addrs []ma.Multiaddr
}

// DialResponse is the answer.
type DialResponse struct {
	Status     Status
	StatusText string
	// Addr is the address that connected (OK only), nil when absent.
	Addr ma.Multiaddr
}

const (
	fType         = 1
	fDial         = 2
	fDialResponse = 3

	fDialPeer = 1

	fPeerID    = 1
	fPeerAddrs = 2

	fRespStatus = 1
	fRespText   = 2
	fRespAddr   = 3
)

// Marshal encodes m with its fields in order, as go-libp2p's generated
// code does. Type is always written (go does too); statusText only when
// not empty.
func (m *Message) Marshal() []byte {
	b := pb.AppendVarint(nil, fType, uint64(int64(m.Type)))
	if m.Dial != nil {
		var d []byte
		if p := m.Dial.Peer; p != nil {
			var pi []byte
			if p.ID != nil {
				pi = pb.AppendBytes(pi, fPeerID, p.ID)
			}
			for _, a := range p.Addrs {
				pi = pb.AppendBytes(pi, fPeerAddrs, a.Bytes())
			}
			d = pb.AppendBytes(d, fDialPeer, pi)
		}
		b = pb.AppendBytes(b, fDial, d)
	}
	if r := m.DialResponse; r != nil {
		rb := pb.AppendVarint(nil, fRespStatus, uint64(int64(r.Status)))
		if r.StatusText != "" {
			rb = pb.AppendString(rb, fRespText, r.StatusText)
		}
		if r.Addr != nil {
			rb = pb.AppendBytes(rb, fRespAddr, r.Addr.Bytes())
		}
		b = pb.AppendBytes(b, fDialResponse, rb)
	}
	return b
}

// Unmarshal decodes a Message. Unknown fields are skipped; a known field
// with the wrong wire type, or a response address that does not decode,
// is malformed. A sub-message that appears twice is merged, as protobuf
// does.
func Unmarshal(b []byte) (*Message, error) {
	var m Message
	err := pb.ForEach(b, func(f pb.Field) error {
		switch f.Num {
		case fType:
			if f.Wire != pb.WireVarint {
				return errors.New("type has the wrong wire type")
			}
			m.Type = Type(int32(f.Varint))
		case fDial:
			if f.Wire != pb.WireBytes {
				return errors.New("dial has the wrong wire type")
			}
			if m.Dial == nil {
				m.Dial = &Dial{}
			}
			return m.Dial.merge(f.Bytes)
		case fDialResponse:
			if f.Wire != pb.WireBytes {
				return errors.New("dialResponse has the wrong wire type")
			}
			if m.DialResponse == nil {
				m.DialResponse = &DialResponse{}
			}
			return m.DialResponse.merge(f.Bytes)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return &m, nil
}

func (d *Dial) merge(b []byte) error {
	return pb.ForEach(b, func(f pb.Field) error {
		if f.Num != fDialPeer {
			return nil
		}
		if f.Wire != pb.WireBytes {
			return errors.New("dial.peer has the wrong wire type")
		}
		if d.Peer == nil {
			d.Peer = &PeerInfo{}
		}
		return d.Peer.merge(f.Bytes)
	})
}

func (p *PeerInfo) merge(b []byte) error {
	return pb.ForEach(b, func(f pb.Field) error {
		switch f.Num {
		case fPeerID:
			if f.Wire != pb.WireBytes {
				return errors.New("peer.id has the wrong wire type")
			}
			// Non-nil even when empty: present-but-empty is a bad ID,
			// not a missing one.
			p.ID = append([]byte{}, f.Bytes...)
		case fPeerAddrs:
			if f.Wire != pb.WireBytes {
				return errors.New("peer.addrs has the wrong wire type")
			}
			if a, err := ma.NewMultiaddrBytes(f.Bytes); err == nil {
				p.Addrs = append(p.Addrs, a)
			}
		}
		return nil
	})
}

func (r *DialResponse) merge(b []byte) error {
	return pb.ForEach(b, func(f pb.Field) error {
		switch f.Num {
		case fRespStatus:
			if f.Wire != pb.WireVarint {
				return errors.New("dialResponse.status has the wrong wire type")
			}
			r.Status = Status(int32(f.Varint))
		case fRespText:
			if f.Wire != pb.WireBytes {
				return errors.New("dialResponse.statusText has the wrong wire type")
			}
			r.StatusText = string(f.Bytes)
		case fRespAddr:
			if f.Wire != pb.WireBytes {
				return errors.New("dialResponse.addr has the wrong wire type")
			}
			a, err := ma.NewMultiaddrBytes(f.Bytes)
			if err != nil {
				return fmt.Errorf("dialResponse.addr: %w", err)
			}
			r.Addr = a
		}
		return nil
	})
}

// ErrTooLarge is returned by Write for a message over MaxMessageSize,
// which peers would refuse.
var ErrTooLarge = errors.New("autonatv1: message too large")

// Write writes m length-prefixed.
func Write(w io.Writer, m *Message) error {
	b := m.Marshal()
	if len(b) > MaxMessageSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), MaxMessageSize)
	}
	return lp.WriteMsg(w, b)
}

// Read reads one length-prefixed message of at most MaxMessageSize bytes.
// A framing error (EOF, a length over the limit) is returned as it is; a
// complete message that does not decode wraps ErrMalformed.
func Read(r io.Reader) (*Message, error) {
	b, err := lp.ReadMsg(r, MaxMessageSize)
	if err != nil {
		return nil, err
	}
	return Unmarshal(b)
}
