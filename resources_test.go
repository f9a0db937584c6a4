package tachyon

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	gaterlist "github.com/tachyon-p2p/tachyon/gater"
	"github.com/tachyon-p2p/tachyon/internal/logs/logtest"
	"github.com/tachyon-p2p/tachyon/limits"
)

// TestLimitsRefuseAndExplain: with one connection allowed on every
// transport, a second peer's connection is refused after its handshake and
// the log names the limit, its use and the option that raises it; the
// stream rate of a protocol likewise, on the stream.
func TestLimitsRefuseAndExplain(t *testing.T) {
	for _, tr := range []struct {
		id     TransportID
		listen string
	}{
		{TCP, "/ip4/127.0.0.1/tcp/0"},
		{WebSocket, "/ip4/127.0.0.1/tcp/0/ws"},
		{QUIC, "/ip4/127.0.0.1/udp/0/quic-v1"},
		{WebTransport, "/ip4/127.0.0.1/udp/0/quic-v1/webtransport"},
		{WebRTCDirect, "/ip4/127.0.0.1/udp/0/webrtc-direct"},
	} {
		t.Run(string(tr.id), func(t *testing.T) {
			log, logs := logtest.New()
			a := testHost(t, Transports(tr.id), ListenAddrs(mustAddr(t, tr.listen)), Logger(log),
				Limits(limits.Config{ConnsInbound: 1}))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			b1 := testHost(t, Transports(tr.id))
			if err := b1.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: a.Addrs()}); err != nil {
				t.Fatal(err)
			}
			if _, err := b1.IdentifyWait(ctx, a.ID()); err != nil {
				t.Fatal(err)
			}
			b2 := testHost(t, Transports(tr.id))
			b2.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: a.Addrs()}) // may succeed before a refuses
			logs.WaitLine(t, 10*time.Second, "resource limit reached", `limit="inbound connections"`, "in_use=1", "raise=limits.Config.ConnsInbound")
			if _, err := b2.IdentifyWait(ctx, a.ID()); err == nil {
				t.Fatal("the refused peer was identified")
			}
			if a.Connectedness(b2.ID()) == network.Connected {
				t.Fatal("a lists the refused peer")
			}
			if st := a.Limits().Stat(); st.Conns != 1 {
				t.Fatalf("limits count %d connections, want 1", st.Conns)
			}
		})
	}
}

func TestLimitsStreamRate(t *testing.T) {
	log, logs := logtest.New()
	a := testHost(t, Transports(TCP), ListenAddrs(mustAddr(t, "/ip4/127.0.0.1/tcp/0")), Logger(log),
		Limits(limits.Config{ProtocolRates: map[protocol.ID]limits.Rate{echoID: {PerSecond: 0.001, Burst: 1}}}))
	a.SetStreamHandler(echoID, echo)
	b := testHost(t, Transports(TCP))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b.Peerstore().AddAddrs(a.ID(), a.Addrs(), time.Hour)
	if err := echoOnce(ctx, b, a.ID(), 10); err != nil {
		t.Fatalf("first stream: %v", err)
	}
	err := echoOnce(ctx, b, a.ID(), 10)
	if !errors.Is(err, network.ErrReset) && !errors.Is(err, io.EOF) {
		t.Fatalf("second stream within the rate: %v, want a reset", err)
	}
	logs.WaitLine(t, 10*time.Second, "inbound stream refused", "limit reached: inbound stream rate", "raise limits.Config.ProtocolRates")
}

// TestGaterRefusesBeforeHandshake: an address the gater denies is closed
// before any handshake work (the limits never see a connection).
func TestGaterRefusesBeforeHandshake(t *testing.T) {
	var l gaterlist.List
	l.DenySubnet(netip.MustParsePrefix("127.0.0.0/8"))
	a := testHost(t, Transports(TCP, QUIC), ConnectionGater(&l),
		ListenAddrs(mustAddr(t, "/ip4/127.0.0.1/tcp/0"), mustAddr(t, "/ip4/127.0.0.1/udp/0/quic-v1")))
	for _, addr := range a.Addrs() {
		b := testHost(t, Transports(TCP, QUIC))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := b.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: []ma.Multiaddr{addr}})
		cancel()
		if err == nil {
			t.Errorf("%s: connected through a gater that denies 127/8", addr)
		}
	}
	if st := a.Limits().Stat(); st.Conns != 0 || st.Handshakes != 0 {
		t.Fatalf("limits saw %+v", st)
	}
}
