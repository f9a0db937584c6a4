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

func newPeer(t *testing.T) (peer.ID, crypto.PubKey) {
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

func maddr(t *testing.T, s string) ma.Multiaddr {
	t.Helper()
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAddrTTLs(t *testing.T) {
	ps := New()
	now := time.Unix(1000, 0)
	ps.now = func() time.Time { return now }
	p, _ := newPeer(t)
	a1 := maddr(t, "/ip4/10.0.0.1/tcp/1")
	a2 := maddr(t, "/ip4/10.0.0.2/tcp/2")
	a3 := maddr(t, "/ip6/::1/tcp/3")

	ps.AddAddrs(p, []ma.Multiaddr{a1}, time.Minute)
	ps.AddAddrs(p, []ma.Multiaddr{a2}, time.Hour)
	ps.AddAddrs(p, []ma.Multiaddr{a3}, ConnectedAddrTTL)
	if got := ps.Addrs(p); len(got) != 3 {
		t.Fatalf("got %v", got)
	}
	// AddAddrs never shortens a lifetime.
	ps.AddAddrs(p, []ma.Multiaddr{a2}, time.Second)
	now = now.Add(2 * time.Minute)
	got := ps.Addrs(p)
	if len(got) != 2 || !got[0].Equal(a2) || !got[1].Equal(a3) {
		t.Fatalf("after 2 min: %v", got)
	}
	// Disconnect: connected addresses start to age.
	ps.UpdateAddrs(p, RecentlyConnectedAddrTTL)
	now = now.Add(RecentlyConnectedAddrTTL + time.Second)
	got = ps.Addrs(p)
	if len(got) != 1 || !got[0].Equal(a2) {
		t.Fatalf("after disconnect: %v", got)
	}
	// SetAddrs with 0 removes.
	ps.SetAddrs(p, []ma.Multiaddr{a2}, 0)
	if got := ps.Addrs(p); len(got) != 0 {
		t.Fatalf("after removal: %v", got)
	}
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
