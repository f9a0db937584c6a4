package tachyon

import (
	"context"
	"slices"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/event"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/protocol/identify"
)

// next returns the next event of type T from sub, skipping others.
func next[T any](t *testing.T, sub *event.Subscription) T {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e, ok := <-sub.Out():
			if !ok {
				t.Fatalf("subscription closed waiting for %T", *new(T))
			}
			if v, ok := e.(T); ok {
				return v
			}
		case <-timeout:
			var zero T
			t.Fatalf("no %T within 10 s", zero)
			return zero
		}
	}
}

func TestHostEvents(t *testing.T) {
	for _, tr := range []struct{ name, listen string }{
		{"tcp", "/ip4/127.0.0.1/tcp/0"},
		{"quic", "/ip4/127.0.0.1/udp/0/quic-v1"},
	} {
		t.Run(tr.name, func(t *testing.T) {
			leakcheck.Check(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			server := testHost(t, ListenAddrStrings(tr.listen), UserAgent("server/1"))
			client := testHost(t, UserAgent("client/1"))
			subs := []*event.Subscription{server.EventBus().Subscribe(64), server.EventBus().Subscribe(64)}
			stuck := server.EventBus().Subscribe(1) // never read: must not hold anything up
			defer stuck.Close()
			clientSub := client.EventBus().Subscribe(64, event.EvtPeerIdentified{})
			defer clientSub.Close()

			if err := client.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}); err != nil {
				t.Fatal(err)
			}
			if e := next[event.EvtPeerIdentified](t, clientSub); e.Peer != server.ID() || e.AgentVersion != "server/1" ||
				!slices.Contains(e.Protocols, identify.ID) || len(e.ListenAddrs) == 0 || !e.SignedRecord {
				t.Fatalf("client: %+v", e)
			}
			for i, sub := range subs {
				opened := next[event.EvtConnOpened](t, sub)
				if opened.Conn.Peer != client.ID() || opened.Conn.Direction != network.DirInbound ||
					opened.Conn.RemoteAddr == nil || opened.Conn.State.Transport == "" {
					t.Fatalf("sub %d: opened %+v", i, opened)
				}
				if e := next[event.EvtPeerConnectedness](t, sub); e.Peer != client.ID() || !e.Connected {
					t.Fatalf("sub %d: %+v", i, e)
				}
				if e := next[event.EvtPeerIdentified](t, sub); e.Peer != client.ID() || e.AgentVersion != "client/1" {
					t.Fatalf("sub %d: %+v", i, e)
				}
			}

			// A new protocol on the client reaches the server by identify push.
			const proto protocol.ID = "/tachyon-test/new/1.0.0"
			localSub := event.Subscribe[event.EvtLocalProtocolsUpdated](client.EventBus(), 4)
			defer localSub.Close()
			client.SetStreamHandler(proto, func(network.Stream) {})
			if e := <-localSub.Out(); !slices.Equal(e.Added, []protocol.ID{proto}) {
				t.Fatalf("local protocols: %+v", e)
			}
			for i, sub := range subs {
				if e := next[event.EvtPeerProtocolsUpdated](t, sub); e.Peer != client.ID() || !slices.Equal(e.Added, []protocol.ID{proto}) || len(e.Removed) != 0 {
					t.Fatalf("sub %d: %+v", i, e)
				}
			}

			client.ClosePeer(server.ID())
			for i, sub := range subs {
				closed := next[event.EvtConnClosed](t, sub)
				if closed.Conn.Peer != client.ID() {
					t.Fatalf("sub %d: closed %+v", i, closed)
				}
				if e := next[event.EvtPeerConnectedness](t, sub); e.Peer != client.ID() || e.Connected {
					t.Fatalf("sub %d: %+v", i, e)
				}
			}
			if stuck.Dropped() == 0 {
				t.Fatal("the stuck subscriber dropped nothing")
			}
			server.Close()
			for _, sub := range subs {
				for range sub.Out() { // closed with the host
				}
			}
		})
	}
}

func TestLocalAddrsEvent(t *testing.T) {
	h := testHost(t)
	sub := event.Subscribe[event.EvtLocalAddrsUpdated](h.EventBus(), 4)
	defer sub.Close()
	if err := h.Network().Listen(mustAddr(t, "/ip4/127.0.0.1/tcp/0")); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-sub.Out():
		if len(e.Added) == 0 || len(e.Current) != len(h.Addrs()) || len(e.Removed) != 0 {
			t.Fatalf("%+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no EvtLocalAddrsUpdated")
	}
}

func mustAddr(t *testing.T, s string) ma.Multiaddr {
	t.Helper()
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
