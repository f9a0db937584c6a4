// Package identify implements the libp2p identify and identify-push
// protocols (identify/README.md): the Identify message, its stream I/O and
// a Service the host wires to its streams.
//
// Interop limits shape the encoder: rust-libp2p reads a single message of at
// most 4096 bytes, so Marshal trims what it must to stay below that. The
// reader is as lenient as go-libp2p: up to 10 messages of 8 KiB each, merged
// as protobuf merges (scalars: last wins, repeated fields: concatenated),
// and more lenient about the end: after one good message it does not
// require EOF (see Read).
package identify

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/lp"
	"github.com/tachyon-p2p/tachyon/internal/pb"
	"github.com/tachyon-p2p/tachyon/internal/varint"
)

// Protocol IDs.
const (
	ID     protocol.ID = "/ipfs/id/1.0.0"
	PushID protocol.ID = "/ipfs/id/push/1.0.0"
)

// Size limits.
const (
	// MaxSendSize bounds what Marshal emits (exclusive), for rust's reader.
	MaxSendSize = 4096
	// MaxReadSize bounds each message Read accepts.
	MaxReadSize = 8192
	// MaxMessages is how many messages Read merges before it stops reading.
	MaxMessages = 10
)

// Identify protobuf field numbers (7 is unused).
const (
	fPublicKey        = 1
	fListenAddrs      = 2
	fProtocols        = 3
	fObservedAddr     = 4
	fProtocolVersion  = 5
	fAgentVersion     = 6
	fSignedPeerRecord = 8
)

// ErrMalformed is wrapped by errors about undecodable messages.
var ErrMalformed = errors.New("identify: malformed message")

// Message is the Identify message. Empty fields are not sent.
type Message struct {
	PublicKey       crypto.PubKey
	ListenAddrs     []ma.Multiaddr
	Protocols       []protocol.ID
	ObservedAddr    ma.Multiaddr
	ProtocolVersion string
	AgentVersion    string
	// SignedPeerRecord is a marshaled envelope holding a peer record.
	SignedPeerRecord []byte
}

// Marshal encodes m. When the encoding would reach MaxSendSize it drops, in
// order, a signed peer record too large to ever fit, trailing listen
// addresses, the record, and trailing protocols, so the peer always gets a
// message it can read.
func (m *Message) Marshal() []byte {
	var key []byte
	if m.PublicKey != nil {
		// A key that cannot be encoded is left out rather than failing the
		// whole message; the peer can still take it from the connection.
		key, _ = crypto.MarshalPublicKey(m.PublicKey)
	}
	var observed []byte
	if len(m.ObservedAddr) > 0 {
		observed = m.ObservedAddr.Bytes()
	}
	addrs := make([][]byte, len(m.ListenAddrs))
	for i, a := range m.ListenAddrs {
		addrs[i] = a.Bytes()
	}
	protos := m.Protocols
	record := m.SignedPeerRecord

	fixed := bytesField(key) + bytesField(observed) +
		bytesField([]byte(m.ProtocolVersion)) + bytesField([]byte(m.AgentVersion))
	size := func() int {
		n := fixed + bytesField(record)
		for _, a := range addrs {
			n += bytesField(a)
		}
		for _, p := range protos {
			n += bytesField([]byte(p))
		}
		return n
	}
	total := size()
	if fixed+bytesField(record) >= MaxSendSize {
		// The record could never fit; keep the addresses instead.
		total -= bytesField(record)
		record = nil
	}
	for total >= MaxSendSize && len(addrs) > 0 {
		total -= bytesField(addrs[len(addrs)-1])
		addrs = addrs[:len(addrs)-1]
	}
	if total >= MaxSendSize && len(record) > 0 {
		total -= bytesField(record)
		record = nil
	}
	for total >= MaxSendSize && len(protos) > 0 {
		total -= bytesField([]byte(protos[len(protos)-1]))
		protos = protos[:len(protos)-1]
	}

	b := make([]byte, 0, total)
	if len(key) > 0 {
		b = pb.AppendBytes(b, fPublicKey, key)
	}
	for _, a := range addrs {
		b = pb.AppendBytes(b, fListenAddrs, a)
	}
	for _, p := range protos {
		b = pb.AppendString(b, fProtocols, string(p))
	}
	if len(observed) > 0 {
		b = pb.AppendBytes(b, fObservedAddr, observed)
	}
	if m.ProtocolVersion != "" {
		b = pb.AppendString(b, fProtocolVersion, m.ProtocolVersion)
	}
	if m.AgentVersion != "" {
		b = pb.AppendString(b, fAgentVersion, m.AgentVersion)
	}
	if len(record) > 0 {
		b = pb.AppendBytes(b, fSignedPeerRecord, record)
	}
	return b
}

// bytesField is the encoded size of a length-delimited field with a one-byte
// tag, or 0 for an empty value (which is not sent).
func bytesField(v []byte) int {
	if len(v) == 0 {
		return 0
	}
	n := 1 + 1 + len(v)
	for l := len(v) >> 7; l > 0; l >>= 7 {
		n++
	}
	return n
}

// Unmarshal decodes an Identify message. Repeated fields accumulate and
// scalar fields keep their last value, so a concatenation of messages decodes
// as their merge. Undecodable listen or observed addresses are skipped (a
// peer may know transports we do not); an undecodable public key is an error.
func Unmarshal(b []byte) (*Message, error) {
	var (
		m                Message
		rawKey           []byte
		agent, protoVer  []byte // the last of each, interned once
		hasAgent, hasVer bool
	)
	err := pb.ForEach(b, func(f pb.Field) error {
		switch f.Num {
		case fPublicKey, fListenAddrs, fProtocols, fObservedAddr, fProtocolVersion, fAgentVersion, fSignedPeerRecord:
			if f.Wire != pb.WireBytes {
				return fmt.Errorf("%w: field %d has wire type %d", ErrMalformed, f.Num, f.Wire)
			}
		default:
			return nil
		}
		switch f.Num {
		case fPublicKey:
			rawKey = f.Bytes
		case fListenAddrs:
			if a, err := ma.NewMultiaddrBytes(f.Bytes); err == nil {
				m.ListenAddrs = append(m.ListenAddrs, a)
			}
		case fProtocols:
			if len(m.Protocols) < maxInternedPerMessage {
				m.Protocols = append(m.Protocols, protocol.ID(intern(f.Bytes)))
			} else {
				m.Protocols = append(m.Protocols, protocol.ID(f.Bytes))
			}
		case fObservedAddr:
			if a, err := ma.NewMultiaddrBytes(f.Bytes); err == nil {
				m.ObservedAddr = a
			} else {
				m.ObservedAddr = nil
			}
		case fProtocolVersion:
			protoVer, hasVer = f.Bytes, true
		case fAgentVersion:
			agent, hasAgent = f.Bytes, true
		case fSignedPeerRecord:
			m.SignedPeerRecord = append([]byte(nil), f.Bytes...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("identify: decoding message: %w", err)
	}
	if hasAgent {
		m.AgentVersion = intern(agent)
	}
	if hasVer {
		m.ProtocolVersion = intern(protoVer)
	}
	if len(rawKey) > 0 {
		if m.PublicKey, err = crypto.UnmarshalPublicKey(rawKey); err != nil {
			return nil, fmt.Errorf("identify: decoding public key: %w", err)
		}
	}
	return &m, nil
}

// Interning bounds: strings longer than maxInterned, and a message's
// protocols past its first maxInternedPerMessage (the peerstore keeps 128),
// are copied; the table starts over once it holds maxInternedStrings, so
// peers sending many distinct protocols only make it start over.
const (
	maxInterned           = 128
	maxInternedPerMessage = 128
	maxInternedStrings    = 4096
)

// interned holds the protocol IDs and versions peers sent.
var interned struct {
	sync.RWMutex
	m map[string]string
}

// intern returns b as a string shared with the other messages that carried
// the same bytes: the protocol IDs and versions peers send are nearly
// always the same few, and the host keeps them for every connected peer.
func intern(b []byte) string {
	if len(b) > maxInterned {
		return string(b)
	}
	interned.RLock()
	s, ok := interned.m[string(b)]
	interned.RUnlock()
	if ok {
		return s
	}
	s = string(b)
	interned.Lock()
	if len(interned.m) >= maxInternedStrings || interned.m == nil {
		interned.m = make(map[string]string)
	}
	interned.m[s] = s
	interned.Unlock()
	return s
}

// Write sends m as one length-prefixed message.
func Write(w io.Writer, m *Message) error {
	if err := lp.WriteMsg(w, m.Marshal()); err != nil {
		return fmt.Errorf("identify: writing message: %w", err)
	}
	return nil
}

// WriteFinal writes m as the stream's last message and half-closes it, in
// one frame where the stream can (network.FinalWriter).
func WriteFinal(w io.Writer, m *Message) error {
	if _, err := network.WriteFinal(w, lp.Append(nil, m.Marshal())); err != nil {
		return fmt.Errorf("identify: writing message: %w", err)
	}
	return nil
}

// FollowUpWait bounds how long Read waits, once it has a message, for more
// messages or the end of the stream. go-libp2p writes its second message
// (the signed record, when the whole would pass 2 KiB) right behind the
// first, and rust writes one message and closes, so more waiting only
// serves a peer that writes one message and never closes, which should not
// hold its identify for the whole stream timeout.
const FollowUpWait = 2 * time.Second

// Read reads messages until EOF (at most MaxMessages of MaxReadSize bytes
// each) and returns their merge. At least one message is required.
//
// The spec has the responder close after its message, but rust never waits
// for that, and a peer that resets or stays silent after a good message
// has still answered. So once Read has a message, a reset, a timeout or a
// message cut short ends the reading and Read returns what it has; if r can
// SetReadDeadline, Read sets it to FollowUpWait from then. A framing
// violation (an oversized message, a bad varint) or a message that does
// not decode is still an error.
func Read(r io.Reader) (*Message, error) {
	var all []byte
	for i := 0; i < MaxMessages; i++ {
		msg, err := lp.ReadMsg(r, MaxReadSize)
		if err != nil {
			if i > 0 && !badFraming(err) {
				break
			}
			return nil, fmt.Errorf("identify: reading message %d: %w", i+1, err)
		}
		if i == 0 {
			all = msg
			if d, ok := r.(interface{ SetReadDeadline(time.Time) error }); ok {
				_ = d.SetReadDeadline(time.Now().Add(FollowUpWait))
			}
		} else {
			all = append(all, msg...)
		}
	}
	return Unmarshal(all)
}

// badFraming tells a peer breaking the length-prefixed framing from a
// stream that merely ended.
func badFraming(err error) bool {
	return errors.Is(err, lp.ErrTooLarge) || errors.Is(err, varint.ErrOverflow) || errors.Is(err, varint.ErrNotMinimal)
}
