package peer

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"math/big"
	"strings"
	"testing"
)

// Vectors from peer-ids/peer-ids.md, "Test vectors".
const (
	vecEd25519Priv   = "080112407e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e"
	vecEd25519Pub    = "080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e"
	vecSecp256k1Priv = "0802122053DADF1D5A164D6B4ACDB15E24AA4C5B1D3461BDBD42ABEDB0A4404D56CED8FB"
	vecSecp256k1Pub  = "08021221037777e994e452c21604f91de093ce415f5432f701dd8cd1a7a6fea0e630bfca99"
	vecECDSAPub      = "0803125b3059301306072a8648ce3d020106082a8648ce3d03010703420004de3d300fa36ae0e8f5d530899d83abab44abf3161f162a4bc901d8e6ecda020e8b6d5f8da30525e71d6851510c098e5c47c646a597fb4dcec034e9f77c409e62"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIdentityVectors(t *testing.T) {
	priv := mustHex(t, vecEd25519Priv)
	seed := priv[4 : 4+32] // 08 01 12 40 ‖ seed ‖ pub
	id, err := NewIdentityFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	if want := mustHex(t, vecEd25519Pub); !bytes.Equal(id.PubKeyPB, want) {
		t.Fatalf("PublicKey pb = %x, want %x", id.PubKeyPB, want)
	}
	if !strings.HasPrefix(id.ID, "12D3KooW") {
		t.Fatalf("Ed25519 peer ID %q does not start with 12D3KooW", id.ID)
	}

	zero, err := NewIdentityFromSeed(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	if want := "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"; zero.ID != want {
		t.Fatalf("zero-seed peer ID = %s, want %s", zero.ID, want)
	}

	// An ECDSA key pb is longer than 42 bytes, so its ID is hashed (Qm…).
	ecID, err := PeerIDFromPublicKey(mustHex(t, vecECDSAPub))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ecID, "Qm") {
		t.Fatalf("ECDSA peer ID %q is not a sha2-256 multihash", ecID)
	}
	k1ID, err := PeerIDFromPublicKey(mustHex(t, vecSecp256k1Pub))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(k1ID, "16Uiu2HA") {
		t.Fatalf("secp256k1 peer ID %q is not inlined", k1ID)
	}

	for _, bad := range [][]byte{nil, {0x08, 0x01}, {0x12, 0x00}, {0x08}} {
		if _, err := PeerIDFromPublicKey(bad); err == nil {
			t.Errorf("PeerIDFromPublicKey(%x) succeeded", bad)
		}
	}
}

func TestIdentitySignVerify(t *testing.T) {
	id, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("hello")
	sig := id.Sign(msg)
	if err := VerifySignature(id.PubKeyPB, msg, sig); err != nil {
		t.Fatalf("ed25519: %v", err)
	}
	if err := VerifySignature(id.PubKeyPB, []byte("hellO"), sig); err == nil {
		t.Fatal("ed25519: wrong message verified")
	}

	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&ek.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(msg)
	esig, err := ecdsa.SignASN1(rand.Reader, ek, h[:])
	if err != nil {
		t.Fatal(err)
	}
	epb := encodePublicKey(keyTypeECDSA, spki)
	if err := VerifySignature(epb, msg, esig); err != nil {
		t.Fatalf("ecdsa: %v", err)
	}
	if err := VerifySignature(epb, []byte("x"), esig); err == nil {
		t.Fatal("ecdsa: wrong message verified")
	}

	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rspki, err := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	rsig, err := rsa.SignPKCS1v15(rand.Reader, rk, crypto.SHA256, h[:])
	if err != nil {
		t.Fatal(err)
	}
	rpb := encodePublicKey(keyTypeRSA, rspki)
	if err := VerifySignature(rpb, msg, rsig); err != nil {
		t.Fatalf("rsa: %v", err)
	}
	rsig[0] ^= 1
	if err := VerifySignature(rpb, msg, rsig); err == nil {
		t.Fatal("rsa: corrupted signature verified")
	}

	if err := VerifySignature(encodePublicKey(7, []byte{1}), msg, sig); err == nil || !strings.Contains(err.Error(), "key type 7") {
		t.Fatalf("unknown key type: err = %v", err)
	}
}

// TestIdentitySecp256k1 checks the curve arithmetic against the peer-ids vector
// (private scalar -> compressed public key) and round-trips a signature made
// with a test-only signer.
func TestIdentitySecp256k1(t *testing.T) {
	d := new(big.Int).SetBytes(mustHex(t, vecSecp256k1Priv)[4:])
	pub := secpMul(secpPoint{secpGx, secpGy}, d)
	comp := append([]byte{2 | byte(pub.y.Bit(0))}, pub.x.FillBytes(make([]byte, 32))...)
	pb := encodePublicKey(keyTypeSecp256k1, comp)
	if want := mustHex(t, vecSecp256k1Pub); !bytes.Equal(pb, want) {
		t.Fatalf("secp256k1 public key pb = %x, want %x", pb, want)
	}
	if p, err := secpParsePoint(comp); err != nil || p.y.Cmp(pub.y) != 0 {
		t.Fatalf("decompression: %v", err)
	}

	msg := []byte("libp2p")
	h := sha256.Sum256(msg)
	e := new(big.Int).SetBytes(h[:])
	k, err := rand.Int(rand.Reader, new(big.Int).Sub(secpN, big.NewInt(1)))
	if err != nil {
		t.Fatal(err)
	}
	k.Add(k, big.NewInt(1))
	r := new(big.Int).Mod(secpMul(secpPoint{secpGx, secpGy}, k).x, secpN)
	s := new(big.Int).Mul(r, d)
	s.Add(s, e).Mul(s, new(big.Int).ModInverse(k, secpN)).Mod(s, secpN)
	sig, err := asn1.Marshal(struct{ R, S *big.Int }{r, s})
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifySignature(pb, msg, sig); err != nil {
		t.Fatalf("secp256k1: %v", err)
	}
	if err := VerifySignature(pb, []byte("libp2q"), sig); err == nil {
		t.Fatal("secp256k1: wrong message verified")
	}
}
