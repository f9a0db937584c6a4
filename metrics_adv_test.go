package tachyon

import (
	"context"
	"net/netip"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// TestMetricsAdvertisedAddrs: tachyon_advertised_addresses follows what
// the host advertises, per transport, from the first update on (zeros
// before anything is advertised) and after the set changes.
func TestMetricsAdvertisedAddrs(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	count := func(addrs []ma.Multiaddr) map[string]float64 {
		n := map[string]float64{"tcp": 0, "quic-v1": 0}
		for _, a := range addrs {
			if _, err := a.ValueForProtocol(ma.P_QUIC_V1); err == nil {
				n["quic-v1"]++
			} else if _, err := a.ValueForProtocol(ma.P_TCP); err == nil {
				n["tcp"]++
			}
		}
		return n
	}

	reg := prometheus.NewRegistry()
	h := testHost(t, Transports(TCP, QUIC), PrometheusRegisterer(reg), NoAutoNAT(),
		ForceReachability(network.ReachabilityPublic), PublicPrefixes(netip.MustParsePrefix("127.0.0.0/8")))
	for l, v := range count(h.AdvertisedAddrs()) {
		if v != 0 {
			t.Fatalf("a host that listens nowhere advertises %v %s addresses", v, l)
		}
		waitValue(t, reg, "tachyon_advertised_addresses", map[string]string{"transport": l}, 0)
	}
	if err := h.Network().Listen(ma.StringCast("/ip4/127.0.0.1/tcp/0"), ma.StringCast("/ip4/127.0.0.1/udp/0/quic-v1")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		want := count(h.AdvertisedAddrs())
		if want["tcp"] > 0 && want["quic-v1"] > 0 {
			for l, v := range want {
				waitValue(t, reg, "tachyon_advertised_addresses", map[string]string{"transport": l}, v)
			}
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("the host never advertised its TCP and QUIC listeners: %v", h.AdvertisedAddrs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
