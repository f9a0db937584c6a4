package tachyon_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/event"
	"github.com/tachyon-p2p/tachyon/mss"
)

// Two hosts on loopback TCP: one serves an echo protocol, the other opens a
// stream to it.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	const echoID protocol.ID = "/example/echo/1.0.0"
	server, err := tachyon.New(tachyon.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		log.Fatal(err)
	}
	defer server.Close()
	server.SetStreamHandler(echoID, func(s network.Stream) {
		io.Copy(s, s) // the stream is closed when the handler returns
	})

	client, err := tachyon.New()
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	if err := client.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}); err != nil {
		log.Fatal(err)
	}
	s, err := client.NewStream(ctx, server.ID(), echoID)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	s.Write([]byte("hello"))
	s.CloseWrite() // the server's io.Copy ends at our EOF
	reply, err := io.ReadAll(s)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", reply)
	// Output: hello
}

// Connecting to a peer given as a multiaddr string ending in /p2p/<id>, as
// "tachyon node" prints them.
func Example_dialMultiaddrString() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	server, err := tachyon.New(tachyon.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"))
	if err != nil {
		log.Fatal(err)
	}
	defer server.Close()
	addr := server.FullAddrs()[0].String() // such as /ip4/127.0.0.1/udp/4001/quic-v1/p2p/12D3Koo...

	client, err := tachyon.New(tachyon.Transports(tachyon.QUIC))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	a, err := ma.NewMultiaddr(addr)
	if err != nil {
		log.Fatal(err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(a)
	if err != nil {
		log.Fatal(err)
	}
	if err := client.Connect(ctx, *ai); err != nil {
		log.Fatal(err)
	}
	c := client.Network().ConnsToPeer(ai.ID)[0]
	fmt.Println(client.Network().Connectedness(ai.ID), "over", c.ConnState().Transport)
	// Output: connected over quic-v1
}

// Subscribing to the host's events: here, what identify learnt about a peer
// and when the last connection to it went away.
func Example_events() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	server, err := tachyon.New(tachyon.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), tachyon.UserAgent("example-server/1.0"))
	if err != nil {
		log.Fatal(err)
	}
	defer server.Close()
	client, err := tachyon.New()
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	// Subscribe before acting, so nothing is missed; a subscriber that
	// falls more than 8 events behind misses events, it never slows the host.
	identified := event.Subscribe[event.EvtPeerIdentified](client.EventBus(), 8)
	defer identified.Close()
	connectedness := event.Subscribe[event.EvtPeerConnectedness](client.EventBus(), 8)
	defer connectedness.Close()

	if err := client.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}); err != nil {
		log.Fatal(err)
	}
	e := <-identified.Out()
	fmt.Println("identified:", e.AgentVersion, e.Peer == server.ID())
	fmt.Println("connected:", (<-connectedness.Out()).Connected)
	client.ClosePeer(server.ID())
	fmt.Println("connected:", (<-connectedness.Out()).Connected)
	// Output:
	// identified: example-server/1.0 true
	// connected: true
	// connected: false
}

// A server that speaks two versions of a protocol, and a client that asks
// for the newest it knows first: the stream tells which one was agreed.
func ExampleHost_SetStreamHandler() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	server, err := tachyon.New(tachyon.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		log.Fatal(err)
	}
	defer server.Close()
	greet := func(s network.Stream) {
		// The handler learns the protocol and the connection of the stream.
		fmt.Fprintf(s, "%s from %s", s.Protocol(), s.Conn().ConnState().Transport)
	}
	server.SetStreamHandler("/example/greet/1.0.0", greet)
	server.SetStreamHandler("/example/greet/1.1.0", greet)

	client, err := tachyon.New()
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	client.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()})
	s, err := client.NewStream(ctx, server.ID(), "/example/greet/2.0.0", "/example/greet/1.1.0", "/example/greet/1.0.0")
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	reply, _ := io.ReadAll(s)
	fmt.Println(s.Protocol())
	fmt.Println(string(reply))
	// Output:
	// /example/greet/1.1.0
	// /example/greet/1.1.0 from tcp
}

// NewStream with one protocol normally negotiates it with the first write,
// so a protocol the peer lacks fails the first Read. A context from
// network.WithEagerNegotiation makes NewStream itself fail instead.
func ExampleHost_NewStream_eagerNegotiation() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	server, err := tachyon.New(tachyon.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		log.Fatal(err)
	}
	defer server.Close()
	client, err := tachyon.New()
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	client.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()})

	_, err = client.NewStream(network.WithEagerNegotiation(ctx), server.ID(), "/example/missing/1.0.0")
	fmt.Println(errors.Is(err, mss.ErrNotSupported))
	// Output: true
}

// Bounding how long things take: DialTimeout caps every dial of the host
// (DefaultDialTimeout otherwise), and each call's context can cut it
// shorter. Here the peer accepts TCP connections but never answers.
func Example_timeouts() {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	key, err := crypto.GenerateEd25519Key(nil) // the silent peer's supposed identity
	if err != nil {
		log.Fatal(err)
	}
	someone, err := peer.IDFromPrivateKey(key)
	if err != nil {
		log.Fatal(err)
	}

	h, err := tachyon.New(tachyon.DialTimeout(5 * time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	port := silent.Addr().(*net.TCPAddr).Port
	err = h.Connect(ctx, peer.AddrInfo{
		ID:    someone,
		Addrs: []ma.Multiaddr{ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port))},
	})
	fmt.Println(errors.Is(err, context.DeadlineExceeded))
	// Output: true
}

// A host with only the transports it needs: here TCP and QUIC, no
// WebSocket, WebTransport or WebRTC (and no WebRTC certificate).
func ExampleTransports() {
	h, err := tachyon.New(
		tachyon.Transports(tachyon.TCP, tachyon.QUIC),
		tachyon.ListenAddrStrings("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close()
	err = h.Network().Listen(ma.StringCast("/ip4/127.0.0.1/udp/0/webrtc-direct"))
	fmt.Println(len(h.Network().ListenAddresses()), err != nil)
	// Output: 2 true
}
