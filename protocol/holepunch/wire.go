// Package holepunch implements DCUtR, Direct Connection Upgrade through
// Relay (relay/DCUtR.md): two peers joined by a relayed connection swap
// their public addresses and measure the round trip over it, then dial
// each other at a moment they agree on, so that each NAT sees the other's
// packets as answers to its own.
//
// Roles follow the spec: B, the peer that accepted the relayed connection,
// opens /libp2p/dcutr and sends CONNECT; A, the peer that dialed through
// the relay, answers CONNECT; B sends SYNC and waits half a round trip
// while SYNC travels, so that both dial at the same time. For TCP both dial
// (a simultaneous open: A is the client of the upgrade, B the server); for
// QUIC A dials and B sends packets from its listening socket.
package holepunch

import (
	"errors"
	"fmt"
	"io"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/lp"
	"github.com/tachyon-p2p/tachyon/internal/pb"
)

// ID is the DCUtR protocol id.
const ID protocol.ID = "/libp2p/dcutr"

// MaxMessageSize bounds a HolePunch message, as go-libp2p and rust do.
const MaxMessageSize = 4096

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("holepunch: malformed message")

// Type is HolePunch.type.
type Type int32

const (
	Connect Type = 100
	Sync    Type = 300
)

func (t Type) String() string {
	switch t {
	case Connect:
		return "CONNECT"
	case Sync:
		return "SYNC"
	}
	return fmt.Sprintf("Type(%d)", int32(t))
}

// Message is HolePunch{type, ObsAddrs}. type is required (proto2).
type Message struct {
	Type Type
	// ObsAddrs are the sender's addresses; undecodable ones are dropped.
	ObsAddrs []ma.Multiaddr
}

const (
	fType     = 1
	fObsAddrs = 2
)

// Marshal encodes m.
func (m *Message) Marshal() []byte {
	b := pb.AppendVarint(nil, fType, uint64(m.Type))
	for _, a := range m.ObsAddrs {
		b = pb.AppendBytes(b, fObsAddrs, a.Bytes())
	}
	return b
}

// Unmarshal decodes a HolePunch message. A message without a type, or with
// one that is neither CONNECT nor SYNC, is malformed (proto2 required
// field, closed enum).
func Unmarshal(b []byte) (*Message, error) {
	var m Message
	hasType := false
	err := pb.ForEach(b, func(f pb.Field) error {
		switch f.Num {
		case fType:
			if f.Wire != pb.WireVarint {
				return errors.New("type has the wrong wire type")
			}
			t := Type(int32(f.Varint))
			if t == Connect || t == Sync {
				// An unknown enum value is not the field: proto2 keeps it
				// aside, so an earlier valid value stands.
				m.Type, hasType = t, true
			}
		case fObsAddrs:
			if f.Wire != pb.WireBytes {
				return errors.New("ObsAddrs has the wrong wire type")
			}
			if a, err := ma.NewMultiaddrBytes(f.Bytes); err == nil {
				m.ObsAddrs = append(m.ObsAddrs, a)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !hasType {
		return nil, fmt.Errorf("%w: no valid type", ErrMalformed)
	}
	return &m, nil
}

// Write writes m length-prefixed.
func Write(w io.Writer, m *Message) error {
	return lp.WriteMsg(w, m.Marshal())
}

// Read reads one length-prefixed message.
func Read(r io.Reader) (*Message, error) {
	b, err := lp.ReadMsg(r, MaxMessageSize)
	if err != nil {
		return nil, err
	}
	return Unmarshal(b)
}
