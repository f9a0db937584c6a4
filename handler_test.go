package tachyon

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// oneAddrPerTransport lists a loopback listen address for every transport.
var oneAddrPerTransport = []struct {
	name, listen string
}{
	{"tcp", "/ip4/127.0.0.1/tcp/0"},
	{"websocket", "/ip4/127.0.0.1/tcp/0/ws"},
	{"quic", "/ip4/127.0.0.1/udp/0/quic-v1"},
	{"webtransport", "/ip4/127.0.0.1/udp/0/quic-v1/webtransport"},
	{"webrtc-direct", "/ip4/127.0.0.1/udp/0/webrtc-direct"},
}

// TestHandlerReturnClosesStream checks, on every transport, that a handler
// returning without closing its stream does not leave the dialer waiting:
// the dialer reads what was written, then EOF, and the listener's stream
// count drops back.
func TestHandlerReturnClosesStream(t *testing.T) {
	const proto protocol.ID = "/tachyon-test/leave-open/1.0.0"
	handlers := []struct {
		name    string
		handler StreamHandler
		want    string
	}{
		{"writes and returns", func(s network.Stream) { s.Write([]byte("hi")) }, "hi"},
		{"returns at once", func(network.Stream) {}, ""},
		{"closes write and returns", func(s network.Stream) { s.Write([]byte("bye")); s.CloseWrite() }, "bye"},
	}
	for _, tr := range oneAddrPerTransport {
		t.Run(tr.name, func(t *testing.T) {
			leakcheck.Check(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			server := testHost(t, ListenAddrStrings(tr.listen))
			client := testHost(t)
			if err := client.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}); err != nil {
				t.Fatal(err)
			}
			if _, err := client.IdentifyWait(ctx, server.ID()); err != nil {
				t.Fatal(err)
			}
			if _, err := server.IdentifyWait(ctx, client.ID()); err != nil {
				t.Fatal(err)
			}
			for _, hc := range handlers {
				t.Run(hc.name, func(t *testing.T) {
					returned := make(chan struct{})
					var connPeer peer.ID
					server.SetStreamHandler(proto, func(s network.Stream) {
						defer close(returned)
						connPeer = s.Conn().RemotePeer()
						hc.handler(s)
					})
					defer server.RemoveStreamHandler(proto)
					s, err := client.NewStream(ctx, server.ID(), proto)
					if err != nil {
						t.Fatal(err)
					}
					defer s.Close()
					s.SetDeadline(time.Now().Add(10 * time.Second))
					// Some transports show a stream to the peer only once
					// something is sent on it. The handler may have returned
					// already, and a closed stream stops reading: the write
					// may see a reset, the read must still see the data.
					if _, err := s.Write([]byte("x")); err != nil && !errors.Is(err, network.ErrReset) {
						t.Fatal(err)
					}
					got, err := io.ReadAll(s)
					if err != nil && !errors.Is(err, network.ErrReset) {
						t.Fatalf("read: %v (got %q)", err, got)
					}
					if err == nil && string(got) != hc.want {
						t.Fatalf("read %q, want %q", got, hc.want)
					}
					select {
					case <-returned:
					case <-ctx.Done():
						t.Fatal("handler never ran")
					}
					if connPeer != client.ID() || s.Conn().RemotePeer() != server.ID() || s.Conn().ConnState().Transport == "" {
						t.Fatalf("stream connections: inbound from %s, outbound to %s", connPeer, s.Conn().RemotePeer())
					}
					waitFor(t, 5*time.Second, func() bool { return streamsTo(server, client.ID()) == 0 })
					s.Close()
					waitFor(t, 5*time.Second, func() bool { return streamsTo(client, server.ID()) == 0 })
				})
			}
		})
	}
}

// streamsTo counts the open streams on h's connections to p.
func streamsTo(h *Host, p peer.ID) int {
	n := 0
	for _, c := range h.Network().ConnsToPeer(p) {
		n += c.NumStreams()
	}
	return n
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v", d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
