package peerstore

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
)

// fakeClock drives a Peerstore's clock by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time       { return c.t }
func (c *fakeClock) wait(d time.Duration) { c.t = c.t.Add(d) }
func newClocked(opts ...Option) (*Peerstore, *fakeClock) {
	c := &fakeClock{t: time.Unix(1_000_000, 0)}
	ps := New(opts...)
	ps.now = c.now
	return ps, c
}

// A step acts on one peer and one address, or (wait) moves the clock.
type step struct {
	do   string // add, set, update, connect, disconnect, clear, remove, gc, wait
	ttl  time.Duration
	ttl2 time.Duration // update: the new TTL
}

func addTTL(ttl time.Duration) step          { return step{do: "add", ttl: ttl} }
func setTTL(ttl time.Duration) step          { return step{do: "set", ttl: ttl} }
func updateTTLs(old, new time.Duration) step { return step{do: "update", ttl: old, ttl2: new} }
func waitFor(d time.Duration) step           { return step{do: "wait", ttl: d} }
func do(what string) step                    { return step{do: what} }

// A check moves the clock by after, then says whether the address is listed.
type check struct {
	after time.Duration
	alive bool
}

const (
	long   = 1000 * time.Hour // longer than any timed TTL used here
	second = time.Second
)

func TestTTLPaths(t *testing.T) {
	cases := []struct {
		name   string
		steps  []step
		checks []check
	}{
		// One class at a time.
		{"temp", []step{addTTL(TempAddrTTL)},
			[]check{{TempAddrTTL - 1, true}, {1, false}}},
		{"recently connected", []step{addTTL(RecentlyConnectedAddrTTL)},
			[]check{{RecentlyConnectedAddrTTL - 1, true}, {1, false}}},
		{"connected while connected", []step{do("connect"), addTTL(ConnectedAddrTTL)},
			[]check{{long, true}}},
		{"connected given to an unconnected peer is recently connected", []step{addTTL(ConnectedAddrTTL)},
			[]check{{RecentlyConnectedAddrTTL - 1, true}, {1, false}}},
		{"permanent", []step{addTTL(PermanentAddrTTL)},
			[]check{{long, true}, {long, true}}},

		// Disconnect.
		{"disconnect: connected becomes recently connected",
			[]step{do("connect"), addTTL(ConnectedAddrTTL), waitFor(long), do("disconnect")},
			[]check{{RecentlyConnectedAddrTTL - 1, true}, {1, false}}},
		{"disconnect: a longer timed TTL also given is kept",
			[]step{addTTL(time.Hour), do("connect"), addTTL(ConnectedAddrTTL), waitFor(10 * time.Minute), do("disconnect")},
			[]check{{50*time.Minute - 1, true}, {1, false}}},
		{"disconnect: a shorter timed TTL also given is not",
			[]step{do("connect"), addTTL(ConnectedAddrTTL), addTTL(TempAddrTTL), do("disconnect")},
			[]check{{RecentlyConnectedAddrTTL - 1, true}, {1, false}}},
		{"disconnect: timed addresses are untouched",
			[]step{do("connect"), addTTL(TempAddrTTL), do("disconnect")},
			[]check{{TempAddrTTL - 1, true}, {1, false}}},
		{"disconnect: connections nest",
			[]step{do("connect"), do("connect"), addTTL(ConnectedAddrTTL), do("disconnect"), waitFor(long)},
			[]check{{0, true}}},
		{"disconnect: the last of nested connections",
			[]step{do("connect"), do("connect"), addTTL(ConnectedAddrTTL), do("disconnect"), do("disconnect")},
			[]check{{RecentlyConnectedAddrTTL - 1, true}, {1, false}}},
		{"disconnect: extra calls are ignored",
			[]step{do("disconnect"), do("connect"), addTTL(ConnectedAddrTTL), do("disconnect"), do("disconnect"), do("connect"), addTTL(ConnectedAddrTTL)},
			[]check{{long, true}}},
		{"reconnect does not revive an expired address",
			[]step{do("connect"), addTTL(ConnectedAddrTTL), do("disconnect"), waitFor(RecentlyConnectedAddrTTL), do("connect")},
			[]check{{0, false}}},

		// Permanent means permanent.
		{"permanent survives connect and disconnect cycles",
			[]step{addTTL(PermanentAddrTTL), do("connect"), addTTL(ConnectedAddrTTL), do("disconnect"),
				do("connect"), do("disconnect"), updateTTLs(ConnectedAddrTTL, TempAddrTTL), do("gc"), waitFor(long), do("gc")},
			[]check{{long, true}}},
		{"permanent survives a shorter AddAddrs",
			[]step{addTTL(PermanentAddrTTL), addTTL(TempAddrTTL), addTTL(ConnectedAddrTTL), addTTL(RecentlyConnectedAddrTTL)},
			[]check{{long, true}}},
		{"permanent survives UpdateAddrs",
			[]step{addTTL(PermanentAddrTTL), updateTTLs(PermanentAddrTTL, TempAddrTTL), updateTTLs(PermanentAddrTTL, 0)},
			[]check{{long, true}}},
		{"permanent survives AddAddrs with ttl <= 0",
			[]step{addTTL(PermanentAddrTTL), addTTL(0), addTTL(-1)},
			[]check{{long, true}}},
		{"permanent goes with SetAddrs 0", []step{addTTL(PermanentAddrTTL), setTTL(0)},
			[]check{{0, false}}},
		{"permanent goes with SetAddrs < 0", []step{addTTL(PermanentAddrTTL), setTTL(-time.Second)},
			[]check{{0, false}}},
		{"permanent lowered by SetAddrs", []step{addTTL(PermanentAddrTTL), setTTL(TempAddrTTL)},
			[]check{{TempAddrTTL - 1, true}, {1, false}}},
		{"permanent goes with ClearAddrs", []step{addTTL(PermanentAddrTTL), do("clear")},
			[]check{{0, false}}},
		{"permanent goes with RemovePeer", []step{addTTL(PermanentAddrTTL), do("remove")},
			[]check{{0, false}}},

		// AddAddrs: longer, shorter, upgrades.
		{"add longer extends", []step{addTTL(TempAddrTTL), waitFor(time.Minute), addTTL(RecentlyConnectedAddrTTL)},
			[]check{{RecentlyConnectedAddrTTL - 1, true}, {1, false}}},
		{"add shorter does not shorten", []step{addTTL(RecentlyConnectedAddrTTL), waitFor(time.Minute), addTTL(TempAddrTTL)},
			[]check{{RecentlyConnectedAddrTTL - time.Minute - 1, true}, {1, false}}},
		{"add ttl <= 0 is ignored", []step{addTTL(TempAddrTTL), addTTL(0), addTTL(-1)},
			[]check{{TempAddrTTL - 1, true}, {1, false}}},
		{"add ttl <= 0 adds nothing", []step{addTTL(0), addTTL(-1)},
			[]check{{0, false}}},
		{"add upgrades temp to connected", []step{addTTL(TempAddrTTL), do("connect"), addTTL(ConnectedAddrTTL)},
			[]check{{long, true}}},
		{"add upgrades connected to permanent",
			[]step{do("connect"), addTTL(ConnectedAddrTTL), addTTL(PermanentAddrTTL), do("disconnect")},
			[]check{{long, true}}},
		{"add does not lower connected", []step{do("connect"), addTTL(ConnectedAddrTTL), addTTL(TempAddrTTL)},
			[]check{{long, true}}},
		{"add revives an expired address with its own TTL",
			[]step{addTTL(RecentlyConnectedAddrTTL), waitFor(RecentlyConnectedAddrTTL), addTTL(TempAddrTTL)},
			[]check{{TempAddrTTL - 1, true}, {1, false}}},
		{"RemovePeer keeps connectedness",
			[]step{do("connect"), do("remove"), addTTL(ConnectedAddrTTL)},
			[]check{{long, true}}},

		// SetAddrs.
		{"set shortens", []step{addTTL(RecentlyConnectedAddrTTL), setTTL(TempAddrTTL)},
			[]check{{TempAddrTTL - 1, true}, {1, false}}},
		{"set lowers connected", []step{do("connect"), addTTL(ConnectedAddrTTL), setTTL(TempAddrTTL)},
			[]check{{TempAddrTTL - 1, true}, {1, false}}},
		{"set connected on an unconnected peer", []step{setTTL(ConnectedAddrTTL)},
			[]check{{RecentlyConnectedAddrTTL - 1, true}, {1, false}}},
		{"set permanent", []step{addTTL(TempAddrTTL), setTTL(PermanentAddrTTL), do("connect"), do("disconnect")},
			[]check{{long, true}}},
		{"set 0 removes", []step{addTTL(TempAddrTTL), setTTL(0)}, []check{{0, false}}},
		{"set 0 on an unknown peer", []step{setTTL(0)}, []check{{0, false}}},

		// UpdateAddrs.
		{"update a matching timed TTL", []step{addTTL(TempAddrTTL), updateTTLs(TempAddrTTL, RecentlyConnectedAddrTTL)},
			[]check{{RecentlyConnectedAddrTTL - 1, true}, {1, false}}},
		{"update a matching timed TTL to shorter", []step{addTTL(time.Hour), updateTTLs(time.Hour, TempAddrTTL)},
			[]check{{TempAddrTTL - 1, true}, {1, false}}},
		{"update leaves other TTLs alone", []step{addTTL(RecentlyConnectedAddrTTL), updateTTLs(TempAddrTTL, time.Hour)},
			[]check{{RecentlyConnectedAddrTTL - 1, true}, {1, false}}},
		{"update connected, go-libp2p's disconnect",
			[]step{do("connect"), addTTL(ConnectedAddrTTL), updateTTLs(ConnectedAddrTTL, TempAddrTTL)},
			[]check{{TempAddrTTL - 1, true}, {1, false}}},
		{"update connected matches no timed address",
			[]step{do("connect"), addTTL(TempAddrTTL), updateTTLs(ConnectedAddrTTL, time.Hour)},
			[]check{{TempAddrTTL - 1, true}, {1, false}}},
		{"update to 0 removes", []step{do("connect"), addTTL(ConnectedAddrTTL), updateTTLs(ConnectedAddrTTL, 0)},
			[]check{{0, false}}},
		{"update to connected on an unconnected peer",
			[]step{addTTL(TempAddrTTL), updateTTLs(TempAddrTTL, ConnectedAddrTTL)},
			[]check{{RecentlyConnectedAddrTTL - 1, true}, {1, false}}},
		{"update does not revive an expired address",
			[]step{addTTL(TempAddrTTL), waitFor(TempAddrTTL), updateTTLs(TempAddrTTL, time.Hour)},
			[]check{{0, false}}},

		// GC agrees with Addrs.
		{"gc keeps what is alive", []step{addTTL(TempAddrTTL), waitFor(TempAddrTTL - 1), do("gc")},
			[]check{{0, true}, {1, false}}},
		{"gc drops what expired", []step{addTTL(TempAddrTTL), waitFor(TempAddrTTL), do("gc"), addTTL(time.Nanosecond)},
			[]check{{0, true}, {1, false}}},
	}
	// Each path runs three ways: "add" steps as AddAddrs, and as
	// AddSignedAddrs with a record that verifies and with one that does not
	// (its unsigned addresses count): a record checked late must end up as
	// if its addresses had been added when given.
	for _, mode := range []string{"AddAddrs", "signed record", "bad signed record"} {
		for _, tc := range cases {
			t.Run(mode+"/"+tc.name, func(t *testing.T) { ttlPath(t, mode, tc.steps, tc.checks) })
		}
	}
}

func ttlPath(t *testing.T, mode string, steps []step, checks []check) {
	ps, clk := newClocked()
	p, _ := newPeer(t)
	a := maddr(t, "/ip4/10.0.0.1/tcp/4001")
	other := maddr(t, "/ip4/10.0.0.2/tcp/4001") // a bystander, always permanent
	ps.AddAddrs(p, []ma.Multiaddr{other}, PermanentAddrTTL)
	one := []ma.Multiaddr{a}
	add := func(ttl time.Duration) { ps.AddAddrs(p, one, ttl) }
	switch mode {
	case "signed record":
		add = func(ttl time.Duration) {
			ps.AddSignedAddrs(p, func() ([]ma.Multiaddr, bool) { return one, true }, nil, ttl)
		}
	case "bad signed record":
		add = func(ttl time.Duration) {
			ps.AddSignedAddrs(p, func() ([]ma.Multiaddr, bool) { return nil, false }, one, ttl)
		}
	}
	for _, s := range steps {
		switch s.do {
		case "add":
			add(s.ttl)
		case "set":
			ps.SetAddrs(p, one, s.ttl)
		case "update":
			ps.UpdateAddrs(p, s.ttl, s.ttl2)
		case "connect":
			ps.Connected(p)
		case "disconnect":
			ps.Disconnected(p)
		case "clear":
			ps.ClearAddrs(p)
		case "remove":
			ps.RemovePeer(p)
		case "gc":
			ps.GC()
		case "wait":
			clk.wait(s.ttl)
		default:
			t.Fatalf("bad step %q", s.do)
		}
	}
	bystander := !slices.ContainsFunc(steps, func(s step) bool { return s.do == "clear" || s.do == "remove" })
	for i, c := range checks {
		clk.wait(c.after)
		// Addrs must honour expiry before GC and agree with it after.
		for _, when := range []string{"before GC", "after GC"} {
			got := ps.Addrs(p)
			if alive := slices.ContainsFunc(got, a.Equal); alive != c.alive {
				t.Fatalf("check %d %s: listed=%v, want %v (%v)", i, when, alive, c.alive, got)
			}
			if bystander && !slices.ContainsFunc(got, other.Equal) {
				t.Fatalf("check %d %s: the permanent bystander is gone (%v)", i, when, got)
			}
			ps.GC()
		}
	}
}

// TestSignedAddrsChecked: a signed record is checked only when the peer's
// addresses are read, once; connects, disconnects and GC leave it alone,
// and ClearAddrs drops it unchecked.
func TestSignedAddrsChecked(t *testing.T) {
	ps, clk := newClocked()
	p, _ := newPeer(t)
	a := maddr(t, "/ip4/10.0.0.1/tcp/4001")
	opened := 0
	open := func() ([]ma.Multiaddr, bool) { opened++; return []ma.Multiaddr{a}, true }
	ps.Connected(p)
	ps.AddSignedAddrs(p, open, nil, ConnectedAddrTTL)
	ps.Disconnected(p)
	ps.Connected(p)
	ps.GC()
	if opened != 0 {
		t.Fatalf("record checked %d times before the addresses were read", opened)
	}
	clk.wait(RecentlyConnectedAddrTTL - 1) // counted from the disconnect
	for range 2 {
		if got := ps.Addrs(p); len(got) != 1 || !got[0].Equal(a) {
			t.Fatalf("Addrs = %v, want the record's", got)
		}
	}
	if opened != 1 {
		t.Fatalf("record checked %d times, want once", opened)
	}
	ps.AddSignedAddrs(p, open, nil, TempAddrTTL)
	ps.ClearAddrs(p)
	if got := ps.Addrs(p); len(got) != 0 || opened != 1 {
		t.Fatalf("after ClearAddrs: Addrs = %v, checked %d times", got, opened)
	}
	// A peer whose only addresses wait in a record is kept by GC until
	// the record's lifetime is over.
	ps.Disconnected(p)
	ps.AddSignedAddrs(p, open, nil, TempAddrTTL)
	clk.wait(TempAddrTTL - 1)
	if ps.GC(); !slices.Contains(ps.Peers(), p) {
		t.Fatal("GC dropped a peer with a record waiting")
	}
	clk.wait(1)
	if ps.GC(); slices.Contains(ps.Peers(), p) || opened != 1 {
		t.Fatalf("GC kept a peer whose record expired (checked %d times)", opened)
	}
}

func TestAddrsUnknownPeer(t *testing.T) {
	ps := New()
	p, _ := newPeer(t)
	if got := ps.Addrs(p); got != nil {
		t.Fatal(got)
	}
	ps.AddAddrs(p, nil, time.Hour)
	ps.UpdateAddrs(p, TempAddrTTL, time.Hour)
	ps.SetAddrs(p, []ma.Multiaddr{maddr(t, "/ip4/1.2.3.4/tcp/1")}, 0)
	ps.ClearAddrs(p)
	ps.Disconnected(p)
	if len(ps.Peers()) != 0 {
		t.Fatal("a record was created")
	}
}

func TestGC(t *testing.T) {
	ps, clk := newClocked()
	ids := make([]peer.ID, 6)
	for i := range ids {
		ids[i], _ = newPeer(t)
	}
	gone, connectedExpired, alive, permanent, connectedBare := ids[0], ids[1], ids[2], ids[3], ids[5]
	a := []ma.Multiaddr{maddr(t, "/ip4/10.0.0.1/tcp/1")}
	b := []ma.Multiaddr{maddr(t, "/ip4/10.0.0.2/tcp/2")}

	ps.AddAddrs(gone, a, TempAddrTTL)
	ps.SetProtocols(gone, []protocol.ID{"/x"})
	ps.SetAgent(gone, "x", "y")

	ps.Connected(connectedExpired)
	ps.AddAddrs(connectedExpired, a, TempAddrTTL)
	ps.SetProtocols(connectedExpired, []protocol.ID{"/x"})

	ps.AddAddrs(alive, a, TempAddrTTL)
	ps.AddAddrs(alive, b, time.Hour)
	ps.AddAddrs(permanent, a, PermanentAddrTTL)
	ps.AddAddrs(permanent, b, TempAddrTTL)
	keyOnly, k := newPeer(t)
	if !ps.AddPubKey(keyOnly, k) {
		t.Fatal("key refused")
	}
	ps.Connected(connectedBare)

	clk.wait(TempAddrTTL)
	nAddrs, nPeers := ps.GC()
	if nAddrs != 4 || nPeers != 2 {
		t.Fatalf("GC dropped %d addresses and %d peers, want 4 and 2", nAddrs, nPeers)
	}
	peers := ps.Peers()
	slices.Sort(peers)
	want := []peer.ID{connectedExpired, alive, permanent, connectedBare}
	slices.Sort(want)
	if !slices.Equal(peers, want) {
		t.Fatalf("peers left: %v, want %v", peers, want)
	}
	if ps.Protocols(gone) != nil {
		t.Fatal("the dropped peer's protocols are still there")
	}
	if a, _ := ps.Agent(gone); a != "" {
		t.Fatal("the dropped peer's agent is still there")
	}
	if got := ps.Protocols(connectedExpired); !slices.Equal(got, []protocol.ID{"/x"}) {
		t.Fatalf("a connected peer lost its protocols: %v", got)
	}
	if got := ps.Addrs(connectedExpired); len(got) != 0 {
		t.Fatalf("a connected peer kept expired addresses: %v", got)
	}
	if got := ps.Addrs(permanent); len(got) != 1 || !got[0].Equal(a[0]) {
		t.Fatalf("permanent peer: %v", got)
	}

	// Once disconnected, a peer with nothing left goes at the next GC.
	ps.Disconnected(connectedExpired)
	ps.Disconnected(connectedBare)
	if _, n := ps.GC(); n != 2 {
		t.Fatalf("GC dropped %d disconnected empty peers, want 2", n)
	}
	if ps.Protocols(connectedExpired) != nil {
		t.Fatal("still there after disconnect and GC")
	}
	// Nothing expired: nothing to do.
	if na, np := ps.GC(); na != 0 || np != 0 {
		t.Fatalf("idle GC dropped %d, %d", na, np)
	}
	clk.wait(long)
	ps.GC()
	if got := ps.Peers(); len(got) != 1 || got[0] != permanent {
		t.Fatalf("after a long time: %v, want only the permanent peer", got)
	}
}

func TestEvictionOrder(t *testing.T) {
	ps, clk := newClocked(WithMaxUnconnectedPeers(3))
	ids := make([]peer.ID, 10)
	for i := range ids {
		ids[i], _ = newPeer(t)
	}
	a := []ma.Multiaddr{maddr(t, "/ip4/10.0.0.1/tcp/1")}
	has := func(want ...int) {
		t.Helper()
		var w []peer.ID
		for _, i := range want {
			w = append(w, ids[i])
		}
		got := ps.Peers()
		slices.Sort(got)
		slices.Sort(w)
		if !slices.Equal(got, w) {
			name := map[peer.ID]int{}
			for i, p := range ids {
				name[p] = i
			}
			var g []int
			for _, p := range got {
				g = append(g, name[p])
			}
			slices.Sort(g)
			t.Fatalf("peers %v, want %v", g, want)
		}
	}
	tick := func() { clk.wait(time.Second) }

	// 0 holds a permanent address: it is not counted nor evicted.
	ps.AddAddrs(ids[0], a, PermanentAddrTTL)
	tick()
	for i := 1; i <= 5; i++ {
		ps.AddAddrs(ids[i], a, time.Hour)
		tick()
	}
	has(0, 3, 4, 5)

	// Anything recorded about a peer counts as seeing it.
	ps.SetProtocols(ids[3], []protocol.ID{"/x"})
	tick()
	ps.AddAddrs(ids[6], a, time.Hour)
	tick()
	has(0, 3, 5, 6)

	// Connected peers are not counted, and connecting evicts no one.
	ps.Connected(ids[7])
	ps.AddAddrs(ids[7], a, ConnectedAddrTTL)
	ps.Connected(ids[8])
	tick()
	has(0, 3, 5, 6, 7, 8)

	// Reading is not seeing.
	ps.Addrs(ids[5])
	ps.Protocols(ids[5])
	// A peer whose last connection ends is the most recently seen.
	ps.Disconnected(ids[7])
	tick()
	has(0, 3, 6, 7, 8)

	// A peer that loses its permanent address takes its place by when it was
	// last seen: 0 was seen first, so it is the one to go.
	ps.ClearAddrs(ids[0])
	has(3, 6, 7, 8)

	// Lowering a permanent address is news about the peer: it is seen now.
	ps.AddAddrs(ids[9], a, PermanentAddrTTL)
	tick()
	has(3, 6, 7, 8, 9)
	ps.SetAddrs(ids[9], a, time.Hour)
	tick()
	has(6, 7, 8, 9)

	// No bound.
	ps, _ = newClocked(WithMaxUnconnectedPeers(0))
	for i := range ids {
		ps.AddAddrs(ids[i], a, time.Hour)
	}
	has(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
	if New().maxUnconn != DefaultMaxUnconnectedPeers {
		t.Fatal("default bound not set")
	}
}

func TestRun(t *testing.T) {
	ps := New()
	p, _ := newPeer(t)
	ps.AddAddrs(p, []ma.Multiaddr{maddr(t, "/ip4/10.0.0.1/tcp/1")}, time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ps.Run(ctx, time.Millisecond); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(ps.Peers()) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run never collected the expired peer")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
}

func TestConcurrentUse(t *testing.T) {
	ps := New(WithMaxUnconnectedPeers(8))
	ids := make([]peer.ID, 16)
	for i := range ids {
		ids[i], _ = newPeer(t)
	}
	a := []ma.Multiaddr{maddr(t, "/ip4/10.0.0.1/tcp/1"), maddr(t, "/ip6/::1/udp/1/quic-v1")}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				p := ids[(g*7+i)%len(ids)]
				switch i % 9 {
				case 0:
					ps.Connected(p)
					ps.AddAddrs(p, a[:1], ConnectedAddrTTL)
				case 1:
					ps.Disconnected(p)
				case 2:
					ps.AddAddrs(p, a, TempAddrTTL)
				case 3:
					ps.SetAddrs(p, a[1:], PermanentAddrTTL)
				case 4:
					ps.UpdateAddrs(p, ConnectedAddrTTL, RecentlyConnectedAddrTTL)
				case 5:
					ps.GC()
				case 6:
					ps.ClearAddrs(p)
					ps.SetProtocols(p, []protocol.ID{"/x"})
				case 7:
					ps.RemovePeer(p)
				default:
					ps.Addrs(p)
					ps.SupportsProtocol(p, "/x")
					ps.Peers()
				}
			}
		}()
	}
	wg.Wait()
	checkInvariants(t, ps)
}

// checkInvariants verifies the evictable list against the records.
func checkInvariants(t *testing.T, ps *Peerstore) {
	t.Helper()
	ps.mu.Lock()
	defer ps.mu.Unlock()
	n := 0
	for r := ps.lru.next; r != &ps.lru; r = r.next {
		n++
		if ps.peers[r.id] != r {
			t.Fatal("a listed record is not in the map")
		}
		if !r.evictable() {
			t.Fatal("a connected or pinned record is listed")
		}
		if r.next != &ps.lru && r.next.seen.Before(r.seen) {
			t.Fatal("list out of order")
		}
	}
	if n != ps.nlru {
		t.Fatalf("list holds %d, count says %d", n, ps.nlru)
	}
	if ps.maxUnconn > 0 && n > ps.maxUnconn {
		t.Fatalf("%d unconnected peers over the bound of %d", n, ps.maxUnconn)
	}
	for _, r := range ps.peers {
		if r.evictable() != (r.next != nil) {
			t.Fatal("an evictable record is not listed")
		}
		if ps.maxAddrs > 0 && len(r.addrs) > ps.maxAddrs {
			t.Fatalf("%d addresses held, over the bound of %d", len(r.addrs), ps.maxAddrs)
		}
		if ps.maxProtos > 0 && len(r.protocols) > ps.maxProtos {
			t.Fatalf("%d protocols held, over the bound of %d", len(r.protocols), ps.maxProtos)
		}
		for _, a := range r.addrs {
			if a.class == connected && r.conns == 0 {
				t.Fatal("a connected address on an unconnected peer")
			}
		}
	}
}

func BenchmarkAddrs(b *testing.B) {
	ps := New()
	k, _ := newPeer(b)
	as := []ma.Multiaddr{
		maddr(b, "/ip4/10.0.0.1/tcp/4001"),
		maddr(b, "/ip4/10.0.0.1/udp/4001/quic-v1"),
		maddr(b, "/ip6/::1/tcp/4001"),
		maddr(b, "/ip6/::1/udp/4001/quic-v1"),
	}
	ps.Connected(k)
	ps.AddAddrs(k, as[:1], ConnectedAddrTTL)
	ps.AddAddrs(k, as, RecentlyConnectedAddrTTL)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if len(ps.Addrs(k)) != len(as) {
				b.Fatal("lost an address")
			}
		}
	})
}

// TestSignedAddrsLikeAddAddrs: where a record checked late could end
// differently from AddAddrs at the time it was given, it does not: a full
// peer (the bound) checked while still connected, and the order in which
// unconnected peers are evicted, which reading a peer's addresses does not
// change.
func TestSignedAddrsLikeAddAddrs(t *testing.T) {
	x := maddr(t, "/ip4/10.0.0.1/tcp/1")
	y := maddr(t, "/ip4/10.0.0.2/tcp/2")
	for _, signed := range []bool{false, true} {
		add := func(ps *Peerstore, p peer.ID, a ma.Multiaddr, ttl time.Duration) {
			if signed {
				ps.AddSignedAddrs(p, func() ([]ma.Multiaddr, bool) { return []ma.Multiaddr{a}, true }, nil, ttl)
			} else {
				ps.AddAddrs(p, []ma.Multiaddr{a}, ttl)
			}
		}
		t.Run(fmt.Sprintf("bound, signed=%v", signed), func(t *testing.T) {
			ps, clk := newClocked(WithMaxAddrsPerPeer(1))
			p, _ := newPeer(t)
			ps.AddAddrs(p, []ma.Multiaddr{x}, time.Hour)
			ps.Connected(p)
			add(ps, p, y, ConnectedAddrTTL) // displaces x, the timed one
			clk.wait(time.Minute)
			if got := ps.Addrs(p); len(got) != 1 || !got[0].Equal(y) {
				t.Fatalf("Addrs = %v, want [%s]", got, y)
			}
			ps.Disconnected(p)
			clk.wait(5 * time.Minute)
			if got := ps.Addrs(p); len(got) != 1 || !got[0].Equal(y) {
				t.Fatalf("Addrs after the disconnect = %v, want [%s]", got, y)
			}
			clk.wait(15 * time.Minute)
			if a, peers := ps.GC(); a != 1 || peers != 1 {
				t.Fatalf("GC dropped %d addresses and %d peers, want 1 and 1", a, peers)
			}
		})
		t.Run(fmt.Sprintf("eviction order, signed=%v", signed), func(t *testing.T) {
			ps, clk := newClocked(WithMaxUnconnectedPeers(2))
			a, _ := newPeer(t)
			b, _ := newPeer(t)
			c, _ := newPeer(t)
			add(ps, a, x, TempAddrTTL)
			clk.wait(time.Second)
			add(ps, b, y, TempAddrTTL)
			clk.wait(time.Second)
			ps.Addrs(a) // reading is not hearing of a
			add(ps, c, x, TempAddrTTL)
			if got := ps.Peers(); slices.Contains(got, a) || !slices.Contains(got, b) {
				t.Fatalf("peers %v: want a, the least recently heard of, evicted", got)
			}
		})
	}
}

// TestSignedAddrsBoundAfterDisconnect: a record given while connected and
// checked after the last disconnect ranks for the bound as the timed
// address it then is, expiring RecentlyConnectedAddrTTL after the
// disconnect (AddAddrs at the time given would have ranked it connected).
func TestSignedAddrsBoundAfterDisconnect(t *testing.T) {
	x := maddr(t, "/ip4/10.0.0.1/tcp/1")
	y := maddr(t, "/ip4/10.0.0.2/tcp/2")
	for _, tc := range []struct {
		name string
		xTTL time.Duration // x's lifetime; the record's address y lives 16 minutes
		want ma.Multiaddr
	}{
		{"other expires later", time.Hour, x},
		{"other expires sooner", 10 * time.Minute, y},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps, clk := newClocked(WithMaxAddrsPerPeer(1))
			p, _ := newPeer(t)
			ps.AddAddrs(p, []ma.Multiaddr{x}, tc.xTTL)
			ps.Connected(p)
			opened := 0
			ps.AddSignedAddrs(p, func() ([]ma.Multiaddr, bool) { opened++; return []ma.Multiaddr{y}, true }, nil, ConnectedAddrTTL)
			clk.wait(time.Minute)
			ps.Disconnected(p)
			if opened != 0 {
				t.Fatal("the record was checked at the disconnect")
			}
			clk.wait(5 * time.Minute)
			if got := ps.Addrs(p); opened != 1 || len(got) != 1 || !got[0].Equal(tc.want) {
				t.Fatalf("Addrs = %v (record checked %d times), want [%s]", got, opened, tc.want)
			}
		})
	}
}

// TestSignedAddrsUnsignedBounded: a record waiting holds at most
// MaxAddrsPerPeer of the unsigned addresses, as AddAddrs would keep.
func TestSignedAddrsUnsignedBounded(t *testing.T) {
	ps := New(WithMaxAddrsPerPeer(2))
	p, _ := newPeer(t)
	var many []ma.Multiaddr
	for i := range 10 {
		many = append(many, maddr(t, fmt.Sprintf("/ip4/10.0.0.%d/tcp/1", i+1)), maddr(t, fmt.Sprintf("/ip4/10.0.0.%d/tcp/1", i+1)))
	}
	ps.AddSignedAddrs(p, func() ([]ma.Multiaddr, bool) { return nil, false }, many, time.Hour)
	if n := len(ps.peers[p].signed.unsigned); n != 2 {
		t.Fatalf("%d unsigned addresses held, want 2", n)
	}
	if got := ps.Addrs(p); len(got) != 2 || !got[0].Equal(many[0]) || !got[1].Equal(many[2]) {
		t.Fatalf("Addrs = %v, want the first two distinct", got)
	}
}
