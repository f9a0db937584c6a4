package peer

import (
	"testing"

	"github.com/tachyon-p2p/tachyon/core/crypto"
)

func TestZeroSeedID(t *testing.T) {
	k, err := crypto.Ed25519KeyFromSeed(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	id, err := IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	const want = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
	if id.String() != want {
		t.Fatalf("ID = %s, want %s", id, want)
	}
	back, err := Decode(want)
	if err != nil || back != id {
		t.Fatalf("Decode = %v, %v", back, err)
	}
	c, err := Decode(id.ToCid())
	if err != nil || c != id {
		t.Fatalf("Decode(ToCid) = %v, %v", c, err)
	}
	pk, err := id.ExtractPublicKey()
	if err != nil || !pk.Equal(k.GetPublic()) {
		t.Fatalf("ExtractPublicKey = %v, %v", pk, err)
	}
}
