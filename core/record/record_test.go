package record

import (
	"bytes"
	"errors"
	"testing"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/pb"
)

func key(t testing.TB, seed byte) crypto.PrivKey {
	t.Helper()
	k, err := crypto.Ed25519KeyFromSeed(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sampleRecord(t testing.TB, k crypto.PrivKey) *PeerRecord {
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return &PeerRecord{PeerID: id, Seq: 1700000000123, Addrs: []ma.Multiaddr{
		ma.StringCast("/ip4/127.0.0.1/tcp/4001"),
		ma.StringCast("/ip6/::1/udp/4001/quic-v1"),
	}}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	for _, typ := range []crypto.KeyType{crypto.Ed25519, crypto.Secp256k1, crypto.ECDSA} {
		t.Run(typ.String(), func(t *testing.T) {
			k, _, err := crypto.GenerateKeyPair(typ, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			env, err := Seal("tachyon-test", []byte{0x99}, []byte("hello"), k)
			if err != nil {
				t.Fatal(err)
			}
			b, err := env.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			got, err := ConsumeEnvelope(b, "tachyon-test")
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(env) {
				t.Fatal("envelope changed in round trip")
			}
			if _, err := ConsumeEnvelope(b, "other-domain"); !errors.Is(err, ErrInvalidSignature) {
				t.Fatalf("wrong domain: err = %v", err)
			}
		})
	}
}

func TestEnvelopeTamper(t *testing.T) {
	env, err := Seal("tachyon-test", []byte{0x03, 0x01}, []byte("payload bytes"), key(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := env.Marshal()
	// Flipping any single bit must make the envelope fail to decode or verify.
	for i := range b {
		for bit := 0; bit < 8; bit++ {
			mod := bytes.Clone(b)
			mod[i] ^= 1 << bit
			if _, err := ConsumeEnvelope(mod, "tachyon-test"); err == nil {
				t.Fatalf("byte %d bit %d: tampered envelope accepted", i, bit)
			}
		}
	}
	// A valid signature moved to another key fails.
	other := *env
	other.PublicKey = key(t, 2).GetPublic()
	ob, _ := other.Marshal()
	if _, err := ConsumeEnvelope(ob, "tachyon-test"); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("swapped key: err = %v", err)
	}
	for i := 1; i < len(b); i++ {
		if _, err := ConsumeEnvelope(b[:i], "tachyon-test"); err == nil {
			t.Fatalf("truncated to %d bytes accepted", i)
		}
	}
}

func TestPeerRecordRoundTrip(t *testing.T) {
	k := key(t, 3)
	rec := sampleRecord(t, k)
	got, err := UnmarshalPeerRecord(rec.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	checkSameRecord(t, got, rec)

	sealed, err := SealPeerRecord(rec, k)
	if err != nil {
		t.Fatal(err)
	}
	opened, env, err := OpenPeerRecord(sealed)
	if err != nil {
		t.Fatal(err)
	}
	checkSameRecord(t, opened, rec)
	if !bytes.Equal(env.PayloadType, []byte{0x03, 0x01}) {
		t.Fatalf("payload type %x, want 0301", env.PayloadType)
	}
	if _, err := ConsumeEnvelope(sealed, PeerRecordDomain); err != nil {
		t.Fatalf("sealed record not in the standard domain: %v", err)
	}
	// An empty PeerID is filled from the key.
	anon := *rec
	anon.PeerID = ""
	sealed, err = SealPeerRecord(&anon, k)
	if err != nil {
		t.Fatal(err)
	}
	if opened, _, err = OpenPeerRecord(sealed); err != nil || opened.PeerID != rec.PeerID {
		t.Fatalf("anonymous record: %v", err)
	}
	if _, err := SealPeerRecord(rec, key(t, 4)); err == nil {
		t.Fatal("sealed another peer's record")
	}
}

func checkSameRecord(t *testing.T, got, want *PeerRecord) {
	t.Helper()
	if got.PeerID != want.PeerID || got.Seq != want.Seq || len(got.Addrs) != len(want.Addrs) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range got.Addrs {
		if !got.Addrs[i].Equal(want.Addrs[i]) {
			t.Fatalf("addr %d: %s, want %s", i, got.Addrs[i], want.Addrs[i])
		}
	}
}

func TestOpenPeerRecordLegacyAndRejects(t *testing.T) {
	k := key(t, 5)
	rec := sampleRecord(t, k)
	seal := func(domain string, typ []byte, payload []byte, k crypto.PrivKey) []byte {
		env, err := Seal(domain, typ, payload, k)
		if err != nil {
			t.Fatal(err)
		}
		b, err := env.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	legacy := seal(legacyDomain, []byte(legacyPayloadType), rec.Marshal(), k)
	got, _, err := OpenPeerRecord(legacy)
	if err != nil {
		t.Fatalf("legacy rust record: %v", err)
	}
	checkSameRecord(t, got, rec)

	cases := []struct {
		name string
		in   []byte
	}{
		{"standard type, legacy domain", seal(legacyDomain, []byte{0x03, 0x01}, rec.Marshal(), k)},
		{"legacy type, standard domain", seal(PeerRecordDomain, []byte(legacyPayloadType), rec.Marshal(), k)},
		{"varint payload type", seal(PeerRecordDomain, []byte{0x81, 0x06}, rec.Marshal(), k)},
		{"signed by another key", seal(PeerRecordDomain, []byte{0x03, 0x01}, rec.Marshal(), key(t, 6))},
		{"payload not a record", seal(PeerRecordDomain, []byte{0x03, 0x01}, []byte{0xff}, k)},
		{"record without peer ID", seal(PeerRecordDomain, []byte{0x03, 0x01}, pb.AppendVarint(nil, 2, 1), k)},
		{"empty", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, _, err := OpenPeerRecord(c.in); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestUnmarshalPeerRecordRejects(t *testing.T) {
	rec := sampleRecord(t, key(t, 7))
	badAddr := pb.AppendBytes(pb.AppendString(nil, 1, string(rec.PeerID)), 3, pb.AppendBytes(nil, 1, []byte{0xff, 0xff}))
	badID := pb.AppendBytes(nil, 1, []byte{0x12, 0x01, 0x00})
	wrongWire := pb.AppendVarint(pb.AppendString(nil, 1, string(rec.PeerID)), 3, 5)
	for name, in := range map[string][]byte{"bad addr": badAddr, "bad id": badID, "wrong wire": wrongWire, "truncated": rec.Marshal()[:10]} {
		if _, err := UnmarshalPeerRecord(in); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Unknown fields are skipped (proto3).
	withExtra := pb.AppendVarint(rec.Marshal(), 9, 1)
	got, err := UnmarshalPeerRecord(withExtra)
	if err != nil {
		t.Fatal(err)
	}
	checkSameRecord(t, got, rec)
}

func FuzzConsumeEnvelope(f *testing.F) {
	k := key(f, 8)
	sealed, err := SealPeerRecord(sampleRecord(f, k), k)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	env, _ := Seal("tachyon-test", nil, []byte("x"), k)
	b, _ := env.Marshal()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		if e, err := ConsumeEnvelope(data, PeerRecordDomain); err == nil {
			out, err := e.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ConsumeEnvelope(out, PeerRecordDomain); err != nil {
				t.Fatalf("re-marshaled envelope fails: %v", err)
			}
		}
		_, _, _ = OpenPeerRecord(data)
	})
}

func FuzzUnmarshalPeerRecord(f *testing.F) {
	f.Add(sampleRecord(f, key(f, 9)).Marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := UnmarshalPeerRecord(data)
		if err != nil {
			return
		}
		again, err := UnmarshalPeerRecord(rec.Marshal())
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		checkSameRecord(t, again, rec)
	})
}
