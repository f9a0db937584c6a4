package peer

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/multiformats/go-multibase"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/internal/varint"
)

const zeroSeedID = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"

func mustKey(t testing.TB, seed byte) crypto.PrivKey {
	t.Helper()
	k, err := crypto.Ed25519KeyFromSeed(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestZeroSeedID(t *testing.T) {
	k := mustKey(t, 0)
	id, err := IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if id.String() != zeroSeedID {
		t.Fatalf("ID = %s, want %s", id, zeroSeedID)
	}
	back, err := Decode(zeroSeedID)
	if err != nil || back != id {
		t.Fatalf("Decode = %v, %v", back, err)
	}
	pk, err := id.ExtractPublicKey()
	if err != nil || !pk.Equal(k.GetPublic()) {
		t.Fatalf("ExtractPublicKey = %v, %v", pk, err)
	}
	if !id.MatchesPublicKey(k.GetPublic()) || !id.MatchesPrivateKey(k) {
		t.Fatal("ID does not match its own key")
	}
	if id.MatchesPublicKey(mustKey(t, 1).GetPublic()) {
		t.Fatal("ID matches another key")
	}
	if s := id.ShortString(); !strings.HasPrefix(s, "12*") || !strings.HasSuffix(zeroSeedID, s[3:]) {
		t.Fatalf("ShortString = %q", s)
	}
}

func TestIDForKeyTypes(t *testing.T) {
	cases := []struct {
		typ    crypto.KeyType
		prefix string
		hashed bool
	}{
		{crypto.Ed25519, "12D3KooW", false},
		{crypto.Secp256k1, "16Uiu2HA", false},
		{crypto.ECDSA, "Qm", true},
		{crypto.RSA, "Qm", true},
	}
	for _, c := range cases {
		t.Run(c.typ.String(), func(t *testing.T) {
			_, pub, err := crypto.GenerateKeyPair(c.typ, 2048, nil)
			if err != nil {
				t.Fatal(err)
			}
			id, err := IDFromPublicKey(pub)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(id.String(), c.prefix) {
				t.Fatalf("ID %s lacks prefix %s", id, c.prefix)
			}
			enc, _ := crypto.MarshalPublicKey(pub)
			if c.hashed {
				sum := sha256.Sum256(enc)
				if string(id) != "\x12\x20"+string(sum[:]) {
					t.Fatal("hashed ID is not sha2-256 of the encoded key")
				}
				if _, err := id.ExtractPublicKey(); !errors.Is(err, ErrNoPublicKey) {
					t.Fatalf("ExtractPublicKey err = %v", err)
				}
			} else {
				pk, err := id.ExtractPublicKey()
				if err != nil || !pk.Equal(pub) {
					t.Fatalf("ExtractPublicKey: %v", err)
				}
			}
			for _, s := range []string{id.String(), id.ToCid()} {
				back, err := Decode(s)
				if err != nil || back != id {
					t.Fatalf("Decode(%s) = %v, %v", s, back, err)
				}
			}
		})
	}
}

func cidBytes(codec uint64, mh []byte) []byte {
	b := varint.Append([]byte{1}, codec)
	return append(b, mh...)
}

func TestDecode(t *testing.T) {
	id, _ := Decode(zeroSeedID)
	base36, _ := multibase.Encode(multibase.Base36, cidBytes(0x72, []byte(id)))
	b58cid, _ := multibase.Encode(multibase.Base58BTC, cidBytes(0x72, []byte(id)))
	dagPB, _ := multibase.Encode(multibase.Base32, cidBytes(0x70, []byte(id)))
	cidV2, _ := multibase.Encode(multibase.Base32, append([]byte{2, 0x72}, id...))
	if !strings.HasPrefix(id.ToCid(), "bafzaa") {
		t.Fatalf("ToCid = %s, want bafzaa…", id.ToCid())
	}
	cases := []struct {
		in   string
		ok   bool
		name string
	}{
		{zeroSeedID, true, "base58"},
		{id.ToCid(), true, "base32 cid"},
		{base36, true, "base36 cid"},
		{b58cid, true, "base58 cid"},
		{"QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N", true, "sha256 legacy"},
		{dagPB, false, "cid codec dag-pb"},
		{cidV2, false, "cid version 2"},
		{"", false, "empty"},
		{"Qm0000", false, "bad base58"},
		{zeroSeedID[:len(zeroSeedID)-2], false, "truncated"},
		{"QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx", false, "short sha256"},
		{"bafzaa", false, "cid without multihash"},
		{"!nonsense", false, "unknown multibase"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Decode(c.in)
			if c.ok != (err == nil) {
				t.Fatalf("Decode(%q) err = %v, want ok=%v", c.in, err, c.ok)
			}
			if c.ok && got.Validate() != nil {
				t.Fatal("decoded ID does not validate")
			}
		})
	}
}

func TestIDFromBytes(t *testing.T) {
	good, _ := hex.DecodeString("0024080112203b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29")
	cases := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"identity", good, true},
		{"empty", nil, false},
		{"length too long", good[:len(good)-1], false},
		{"extra byte", append(bytes.Clone(good), 0), false},
		{"non-minimal varint", []byte{0x80, 0x00, 0x00}, false},
		{"sha256 wrong digest size", []byte{0x12, 0x02, 1, 2}, false},
		{"sha512", append([]byte{0x13, 0x40}, make([]byte, 64)...), false},
		{"identity 43 bytes", append([]byte{0x00, 43}, make([]byte, 43)...), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := IDFromBytes(c.in)
			if c.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, c.ok)
			}
		})
	}
}

func TestAddrInfo(t *testing.T) {
	id1, _ := IDFromPrivateKey(mustKey(t, 1))
	id2, _ := IDFromPrivateKey(mustKey(t, 2))
	a1 := ma.StringCast("/ip4/127.0.0.1/tcp/4001")
	a2 := ma.StringCast("/ip6/::1/udp/4001/quic-v1")
	p2p := func(a ma.Multiaddr, id ID) ma.Multiaddr {
		return ma.StringCast(a.String() + "/p2p/" + id.String())
	}
	transport, got := SplitAddr(p2p(a1, id1))
	if got != id1 || !transport.Equal(a1) {
		t.Fatalf("SplitAddr = %v, %v", transport, got)
	}
	if tr, got := SplitAddr(a1); got != "" || !tr.Equal(a1) {
		t.Fatalf("SplitAddr without /p2p = %v, %q", tr, got)
	}
	if _, err := AddrInfoFromP2pAddr(a1); !errors.Is(err, ErrNoP2pComponent) {
		t.Fatalf("AddrInfoFromP2pAddr(no p2p) err = %v", err)
	}
	bare, err := AddrInfoFromP2pAddr(ma.StringCast("/p2p/" + id2.String()))
	if err != nil || bare.ID != id2 || len(bare.Addrs) != 0 {
		t.Fatalf("bare /p2p: %+v, %v", bare, err)
	}
	infos, err := AddrInfosFromP2pAddrs(p2p(a1, id1), p2p(a1, id2), p2p(a2, id1))
	if err != nil || len(infos) != 2 {
		t.Fatalf("AddrInfosFromP2pAddrs = %+v, %v", infos, err)
	}
	if infos[0].ID != id1 || len(infos[0].Addrs) != 2 || !infos[0].Addrs[1].Equal(a2) {
		t.Fatalf("grouping wrong: %+v", infos[0])
	}
	addrs, err := infos[0].P2pAddrs()
	if err != nil || len(addrs) != 2 || !addrs[0].Equal(p2p(a1, id1)) || !addrs[1].Equal(p2p(a2, id1)) {
		t.Fatalf("P2pAddrs = %v, %v", addrs, err)
	}
	// P2pAddrs must not write into the caller's slices.
	if !infos[0].Addrs[0].Equal(a1) {
		t.Fatal("P2pAddrs modified AddrInfo.Addrs")
	}
	only, err := AddrInfo{ID: id2}.P2pAddrs()
	if err != nil || len(only) != 1 || only[0].String() != "/p2p/"+id2.String() {
		t.Fatalf("P2pAddrs without addrs = %v, %v", only, err)
	}
	if _, err := (AddrInfo{ID: "junk"}).P2pAddrs(); err == nil {
		t.Fatal("P2pAddrs accepted an invalid ID")
	}
}

func FuzzDecodeID(f *testing.F) {
	id, _ := Decode(zeroSeedID)
	f.Add(zeroSeedID)
	f.Add(id.ToCid())
	f.Add("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := Decode(s)
		if err != nil {
			return
		}
		if err := id.Validate(); err != nil {
			t.Fatalf("decoded invalid ID: %v", err)
		}
		for _, enc := range []string{id.String(), id.ToCid()} {
			back, err := Decode(enc)
			if err != nil || back != id {
				t.Fatalf("round trip via %q: %v", enc, err)
			}
		}
		_, _ = id.ExtractPublicKey()
	})
}
