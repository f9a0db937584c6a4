package tachyon

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/protocol/relay"
	"github.com/tachyon-p2p/tachyon/swarm"
)

// syncLog collects log lines from several hosts.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var loopbackICE = WebRTCICEFilter(func(a netip.Addr) bool { return a.IsLoopback() && a.Is4() })

// TestWebRTCThroughRelay: B, reachable only through a relay, listens on
// /webrtc and advertises <relay>/p2p-circuit/webrtc; A dials that address:
// the signalling crosses the relay, the connection that comes up is direct,
// 1 MiB echoes over it, and the relayed connection is retired.
func TestWebRTCThroughRelay(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := testHost(t, ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), RelayService(relay.DefaultConfig()))
	relayAddrs, _ := peer.AddrInfo{ID: r.ID(), Addrs: r.Addrs()}.P2pAddrs()
	var logs syncLog
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", logs.String())
		}
	})
	b := testHost(t, ListenAddrStrings("/webrtc"), StaticRelays(relayAddrs[0]), ForceReachability(network.ReachabilityPrivate), loopbackICE,
		Logger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("host", "B")))
	a := testHost(t, loopbackICE, Logger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("host", "A")))
	b.SetStreamHandler(echoID, echo)

	var target ma.Multiaddr
	for target == nil {
		for _, addr := range b.Addrs() {
			if swarm.IsRelayAddr(addr) && addr[len(addr)-1].Code() == ma.P_WEBRTC {
				target = addr
			}
		}
		if target != nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no /webrtc address; B's addresses: %v", b.Addrs())
		case <-time.After(20 * time.Millisecond):
		}
	}
	for _, a := range b.Addrs() {
		if len(a) == 1 && a[0].Code() == ma.P_WEBRTC {
			t.Fatalf("the bare listen address /webrtc is among B's addresses: %v", b.Addrs())
		}
	}
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: []ma.Multiaddr{target}}); err != nil {
		t.Fatal(err)
	}
	var direct network.Conn
	for _, c := range a.Network().ConnsToPeer(b.ID()) {
		if c.ConnState().Transport == "webrtc" {
			direct = c
		}
	}
	if direct == nil || direct.ConnState().Limited || swarm.IsRelayAddr(direct.RemoteMultiaddr()) {
		t.Fatalf("no direct webrtc connection: %v", a.Network().ConnsToPeer(b.ID()))
	}
	s, err := a.NewStream(ctx, b.ID(), echoID)
	if err != nil {
		t.Fatal(err)
	}
	if s.Conn().ID() != direct.ID() {
		t.Fatalf("stream on %s, not the direct connection", s.Conn().RemoteMultiaddr())
	}
	msg := make([]byte, 1<<20)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	if err := echoRoundTrip(s, msg); err != nil {
		t.Fatal(err)
	}
	// The relayed connection goes once it has no streams.
	for {
		relayed := 0
		for _, c := range a.Network().ConnsToPeer(b.ID()) {
			if c.ConnState().Limited {
				relayed++
			}
		}
		if relayed == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("relayed connection still open: %v", a.Network().ConnsToPeer(b.ID()))
		case <-time.After(50 * time.Millisecond):
		}
	}
	if rs, _ := r.RelayStat(); rs.BytesRelayed > 16<<10 {
		t.Fatalf("the relay carried %d bytes: more than the signalling", rs.BytesRelayed)
	}
}
