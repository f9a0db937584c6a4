package protodiff

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/tachyon-p2p/tachyon/core/crypto"
)

// verdict compares tachyon's outcome with the expected verdict and reports
// whether tachyon accepted.
func verdict(t *testing.T, in []byte, v Verdict, err error) bool {
	t.Helper()
	switch {
	case v.Accept && err != nil:
		t.Fatalf("protobuf accepts %x and no rule applies, but tachyon rejects it: %v", in, err)
	case !v.Accept && err == nil:
		t.Fatalf("tachyon accepts %x, want a rejection (%s)", in, v.Rule)
	}
	return v.Accept
}

func eqBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: tachyon %x, protobuf %x", what, got, want)
	}
}

func eqList(t *testing.T, what string, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: tachyon has %d values %x, protobuf %d %x", what, len(got), got, len(want), want)
	}
	for i := range got {
		eqBytes(t, fmt.Sprintf("%s[%d]", what, i), got[i], want[i])
	}
}

// eqKey checks tachyon's key against protobuf's {Type, Data} decoding of it.
func eqKey(t *testing.T, what string, k crypto.PubKey, m protoreflect.Message) {
	t.Helper()
	if m == nil {
		if k != nil {
			t.Fatalf("%s: tachyon has a key, protobuf none", what)
		}
		return
	}
	typ := crypto.KeyType(Uint(m, "Type"))
	want, err := crypto.UnmarshalPublicKeyRaw(typ, Bytes(m, "Data"))
	if err != nil {
		t.Fatalf("%s: protobuf's key data does not parse: %v", what, err)
	}
	if k == nil || k.Type() != typ || !k.Equal(want) {
		t.Fatalf("%s: tachyon's key %v differs from protobuf's (type %v)", what, k, typ)
	}
}

// canonical checks that out, a tachyon encoding, decodes with protobuf and
// that protobuf's deterministic re-encoding is byte-identical.
func canonical(t *testing.T, md protoreflect.MessageDescriptor, out []byte) protoreflect.Message {
	t.Helper()
	d, err := Decode(md, out)
	if err != nil {
		t.Fatalf("protobuf cannot decode tachyon's %s encoding %x: %v", md.Name(), out, err)
	}
	re, err := Encode(d)
	if err != nil {
		t.Fatalf("protobuf re-encoding %s: %v", md.Name(), err)
	}
	if !bytes.Equal(re, out) {
		t.Fatalf("%s encoding not canonical:\ntachyon  %x\nprotobuf %x", md.Name(), out, re)
	}
	return d
}

// validAddrs keeps the values that are valid binary multiaddrs.
func validAddrs(bs [][]byte) [][]byte {
	var out [][]byte
	for _, b := range bs {
		if _, err := ma.NewMultiaddrBytes(b); err == nil {
			out = append(out, b)
		}
	}
	return out
}

func addrBytes(as []ma.Multiaddr) [][]byte {
	out := make([][]byte, len(as))
	for i, a := range as {
		out[i] = a.Bytes()
	}
	return out
}

// detReader is a deterministic byte stream for key generation in seeds.
type detReader struct {
	seed  []byte
	block []byte
	n     uint64
}

func (r *detReader) Read(p []byte) (int, error) {
	for i := range p {
		if len(r.block) == 0 {
			h := sha256.Sum256(fmt.Appendf(r.seed, "%d", r.n))
			r.block, r.n = h[:], r.n+1
		}
		p[i], r.block = r.block[0], r.block[1:]
	}
	return len(p), nil
}

// testKeys returns deterministic keys of the types that generate quickly.
func testKeys(t testing.TB) []crypto.PrivKey {
	var keys []crypto.PrivKey
	for _, typ := range []crypto.KeyType{crypto.Ed25519, crypto.Secp256k1, crypto.ECDSA} {
		k, _, err := crypto.GenerateKeyPair(typ, 0, &detReader{seed: []byte(typ.String())})
		if err != nil {
			t.Fatalf("generating %v key: %v", typ, err)
		}
		keys = append(keys, k)
	}
	return keys
}

func mustMarshalPub(t testing.TB, k crypto.PubKey) []byte {
	b, err := crypto.MarshalPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
