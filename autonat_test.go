package tachyon

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/event"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/obsaddr"
	"github.com/tachyon-p2p/tachyon/protocol/autonatv1"
	"github.com/tachyon-p2p/tachyon/protocol/autonatv2"
	"github.com/tachyon-p2p/tachyon/reachability"
)

// loopbackPublic makes loopback count as the Internet, so AutoNAT runs on
// it: servers dial it back, clients check it.
var loopbackPublic = PublicPrefixes(netip.MustParsePrefix("127.0.0.0/8"))

// TestAutoNAT: a host connected to three AutoNAT servers learns that its
// TCP and QUIC addresses are public within a few round trips, from servers
// that dial back with an identity of their own, and only then advertises
// them (with the named security forms); peers on the same machine were
// told its addresses all along.
func TestAutoNAT(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	listen := ListenAddrStrings("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1")
	var servers []*Host
	for range 3 {
		servers = append(servers, testHost(t, listen, loopbackPublic, Transports(TCP, QUIC)))
	}
	c := testHost(t, listen, loopbackPublic, Transports(TCP, QUIC))
	sub := event.Subscribe[event.EvtAddrReachability](c.EventBus(), 16)
	defer sub.Close()
	if adv := c.AdvertisedAddrs(); len(adv) != 0 {
		t.Fatalf("advertised before any check: %v", adv)
	}
	start := time.Now()
	for _, s := range servers {
		if err := c.Connect(ctx, peer.AddrInfo{ID: s.ID(), Addrs: s.Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]bool{}
	for _, a := range c.listenAddrs() {
		want[a.String()] = true
	}
	got := map[string]event.EvtAddrReachability{}
	for len(got) < len(want) {
		select {
		case e := <-sub.Out():
			if e.To != "public" || !want[e.Addr.String()] {
				t.Fatalf("event %+v, want public for one of %v", e, want)
			}
			got[e.Addr.String()] = e
		case <-ctx.Done():
			t.Fatalf("verdicts so far %v; table %+v", got, c.ReachabilityTable())
		}
	}
	t.Logf("both addresses public after %s", time.Since(start))
	for _, e := range got {
		if len(e.Servers) < 2 {
			t.Fatalf("decided by %v, want 2 servers at least", e.Servers)
		}
	}
	// Advertised: both, and TCP's named forms.
	deadline := time.Now().Add(5 * time.Second)
	for {
		adv := c.AdvertisedAddrs()
		if len(adv) == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("advertised %v, want the 2 confirmed addresses and 2 named TCP forms", adv)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, r := range c.ReachabilityTable() {
		// The third server's answer may still be on its way.
		if r.Verdict != reachability.Public || r.Probing == 0 && r.NextCheck.Before(time.Now().Add(time.Minute)) {
			t.Fatalf("row %+v: want public, next check minutes away", r)
		}
	}
	// The servers saw dial-backs: none of them connected to the client
	// with its own identity beyond the one connection the client made.
	for _, s := range servers {
		if n := len(s.Network().ConnsToPeer(c.ID())); n != 1 {
			t.Fatalf("server %s has %d connections to the client", s.ID(), n)
		}
	}
}

// TestAutoNATv1Server: an old client (AutoNAT v1) gets its address dialed
// back and confirmed; a host with NoAutoNAT serves neither version.
func TestAutoNATv1Server(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	listen := ListenAddrStrings("/ip4/127.0.0.1/tcp/0")
	s := testHost(t, listen, loopbackPublic, Transports(TCP))
	off := testHost(t, listen, NoAutoNAT(), Transports(TCP))
	c := testHost(t, listen, NoAutoNAT(), Transports(TCP))
	for _, h := range []*Host{s, off} {
		if err := c.Connect(ctx, peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := c.NewStream(network.WithEagerNegotiation(ctx), s.ID(), autonatv1.ID)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := autonatv1.Check(ctx, st, c.ID(), c.listenAddrs())
	if err != nil || !slices.ContainsFunc(c.listenAddrs(), addr.Equal) {
		t.Fatalf("v1 check: %v, %v", addr, err)
	}
	for _, id := range []string{string(autonatv1.ID), string(autonatv2.DialRequestID)} {
		if _, err := c.NewStream(network.WithEagerNegotiation(ctx), off.ID(), protocol.ID(id)); err == nil {
			t.Fatalf("a host with NoAutoNAT serves %s", id)
		}
	}
	// Without AutoNAT, addresses are advertised as configured.
	if adv := off.AdvertisedAddrs(); len(adv) != 0 {
		// loopback is not public without PublicPrefixes
		t.Fatalf("advertised to the Internet: %v", adv)
	}
	if adv := off.advertisedTo(ma.StringCast("/ip4/127.0.0.1/tcp/1")); len(adv) == 0 {
		t.Fatal("nothing advertised to a peer on the same machine")
	}
}

// TestCandidatesFromObservedIP: an outside address observed on one
// listener makes the same outside IP a candidate on the others (NATs keep
// ports): a node that reached its peers over TCP only still gets its QUIC
// address checked.
func TestCandidatesFromObservedIP(t *testing.T) {
	h := testHost(t, ListenAddrStrings("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"), Transports(TCP, QUIC),
		AutoNAT(AutoNATConfig{ObservedAddrs: obsaddr.Config{ActivationThreshold: 2}}))
	var tcpL, quicL ma.Multiaddr
	for _, a := range h.listenAddrs() {
		if _, err := a.ValueForProtocol(ma.P_QUIC_V1); err == nil {
			quicL = a
		} else {
			tcpL = a
		}
	}
	tcpPort, _ := tcpL.ValueForProtocol(ma.P_TCP)
	quicPort, _ := quicL.ValueForProtocol(ma.P_UDP)
	observed := ma.StringCast("/ip4/11.1.1.9/tcp/" + tcpPort)
	for i, observer := range []string{"/ip4/198.51.1.1/tcp/4001", "/ip4/198.51.2.1/tcp/4001"} {
		if err := h.an.obs.Record(obsaddr.Observation{
			Local: tcpL, Observed: observed, Observer: ma.StringCast(observer),
			Peer: peer.ID(fmt.Sprint("observer", i)), ConnID: uint64(1000 + i), Dir: network.DirOutbound,
		}); err != nil {
			t.Fatal(err)
		}
	}
	got := h.candidates()
	want := []string{"/ip4/11.1.1.9/tcp/" + tcpPort, "/ip4/11.1.1.9/udp/" + quicPort + "/quic-v1"}
	check := func(got []ma.Multiaddr, want []string) {
		t.Helper()
		var gs []string
		for _, a := range got {
			gs = append(gs, a.String())
		}
		if !slices.Equal(gs, want) {
			t.Fatalf("candidates %v, want %v", gs, want)
		}
	}
	check(got, want)

	// The NAT moved: the connections that saw 11.1.1.9 closed (their
	// observations linger), two open ones see 11.1.1.10, one per socket
	// (too few for the TCP socket to drop its old endpoint itself). Only
	// the new IP is a candidate: the old one would stay advertised until
	// dial-backs to it timed out.
	for i := range 2 {
		h.an.obs.ConnClosed(uint64(1000 + i))
	}
	check(h.candidates(), want) // closed, but nothing else seen yet
	for i, o := range []struct {
		local    ma.Multiaddr
		observed string
		observer string
	}{
		{tcpL, "/ip4/11.1.1.10/tcp/" + tcpPort, "/ip4/198.51.3.1/tcp/4001"},
		{quicL, "/ip4/11.1.1.10/udp/" + quicPort + "/quic-v1", "/ip4/198.51.4.1/udp/4001/quic-v1"},
	} {
		if err := h.an.obs.Record(obsaddr.Observation{
			Local: o.local, Observed: ma.StringCast(o.observed), Observer: ma.StringCast(o.observer),
			Peer: peer.ID(fmt.Sprint("observer", 10+i)), ConnID: uint64(1010 + i), Dir: network.DirOutbound,
		}); err != nil {
			t.Fatal(err)
		}
	}
	check(h.candidates(), []string{"/ip4/11.1.1.10/tcp/" + tcpPort, "/ip4/11.1.1.10/udp/" + quicPort + "/quic-v1"})

	// One observer per socket, two in all: no socket has enough, the IP
	// has, so both listeners get their guess.
	h2 := testHost(t, ListenAddrStrings("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"), Transports(TCP, QUIC),
		AutoNAT(AutoNATConfig{ObservedAddrs: obsaddr.Config{ActivationThreshold: 2}}))
	var t2, q2 ma.Multiaddr
	for _, a := range h2.listenAddrs() {
		if _, err := a.ValueForProtocol(ma.P_QUIC_V1); err == nil {
			q2 = a
		} else {
			t2 = a
		}
	}
	tp2, _ := t2.ValueForProtocol(ma.P_TCP)
	qp2, _ := q2.ValueForProtocol(ma.P_UDP)
	for i, o := range []struct{ local, observed, observer string }{
		{t2.String(), "/ip4/11.1.1.9/tcp/" + tp2, "/ip4/198.51.1.1/tcp/4001"},
		{q2.String(), "/ip4/11.1.1.9/udp/" + qp2 + "/quic-v1", "/ip4/198.51.2.1/udp/4001/quic-v1"},
	} {
		if err := h2.an.obs.Record(obsaddr.Observation{
			Local: ma.StringCast(o.local), Observed: ma.StringCast(o.observed), Observer: ma.StringCast(o.observer),
			Peer: peer.ID(fmt.Sprint("observer", i)), ConnID: uint64(2000 + i), Dir: network.DirOutbound,
		}); err != nil {
			t.Fatal(err)
		}
	}
	check(h2.candidates(), []string{"/ip4/11.1.1.9/tcp/" + tp2, "/ip4/11.1.1.9/udp/" + qp2 + "/quic-v1"})
}

// TestOutsideChanged: re-checking every address is for an outside address
// that changed, not for the first one heard of in a family or transport
// (a dual-stack node learns its IPv4 and IPv6 addresses at different
// times; a re-check then repeats the probes in flight).
func TestOutsideChanged(t *testing.T) {
	const (
		v4tcp  = "/ip4/11.0.0.2/tcp/4001"
		v4tcp2 = "/ip4/11.0.0.3/tcp/4001"
		v4quic = "/ip4/11.0.0.2/udp/4001/quic-v1"
		v6tcp  = "/ip6/2a0c::2/tcp/4001"
		wt1    = "/ip4/11.0.0.2/udp/4002/quic-v1/webtransport/certhash/uEiDDq4_xNyDorZBH3TlGazyJdOWSwvo4PUo5YHFMrvDE8g"
		wt2    = "/ip4/11.0.0.2/udp/4002/quic-v1/webtransport/certhash/uEiAkH5a4DPGKUuOBjYw0CgwjvYHg2XK1RXx46x0Bhu2XZQ"
	)
	rounds := []struct {
		name    string
		now     []string
		changed bool
	}{
		{"nothing yet", nil, false},
		{"first IPv6 address", []string{v6tcp}, false},
		{"first IPv4 address", []string{v6tcp, v4tcp}, false},
		{"first QUIC address", []string{v6tcp, v4tcp, v4quic}, false},
		{"same", []string{v6tcp, v4tcp, v4quic}, false},
		{"first WebTransport address", []string{v6tcp, v4tcp, v4quic, wt1}, false},
		{"certificate hash rotated", []string{v6tcp, v4tcp, v4quic, wt2}, false},
		{"one expired", []string{v6tcp, v4quic, wt2}, false},
		{"new outside IPv4", []string{v6tcp, v4tcp2, v4quic, wt2}, true},
		{"all expired", nil, false},
		{"back to the old IPv4", []string{v4tcp}, true},
	}
	seen := map[string]bool{}
	var before []ma.Multiaddr
	for _, r := range rounds {
		var now []ma.Multiaddr
		for _, s := range r.now {
			now = append(now, ma.StringCast(s))
		}
		if got := outsideChanged(seen, before, now); got != r.changed {
			t.Errorf("%s: changed = %v, want %v", r.name, got, r.changed)
		}
		before = now
	}
}
