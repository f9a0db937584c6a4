package tachyon

import (
	"context"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// TestTransportSecurity: WebSocket set to Noise alone refuses a TLS-only
// dialer that TCP, on its default list, accepts.
func TestTransportSecurity(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	server := testHost(t, Transports(TCP, WebSocket), TransportSecurity(WebSocket, Noise),
		ListenAddrStrings("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0/ws"))
	var tcpAddr, wsAddr ma.Multiaddr
	for _, a := range server.Addrs() {
		switch {
		case len(a) == 2:
			tcpAddr = a
		case len(a) == 3 && a[2].Code() == ma.P_WS:
			wsAddr = a
		}
	}
	if tcpAddr == nil || wsAddr == nil {
		t.Fatalf("no plain TCP and /ws addresses in %v", server.Addrs())
	}
	for _, tc := range []struct {
		name string
		addr ma.Multiaddr
		sec  []Option
		ok   bool
	}{
		{"ws, TLS-only dialer", wsAddr, []Option{Security(TLS)}, false},
		{"ws, Noise dialer", wsAddr, []Option{Security(Noise)}, true},
		{"tcp, TLS-only dialer", tcpAddr, []Option{Security(TLS)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := testHost(t, append([]Option{Transports(TCP, WebSocket)}, tc.sec...)...)
			err := client.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: []ma.Multiaddr{tc.addr}})
			if (err == nil) != tc.ok {
				t.Fatalf("Connect over %s = %v, want success %v", tc.addr, err, tc.ok)
			}
		})
	}
	for _, tr := range []TransportID{QUIC, WebTransport, WebRTCDirect} {
		if _, err := New(TransportSecurity(tr, Noise)); err == nil {
			t.Errorf("TransportSecurity(%s) accepted", tr)
		}
	}
	if _, err := New(TransportSecurity(TCP)); err == nil {
		t.Error("TransportSecurity with no protocol accepted")
	}
}
