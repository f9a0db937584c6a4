package peer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/mr-tron/base58"
	ma "github.com/multiformats/go-multiaddr"
)

// identify (specs identify/README.md): the responder writes one
// varint-length-prefixed Identify protobuf and closes; push is the same
// message sent unasked on /ipfs/id/push/1.0.0.

const (
	IdentifyID     = "/ipfs/id/1.0.0"
	IdentifyPushID = "/ipfs/id/push/1.0.0"
	identifySpec   = "identify/README.md"
	// maxIdentify is the largest message rust-libp2p reads (it reads one
	// message of at most 4096 bytes), so anything bigger does not
	// interoperate.
	maxIdentify = 4096
)

// IdentifyMsg is the Identify protobuf.
type IdentifyMsg struct {
	ProtocolVersion  string   // 5
	AgentVersion     string   // 6
	PublicKey        []byte   // 1
	ListenAddrs      [][]byte // 2, binary multiaddrs
	ObservedAddr     []byte   // 4
	Protocols        []string // 3
	SignedPeerRecord []byte   // 8
}

// Protobuf wire types.
const (
	pbVarint = 0
	pbI64    = 1
	pbBytes  = 2
	pbI32    = 5
)

func pbAppendBytes(b []byte, field int, v []byte) []byte {
	b = appendUvarint(b, uint64(field)<<3|pbBytes)
	b = appendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func pbAppendVarint(b []byte, field int, v uint64) []byte {
	b = appendUvarint(b, uint64(field)<<3|pbVarint)
	return appendUvarint(b, v)
}

// pbUvarint decodes a varint at the start of b: value and length, or n=0.
func pbUvarint(b []byte) (uint64, int) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			return v, i + 1
		}
	}
	return 0, 0
}

// pbFields calls f for every field of msg; b is the payload of a bytes
// field, v the value of a varint. Unknown wire types are an error;
// fixed-size fields are skipped.
func pbFields(msg []byte, f func(field int, wire int, v uint64, b []byte) error) error {
	for len(msg) > 0 {
		key, n := pbUvarint(msg)
		if n == 0 {
			return errors.New("protobuf: truncated field key")
		}
		msg = msg[n:]
		field, wire := int(key>>3), int(key&7)
		var v uint64
		var b []byte
		switch wire {
		case pbVarint:
			if v, n = pbUvarint(msg); n == 0 {
				return fmt.Errorf("protobuf: truncated varint in field %d", field)
			}
			msg = msg[n:]
		case pbBytes:
			l, n := pbUvarint(msg)
			if n == 0 || uint64(len(msg)-n) < l {
				return fmt.Errorf("protobuf: truncated bytes in field %d", field)
			}
			b, msg = msg[n:n+int(l)], msg[n+int(l):]
		case pbI64, pbI32:
			size := 8
			if wire == pbI32 {
				size = 4
			}
			if len(msg) < size {
				return fmt.Errorf("protobuf: truncated fixed field %d", field)
			}
			msg = msg[size:]
			continue
		default:
			return fmt.Errorf("protobuf: field %d has wire type %d", field, wire)
		}
		if err := f(field, wire, v, b); err != nil {
			return err
		}
	}
	return nil
}

// Marshal encodes m in field order.
func (m *IdentifyMsg) Marshal() []byte {
	var b []byte
	if m.PublicKey != nil {
		b = pbAppendBytes(b, 1, m.PublicKey)
	}
	for _, a := range m.ListenAddrs {
		b = pbAppendBytes(b, 2, a)
	}
	for _, p := range m.Protocols {
		b = pbAppendBytes(b, 3, []byte(p))
	}
	if m.ObservedAddr != nil {
		b = pbAppendBytes(b, 4, m.ObservedAddr)
	}
	if m.ProtocolVersion != "" {
		b = pbAppendBytes(b, 5, []byte(m.ProtocolVersion))
	}
	if m.AgentVersion != "" {
		b = pbAppendBytes(b, 6, []byte(m.AgentVersion))
	}
	if m.SignedPeerRecord != nil {
		b = pbAppendBytes(b, 8, m.SignedPeerRecord)
	}
	return b
}

// parseIdentify decodes an Identify protobuf; a known field of the wrong
// wire type is a violation.
func parseIdentify(b []byte) (*IdentifyMsg, error) {
	m := &IdentifyMsg{}
	err := pbFields(b, func(field, wire int, _ uint64, v []byte) error {
		switch field {
		case 1, 2, 3, 4, 5, 6, 8:
			if wire != pbBytes {
				return violation(identifySpec+"#the-identify-message", "field %d has wire type %d, want bytes", field, wire)
			}
		default:
			return nil
		}
		v = bytes.Clone(v)
		switch field {
		case 1:
			m.PublicKey = v
		case 2:
			m.ListenAddrs = append(m.ListenAddrs, v)
		case 3:
			m.Protocols = append(m.Protocols, string(v))
		case 4:
			m.ObservedAddr = v
		case 5:
			m.ProtocolVersion = string(v)
		case 6:
			m.AgentVersion = string(v)
		case 8:
			m.SignedPeerRecord = v
		}
		return nil
	})
	if err != nil {
		if isViolation(err) {
			return nil, err
		}
		return nil, violation(identifySpec+"#the-identify-message", "undecodable Identify: %v", err)
	}
	return m, nil
}

// writeIdentify sends m as the single length-prefixed message of the
// stream; the caller closes the stream. Split sends it byte by byte.
func writeIdentify(w io.Writer, m *IdentifyMsg, mode Mode) error {
	body := m.Marshal()
	msg := append(appendUvarint(nil, uint64(len(body))), body...)
	if _, err := Paced(w, mode).Write(msg); err != nil {
		return fmt.Errorf("identify: sending the message: %w", err)
	}
	return nil
}

// readIdentify reads the stream to EOF and checks it held exactly one
// Identify message of at most maxIdentify bytes whose public key (when
// present; a push may leave it out) is that of remoteID. Listen and
// observed addresses must be valid multiaddrs, and a signed peer record
// must verify and name remoteID.
func readIdentify(r io.Reader, remoteID string) (*IdentifyMsg, error) {
	all, err := io.ReadAll(io.LimitReader(r, 2*maxIdentify))
	if err != nil {
		return nil, fmt.Errorf("identify: reading the message: %w", err)
	}
	l, n := pbUvarint(all)
	switch {
	case n == 0:
		return nil, violation(identifySpec, "no length-prefixed message before EOF (%d bytes)", len(all))
	case l > maxIdentify:
		return nil, violation(identifySpec, "message of %d bytes, over the %d that every implementation reads", l, maxIdentify)
	case uint64(len(all)-n) < l:
		return nil, violation(identifySpec, "message of %d bytes cut short at %d", l, len(all)-n)
	case uint64(len(all)-n) > l:
		return nil, violation(identifySpec, "%d bytes after the one Identify message (several messages?)", uint64(len(all)-n)-l)
	}
	m, err := parseIdentify(all[n:])
	if err != nil {
		return nil, err
	}
	if m.PublicKey != nil {
		id, err := PeerIDFromPublicKey(m.PublicKey)
		if err != nil {
			return nil, violation(identifySpec+"#publickey", "public key does not decode: %v", err)
		}
		if id != remoteID {
			return nil, violation(identifySpec+"#publickey", "public key is of %s, the connection's peer is %s", id, remoteID)
		}
	}
	for _, a := range append(slices.Clone(m.ListenAddrs), m.ObservedAddr) {
		if a == nil {
			continue
		}
		if _, err := ma.NewMultiaddrBytes(a); err != nil {
			return nil, violation(identifySpec+"#listenaddrs", "address %x is not a multiaddr: %v", a, err)
		}
	}
	if m.SignedPeerRecord != nil {
		if err := checkPeerRecord(m.SignedPeerRecord, remoteID); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Signed envelopes (RFC/0002-signed-envelopes.md) holding a peer record
// (RFC/0003-routing-records.md).
const recordSpec = "RFC/0003-routing-records.md"

// recordDomains are the signature domains a peer record may use: the RFC
// names "libp2p-routing-state"; the multicodec table's name for the record
// type (libp2p-peer-record, 0x0301) is what deployed peers sign with. The
// RFC leaves the payload type open, so it is taken as the envelope says.
var recordDomains = []string{"libp2p-peer-record", "libp2p-routing-state"}

// checkPeerRecord verifies a signed peer record envelope: the signature
// over domain, payload type and payload (each varint-length-prefixed), the
// signer being remoteID, and the record naming remoteID.
func checkPeerRecord(env []byte, remoteID string) error {
	var pub, typ, payload, sig []byte
	err := pbFields(env, func(field, wire int, _ uint64, b []byte) error {
		switch field {
		case 1:
			pub = b
		case 2:
			typ = b
		case 3:
			payload = b
		case 5:
			sig = b
		}
		return nil
	})
	if err != nil {
		return violation(recordSpec, "envelope does not decode: %v", err)
	}
	signer, err := PeerIDFromPublicKey(pub)
	if err != nil {
		return violation(recordSpec, "envelope key does not decode: %v", err)
	}
	if signer != remoteID {
		return violation(recordSpec, "record signed by %s, the connection's peer is %s", signer, remoteID)
	}
	var sigErr error
	for _, domain := range recordDomains {
		var signed []byte
		for _, part := range [][]byte{[]byte(domain), typ, payload} {
			signed = appendUvarint(signed, uint64(len(part)))
			signed = append(signed, part...)
		}
		if sigErr = VerifySignature(pub, signed, sig); sigErr == nil {
			break
		}
	}
	if sigErr != nil {
		return violation("RFC/0002-signed-envelopes.md", "envelope signature: %v", sigErr)
	}
	var recID []byte
	err = pbFields(payload, func(field, wire int, _ uint64, b []byte) error {
		if field == 1 {
			recID = b
		}
		return nil
	})
	if err != nil {
		return violation(recordSpec, "peer record does not decode: %v", err)
	}
	want, err := base58.Decode(remoteID)
	if err != nil {
		return fmt.Errorf("identify: decoding peer ID %s: %w", remoteID, err)
	}
	if !bytes.Equal(recID, want) {
		return violation(recordSpec, "peer record names peer %x, want %x", recID, want)
	}
	return nil
}
