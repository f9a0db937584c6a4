package tachyon

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/peer"
	tt "github.com/tachyon-p2p/tachyon/transport/udpmux/transporttest"
)

// A node restarted on the same address with the same identity resets the
// QUIC connections its former self had (its sockets' stateless reset keys
// come from the identity key and their addresses): the peer's connection
// ends on its next packet, not at its 30 s idle timeout.
func TestQUICRestartedPeerResets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	key, _, err := crypto.GenerateKeyPair(crypto.Ed25519, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	udpAddr := func(h *Host) netip.AddrPort {
		t.Helper()
		for _, a := range h.Addrs() {
			if port, err := a.ValueForProtocol(ma.P_UDP); err == nil {
				return netip.MustParseAddrPort("127.0.0.1:" + port)
			}
		}
		t.Fatalf("no UDP address in %v", h.Addrs())
		return netip.AddrPort{}
	}
	const listen = "/ip4/127.0.0.1/udp/0/quic-v1"
	former := testHost(t, Identity(key), ListenAddrStrings(listen), Transports(QUIC))
	proxy := tt.NewUDPProxy(t, udpAddr(former))
	client := testHost(t, Transports(QUIC))
	via := ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", proxy.Addr().Port()))
	if err := client.Connect(ctx, peer.AddrInfo{ID: former.ID(), Addrs: []ma.Multiaddr{via}}); err != nil {
		t.Fatal(err)
	}
	conns := client.Network().ConnsToPeer(former.ID())
	if len(conns) != 1 {
		t.Fatalf("%d connections, want 1", len(conns))
	}
	c := conns[0]

	// The former node goes, its goodbyes lost; the restarted one binds
	// the same address.
	proxy.SetTarget(netip.AddrPort{})
	addr := udpAddr(former)
	former.Close()
	var restarted *Host
	for deadline := time.Now().Add(5 * time.Second); ; {
		h, err := New(Identity(key), ListenAddrStrings(fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", addr.Port())), Transports(QUIC))
		if err == nil {
			restarted = h
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarting on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer restarted.Close()
	proxy.SetTarget(addr)

	// The client's next packets (a stream and its first bytes) reach a
	// node that has no such connection.
	if s, err := client.NewStream(ctx, former.ID(), echoID); err == nil {
		s.Write([]byte("hello"))
		defer s.Reset()
	}
	deadline := time.Now().Add(10 * time.Second)
	for !c.IsClosed() {
		if time.Now().After(deadline) {
			t.Fatal("the connection to the former node is still open: no stateless reset from the restarted one")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
