// Package protodiff checks tachyon's hand-written protobuf codecs against
// google.golang.org/protobuf decoding the same schemas: for the same bytes
// both must agree on accept or reject and on the decoded values, except where
// tachyon is deliberately stricter, and every such exception is a named rule
// (rules.go) with a test of its own. It is a module of its own so that the
// library never depends on protobuf.
//
// The schemas are the ones of the libp2p specs, built as descriptors in Go
// (no protoc, no generated code) and decoded with dynamicpb.
package protodiff

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

type (
	fdp   = descriptorpb.FieldDescriptorProto
	label = descriptorpb.FieldDescriptorProto_Label
	ftype = descriptorpb.FieldDescriptorProto_Type
)

const (
	optional = descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
	required = descriptorpb.FieldDescriptorProto_LABEL_REQUIRED
	repeated = descriptorpb.FieldDescriptorProto_LABEL_REPEATED

	tBytes   = descriptorpb.FieldDescriptorProto_TYPE_BYTES
	tString  = descriptorpb.FieldDescriptorProto_TYPE_STRING
	tUint64  = descriptorpb.FieldDescriptorProto_TYPE_UINT64
	tEnum    = descriptorpb.FieldDescriptorProto_TYPE_ENUM
	tMessage = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE
)

func field(name string, num int32, l label, t ftype, typeName ...string) *fdp {
	f := &fdp{Name: proto.String(name), Number: proto.Int32(num), Label: l.Enum(), Type: t.Enum()}
	if len(typeName) > 0 {
		f.TypeName = proto.String(typeName[0])
	}
	return f
}

func message(name string, fields ...*fdp) *descriptorpb.DescriptorProto {
	return &descriptorpb.DescriptorProto{Name: proto.String(name), Field: fields}
}

func enum(name string, values ...string) *descriptorpb.EnumDescriptorProto {
	e := &descriptorpb.EnumDescriptorProto{Name: proto.String(name)}
	for i, v := range values {
		e.Value = append(e.Value, &descriptorpb.EnumValueDescriptorProto{Name: proto.String(v), Number: proto.Int32(int32(i))})
	}
	return e
}

func file(name, syntax, pkg string, deps []string, enums []*descriptorpb.EnumDescriptorProto, msgs ...*descriptorpb.DescriptorProto) *descriptorpb.FileDescriptorProto {
	return &descriptorpb.FileDescriptorProto{
		Name: proto.String(name), Syntax: proto.String(syntax), Package: proto.String(pkg),
		Dependency: deps, EnumType: enums, MessageType: msgs,
	}
}

// files holds the schemas, transcribed from the libp2p specs.
func files() []*descriptorpb.FileDescriptorProto {
	// peer-ids/peer-ids.md
	keys := file("crypto.proto", "proto2", "crypto.pb", nil,
		[]*descriptorpb.EnumDescriptorProto{enum("KeyType", "RSA", "Ed25519", "Secp256k1", "ECDSA")},
		message("PublicKey",
			field("Type", 1, required, tEnum, ".crypto.pb.KeyType"),
			field("Data", 2, required, tBytes)),
		message("PrivateKey",
			field("Type", 1, required, tEnum, ".crypto.pb.KeyType"),
			field("Data", 2, required, tBytes)))
	// RFC/0002-signed-envelopes.md
	envelope := file("envelope.proto", "proto3", "record.pb", []string{"crypto.proto"}, nil,
		message("Envelope",
			field("public_key", 1, optional, tMessage, ".crypto.pb.PublicKey"),
			field("payload_type", 2, optional, tBytes),
			field("payload", 3, optional, tBytes),
			field("signature", 5, optional, tBytes)))
	// RFC/0003-routing-records.md
	rec := message("PeerRecord",
		field("peer_id", 1, optional, tBytes),
		field("seq", 2, optional, tUint64),
		field("addresses", 3, repeated, tMessage, ".peer.pb.PeerRecord.AddressInfo"))
	rec.NestedType = []*descriptorpb.DescriptorProto{message("AddressInfo", field("multiaddr", 1, optional, tBytes))}
	peerRecord := file("peer_record.proto", "proto3", "peer.pb", nil, nil, rec)
	// identify/README.md, plus signedPeerRecord = 8 which go, rust and js
	// all carry although the spec text does not list it yet.
	identify := file("identify.proto", "proto2", "identify.pb", nil, nil,
		message("Identify",
			field("protocolVersion", 5, optional, tString),
			field("agentVersion", 6, optional, tString),
			field("publicKey", 1, optional, tBytes),
			field("listenAddrs", 2, repeated, tBytes),
			field("observedAddr", 4, optional, tBytes),
			field("protocols", 3, repeated, tString),
			field("signedPeerRecord", 8, optional, tBytes)))
	// plaintext/README.md
	plaintext := file("plaintext.proto", "proto2", "plaintext.pb", []string{"crypto.proto"}, nil,
		message("Exchange",
			field("id", 1, optional, tBytes),
			field("pubkey", 2, optional, tMessage, ".crypto.pb.PublicKey")))
	// noise/README.md, "The libp2p Handshake Payload"
	noise := file("noise.proto", "proto2", "noise.pb", nil, nil,
		message("NoiseExtensions",
			field("webtransport_certhashes", 1, repeated, tBytes),
			field("stream_muxers", 2, repeated, tString)),
		message("NoiseHandshakePayload",
			field("identity_key", 1, optional, tBytes),
			field("identity_sig", 2, optional, tBytes),
			field("extensions", 4, optional, tMessage, ".noise.pb.NoiseExtensions")))
	// webrtc/README.md, "Multiplexing"
	msg := message("Message",
		field("flag", 1, optional, tEnum, ".webrtc.pb.Message.Flag"),
		field("message", 2, optional, tBytes))
	msg.EnumType = []*descriptorpb.EnumDescriptorProto{enum("Flag", "FIN", "STOP_SENDING", "RESET_STREAM", "FIN_ACK")}
	webrtc := file("webrtc.proto", "proto2", "webrtc.pb", nil, nil, msg)
	return []*descriptorpb.FileDescriptorProto{keys, envelope, peerRecord, identify, plaintext, noise, webrtc}
}

// The message descriptors of the schemas.
var (
	PublicKey, PrivateKey, Envelope, PeerRecord, Identify, Exchange,
	NoiseHandshakePayload, WebRTCMessage protoreflect.MessageDescriptor
)

func init() {
	reg, err := protodesc.NewFiles(&descriptorpb.FileDescriptorSet{File: files()})
	if err != nil {
		panic(fmt.Sprintf("protodiff: building schemas: %v", err))
	}
	find := func(name protoreflect.FullName) protoreflect.MessageDescriptor {
		d, err := reg.FindDescriptorByName(name)
		if err != nil {
			panic(fmt.Sprintf("protodiff: schema %s: %v", name, err))
		}
		return d.(protoreflect.MessageDescriptor)
	}
	PublicKey = find("crypto.pb.PublicKey")
	PrivateKey = find("crypto.pb.PrivateKey")
	Envelope = find("record.pb.Envelope")
	PeerRecord = find("peer.pb.PeerRecord")
	Identify = find("identify.pb.Identify")
	Exchange = find("plaintext.pb.Exchange")
	NoiseHandshakePayload = find("noise.pb.NoiseHandshakePayload")
	WebRTCMessage = find("webrtc.pb.Message")
}

// Decode decodes b as md with protobuf's defaults: unknown fields kept,
// required fields checked.
func Decode(md protoreflect.MessageDescriptor, b []byte) (*dynamicpb.Message, error) {
	m := dynamicpb.NewMessage(md)
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, err
	}
	return m, nil
}

// Encode is protobuf's deterministic encoding of m (fields in number order),
// the form the canonical encodings must match byte for byte.
func Encode(m proto.Message) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}

// Field accessors by name; a misspelt name panics, which tests catch.

func fd(m protoreflect.Message, name string) protoreflect.FieldDescriptor {
	f := m.Descriptor().Fields().ByName(protoreflect.Name(name))
	if f == nil {
		panic(fmt.Sprintf("protodiff: %s has no field %s", m.Descriptor().FullName(), name))
	}
	return f
}

// Has reports whether field name is present.
func Has(m protoreflect.Message, name string) bool { return m.Has(fd(m, name)) }

// Bytes is the value of a bytes or string field (nil when absent).
func Bytes(m protoreflect.Message, name string) []byte {
	f := fd(m, name)
	if !m.Has(f) {
		return nil
	}
	if f.Kind() == protoreflect.StringKind {
		return []byte(m.Get(f).String())
	}
	return m.Get(f).Bytes()
}

// Uint is the value of an integer or enum field.
func Uint(m protoreflect.Message, name string) uint64 {
	f := fd(m, name)
	if f.Kind() == protoreflect.EnumKind {
		return uint64(m.Get(f).Enum())
	}
	return m.Get(f).Uint()
}

// List is the values of a repeated bytes or string field.
func List(m protoreflect.Message, name string) [][]byte {
	l := m.Get(fd(m, name)).List()
	out := make([][]byte, l.Len())
	for i := range out {
		if v := l.Get(i); fd(m, name).Kind() == protoreflect.StringKind {
			out[i] = []byte(v.String())
		} else {
			out[i] = v.Bytes()
		}
	}
	return out
}

// Messages is the values of a repeated message field.
func Messages(m protoreflect.Message, name string) []protoreflect.Message {
	l := m.Get(fd(m, name)).List()
	out := make([]protoreflect.Message, l.Len())
	for i := range out {
		out[i] = l.Get(i).Message()
	}
	return out
}

// Sub is the value of a message field, or nil when absent.
func Sub(m protoreflect.Message, name string) protoreflect.Message {
	f := fd(m, name)
	if !m.Has(f) {
		return nil
	}
	return m.Get(f).Message()
}

// New returns an empty message of md, to fill with Set.
func New(md protoreflect.MessageDescriptor) *dynamicpb.Message { return dynamicpb.NewMessage(md) }

// Set sets field name of m to v: []byte, string, uint64 (or an enum number)
// or a protoreflect.Message; a [][]byte or []string appends to a list.
func Set(m protoreflect.Message, name string, v any) {
	f := fd(m, name)
	switch v := v.(type) {
	case []byte:
		if f.Kind() == protoreflect.StringKind {
			m.Set(f, protoreflect.ValueOfString(string(v)))
		} else {
			m.Set(f, protoreflect.ValueOfBytes(v))
		}
	case string:
		m.Set(f, protoreflect.ValueOfString(v))
	case uint64:
		if f.Kind() == protoreflect.EnumKind {
			m.Set(f, protoreflect.ValueOfEnum(protoreflect.EnumNumber(v)))
		} else {
			m.Set(f, protoreflect.ValueOfUint64(v))
		}
	case protoreflect.Message:
		m.Set(f, protoreflect.ValueOfMessage(v))
	case [][]byte:
		l := m.Mutable(f).List()
		for _, e := range v {
			if f.Kind() == protoreflect.StringKind {
				l.Append(protoreflect.ValueOfString(string(e)))
			} else {
				l.Append(protoreflect.ValueOfBytes(e))
			}
		}
	case []string:
		l := m.Mutable(f).List()
		for _, e := range v {
			l.Append(protoreflect.ValueOfString(e))
		}
	default:
		panic(fmt.Sprintf("protodiff: setting %s to %T", f.FullName(), v))
	}
}
