package protodiff

import (
	"testing"

	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/core/record"
	"github.com/tachyon-p2p/tachyon/internal/pb"
	"github.com/tachyon-p2p/tachyon/protocol/identify"
	"github.com/tachyon-p2p/tachyon/security/plaintext"
)

// FuzzWire compares internal/pb's field reader, which every codec uses, with
// protowire: same fields, same values, same point of failure.
func FuzzWire(f *testing.F) {
	f.Add(pb.AppendBytes(pb.AppendVarint(nil, 1, 5), 2, []byte("x")))
	f.Add(pb.AppendFixed64(pb.AppendVarint(nil, 1<<29-1, 1<<63), 3, 7))
	f.Add([]byte{0x0d, 1, 2, 3, 4, 0x0b, 0x0c})
	f.Fuzz(func(t *testing.T, b []byte) {
		for len(b) > 0 {
			got, rest, err := pb.Next(b)
			num, typ, n := protowire.ConsumeTag(b)
			ok := n >= 0 && num <= protowire.MaxValidNumber
			var m int
			if ok {
				m = protowire.ConsumeFieldValue(num, typ, b[n:])
				ok = m >= 0
			}
			if ok && (typ == protowire.StartGroupType || typ == protowire.EndGroupType) {
				if err == nil {
					t.Fatalf("pb accepts group field %x", b)
				}
				return // RuleGroup
			}
			if ok != (err == nil) {
				t.Fatalf("field %x: pb error %v, protowire ok %v", b, err, ok)
			}
			if !ok {
				return
			}
			if got.Num != int(num) || got.Wire != int(typ) || len(rest) != len(b)-n-m {
				t.Fatalf("field %x: pb %d/%d (%d left), protowire %d/%d (%d left)", b, got.Num, got.Wire, len(rest), num, typ, len(b)-n-m)
			}
			v := b[n : n+m]
			switch typ {
			case protowire.VarintType:
				x, _ := protowire.ConsumeVarint(v)
				if got.Varint != x {
					t.Fatalf("varint %x: pb %d, protowire %d", v, got.Varint, x)
				}
			case protowire.Fixed32Type:
				x, _ := protowire.ConsumeFixed32(v)
				if got.Varint != uint64(x) {
					t.Fatalf("fixed32 %x: pb %d, protowire %d", v, got.Varint, x)
				}
			case protowire.Fixed64Type:
				x, _ := protowire.ConsumeFixed64(v)
				if got.Varint != x {
					t.Fatalf("fixed64 %x: pb %d, protowire %d", v, got.Varint, x)
				}
			case protowire.BytesType:
				x, _ := protowire.ConsumeBytes(v)
				eqBytes(t, "bytes field", got.Bytes, x)
			}
			b = rest
		}
	})
}

func addKeySeeds(f *testing.F, private bool) {
	for _, k := range testKeys(f) {
		var b []byte
		var err error
		if private {
			b, err = crypto.MarshalPrivateKey(k)
		} else {
			b, err = crypto.MarshalPublicKey(k.GetPublic())
		}
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzPublicKey(f *testing.F) {
	addKeySeeds(f, false)
	f.Fuzz(func(t *testing.T, b []byte) {
		v := ExpectKey(b, false)
		k, err := crypto.UnmarshalPublicKey(b)
		if !verdict(t, b, v, err) {
			return
		}
		eqKey(t, "key", k, v.Msg)
		d := canonical(t, PublicKey, mustMarshalPub(t, k))
		raw, _ := k.Raw()
		if crypto.KeyType(Uint(d, "Type")) != k.Type() {
			t.Fatalf("re-encoded key type %d, want %v", Uint(d, "Type"), k.Type())
		}
		eqBytes(t, "re-encoded key data", Bytes(d, "Data"), raw)
	})
}

func FuzzPrivateKey(f *testing.F) {
	addKeySeeds(f, true)
	f.Fuzz(func(t *testing.T, b []byte) {
		v := ExpectKey(b, true)
		k, err := crypto.UnmarshalPrivateKey(b)
		if !verdict(t, b, v, err) {
			return
		}
		want, _ := crypto.UnmarshalPrivateKeyRaw(crypto.KeyType(Uint(v.Msg, "Type")), Bytes(v.Msg, "Data"))
		if !k.Equal(want) {
			t.Fatalf("tachyon's private key differs from protobuf's decoding")
		}
		out, err := crypto.MarshalPrivateKey(k)
		if err != nil {
			t.Fatalf("re-encoding private key: %v", err)
		}
		d := canonical(t, PrivateKey, out)
		raw, _ := k.Raw()
		eqBytes(t, "re-encoded key data", Bytes(d, "Data"), raw)
	})
}

func FuzzEnvelope(f *testing.F) {
	for _, k := range testKeys(f) {
		rec := &record.PeerRecord{Seq: 7, Addrs: []ma.Multiaddr{ma.StringCast("/ip4/1.2.3.4/tcp/1")}}
		b, err := record.SealPeerRecord(rec, k)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	key := testKeys(f)[0]
	f.Fuzz(func(t *testing.T, b []byte) {
		v := ExpectEnvelope(b)
		e, err := UnmarshalEnvelope(b)
		if verdict(t, b, v, err) {
			eqKey(t, "public_key", e.PublicKey, Sub(v.Msg, "public_key"))
			eqBytes(t, "payload_type", e.PayloadType, Bytes(v.Msg, "payload_type"))
			eqBytes(t, "payload", e.RawPayload, Bytes(v.Msg, "payload"))
			eqBytes(t, "signature", e.Signature, Bytes(v.Msg, "signature"))
			out, err := e.Marshal()
			if err != nil {
				t.Fatalf("re-encoding envelope: %v", err)
			}
			canonical(t, Envelope, out)
		}
		// The encoder: seal the input as a payload; protobuf must read back
		// what was signed, from a canonical encoding.
		typ, payload := b[:len(b)/4], b[len(b)/4:]
		sealed, err := record.Seal("protodiff", typ, payload, key)
		if err != nil {
			t.Fatal(err)
		}
		out, err := sealed.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		d := canonical(t, Envelope, out)
		eqBytes(t, "sealed payload_type", Bytes(d, "payload_type"), typ)
		eqBytes(t, "sealed payload", Bytes(d, "payload"), payload)
		if _, err := record.ConsumeEnvelope(out, "protodiff"); err != nil {
			t.Fatalf("sealed envelope does not verify: %v", err)
		}
	})
}

func FuzzPeerRecord(f *testing.F) {
	for _, k := range testKeys(f) {
		id, _ := peer.IDFromPrivateKey(k)
		rec := &record.PeerRecord{PeerID: id, Seq: 1 << 40, Addrs: []ma.Multiaddr{
			ma.StringCast("/ip4/1.2.3.4/tcp/1"), ma.StringCast("/ip6/::1/udp/2/quic-v1"),
		}}
		f.Add(rec.Marshal())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v := ExpectPeerRecord(b)
		r, err := record.UnmarshalPeerRecord(b)
		if !verdict(t, b, v, err) {
			return
		}
		eqBytes(t, "peer_id", []byte(r.PeerID), Bytes(v.Msg, "peer_id"))
		if r.Seq != Uint(v.Msg, "seq") {
			t.Fatalf("seq: tachyon %d, protobuf %d", r.Seq, Uint(v.Msg, "seq"))
		}
		// An AddressInfo without a multiaddr is dropped by tachyon: it
		// names no address. (A present but empty one breaks RuleMultiaddr.)
		var want [][]byte
		for _, a := range Messages(v.Msg, "addresses") {
			if m := Bytes(a, "multiaddr"); len(m) > 0 {
				want = append(want, m)
			}
		}
		eqList(t, "addresses", addrBytes(r.Addrs), want)
		// Peer records are signed: the encoding must be canonical.
		canonical(t, PeerRecord, r.Marshal())
	})
}

func identifySeeds(f *testing.F) {
	k := testKeys(f)[0]
	env, err := record.SealPeerRecord(&record.PeerRecord{Seq: 3}, k)
	if err != nil {
		f.Fatal(err)
	}
	m := &identify.Message{
		PublicKey:        k.GetPublic(),
		ListenAddrs:      []ma.Multiaddr{ma.StringCast("/ip4/1.2.3.4/tcp/1"), ma.StringCast("/dns4/x/tcp/443/wss")},
		Protocols:        []protocol.ID{"/ipfs/id/1.0.0", "/ipfs/ping/1.0.0"},
		ObservedAddr:     ma.StringCast("/ip4/5.6.7.8/udp/9/quic-v1"),
		ProtocolVersion:  "ipfs/0.1.0",
		AgentVersion:     "tachyon",
		SignedPeerRecord: env,
	}
	f.Add(m.Marshal())
}

// identifyProto builds protobuf's Identify with the values of m.
func identifyProto(t *testing.T, m *identify.Message) []byte {
	d := New(Identify)
	if m.PublicKey != nil {
		Set(d, "publicKey", mustMarshalPub(t, m.PublicKey))
	}
	Set(d, "listenAddrs", addrBytes(m.ListenAddrs))
	protos := make([]string, len(m.Protocols))
	for i, p := range m.Protocols {
		protos[i] = string(p)
	}
	Set(d, "protocols", protos)
	if len(m.ObservedAddr) > 0 {
		Set(d, "observedAddr", m.ObservedAddr.Bytes())
	}
	if m.ProtocolVersion != "" {
		Set(d, "protocolVersion", m.ProtocolVersion)
	}
	if m.AgentVersion != "" {
		Set(d, "agentVersion", m.AgentVersion)
	}
	if len(m.SignedPeerRecord) > 0 {
		Set(d, "signedPeerRecord", m.SignedPeerRecord)
	}
	b, err := Encode(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzIdentify(f *testing.F) {
	identifySeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		v := ExpectIdentify(b)
		m, err := identify.Unmarshal(b)
		if !verdict(t, b, v, err) {
			return
		}
		var key []byte
		if k := Bytes(v.Msg, "publicKey"); len(k) > 0 {
			key = k
		}
		if key == nil {
			eqKey(t, "publicKey", m.PublicKey, nil)
		} else {
			km, _ := Decode(PublicKey, key)
			eqKey(t, "publicKey", m.PublicKey, km)
		}
		// Listen and observed addresses tachyon cannot decode are skipped
		// (a peer may have transports tachyon does not know).
		eqList(t, "listenAddrs", addrBytes(m.ListenAddrs), validAddrs(List(v.Msg, "listenAddrs")))
		protos := make([][]byte, len(m.Protocols))
		for i, p := range m.Protocols {
			protos[i] = []byte(p)
		}
		eqList(t, "protocols", protos, List(v.Msg, "protocols"))
		var observed []byte
		if a := validAddrs([][]byte{Bytes(v.Msg, "observedAddr")}); len(a) == 1 {
			observed = a[0]
		}
		eqBytes(t, "observedAddr", m.ObservedAddr.Bytes(), observed)
		eqBytes(t, "protocolVersion", []byte(m.ProtocolVersion), Bytes(v.Msg, "protocolVersion"))
		eqBytes(t, "agentVersion", []byte(m.AgentVersion), Bytes(v.Msg, "agentVersion"))
		eqBytes(t, "signedPeerRecord", m.SignedPeerRecord, Bytes(v.Msg, "signedPeerRecord"))

		// The encoder: protobuf's encoding of the same values, byte for
		// byte, unless Marshal had to trim it below rust's 4096 bytes.
		out, want := m.Marshal(), identifyProto(t, m)
		if len(want) < identify.MaxSendSize {
			eqBytes(t, "re-encoded identify", out, want)
		} else if len(out) >= identify.MaxSendSize {
			t.Fatalf("Marshal emitted %d bytes, limit %d", len(out), identify.MaxSendSize)
		} else if _, err := Decode(Identify, out); err != nil {
			t.Fatalf("protobuf cannot decode trimmed identify %x: %v", out, err)
		}
	})
}

func FuzzExchange(f *testing.F) {
	for _, k := range testKeys(f) {
		id, _ := peer.IDFromPrivateKey(k)
		b := pb.AppendBytes(nil, 1, []byte(id))
		f.Add(pb.AppendBytes(b, 2, mustMarshalPub(f, k.GetPublic())))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v := ExpectExchange(b)
		x, err := plaintext.Unmarshal(b)
		if !verdict(t, b, v, err) {
			return
		}
		eqBytes(t, "id", []byte(x.ID), Bytes(v.Msg, "id"))
		eqKey(t, "pubkey", x.PubKey, Sub(v.Msg, "pubkey"))
	})
}

func FuzzNoisePayload(f *testing.F) {
	k := testKeys(f)[0]
	f.Add(NoiseAppendPayload(nil, &NoisePayload{
		IdentityKey: mustMarshalPub(f, k.GetPublic()), IdentitySig: make([]byte, 64),
		CertHashes: [][]byte{{0x12, 0x20, 1}}, Muxers: []string{"/yamux/1.0.0"},
	}))
	f.Add(NoiseAppendPayload(nil, &NoisePayload{IdentityKey: []byte{1}, IdentitySig: []byte{2}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		v := ExpectNoisePayload(b)
		p, err := NoiseParsePayload(b)
		if !verdict(t, b, v, err) {
			return
		}
		checkNoise(t, &p, v.Msg)
		// Canonical: go and rust sign nothing here, but the encoding must
		// still read back the same.
		out := NoiseAppendPayload(nil, &p)
		checkNoise(t, &p, canonical(t, NoiseHandshakePayload, out))
	})
}

func checkNoise(t *testing.T, p *NoisePayload, m protoreflect.Message) {
	t.Helper()
	eqBytes(t, "identity_key", p.IdentityKey, Bytes(m, "identity_key"))
	eqBytes(t, "identity_sig", p.IdentitySig, Bytes(m, "identity_sig"))
	var hashes, muxers [][]byte
	if ext := Sub(m, "extensions"); ext != nil {
		hashes, muxers = List(ext, "webtransport_certhashes"), List(ext, "stream_muxers")
	}
	eqList(t, "webtransport_certhashes", p.CertHashes, hashes)
	got := make([][]byte, len(p.Muxers))
	for i, s := range p.Muxers {
		got[i] = []byte(s)
	}
	eqList(t, "stream_muxers", got, muxers)
}

// checkWebRTC compares presence too: the stream code tells a message
// without a flag or payload from one with a zero or empty one.
func checkWebRTC(t *testing.T, got WebRTCMsg, m protoreflect.Message) {
	t.Helper()
	flag := int32(-1)
	if Has(m, "flag") {
		flag = int32(Uint(m, "flag"))
	}
	if got.Flag != flag {
		t.Fatalf("flag: tachyon %d, protobuf %d", got.Flag, flag)
	}
	if (got.Payload != nil) != Has(m, "message") {
		t.Fatalf("message presence: tachyon %v, protobuf %v", got.Payload != nil, Has(m, "message"))
	}
	eqBytes(t, "message", got.Payload, Bytes(m, "message"))
}

func FuzzWebRTCMessage(f *testing.F) {
	f.Add(WebRTCAppendMessage(nil, 0, nil)[1:])
	f.Add(WebRTCAppendMessage(nil, -1, []byte("hello"))[1:])
	f.Add(WebRTCAppendMessage(nil, 2, []byte{})[1:])
	f.Add([]byte{0x08, 0x01, 0x18, 0x05, 0x12, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		v := ExpectWebRTCMessage(b)
		m, err := WebRTCParseMessage(b)
		if !verdict(t, b, v, err) {
			return
		}
		checkWebRTC(t, m, v.Msg)
		framed := WebRTCAppendMessage(nil, m.Flag, m.Payload)
		l, n := protowire.ConsumeVarint(framed)
		if n < 0 || uint64(len(framed)-n) != l {
			t.Fatalf("bad length prefix on %x", framed)
		}
		checkWebRTC(t, m, canonical(t, WebRTCMessage, framed[n:]))
	})
}
