package noise

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
)

func hex32(t testing.TB, s string) *[dhLen]byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != dhLen {
		t.Fatalf("bad vector %q", s)
	}
	return (*[dhLen]byte)(b)
}

// The test vectors of RFC 7748, sections 5.2 and 6.1.
func TestX25519Vectors(t *testing.T) {
	for _, v := range []struct{ scalar, u, out string }{
		{"a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4", "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c", "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"},
		// u has its top bit set: ignored.
		{"4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d", "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493", "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"},
	} {
		got, err := x25519(hex32(t, v.scalar), hex32(t, v.u))
		if err != nil || got != *hex32(t, v.out) {
			t.Errorf("X25519(%s, %s) = %x, %v", v.scalar, v.u, got, err)
		}
	}

	// Iterated: k, u = X25519(k, u), k, starting from k = u = 9.
	k, u := [dhLen]byte{9}, [dhLen]byte{9}
	for i := 1; i <= 1000; i++ {
		r, err := x25519(&k, &u)
		if err != nil {
			t.Fatal(err)
		}
		u, k = k, r
		switch i {
		case 1:
			if k != *hex32(t, "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079") {
				t.Fatalf("after one iteration: %x", k)
			}
		case 1000:
			if k != *hex32(t, "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51") {
				t.Fatalf("after 1000 iterations: %x", k)
			}
		}
	}

	alice := ephemeralFromPrivate(*hex32(t, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
	bob := ephemeralFromPrivate(*hex32(t, "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"))
	if alice.pub != *hex32(t, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a") {
		t.Fatalf("Alice's public key %x", alice.pub)
	}
	if bob.pub != *hex32(t, "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f") {
		t.Fatalf("Bob's public key %x", bob.pub)
	}
	shared := hex32(t, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
	for _, pair := range [][2]*keypair{{&alice, &bob}, {&bob, &alice}} {
		got, err := dh(pair[0], &pair[1].pub)
		if err != nil || !bytes.Equal(got, shared[:]) {
			t.Fatalf("shared secret %x, %v", got, err)
		}
	}
}

// checkAgainstECDH compares the ephemeral path (public key and DH) with
// crypto/ecdh for one scalar and one remote u-coordinate.
func checkAgainstECDH(t testing.TB, scalar, u [dhLen]byte) {
	ref, err := ecdh.X25519().NewPrivateKey(scalar[:])
	if err != nil {
		t.Fatal(err)
	}
	e := ephemeralFromPrivate(scalar)
	if !bytes.Equal(e.pub[:], ref.PublicKey().Bytes()) {
		t.Fatalf("public key of %x: %x, crypto/ecdh %x", scalar, e.pub, ref.PublicKey().Bytes())
	}
	got, err := dh(&e, &u)
	masked := u
	masked[31] &= 127 // crypto/ecdh takes the RFC's masking from its caller
	var want []byte
	remote, rerr := ecdh.X25519().NewPublicKey(masked[:])
	if rerr == nil {
		want, rerr = ref.ECDH(remote)
	}
	if (err == nil) != (rerr == nil) {
		t.Fatalf("X25519(%x, %x): error %v, crypto/ecdh %v", scalar, u, err, rerr)
	}
	if err == nil && !bytes.Equal(got, want) {
		t.Fatalf("X25519(%x, %x) = %x, crypto/ecdh %x", scalar, u, got, want)
	}
	if err != nil && !errors.Is(err, errLowOrder) {
		t.Fatalf("X25519(%x, %x): unexpected error %v", scalar, u, err)
	}
}

func TestX25519MatchesECDH(t *testing.T) {
	var p [dhLen]byte // 2^255 - 19, little-endian
	p[0] = 0xed
	for i := 1; i < 31; i++ {
		p[i] = 0xff
	}
	p[31] = 0x7f
	special := [][dhLen]byte{
		{},  // 0: low order
		{1}, // 1: low order
		{9}, // the base point
		p,   // p itself: 0 modulo p
	}
	pPlus1 := p
	pPlus1[0]++ // non-canonical 1
	special = append(special, pPlus1)
	ones := [dhLen]byte{}
	for i := range ones {
		ones[i] = 0xff // top bit set, non-canonical below it
	}
	special = append(special, ones)
	// The other points of small order (RFC 7748 implementations reject them
	// through the all-zero output).
	for _, s := range []string{
		"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
		"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	} {
		special = append(special, *hex32(t, s))
	}
	for i := range 3000 {
		var scalar, u [dhLen]byte
		rand.Read(scalar[:])
		if i < len(special) {
			u = special[i]
		} else {
			rand.Read(u[:])
		}
		checkAgainstECDH(t, scalar, u)
	}
}

func FuzzX25519(f *testing.F) {
	f.Add(make([]byte, 64))
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 2*dhLen {
			return
		}
		checkAgainstECDH(t, [dhLen]byte(in[:dhLen]), [dhLen]byte(in[dhLen:2*dhLen]))
	})
}

func BenchmarkEphemeralKey(b *testing.B) {
	b.Run("edwards", func(b *testing.B) {
		for b.Loop() {
			if _, err := newEphemeral(nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("crypto/ecdh", func(b *testing.B) {
		for b.Loop() {
			if _, err := newKeypair(nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDH(b *testing.B) {
	remote, _ := newKeypair(nil)
	e, _ := newEphemeral(nil)
	s, _ := newKeypair(nil)
	b.Run("ladder", func(b *testing.B) {
		for b.Loop() {
			dh(&e, &remote.pub)
		}
	})
	b.Run("crypto/ecdh", func(b *testing.B) {
		for b.Loop() {
			dh(&s, &remote.pub)
		}
	})
}

// A keypair that was never set refuses DH instead of using the publicly
// known clamped zero scalar.
func TestDHUnsetKey(t *testing.T) {
	var unset keypair
	remote, _ := newKeypair(nil)
	if out, err := dh(&unset, &remote.pub); err == nil {
		t.Fatalf("DH with an unset key gave %x", out)
	}
}
