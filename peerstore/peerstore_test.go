package peerstore

import (
	"slices"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
)

func newPeer(t testing.TB) (peer.ID, crypto.PubKey) {
	t.Helper()
	k, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return id, k.GetPublic()
}

func maddr(t testing.TB, s string) ma.Multiaddr {
	t.Helper()
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAddrWithP2pSuffix(t *testing.T) {
	ps := New()
	p, _ := newPeer(t)
	q, _ := newPeer(t)
	ps.AddAddrs(p, []ma.Multiaddr{
		maddr(t, "/ip4/10.0.0.1/tcp/1/p2p/"+p.String()),
		maddr(t, "/ip4/10.0.0.9/tcp/9/p2p/"+q.String()), // someone else's: dropped
	}, time.Hour)
	got := ps.Addrs(p)
	if len(got) != 1 || got[0].String() != "/ip4/10.0.0.1/tcp/1" {
		t.Fatalf("got %v", got)
	}
}

func TestKeysAndProtocols(t *testing.T) {
	ps := New()
	p, pk := newPeer(t)
	_, other := newPeer(t)
	if ps.AddPubKey(p, other) {
		t.Fatal("accepted a key that does not derive the peer ID")
	}
	// Ed25519 IDs inline the key.
	if k := ps.PubKey(p); k == nil || !k.Equal(pk) {
		t.Fatal("key not extracted from the ID")
	}
	if !ps.AddPubKey(p, pk) {
		t.Fatal("rejected the right key")
	}
	ps.SetProtocols(p, []protocol.ID{"/a", "/b"})
	if got, ok := ps.SupportsProtocol(p, "/c", "/b", "/a"); !ok || got != "/b" {
		t.Fatalf("SupportsProtocol = %s %v", got, ok)
	}
	if _, ok := ps.SupportsProtocol(p, "/c"); ok {
		t.Fatal("supports /c")
	}
	ps.SetAgent(p, "agent/1", "ipfs/0.1.0")
	if a, v := ps.Agent(p); a != "agent/1" || v != "ipfs/0.1.0" {
		t.Fatal(a, v)
	}
	if !slices.Contains(ps.Peers(), p) {
		t.Fatal("peer not listed")
	}
	ps.RemovePeer(p)
	if ps.Protocols(p) != nil {
		t.Fatal("not removed")
	}
}
