package plaintext

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

func newT(t *testing.T, typ crypto.KeyType) *Transport {
	t.Helper()
	k, _, err := crypto.GenerateKeyPair(typ, 2048, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := New(k)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestHandshake(t *testing.T) {
	leakcheck.Check(t)
	for _, typ := range []crypto.KeyType{crypto.Ed25519, crypto.Secp256k1, crypto.RSA} {
		a, b := newT(t, typ), newT(t, crypto.Ed25519)
		ca, cb := net.Pipe()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errc := make(chan error, 1)
		go func() {
			sc, err := b.SecureInbound(ctx, cb, "")
			if err == nil && sc.RemotePeer() != a.id {
				t.Error("inbound saw the wrong peer")
			}
			errc <- err
		}()
		sc, err := a.SecureOutbound(ctx, ca, b.id)
		if err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if sc.RemotePeer() != b.id || sc.ConnState().Security != ID {
			t.Fatal("outbound state")
		}
		ca.Close()
		cb.Close()
		cancel()
	}
}

func TestWrongPeer(t *testing.T) {
	leakcheck.Check(t)
	a, b, c := newT(t, crypto.Ed25519), newT(t, crypto.Ed25519), newT(t, crypto.Ed25519)
	ca, cb := net.Pipe()
	defer ca.Close()
	defer cb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go b.SecureInbound(ctx, cb, "")
	if _, err := a.SecureOutbound(ctx, ca, c.id); err == nil {
		t.Fatal("accepted the wrong peer")
	}
}

func TestUnmarshalRejects(t *testing.T) {
	a, b := newT(t, crypto.Ed25519), newT(t, crypto.Ed25519)
	for name, msg := range map[string][]byte{
		"empty":        nil,
		"no key":       marshal(a.id, nil)[:2+len(a.id)],
		"key of other": marshal(a.id, b.pbKey),
		"truncated":    marshal(a.id, a.pbKey)[:10],
	} {
		if _, err := Unmarshal(msg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if ex, err := Unmarshal(marshal(a.id, a.pbKey)); err != nil || ex.ID != a.id {
		t.Fatal(err)
	}
	_ = peer.ID("")
}

func FuzzUnmarshal(f *testing.F) {
	k, _ := crypto.GenerateEd25519Key(nil)
	tr, _ := New(k)
	f.Add(marshal(tr.id, tr.pbKey))
	f.Fuzz(func(t *testing.T, b []byte) {
		if ex, err := Unmarshal(b); err == nil && !ex.ID.MatchesPublicKey(ex.PubKey) {
			t.Fatal("accepted a mismatched key")
		}
	})
}
