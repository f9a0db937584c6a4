package tachyon

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/peer"
)

func TestIfaceCacheExpandListen(t *testing.T) {
	m := func(s string) ma.Multiaddr {
		t.Helper()
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	ifaddrs := []ma.Multiaddr{m("/ip4/127.0.0.1"), m("/ip4/192.168.1.7"), m("/ip6/::1"), m("/ip6/fe80::1"), m("/ip6/2001:db8::7")}
	now := time.Unix(1000, 0)
	lists := 0
	var listErr error
	c := &ifaceCache{
		list: func() ([]ma.Multiaddr, error) { lists++; return ifaddrs, listErr },
		now:  func() time.Time { return now },
	}
	expand := func(raw ...string) []string {
		var in []ma.Multiaddr
		for _, s := range raw {
			in = append(in, m(s))
		}
		var out []string
		for _, a := range c.expandListen(in) {
			out = append(out, a.String())
		}
		return out
	}

	got := expand("/ip4/0.0.0.0/tcp/4001", "/ip6/::/udp/4001/quic-v1", "/ip4/10.0.0.1/tcp/5", "/p2p-circuit")
	want := []string{"/ip4/127.0.0.1/tcp/4001", "/ip4/192.168.1.7/tcp/4001", "/ip6/::1/udp/4001/quic-v1", "/ip6/2001:db8::7/udp/4001/quic-v1", "/ip4/10.0.0.1/tcp/5"}
	if !slices.Equal(got, want) {
		t.Fatalf("expanded %v, want %v", got, want)
	}
	if lists != 1 {
		t.Fatalf("two unspecified addresses listed the interfaces %d times, want once", lists)
	}

	// Within the TTL the listing is reused, past it listed again; a clock
	// that went back lists again too.
	for _, tc := range []struct {
		step  time.Duration
		lists int
	}{
		{ifaceTTL / 2, 1},
		{ifaceTTL / 2, 2},
		{ifaceTTL - 1, 2},
		{-time.Hour, 3},
	} {
		now = now.Add(tc.step)
		expand("/ip4/0.0.0.0/tcp/1")
		if lists != tc.lists {
			t.Fatalf("after a step of %v: %d listings, want %d", tc.step, lists, tc.lists)
		}
	}

	// A failed listing drops the unspecified addresses, and is itself
	// reused for the TTL.
	now = now.Add(ifaceTTL)
	listErr = errors.New("netlink: no")
	if got := expand("/ip4/0.0.0.0/tcp/1", "/ip4/10.0.0.1/tcp/5"); !slices.Equal(got, []string{"/ip4/10.0.0.1/tcp/5"}) {
		t.Fatalf("with the listing failed: %v", got)
	}
	listErr = nil
	if got := expand("/ip4/0.0.0.0/tcp/1"); len(got) != 0 || lists != 4 {
		t.Fatalf("within the TTL of a failed listing: %v after %d listings, want none after 4", got, lists)
	}
	now = now.Add(ifaceTTL)
	if got := expand("/ip4/0.0.0.0/tcp/1"); len(got) != 2 || lists != 5 {
		t.Fatalf("past the TTL of a failed listing: %v after %d listings, want 2 addresses after 5", got, lists)
	}
}

// TestIdentifyListsInterfacesRarely: a host listening on unspecified
// addresses of several transports answers every identify with its
// interface addresses, and lists the interfaces at most once per ifaceTTL
// whatever the number of peers.
func TestIdentifyListsInterfacesRarely(t *testing.T) {
	server := testHost(t, ListenAddrStrings("/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/tcp/0/ws", "/ip4/0.0.0.0/udp/0/quic-v1", "/ip4/0.0.0.0/udp/0/webrtc-direct"))
	var lists atomic.Int32
	server.ifaces.mu.Lock()
	list := server.ifaces.list
	server.ifaces.list = func() ([]ma.Multiaddr, error) { lists.Add(1); return list() }
	server.ifaces.mu.Unlock()

	var target ma.Multiaddr
	for _, a := range server.Addrs() {
		if s := a.String(); strings.HasPrefix(s, "/ip4/127.0.0.1/tcp/") && len(a) == 2 {
			target = a
		}
	}
	if target == nil {
		t.Fatalf("no /ip4/127.0.0.1/tcp address among %v", server.Addrs())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	lists.Store(0)
	const peers = 10
	for range peers {
		c := testHost(t)
		if err := c.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: []ma.Multiaddr{target}}); err != nil {
			t.Fatal(err)
		}
		r, err := c.IdentifyWait(ctx, server.ID())
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(r.Message.ListenAddrs, target.Equal) {
			t.Fatalf("identify told %v, not %s", r.Message.ListenAddrs, target)
		}
		c.Close()
	}
	// One listing per TTL begun, and one for a TTL begun just before start.
	if n, most := lists.Load(), 2+int32(time.Since(start)/ifaceTTL); n > most {
		t.Fatalf("%d peers identified: the interfaces were listed %d times, at most %d expected", peers, n, most)
	}
}
