package protodiff

import (
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/peer"
)

// Rule names a way tachyon's decoders are deliberately stricter than
// protobuf: bytes protobuf decodes that tachyon must reject. Each has a test
// in rules_test.go with an input protobuf accepts and tachyon rejects.
type Rule string

const (
	// RuleProtobuf: protobuf rejects the bytes, so tachyon must too.
	RuleProtobuf Rule = "protobuf rejects"
	// RuleGroup: internal/pb has no group wire types (3 and 4), deprecated
	// and in no libp2p schema; protobuf skips an unknown group, tachyon
	// rejects the message.
	RuleGroup Rule = "group wire type"
	// RuleWireType: a field of a known number with another wire type than
	// its schema's is an error in tachyon; protobuf keeps it as an unknown
	// field. (security/plaintext alone skips it, as protobuf does.)
	RuleWireType Rule = "known field with wrong wire type"
	// RuleKeyShape: a PublicKey or PrivateKey must be exactly one Type and
	// one Data field, nothing else, since peer IDs hash these bytes; protobuf
	// takes repeated fields (last wins), unknown fields, and merges the
	// occurrences of an embedded key.
	RuleKeyShape Rule = "key not exactly {Type, Data}"
	// RuleKeyType: a key Type varint above 3 is rejected; protobuf reads an
	// enum as int32, so 1<<32|1 would be Ed25519 (generated Go code also
	// keeps unknown values of a closed enum as unknown fields).
	RuleKeyType Rule = "key type out of range"
	// RuleKeyData: the key material must parse for its type (the crypto
	// package's own checks, beyond the protobuf layer).
	RuleKeyData Rule = "key data invalid"
	// RuleKeyOnce: an envelope or a plaintext Exchange with more than one
	// public key field is rejected; protobuf merges the occurrences of an
	// embedded message, so reading only the last would accept bytes that go,
	// rust and js reject (when an earlier one is malformed).
	RuleKeyOnce Rule = "embedded key repeated"
	// RuleEnvelopeKey: an envelope without a public key is rejected (proto3
	// makes every field optional).
	RuleEnvelopeKey Rule = "envelope without public key"
	// RulePeerID: a peer record needs a peer_id, and every peer_id
	// occurrence must be a valid peer ID (protobuf keeps the last).
	RulePeerID Rule = "peer record peer_id missing or invalid"
	// RuleMultiaddr: every multiaddr of a peer record must be a valid binary
	// multiaddr.
	RuleMultiaddr Rule = "peer record multiaddr invalid"
	// RuleExchange: a plaintext Exchange needs both fields, a valid peer ID,
	// and a key that derives it.
	RuleExchange Rule = "plaintext exchange incomplete or inconsistent"
	// RuleNoiseCaps: at most 32 WebTransport certhashes and 32 stream muxers
	// in a Noise handshake payload (go-libp2p caps them too).
	RuleNoiseCaps Rule = "noise extensions over caps"
	// RuleFlag: a WebRTC message flag above FIN_ACK (3) is rejected, in any
	// occurrence; protobuf reads int32 and, in generated code, keeps unknown
	// values as unknown fields.
	RuleFlag Rule = "webrtc flag out of range"
)

// Verdict is what tachyon must do with some bytes.
type Verdict struct {
	Accept bool
	// Rule says why tachyon must reject; empty when it must accept.
	Rule Rule
	// Msg is protobuf's decoding, when protobuf accepts.
	Msg *dynamicpb.Message
}

func reject(r Rule, m *dynamicpb.Message) Verdict { return Verdict{Rule: r, Msg: m} }
func accept(m *dynamicpb.Message) Verdict         { return Verdict{Accept: true, Msg: m} }

// RawField is one field as protowire splits a message.
type RawField struct {
	Num   protowire.Number
	Type  protowire.Type
	Value uint64 // varint
	Bytes []byte // length-delimited
}

// Scan splits b into its top-level fields; ok is false where protobuf's
// wire decoder fails.
func Scan(b []byte) (fs []RawField, ok bool) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num > protowire.MaxValidNumber {
			return fs, false
		}
		b = b[n:]
		f := RawField{Num: num, Type: typ}
		switch typ {
		case protowire.VarintType:
			f.Value, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			f.Bytes, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fs, false
		}
		b = b[n:]
		fs = append(fs, f)
	}
	return fs, true
}

// wireRules checks the two wire-level rules on the fields of one message:
// no groups, and the schema's wire type for every known field.
func wireRules(fs []RawField, known map[protowire.Number]protowire.Type) Rule {
	for _, f := range fs {
		if f.Type == protowire.StartGroupType || f.Type == protowire.EndGroupType {
			return RuleGroup
		}
	}
	for _, f := range fs {
		if t, ok := known[f.Num]; ok && t != f.Type {
			return RuleWireType
		}
	}
	return ""
}

// count is how many length-delimited fields num holds.
func count(fs []RawField, num protowire.Number) int {
	n := 0
	for _, f := range fs {
		if f.Num == num && f.Type == protowire.BytesType {
			n++
		}
	}
	return n
}

// lastBytes is the value of the last occurrence of a length-delimited
// field num, or nil.
func lastBytes(fs []RawField, num protowire.Number) []byte {
	var v []byte
	for _, f := range fs {
		if f.Num == num && f.Type == protowire.BytesType {
			v = f.Bytes
		}
	}
	return v
}

var keyWire = map[protowire.Number]protowire.Type{1: protowire.VarintType, 2: protowire.BytesType}

// keyRules checks the encoding of a key, embedded or not, that protobuf
// accepted; private selects the private key types.
func keyRules(b []byte, private bool) Rule {
	fs, ok := Scan(b)
	if !ok {
		return RuleProtobuf
	}
	if r := wireRules(fs, keyWire); r != "" {
		return r
	}
	var (
		typ  uint64
		data []byte
		seen = map[protowire.Number]bool{}
	)
	for _, f := range fs {
		if f.Num != 1 && f.Num != 2 || seen[f.Num] {
			return RuleKeyShape
		}
		seen[f.Num] = true
		if f.Num == 1 {
			typ = f.Value
		} else {
			data = f.Bytes
		}
	}
	if len(seen) != 2 {
		return RuleKeyShape
	}
	if typ > 3 {
		return RuleKeyType
	}
	var err error
	if private {
		_, err = crypto.UnmarshalPrivateKeyRaw(crypto.KeyType(typ), data)
	} else {
		_, err = crypto.UnmarshalPublicKeyRaw(crypto.KeyType(typ), data)
	}
	if err != nil {
		return RuleKeyData
	}
	return ""
}

// ExpectKey is the verdict for a PublicKey (or PrivateKey) encoding.
func ExpectKey(b []byte, private bool) Verdict {
	md := PublicKey
	if private {
		md = PrivateKey
	}
	m, err := Decode(md, b)
	if err != nil {
		return reject(RuleProtobuf, nil)
	}
	if r := keyRules(b, private); r != "" {
		return reject(r, m)
	}
	return accept(m)
}

var bytesType = protowire.BytesType

// ExpectEnvelope is the verdict for an Envelope, before its signature is
// checked.
func ExpectEnvelope(b []byte) Verdict {
	m, err := Decode(Envelope, b)
	if err != nil {
		return reject(RuleProtobuf, nil)
	}
	fs, _ := Scan(b)
	if r := wireRules(fs, map[protowire.Number]protowire.Type{1: bytesType, 2: bytesType, 3: bytesType, 5: bytesType}); r != "" {
		return reject(r, m)
	}
	key := lastBytes(fs, 1)
	if key == nil {
		return reject(RuleEnvelopeKey, m)
	}
	if count(fs, 1) > 1 {
		return reject(RuleKeyOnce, m)
	}
	if r := keyRules(key, false); r != "" {
		return reject(r, m)
	}
	return accept(m)
}

// ExpectPeerRecord is the verdict for a PeerRecord.
func ExpectPeerRecord(b []byte) Verdict {
	m, err := Decode(PeerRecord, b)
	if err != nil {
		return reject(RuleProtobuf, nil)
	}
	fs, _ := Scan(b)
	if r := wireRules(fs, map[protowire.Number]protowire.Type{1: bytesType, 2: protowire.VarintType, 3: bytesType}); r != "" {
		return reject(r, m)
	}
	hasID := false
	for _, f := range fs {
		switch f.Num {
		case 1:
			if _, err := peer.IDFromBytes(f.Bytes); err != nil {
				return reject(RulePeerID, m)
			}
			hasID = true
		case 3:
			sub, _ := Scan(f.Bytes)
			if r := wireRules(sub, map[protowire.Number]protowire.Type{1: bytesType}); r != "" {
				return reject(r, m)
			}
			for _, a := range sub {
				if a.Num != 1 {
					continue
				}
				if _, err := ma.NewMultiaddrBytes(a.Bytes); err != nil {
					return reject(RuleMultiaddr, m)
				}
			}
		}
	}
	if !hasID {
		return reject(RulePeerID, m)
	}
	return accept(m)
}

// ExpectIdentify is the verdict for an Identify message.
func ExpectIdentify(b []byte) Verdict {
	m, err := Decode(Identify, b)
	if err != nil {
		return reject(RuleProtobuf, nil)
	}
	fs, _ := Scan(b)
	known := map[protowire.Number]protowire.Type{}
	for _, n := range []protowire.Number{1, 2, 3, 4, 5, 6, 8} {
		known[n] = bytesType
	}
	if r := wireRules(fs, known); r != "" {
		return reject(r, m)
	}
	if key := lastBytes(fs, 1); len(key) > 0 {
		if r := keyRules(key, false); r != "" {
			return reject(r, m)
		}
	}
	return accept(m)
}

// ExpectExchange is the verdict for a plaintext Exchange.
func ExpectExchange(b []byte) Verdict {
	m, err := Decode(Exchange, b)
	if err != nil {
		return reject(RuleProtobuf, nil)
	}
	fs, _ := Scan(b)
	if r := wireRules(fs, nil); r != "" {
		return reject(r, m)
	}
	rawID, rawKey := lastBytes(fs, 1), lastBytes(fs, 2)
	if rawID == nil || rawKey == nil {
		return reject(RuleExchange, m)
	}
	if count(fs, 2) > 1 {
		return reject(RuleKeyOnce, m)
	}
	if r := keyRules(rawKey, false); r != "" {
		return reject(r, m)
	}
	id, err := peer.IDFromBytes(rawID)
	if err != nil {
		return reject(RuleExchange, m)
	}
	k, _ := crypto.UnmarshalPublicKey(rawKey)
	if !id.MatchesPublicKey(k) {
		return reject(RuleExchange, m)
	}
	return accept(m)
}

// Noise extension caps, as in security/noise.
const maxNoiseCertHashes, maxNoiseMuxers = 32, 32

// ExpectNoisePayload is the verdict for a NoiseHandshakePayload.
func ExpectNoisePayload(b []byte) Verdict {
	m, err := Decode(NoiseHandshakePayload, b)
	if err != nil {
		return reject(RuleProtobuf, nil)
	}
	fs, _ := Scan(b)
	if r := wireRules(fs, map[protowire.Number]protowire.Type{1: bytesType, 2: bytesType, 4: bytesType}); r != "" {
		return reject(r, m)
	}
	hashes, muxers := 0, 0
	for _, f := range fs {
		if f.Num != 4 {
			continue
		}
		sub, _ := Scan(f.Bytes)
		if r := wireRules(sub, map[protowire.Number]protowire.Type{1: bytesType, 2: bytesType}); r != "" {
			return reject(r, m)
		}
		for _, e := range sub {
			switch e.Num {
			case 1:
				hashes++
			case 2:
				muxers++
			}
		}
	}
	if hashes > maxNoiseCertHashes || muxers > maxNoiseMuxers {
		return reject(RuleNoiseCaps, m)
	}
	return accept(m)
}

// ExpectWebRTCMessage is the verdict for a WebRTC Message body.
func ExpectWebRTCMessage(b []byte) Verdict {
	m, err := Decode(WebRTCMessage, b)
	if err != nil {
		return reject(RuleProtobuf, nil)
	}
	fs, _ := Scan(b)
	if r := wireRules(fs, map[protowire.Number]protowire.Type{1: protowire.VarintType, 2: bytesType}); r != "" {
		return reject(r, m)
	}
	for _, f := range fs {
		if f.Num == 1 && f.Value > 3 {
			return reject(RuleFlag, m)
		}
	}
	return accept(m)
}
