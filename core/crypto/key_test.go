package crypto

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/tachyon-p2p/tachyon/internal/pb"
)

type vector struct {
	typ       KeyType
	pub, priv []byte
}

func loadVectors(t testing.TB) []vector {
	f, err := os.Open("testdata/vectors.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := map[string]KeyType{"RSA": RSA, "Ed25519": Ed25519, "Secp256k1": Secp256k1, "ECDSA": ECDSA}
	var out []vector
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.Fields(line)
		if len(parts) != 3 {
			t.Fatalf("bad vector line %q", line)
		}
		pub, err1 := hex.DecodeString(parts[1])
		priv, err2 := hex.DecodeString(parts[2])
		if err1 != nil || err2 != nil {
			t.Fatalf("bad hex in %s vector", parts[0])
		}
		out = append(out, vector{names[parts[0]], pub, priv})
	}
	if len(out) != 4 {
		t.Fatalf("loaded %d vectors, want 4", len(out))
	}
	return out
}

func TestSpecVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.typ.String(), func(t *testing.T) {
			pub, err := UnmarshalPublicKey(v.pub)
			if err != nil {
				t.Fatalf("UnmarshalPublicKey: %v", err)
			}
			priv, err := UnmarshalPrivateKey(v.priv)
			if err != nil {
				t.Fatalf("UnmarshalPrivateKey: %v", err)
			}
			if pub.Type() != v.typ || priv.Type() != v.typ {
				t.Fatalf("types %v/%v, want %v", pub.Type(), priv.Type(), v.typ)
			}
			if !priv.GetPublic().Equal(pub) {
				t.Fatal("private key's public half differs from the public vector")
			}
			gotPub, err := MarshalPublicKey(pub)
			if err != nil || !bytes.Equal(gotPub, v.pub) {
				t.Fatalf("MarshalPublicKey = %x, %v; want %x", gotPub, err, v.pub)
			}
			gotPriv, err := MarshalPrivateKey(priv)
			if err != nil || !bytes.Equal(gotPriv, v.priv) {
				t.Fatalf("MarshalPrivateKey = %x, %v; want %x", gotPriv, err, v.priv)
			}
			back, err := UnmarshalPrivateKey(gotPriv)
			if err != nil || !back.Equal(priv) {
				t.Fatalf("private round trip: %v", err)
			}
			checkSignVerify(t, priv, pub)
		})
	}
}

func checkSignVerify(t *testing.T, priv PrivKey, pub PubKey) {
	t.Helper()
	msg := []byte("tachyon signs this")
	sig, err := priv.Sign(msg)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if ok, err := pub.Verify(msg, sig); !ok || err != nil {
		t.Fatalf("Verify(valid) = %v, %v", ok, err)
	}
	if ok, _ := pub.Verify([]byte("tachyon signs thiz"), sig); ok {
		t.Fatal("signature verified over a different message")
	}
	bad := append([]byte(nil), sig...)
	bad[len(bad)/2] ^= 1
	if ok, _ := pub.Verify(msg, bad); ok {
		t.Fatal("tampered signature verified")
	}
	for _, s := range [][]byte{nil, {0x30}, sig[:len(sig)-1]} {
		if ok, _ := pub.Verify(msg, s); ok {
			t.Fatalf("truncated signature %x verified", s)
		}
	}
}

func TestGenerateAll(t *testing.T) {
	for _, typ := range []KeyType{Ed25519, Secp256k1, ECDSA, RSA} {
		t.Run(typ.String(), func(t *testing.T) {
			priv, pub, err := GenerateKeyPair(typ, 2048, nil)
			if err != nil {
				t.Fatal(err)
			}
			checkSignVerify(t, priv, pub)
			b, err := MarshalPublicKey(pub)
			if err != nil {
				t.Fatal(err)
			}
			pub2, err := UnmarshalPublicKey(b)
			if err != nil || !pub2.Equal(pub) {
				t.Fatalf("public round trip: %v", err)
			}
			b, err = MarshalPrivateKey(priv)
			if err != nil {
				t.Fatal(err)
			}
			priv2, err := UnmarshalPrivateKey(b)
			if err != nil || !priv2.Equal(priv) {
				t.Fatalf("private round trip: %v", err)
			}
			other, _, err := GenerateKeyPair(Ed25519, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			if priv.Equal(other) && typ != Ed25519 {
				t.Fatal("keys of different types compare equal")
			}
			if other.GetPublic().Equal(pub) {
				t.Fatal("different keys compare equal")
			}
		})
	}
}

func TestEd25519Forms(t *testing.T) {
	priv, err := Ed25519KeyFromSeed(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := priv.Raw()
	legacy := append(append([]byte(nil), raw...), raw[32:]...)
	k, err := UnmarshalEd25519PrivateKey(legacy)
	if err != nil || !k.Equal(priv) {
		t.Fatalf("legacy 96-byte key: %v", err)
	}
	mismatched := append([]byte(nil), legacy...)
	mismatched[95] ^= 1
	if _, err := UnmarshalEd25519PrivateKey(mismatched); !errors.Is(err, ErrBadKey) {
		t.Fatalf("mismatched legacy key: err = %v", err)
	}
	wrongPub := append([]byte(nil), raw...)
	wrongPub[40] ^= 1
	if _, err := UnmarshalEd25519PrivateKey(wrongPub); !errors.Is(err, ErrBadKey) {
		t.Fatalf("public half not matching seed: err = %v", err)
	}
	if _, err := Ed25519KeyFromSeed(make([]byte, 31)); !errors.Is(err, ErrBadKey) {
		t.Fatalf("short seed: err = %v", err)
	}
	// The all-zero seed is the perf harness identity; check its public key.
	z, _ := Ed25519KeyFromSeed(make([]byte, 32))
	zr, _ := z.GetPublic().Raw()
	want := ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey)
	if !bytes.Equal(zr, want) {
		t.Fatal("zero-seed public key mismatch")
	}
}

func keyPB(typ uint64, data []byte) []byte {
	return pb.AppendBytes(pb.AppendVarint(nil, 1, typ), 2, data)
}

func TestUnmarshalRejects(t *testing.T) {
	edPub := keyPB(1, make([]byte, 32))
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallDER, _ := x509.MarshalPKIXPublicKey(&small.PublicKey)
	n := secpOrder()
	cases := []struct {
		name string
		pub  bool
		in   []byte
		want error
	}{
		{"empty", true, nil, ErrBadKey},
		{"unknown type", true, keyPB(9, make([]byte, 32)), ErrBadKeyType},
		{"missing data", true, pb.AppendVarint(nil, 1, 1), ErrBadKey},
		{"missing type", true, pb.AppendBytes(nil, 2, make([]byte, 32)), ErrBadKey},
		{"trailing field", true, pb.AppendVarint(bytes.Clone(edPub), 3, 1), ErrBadKey},
		{"duplicate data", true, pb.AppendBytes(bytes.Clone(edPub), 2, make([]byte, 32)), ErrBadKey},
		{"truncated", true, edPub[:len(edPub)-1], pb.ErrMalformed},
		{"trailing junk byte", true, append(append([]byte(nil), edPub...), 0x80), pb.ErrMalformed},
		{"ed25519 31 bytes", true, keyPB(1, make([]byte, 31)), ErrBadKey},
		{"secp256k1 bad point", true, keyPB(2, make([]byte, 33)), ErrBadKey},
		{"ecdsa junk", true, keyPB(3, []byte{0x30, 0x00}), ErrBadKey},
		{"rsa 1024", true, keyPB(0, smallDER), ErrRSAKeySize},
		{"rsa junk", true, keyPB(0, []byte{1, 2, 3}), ErrBadKey},
		{"ed25519 priv 32", false, keyPB(1, make([]byte, 32)), ErrBadKey},
		{"secp256k1 priv zero", false, keyPB(2, make([]byte, 32)), ErrBadKey},
		{"secp256k1 priv = N", false, keyPB(2, n), ErrBadKey},
		{"secp256k1 priv 31", false, keyPB(2, make([]byte, 31)), ErrBadKey},
		{"rsa priv 1024", false, keyPB(0, x509.MarshalPKCS1PrivateKey(small)), ErrRSAKeySize},
		{"ecdsa priv junk", false, keyPB(3, []byte{0x30}), ErrBadKey},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var err error
			if c.pub {
				_, err = UnmarshalPublicKey(c.in)
			} else {
				_, err = UnmarshalPrivateKey(c.in)
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

func secpOrder() []byte {
	b, _ := hex.DecodeString("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141")
	return b
}

func TestKeyTypeString(t *testing.T) {
	for typ, want := range map[KeyType]string{RSA: "RSA", Ed25519: "Ed25519", Secp256k1: "Secp256k1", ECDSA: "ECDSA", 7: "KeyType(7)"} {
		if got := typ.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(typ), got, want)
		}
	}
}

func FuzzUnmarshalPublicKey(f *testing.F) {
	for _, v := range loadVectors(f) {
		f.Add(v.pub)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := UnmarshalPublicKey(b)
		if err != nil {
			return
		}
		enc, err := MarshalPublicKey(k)
		if err != nil {
			t.Fatalf("re-marshal: %v", err)
		}
		k2, err := UnmarshalPublicKey(enc)
		if err != nil || !k2.Equal(k) {
			t.Fatalf("re-decode: %v", err)
		}
		_, _ = k.Verify(b, b)
	})
}

func FuzzUnmarshalPrivateKey(f *testing.F) {
	for _, v := range loadVectors(f) {
		f.Add(v.priv)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := UnmarshalPrivateKey(b)
		if err != nil {
			return
		}
		enc, err := MarshalPrivateKey(k)
		if err != nil {
			t.Fatalf("re-marshal: %v", err)
		}
		if _, err := UnmarshalPrivateKey(enc); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
	})
}
