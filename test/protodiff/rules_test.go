package protodiff

import (
	"bytes"
	"testing"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/record"
	"github.com/tachyon-p2p/tachyon/internal/pb"
	"github.com/tachyon-p2p/tachyon/protocol/identify"
	"github.com/tachyon-p2p/tachyon/security/plaintext"
)

// codec pairs the expected verdict of each message with tachyon's decoder.
type codec struct {
	expect func([]byte) Verdict
	decode func([]byte) error
}

func errOf[T any](_ T, err error) error { return err }

var codecs = map[string]codec{
	"PublicKey": {
		func(b []byte) Verdict { return ExpectKey(b, false) },
		func(b []byte) error { return errOf(crypto.UnmarshalPublicKey(b)) }},
	"PrivateKey": {
		func(b []byte) Verdict { return ExpectKey(b, true) },
		func(b []byte) error { return errOf(crypto.UnmarshalPrivateKey(b)) }},
	"Envelope":   {ExpectEnvelope, func(b []byte) error { return errOf(UnmarshalEnvelope(b)) }},
	"PeerRecord": {ExpectPeerRecord, func(b []byte) error { return errOf(record.UnmarshalPeerRecord(b)) }},
	"Identify":   {ExpectIdentify, func(b []byte) error { return errOf(identify.Unmarshal(b)) }},
	"Exchange":   {ExpectExchange, func(b []byte) error { return errOf(plaintext.Unmarshal(b)) }},
	"Noise":      {ExpectNoisePayload, func(b []byte) error { return errOf(NoiseParsePayload(b)) }},
	"WebRTC":     {ExpectWebRTCMessage, func(b []byte) error { return errOf(WebRTCParseMessage(b)) }},
}

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

// TestRules shows each rule at work: bytes protobuf decodes and tachyon, by
// that rule alone, rejects. Valid inputs pin the other side.
func TestRules(t *testing.T) {
	keys := testKeys(t)
	k, k2 := keys[0], keys[1]
	pub := mustMarshalPub(t, k.GetPublic())
	priv, err := crypto.MarshalPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	edData := pub[4:] // 08 01 12 20 ‖ 32 bytes
	id, _ := peer.IDFromPrivateKey(k)
	id2, _ := peer.IDFromPrivateKey(k2)
	group := []byte{0x1b, 0x08, 0x01, 0x1c} // field 3: start group, varint, end group
	env, err := record.SealPeerRecord(&record.PeerRecord{}, k)
	if err != nil {
		t.Fatal(err)
	}
	rec := (&record.PeerRecord{PeerID: id, Seq: 1}).Marshal()
	addr := func(m []byte) []byte { return pb.AppendBytes(nil, 3, pb.AppendBytes(nil, 1, m)) }
	tcp := []byte{0x04, 1, 2, 3, 4, 0x06, 0x00, 0x01} // /ip4/1.2.3.4/tcp/1
	muxers := func(n int) []byte {
		var ext []byte
		for range n {
			ext = pb.AppendString(ext, 2, "/yamux/1.0.0")
		}
		return pb.AppendBytes(nil, 4, ext)
	}
	exchange := func(id peer.ID, key []byte) []byte {
		return pb.AppendBytes(pb.AppendBytes(nil, 1, []byte(id)), 2, key)
	}

	for _, tc := range []struct {
		name, codec string
		in          []byte
		rule        Rule // "" for accept
	}{
		{"key valid", "PublicKey", pub, ""},
		{"key data first", "PublicKey", cat(pub[2:], pub[:2]), ""},
		{"key with unknown group", "PublicKey", cat(pub, group), RuleGroup},
		{"key type also as fixed32", "PublicKey", cat(pub, []byte{0x0d, 1, 0, 0, 0}), RuleWireType},
		{"key with unknown field", "PublicKey", cat(pub, pb.AppendVarint(nil, 3, 1)), RuleKeyShape},
		{"key type repeated", "PublicKey", cat(pub, pb.AppendVarint(nil, 1, 1)), RuleKeyShape},
		{"key type 1<<32|1", "PublicKey", cat(pb.AppendVarint(nil, 1, 1<<32|1), pub[2:]), RuleKeyType},
		{"key data short", "PublicKey", cat(pub[:2], pb.AppendBytes(nil, 2, edData[:31])), RuleKeyData},
		{"key required type missing", "PublicKey", pub[2:], RuleProtobuf},
		{"private key valid", "PrivateKey", priv, ""},
		{"private key with unknown field", "PrivateKey", cat(priv, pb.AppendBytes(nil, 9, nil)), RuleKeyShape},

		{"envelope valid", "Envelope", env, ""},
		{"envelope with unknown group", "Envelope", cat(env, group), RuleGroup},
		{"envelope payload type as varint", "Envelope", cat(env, pb.AppendVarint(nil, 2, 1)), RuleWireType},
		{"envelope without key", "Envelope", pb.AppendBytes(nil, 3, []byte("x")), RuleEnvelopeKey},
		{"envelope key with unknown field", "Envelope", pb.AppendBytes(nil, 1, cat(pub, pb.AppendVarint(nil, 7, 0))), RuleKeyShape},
		{"envelope key split in two", "Envelope", cat(pb.AppendBytes(nil, 1, pub[:2]), pb.AppendBytes(nil, 1, pub[2:])), RuleKeyOnce},
		{"envelope key twice", "Envelope", cat(pb.AppendBytes(nil, 1, pub), env), RuleKeyOnce},
		// Regression: tachyon read only the last key and accepted these.
		{"envelope malformed key then key", "Envelope", cat(pb.AppendBytes(nil, 1, []byte{0xff}), env), RuleProtobuf},
		{"envelope key with group then key", "Envelope", cat(pb.AppendBytes(nil, 1, cat(pub, group)), env), RuleKeyOnce},

		{"peer record valid", "PeerRecord", cat(rec, addr(tcp)), ""},
		{"peer record empty address info", "PeerRecord", cat(rec, pb.AppendBytes(nil, 3, nil)), ""},
		{"peer record with unknown group", "PeerRecord", cat(rec, group), RuleGroup},
		{"peer record seq as fixed64", "PeerRecord", cat(rec, pb.AppendFixed64(nil, 2, 1)), RuleWireType},
		{"peer record address as varint", "PeerRecord", cat(rec, pb.AppendBytes(nil, 3, pb.AppendVarint(nil, 1, 1))), RuleWireType},
		{"peer record without peer id", "PeerRecord", addr(tcp), RulePeerID},
		{"peer record bad peer id then good", "PeerRecord", cat(pb.AppendBytes(nil, 1, []byte{1}), rec), RulePeerID},
		{"peer record bad multiaddr", "PeerRecord", cat(rec, addr([]byte{0xff})), RuleMultiaddr},
		{"peer record empty multiaddr", "PeerRecord", cat(rec, addr(nil)), RuleMultiaddr},

		{"identify valid", "Identify", pb.AppendBytes(pb.AppendString(nil, 3, "/p"), 2, []byte{0xff}), ""},
		{"identify with unknown group", "Identify", cat(pb.AppendString(nil, 3, "/p"), group), RuleGroup},
		{"identify protocols as varint", "Identify", pb.AppendVarint(nil, 3, 1), RuleWireType},
		{"identify key with unknown field", "Identify", pb.AppendBytes(nil, 1, cat(pub, pb.AppendVarint(nil, 3, 1))), RuleKeyShape},
		{"identify key data invalid", "Identify", pb.AppendBytes(nil, 1, []byte{0x08, 0x01, 0x12, 0x00}), RuleKeyData},

		{"exchange valid", "Exchange", exchange(id, pub), ""},
		{"exchange with unknown group", "Exchange", cat(exchange(id, pub), group), RuleGroup},
		{"exchange id as varint is skipped", "Exchange", cat(exchange(id, pub), pb.AppendVarint(nil, 1, 1)), ""},
		{"exchange without id", "Exchange", pb.AppendBytes(nil, 2, pub), RuleExchange},
		{"exchange id of another key", "Exchange", exchange(id2, pub), RuleExchange},
		{"exchange key twice", "Exchange", cat(exchange(id, pub), pb.AppendBytes(nil, 2, pub)), RuleKeyOnce},
		{"exchange malformed key then key", "Exchange", cat(pb.AppendBytes(nil, 2, []byte{0xff}), exchange(id, pub)), RuleProtobuf},
		{"exchange key with unknown field", "Exchange", exchange(id, cat(pub, pb.AppendVarint(nil, 3, 1))), RuleKeyShape},

		{"noise valid", "Noise", cat(pb.AppendBytes(nil, 1, pub), muxers(32)), ""},
		{"noise with unknown group", "Noise", cat(pb.AppendBytes(nil, 1, pub), group), RuleGroup},
		{"noise sig as varint", "Noise", pb.AppendVarint(nil, 2, 1), RuleWireType},
		{"noise muxer as varint", "Noise", pb.AppendBytes(nil, 4, pb.AppendVarint(nil, 2, 1)), RuleWireType},
		{"noise 33 muxers", "Noise", muxers(33), RuleNoiseCaps},
		{"noise 17+16 muxers", "Noise", cat(muxers(17), muxers(16)), RuleNoiseCaps},

		{"webrtc valid", "WebRTC", []byte{0x08, 0x03, 0x12, 0x00, 0x18, 0x05}, ""},
		{"webrtc with unknown group", "WebRTC", cat([]byte{0x08, 0x00}, group), RuleGroup},
		{"webrtc flag as bytes", "WebRTC", pb.AppendBytes(nil, 1, []byte{1}), RuleWireType},
		{"webrtc flag 4", "WebRTC", []byte{0x08, 0x04}, RuleFlag},
		{"webrtc flag 1<<32", "WebRTC", pb.AppendVarint(nil, 1, 1<<32), RuleFlag},
		{"webrtc flag 7 then 1", "WebRTC", []byte{0x08, 0x07, 0x08, 0x01}, RuleFlag},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := codecs[tc.codec]
			v := c.expect(tc.in)
			if v.Accept != (tc.rule == "") || v.Rule != tc.rule {
				t.Fatalf("verdict %+v, want rule %q", v, tc.rule)
			}
			if tc.rule != RuleProtobuf {
				if _, err := Decode(v.Msg.Descriptor(), tc.in); err != nil {
					t.Fatalf("protobuf rejects: %v", err)
				}
			}
			err := c.decode(tc.in)
			if (err == nil) != v.Accept {
				t.Fatalf("tachyon's error %v, want accept %v", err, v.Accept)
			}
		})
	}
}

// TestLinkedCodecs round-trips through the linked unexported codecs with
// every field set, so a drift of the mirror types fails here first.
func TestLinkedCodecs(t *testing.T) {
	p := NoisePayload{
		IdentityKey: []byte("key"), IdentitySig: []byte("sig"),
		CertHashes: [][]byte{[]byte("h1"), []byte("h2")}, Muxers: []string{"/yamux/1.0.0", "/mplex/6.7.0"},
	}
	got, err := NoiseParsePayload(NoiseAppendPayload(nil, &p))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.IdentityKey, p.IdentityKey) || !bytes.Equal(got.IdentitySig, p.IdentitySig) ||
		len(got.CertHashes) != 2 || !bytes.Equal(got.CertHashes[1], p.CertHashes[1]) ||
		len(got.Muxers) != 2 || got.Muxers[1] != p.Muxers[1] {
		t.Fatalf("noise payload round trip: %+v, want %+v", got, p)
	}
	framed := WebRTCAppendMessage(nil, 2, []byte("data"))
	m, err := WebRTCParseMessage(framed[1:])
	if err != nil || m.Flag != 2 || string(m.Payload) != "data" {
		t.Fatalf("webrtc message round trip: %+v, %v", m, err)
	}
	env, err := record.SealPeerRecord(&record.PeerRecord{Seq: 1}, testKeys(t)[0])
	if err != nil {
		t.Fatal(err)
	}
	e, err := UnmarshalEnvelope(env)
	if err != nil || !bytes.Equal(e.PayloadType, record.PeerRecordPayloadType()) {
		t.Fatalf("envelope: %+v, %v", e, err)
	}
}
