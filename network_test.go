package tachyon

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

func TestNetworkView(t *testing.T) {
	for _, tr := range []struct{ name, listen string }{
		{"tcp", "/ip4/127.0.0.1/tcp/0"},
		{"quic-v1", "/ip4/127.0.0.1/udp/0/quic-v1"},
	} {
		t.Run(tr.name, func(t *testing.T) {
			leakcheck.Check(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			server := testHost(t, ListenAddrStrings(tr.listen))
			client := testHost(t)
			if got := client.Network().Connectedness(server.ID()); got != network.NotConnected {
				t.Fatalf("before: %v", got)
			}
			if err := client.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}); err != nil {
				t.Fatal(err)
			}
			if got := client.Network().Connectedness(server.ID()); got != network.Connected {
				t.Fatalf("after Connect: %v", got)
			}
			if !slices.Equal(client.Peers(), []peer.ID{server.ID()}) || !slices.Equal(client.Network().Peers(), client.Peers()) {
				t.Fatalf("peers %v", client.Peers())
			}
			// The listener registers the connection no later than its end of
			// the handshake; Connect may return a little earlier.
			waitFor(t, 5*time.Second, func() bool { return server.Network().Connectedness(client.ID()) == network.Connected })
			cs := client.Network().Conns()
			if len(cs) != 1 {
				t.Fatalf("%d conns", len(cs))
			}
			c := cs[0]
			if c.RemotePeer() != server.ID() || c.LocalPeer() != client.ID() || c.Direction() != network.DirOutbound ||
				c.RemoteMultiaddr() == nil || c.LocalMultiaddr() == nil || c.ConnState().Transport != tr.name ||
				c.RemotePublicKey() == nil || c.Opened().IsZero() || c.IsClosed() {
				t.Fatalf("conn %v %v %v %v %+v", c.RemotePeer(), c.Direction(), c.RemoteMultiaddr(), c.LocalMultiaddr(), c.ConnState())
			}
			sc := server.Network().ConnsToPeer(client.ID())
			if len(sc) != 1 || sc[0].Direction() != network.DirInbound || sc[0].RemoteMultiaddr() == nil {
				t.Fatalf("server side %v", sc)
			}
			if la := server.Network().ListenAddresses(); len(la) != 1 {
				t.Fatalf("listen addresses %v", la)
			}
			if err := client.ClosePeer(server.ID()); err != nil {
				t.Fatal(err)
			}
			if !c.IsClosed() || client.Network().Connectedness(server.ID()) != network.NotConnected {
				t.Fatal("still connected after ClosePeer")
			}
			waitFor(t, 5*time.Second, func() bool { return len(server.Network().ConnsToPeer(client.ID())) == 0 })
		})
	}
}

// TestIdentifyWaitMeansBothSidesRegistered checks what Connect documents:
// after IdentifyWait, the listener lists the connection, even when many
// handshakes compete for its CPU.
func TestIdentifyWaitMeansBothSidesRegistered(t *testing.T) {
	for _, tr := range oneAddrPerTransport[:3] { // tcp, websocket, quic
		t.Run(tr.name, func(t *testing.T) {
			leakcheck.Check(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			server := testHost(t, ListenAddrStrings(tr.listen))
			const n = 16
			errs := make(chan error, n)
			for range n {
				go func() {
					client, err := New()
					if err != nil {
						errs <- err
						return
					}
					defer client.Close()
					client.Peerstore().AddAddrs(server.ID(), server.Addrs(), time.Minute)
					if _, err := client.IdentifyWait(ctx, server.ID()); err != nil {
						errs <- err
						return
					}
					if server.Network().Connectedness(client.ID()) != network.Connected {
						errs <- fmt.Errorf("server does not list %s after IdentifyWait", client.ID())
						return
					}
					errs <- nil
				}()
			}
			for range n {
				if err := <-errs; err != nil {
					t.Error(err)
				}
			}
		})
	}
}
