// Package circuit holds the messages of circuit relay v2 (relay/circuit-v2.md):
// HopMessage (client <-> relay), StopMessage (relay -> target), and the
// reservation voucher, with their length-prefixed stream I/O. The relay
// service (protocol/relay) and the relay client (transport/relayed) share it.
//
// The schema is proto2: a field's presence matters. Both type enums start
// at 0 (RESERVE, STOP CONNECT), so the type is always encoded and a message
// without one is malformed rather than read as RESERVE.
package circuit

import (
	"errors"
	"fmt"
	"io"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/lp"
	"github.com/tachyon-p2p/tachyon/internal/pb"
)

// Protocol IDs.
const (
	HopID  protocol.ID = "/libp2p/circuit/relay/0.2.0/hop"
	StopID protocol.ID = "/libp2p/circuit/relay/0.2.0/stop"
)

// MaxMessageSize bounds every HOP and STOP message, as all implementations do.
const MaxMessageSize = 4096

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("circuit: malformed message")

// HopType is HopMessage.type.
type HopType int32

const (
	HopReserve HopType = 0
	HopConnect HopType = 1
	HopStatus  HopType = 2
)

func (t HopType) String() string {
	switch t {
	case HopReserve:
		return "RESERVE"
	case HopConnect:
		return "CONNECT"
	case HopStatus:
		return "STATUS"
	}
	return fmt.Sprintf("HopType(%d)", int32(t))
}

// StopType is StopMessage.type.
type StopType int32

const (
	StopConnect StopType = 0
	StopStatus  StopType = 1
)

func (t StopType) String() string {
	switch t {
	case StopConnect:
		return "CONNECT"
	case StopStatus:
		return "STATUS"
	}
	return fmt.Sprintf("StopType(%d)", int32(t))
}

// Status is the outcome a relay or target reports. 0 (UNUSED) means absent.
type Status int32

const (
	StatusUnused                Status = 0
	StatusOK                    Status = 100
	StatusReservationRefused    Status = 200
	StatusResourceLimitExceeded Status = 201
	StatusPermissionDenied      Status = 202
	StatusConnectionFailed      Status = 203
	StatusNoReservation         Status = 204
	StatusMalformedMessage      Status = 400
	StatusUnexpectedMessage     Status = 401
)

func (s Status) String() string {
	switch s {
	case StatusUnused:
		return "UNUSED"
	case StatusOK:
		return "OK"
	case StatusReservationRefused:
		return "RESERVATION_REFUSED"
	case StatusResourceLimitExceeded:
		return "RESOURCE_LIMIT_EXCEEDED"
	case StatusPermissionDenied:
		return "PERMISSION_DENIED"
	case StatusConnectionFailed:
		return "CONNECTION_FAILED"
	case StatusNoReservation:
		return "NO_RESERVATION"
	case StatusMalformedMessage:
		return "MALFORMED_MESSAGE"
	case StatusUnexpectedMessage:
		return "UNEXPECTED_MESSAGE"
	}
	return fmt.Sprintf("Status(%d)", int32(s))
}

// StatusError is a non-OK status received from the other side.
type StatusError struct {
	Status Status
	// From says who sent it: "relay" or "target".
	From string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s answered %s", e.From, e.Status)
}

// Peer is Peer{id, addrs}. Addrs that do not parse are dropped on decoding.
type Peer struct {
	ID    peer.ID
	Addrs []ma.Multiaddr
}

// Reservation is Reservation{expire, addrs, voucher}.
type Reservation struct {
	// Expire is when the reservation ends, in Unix seconds.
	Expire uint64
	// Addrs are the relay's addresses (with /p2p/<relay>, without
	// /p2p-circuit).
	Addrs []ma.Multiaddr
	// Voucher is a marshaled signed envelope holding a Voucher; optional.
	Voucher []byte
}

// Limit is Limit{duration, data}; 0 means no limit on that dimension.
type Limit struct {
	// Duration in seconds.
	Duration uint32
	// Data in bytes, per direction.
	Data uint64
}

// HopMessage is exchanged on the hop protocol.
type HopMessage struct {
	Type        HopType
	Peer        *Peer
	Reservation *Reservation
	Limit       *Limit
	Status      Status
}

// StopMessage is exchanged on the stop protocol.
type StopMessage struct {
	Type   StopType
	Peer   *Peer
	Limit  *Limit
	Status Status
}

// Field numbers.
const (
	hopType        = 1
	hopPeer        = 2
	hopReservation = 3
	hopLimit       = 4
	hopStatus      = 5

	stopType   = 1
	stopPeer   = 2
	stopLimit  = 3
	stopStatus = 4

	peerID    = 1
	peerAddrs = 2

	rsvpExpire  = 1
	rsvpAddrs   = 2
	rsvpVoucher = 3

	limitDuration = 1
	limitData     = 2
)

// Marshal encodes m; the type is always present.
func (m *HopMessage) Marshal() []byte {
	b := pb.AppendVarint(nil, hopType, uint64(m.Type))
	if m.Peer != nil {
		b = pb.AppendBytes(b, hopPeer, m.Peer.marshal())
	}
	if m.Reservation != nil {
		b = pb.AppendBytes(b, hopReservation, m.Reservation.marshal())
	}
	if m.Limit != nil {
		b = pb.AppendBytes(b, hopLimit, m.Limit.marshal())
	}
	if m.Status != StatusUnused {
		b = pb.AppendVarint(b, hopStatus, uint64(int64(m.Status)))
	}
	return b
}

// Marshal encodes m; the type is always present.
func (m *StopMessage) Marshal() []byte {
	b := pb.AppendVarint(nil, stopType, uint64(m.Type))
	if m.Peer != nil {
		b = pb.AppendBytes(b, stopPeer, m.Peer.marshal())
	}
	if m.Limit != nil {
		b = pb.AppendBytes(b, stopLimit, m.Limit.marshal())
	}
	if m.Status != StatusUnused {
		b = pb.AppendVarint(b, stopStatus, uint64(int64(m.Status)))
	}
	return b
}

func (p *Peer) marshal() []byte {
	var b []byte
	if p.ID != "" {
		b = pb.AppendBytes(b, peerID, []byte(p.ID))
	}
	for _, a := range p.Addrs {
		b = pb.AppendBytes(b, peerAddrs, a.Bytes())
	}
	return b
}

func (r *Reservation) marshal() []byte {
	var b []byte
	if r.Expire != 0 {
		b = pb.AppendVarint(b, rsvpExpire, r.Expire)
	}
	for _, a := range r.Addrs {
		b = pb.AppendBytes(b, rsvpAddrs, a.Bytes())
	}
	if len(r.Voucher) > 0 {
		b = pb.AppendBytes(b, rsvpVoucher, r.Voucher)
	}
	return b
}

func (l *Limit) marshal() []byte {
	var b []byte
	if l.Duration != 0 {
		b = pb.AppendVarint(b, limitDuration, uint64(l.Duration))
	}
	if l.Data != 0 {
		b = pb.AppendVarint(b, limitData, l.Data)
	}
	return b
}

// sub collects the encodings of an embedded message field. Protobuf merges
// repeated occurrences of a singular message field, which is the same as
// decoding their concatenation.
type sub struct {
	present bool
	raw     []byte
}

func (s *sub) add(b []byte) {
	s.present = true
	s.raw = append(s.raw, b...)
}

// UnmarshalHop decodes a HopMessage. A missing type, or a field of the wrong
// wire type, is malformed; unknown fields are skipped.
func UnmarshalHop(b []byte) (*HopMessage, error) {
	var m HopMessage
	var hasType bool
	var p, r, l sub
	err := pb.ForEach(b, func(f pb.Field) error {
		switch f.Num {
		case hopType:
			if f.Wire != pb.WireVarint {
				return wireErr("HopMessage.type")
			}
			m.Type, hasType = HopType(int32(f.Varint)), true
		case hopPeer:
			if f.Wire != pb.WireBytes {
				return wireErr("HopMessage.peer")
			}
			p.add(f.Bytes)
		case hopReservation:
			if f.Wire != pb.WireBytes {
				return wireErr("HopMessage.reservation")
			}
			r.add(f.Bytes)
		case hopLimit:
			if f.Wire != pb.WireBytes {
				return wireErr("HopMessage.limit")
			}
			l.add(f.Bytes)
		case hopStatus:
			if f.Wire != pb.WireVarint {
				return wireErr("HopMessage.status")
			}
			m.Status = Status(int32(f.Varint))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !hasType {
		return nil, fmt.Errorf("%w: HopMessage without a type", ErrMalformed)
	}
	if m.Peer, err = decodePeer(p); err != nil {
		return nil, err
	}
	if r.present {
		if m.Reservation, err = decodeReservation(r.raw); err != nil {
			return nil, err
		}
	}
	if m.Limit, err = decodeLimit(l); err != nil {
		return nil, err
	}
	return &m, nil
}

// UnmarshalStop decodes a StopMessage, with UnmarshalHop's rules.
func UnmarshalStop(b []byte) (*StopMessage, error) {
	var m StopMessage
	var hasType bool
	var p, l sub
	err := pb.ForEach(b, func(f pb.Field) error {
		switch f.Num {
		case stopType:
			if f.Wire != pb.WireVarint {
				return wireErr("StopMessage.type")
			}
			m.Type, hasType = StopType(int32(f.Varint)), true
		case stopPeer:
			if f.Wire != pb.WireBytes {
				return wireErr("StopMessage.peer")
			}
			p.add(f.Bytes)
		case stopLimit:
			if f.Wire != pb.WireBytes {
				return wireErr("StopMessage.limit")
			}
			l.add(f.Bytes)
		case stopStatus:
			if f.Wire != pb.WireVarint {
				return wireErr("StopMessage.status")
			}
			m.Status = Status(int32(f.Varint))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !hasType {
		return nil, fmt.Errorf("%w: StopMessage without a type", ErrMalformed)
	}
	if m.Peer, err = decodePeer(p); err != nil {
		return nil, err
	}
	if m.Limit, err = decodeLimit(l); err != nil {
		return nil, err
	}
	return &m, nil
}

func wireErr(field string) error {
	return fmt.Errorf("%s has the wrong wire type", field)
}

func decodePeer(s sub) (*Peer, error) {
	if !s.present {
		return nil, nil
	}
	var p Peer
	var id []byte
	err := pb.ForEach(s.raw, func(f pb.Field) error {
		switch f.Num {
		case peerID:
			if f.Wire != pb.WireBytes {
				return wireErr("Peer.id")
			}
			id = f.Bytes
		case peerAddrs:
			if f.Wire != pb.WireBytes {
				return wireErr("Peer.addrs")
			}
			if a, err := ma.NewMultiaddrBytes(f.Bytes); err == nil {
				p.Addrs = append(p.Addrs, a)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(id) > 0 {
		pid, err := peer.IDFromBytes(id)
		if err != nil {
			return nil, fmt.Errorf("%w: Peer.id: %w", ErrMalformed, err)
		}
		p.ID = pid
	}
	return &p, nil
}

func decodeReservation(raw []byte) (*Reservation, error) {
	var r Reservation
	err := pb.ForEach(raw, func(f pb.Field) error {
		switch f.Num {
		case rsvpExpire:
			if f.Wire != pb.WireVarint {
				return wireErr("Reservation.expire")
			}
			r.Expire = f.Varint
		case rsvpAddrs:
			if f.Wire != pb.WireBytes {
				return wireErr("Reservation.addrs")
			}
			if a, err := ma.NewMultiaddrBytes(f.Bytes); err == nil {
				r.Addrs = append(r.Addrs, a)
			}
		case rsvpVoucher:
			if f.Wire != pb.WireBytes {
				return wireErr("Reservation.voucher")
			}
			r.Voucher = f.Bytes
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return &r, nil
}

func decodeLimit(s sub) (*Limit, error) {
	if !s.present {
		return nil, nil
	}
	var l Limit
	err := pb.ForEach(s.raw, func(f pb.Field) error {
		switch f.Num {
		case limitDuration:
			if f.Wire != pb.WireVarint {
				return wireErr("Limit.duration")
			}
			l.Duration = uint32(f.Varint)
		case limitData:
			if f.Wire != pb.WireVarint {
				return wireErr("Limit.data")
			}
			l.Data = f.Varint
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return &l, nil
}

// WriteHop writes m length-prefixed.
func WriteHop(w io.Writer, m *HopMessage) error {
	return lp.WriteMsg(w, m.Marshal())
}

// ReadHop reads one length-prefixed HopMessage, never past its end: after
// a STATUS OK the stream carries the relayed connection's bytes.
func ReadHop(r io.Reader) (*HopMessage, error) {
	b, err := lp.ReadMsg(r, MaxMessageSize)
	if err != nil {
		return nil, err
	}
	return UnmarshalHop(b)
}

// WriteStop writes m length-prefixed.
func WriteStop(w io.Writer, m *StopMessage) error {
	return lp.WriteMsg(w, m.Marshal())
}

// ReadStop reads one length-prefixed StopMessage, never past its end.
func ReadStop(r io.Reader) (*StopMessage, error) {
	b, err := lp.ReadMsg(r, MaxMessageSize)
	if err != nil {
		return nil, err
	}
	return UnmarshalStop(b)
}
