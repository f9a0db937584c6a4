package tachyon

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/resolve"
)

// nameTable answers lookups from a map, as a DNS server would.
type nameTable map[string][]net.IPAddr

func (n nameTable) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	if a, ok := n[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func (nameTable) LookupTXT(_ context.Context, name string) ([]string, error) {
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

// TestResolverOption: a /dns4 address is dialed through the configured
// resolver.
func TestResolverOption(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	server := testHost(t, ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), Transports(TCP))
	names := nameTable{"node.tachyon.test": {{IP: net.IPv4(127, 0, 0, 1)}}}
	client := testHost(t, Transports(TCP), Resolver(&resolve.Resolver{Backend: names}))
	port, err := server.Addrs()[0].ValueForProtocol(ma.P_TCP)
	if err != nil {
		t.Fatal(err)
	}
	named := ma.StringCast("/dns4/node.tachyon.test/tcp/" + port)
	if err := client.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: []ma.Multiaddr{named}}); err != nil {
		t.Fatalf("dialing %s: %v", named, err)
	}
	unknown := ma.StringCast("/dns4/nowhere.tachyon.test/tcp/" + port)
	other := testHost(t, Transports(TCP), Resolver(&resolve.Resolver{Backend: names}))
	err = other.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: []ma.Multiaddr{unknown}})
	if err == nil || !strings.Contains(err.Error(), "nowhere.tachyon.test") {
		t.Fatalf("dialing an unknown name: %v, want an error naming it", err)
	}
}
