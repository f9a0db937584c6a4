package tachyon_test

import (
	"context"
	"crypto/rand"
	"io"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/security/noise"
	"github.com/tachyon-p2p/tachyon/security/tls"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkConnection is the per-connection cost: a new TCP connection,
// the secure handshake, yamux, a 1-byte echo on a new stream and identify
// both ways, then close. Both hosts live in this process, so the
// cpu-ms/conn metric is both ends of a connection together.
//
// Each connection comes from a fresh client host, so that identify runs as
// it does between strangers. Clients are built in batches outside the
// clock and the CPU count, and the garbage of building them (certificates
// and keys for every transport, about 2 ms of CPU per host) is collected
// before the batch's connections start: otherwise the collector's
// background work on it lands in the count (about 0.3 ms per connection
// here), and the figure says more about host construction than about
// connections. Closing the batch is outside the count too.
func BenchmarkConnection(b *testing.B) {
	const batch = 100
	for _, sec := range []protocol.ID{tachyon.Noise, tachyon.TLS} {
		b.Run(string(sec), func(b *testing.B) {
			server, target := echoServer(b, sec)
			clients := make([]*tachyon.Host, 0, batch)
			inBatches(b, batch, func(n int) {
				clients = clients[:0]
				for range n {
					client, err := tachyon.New(tachyon.Security(sec))
					if err != nil {
						b.Fatal(err)
					}
					clients = append(clients, client)
				}
			}, func(i int) {
				connectEcho(b, clients[i], server, target)
			}, func() {
				for _, client := range clients {
					client.Close()
				}
			})
		})
	}
}

// inBatches runs b.N connections in batches of at most size and reports
// their CPU per connection (cpu-ms/conn): for each batch, prepare(n) builds
// what its n connections need, the garbage of building it is collected,
// and only connect(i), for i in 0..n-1, is timed and counted; release then
// frees the batch, outside the clock and the count.
func inBatches(b *testing.B, size int, prepare func(n int), connect func(i int), release func()) {
	b.ReportAllocs()
	b.ResetTimer()
	var cpu time.Duration
	for done := 0; done < b.N; {
		n := min(size, b.N-done)
		b.StopTimer()
		prepare(n)
		runtime.GC()
		b.StartTimer()
		start := cpuTime()
		for i := range n {
			connect(i)
		}
		cpu += cpuTime() - start
		b.StopTimer()
		release()
		b.StartTimer()
		done += n
	}
	b.ReportMetric(float64(cpu)/float64(time.Millisecond)/float64(b.N), "cpu-ms/conn")
}

// BenchmarkRedial is BenchmarkConnection for a peer that comes back: one
// client host connects to the same server again and again (each time a new
// TCP connection, handshake, echo and identify both ways, then close), so
// what each side kept of the other's handshake (Noise: the payload whose
// signature verified, on both sides; TLS: the server's certificate, on the
// dialer's) is used. The wait for the server to drop the closed connection
// is outside the count.
func BenchmarkRedial(b *testing.B) {
	for _, sec := range []protocol.ID{tachyon.Noise, tachyon.TLS} {
		b.Run(string(sec), func(b *testing.B) {
			server, target := echoServer(b, sec)
			client, err := tachyon.New(tachyon.Security(sec))
			if err != nil {
				b.Fatal(err)
			}
			defer client.Close()
			runtime.GC()
			b.ReportAllocs()
			b.ResetTimer()
			var cpu time.Duration
			for range b.N {
				start := cpuTime()
				connectEcho(b, client, server, target)
				cpu += cpuTime() - start
				b.StopTimer()
				deadline := time.Now().Add(5 * time.Second)
				for server.Network().Connectedness(client.ID()) == network.Connected {
					if time.Now().After(deadline) {
						b.Fatal("the server still holds the closed connection after 5 s")
					}
					time.Sleep(100 * time.Microsecond)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(cpu)/float64(time.Millisecond)/float64(b.N), "cpu-ms/conn")
		})
	}
}

const benchEcho protocol.ID = "/bench/echo"

// echoServer is the benchmarks' server: TCP on loopback, security sec, an
// echo handler for benchEcho; closed when b ends.
func echoServer(b *testing.B, sec protocol.ID) (*tachyon.Host, peer.AddrInfo) {
	server, err := tachyon.New(tachyon.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), tachyon.Security(sec))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { server.Close() })
	server.SetStreamHandler(benchEcho, func(s network.Stream) {
		io.Copy(s, s)
		s.Close()
	})
	return server, peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()[:1]}
}

// connectEcho is one connection of the benchmarks above: connect, echo a
// byte on a new stream, wait for identify at both ends (the server's
// identify of the client ends the connection's work), close.
func connectEcho(b *testing.B, client, server *tachyon.Host, target peer.AddrInfo) {
	ctx := context.Background()
	if err := client.Connect(ctx, target); err != nil {
		b.Fatal(err)
	}
	s, err := client.NewStream(ctx, server.ID(), benchEcho)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Write([]byte{1}); err != nil {
		b.Fatal(err)
	}
	var buf [1]byte
	if _, err := io.ReadFull(s, buf[:]); err != nil {
		b.Fatal(err)
	}
	s.Close()
	if _, err := client.IdentifyWait(ctx, server.ID()); err != nil {
		b.Fatal(err)
	}
	if _, err := server.IdentifyWait(ctx, client.ID()); err != nil {
		b.Fatal(err)
	}
	if err := client.Network().ClosePeer(server.ID()); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkConnectionFloor is BenchmarkConnection's floor: the same
// connections (TCP on loopback, a fresh client identity each, a 1-byte
// echo, close) over the secure channel alone, without multistream-select,
// yamux, identify or a host. BenchmarkConnection minus this is what the
// libp2p layers above the handshake cost per connection.
//
// The hosts variant also keeps a batch of idle hosts alive as
// BenchmarkConnection does (its client hosts): the collector's work per
// allocated byte follows the live heap (under its 4 MB minimum a cycle
// marks little), so without them the floor's garbage, mostly crypto/tls's,
// costs less than the same garbage in BenchmarkConnection.
func BenchmarkConnectionFloor(b *testing.B) {
	for _, hosts := range []bool{false, true} {
		name := "bare"
		if hosts {
			name = "hosts"
		}
		b.Run(name, func(b *testing.B) { benchConnectionFloor(b, hosts) })
	}
}

func benchConnectionFloor(b *testing.B, withHosts bool) {
	const batch = 100
	type secure interface {
		SecureInbound(context.Context, net.Conn, peer.ID) (network.SecureConn, error)
		SecureOutbound(context.Context, net.Conn, peer.ID) (network.SecureConn, error)
		LocalPeer() peer.ID
	}
	newSecure := func(sec protocol.ID) secure {
		key, _, err := crypto.GenerateKeyPair(crypto.Ed25519, 0, rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		var tr secure
		switch sec {
		case tachyon.Noise:
			tr, err = noise.New(key, nil)
		default:
			tr, err = tls.New(key, nil)
		}
		if err != nil {
			b.Fatal(err)
		}
		return tr
	}
	for _, sec := range []protocol.ID{tachyon.Noise, tachyon.TLS} {
		b.Run(string(sec), func(b *testing.B) {
			server := newSecure(sec)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			served := make(chan error, batch)
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go func() {
						sc, err := server.SecureInbound(context.Background(), c, "")
						if err != nil {
							c.Close()
							served <- err
							return
						}
						_, err = io.Copy(sc, sc)
						sc.Close()
						served <- err
					}()
				}
			}()
			clients := make([]secure, 0, batch)
			var idle []*tachyon.Host
			inBatches(b, batch, func(n int) {
				idle, clients = idle[:0], clients[:0]
				for range n {
					clients = append(clients, newSecure(sec))
					if withHosts {
						h, err := tachyon.New(tachyon.Security(sec))
						if err != nil {
							b.Fatal(err)
						}
						idle = append(idle, h)
					}
				}
			}, func(i int) {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				sc, err := clients[i].SecureOutbound(context.Background(), c, server.LocalPeer())
				if err != nil {
					b.Fatal(err)
				}
				var buf [1]byte
				if _, err := sc.Write(buf[:]); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(sc, buf[:]); err != nil {
					b.Fatal(err)
				}
				sc.Close()
				if err := <-served; err != nil {
					b.Fatal(err)
				}
			}, func() {
				for _, h := range idle {
					h.Close()
				}
			})
		})
	}
}
