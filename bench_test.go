package tachyon_test

import (
	"context"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkConnection is issue 4's per-connection cost: a new TCP
// connection, the secure handshake, yamux, a 1-byte echo on a new stream
// and identify both ways, then close. Both hosts live in this process, so
// the cpu-ms/conn metric is both ends of a connection together.
func BenchmarkConnection(b *testing.B) {
	const echo protocol.ID = "/bench/echo"
	for _, sec := range []protocol.ID{tachyon.Noise, tachyon.TLS} {
		b.Run(string(sec), func(b *testing.B) {
			server, err := tachyon.New(tachyon.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), tachyon.Security(sec))
			if err != nil {
				b.Fatal(err)
			}
			defer server.Close()
			server.SetStreamHandler(echo, func(s network.Stream) {
				io.Copy(s, s)
				s.Close()
			})
			target := peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()[:1]}
			ctx := context.Background()
			buf := make([]byte, 1)
			b.ReportAllocs()
			b.ResetTimer()
			var cpu time.Duration
			for range b.N {
				// A fresh client each time, so that identify runs on every
				// connection as it does between strangers; building and
				// closing the host is outside the clock and the CPU count.
				b.StopTimer()
				client, err := tachyon.New(tachyon.Security(sec))
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				start := cpuTime()
				if err := client.Connect(ctx, target); err != nil {
					b.Fatal(err)
				}
				s, err := client.NewStream(ctx, server.ID(), echo)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := s.Write([]byte{1}); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(s, buf); err != nil {
					b.Fatal(err)
				}
				s.Close()
				if _, err := client.IdentifyWait(ctx, server.ID()); err != nil {
					b.Fatal(err)
				}
				// The server's identify of the client ends the connection's work.
				if _, err := server.IdentifyWait(ctx, client.ID()); err != nil {
					b.Fatal(err)
				}
				if err := client.Network().ClosePeer(server.ID()); err != nil {
					b.Fatal(err)
				}
				cpu += cpuTime() - start
				b.StopTimer()
				client.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(cpu)/float64(time.Millisecond)/float64(b.N), "cpu-ms/conn")
		})
	}
}
