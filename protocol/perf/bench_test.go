package perf_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/protocol/perf"
)

// BenchmarkTCP moves b.N chunks of 1 MiB over loopback TCP between two
// hosts, up or down, with each security protocol. -cpuprofile shows how
// much of the time perf itself takes.
func BenchmarkTCP(b *testing.B) {
	for _, sec := range []protocol.ID{tachyon.Noise, tachyon.TLS} {
		for _, dir := range []string{"upload", "download"} {
			b.Run(fmt.Sprintf("%s/%s", sec, dir), func(b *testing.B) {
				server, err := tachyon.New(tachyon.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), tachyon.Security(sec))
				if err != nil {
					b.Fatal(err)
				}
				defer server.Close()
				server.SetStreamHandler(perf.ID, perf.Handle)
				client, err := tachyon.New(tachyon.Security(sec))
				if err != nil {
					b.Fatal(err)
				}
				defer client.Close()
				ctx := context.Background()
				if err := client.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}); err != nil {
					b.Fatal(err)
				}
				s, err := client.NewStream(ctx, server.ID(), perf.ID)
				if err != nil {
					b.Fatal(err)
				}
				size := uint64(b.N) << 20
				b.SetBytes(1 << 20)
				b.ResetTimer()
				up, down := size, uint64(0)
				if dir == "download" {
					up, down = 0, size
				}
				if _, err := perf.Run(ctx, s, up, down, nil); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}
