package quic_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/transport/udpmux"
	tt "github.com/tachyon-p2p/tachyon/transport/udpmux/transporttest"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkConnect is QUIC connection setup over loopback: dial, accept
// (both handshakes, the libp2p certificate checks included), then close.
// Both ends live in this process, so cpu-ms/conn is both ends together.
func BenchmarkConnect(b *testing.B) {
	a, pa := newPeer(b, udpmux.New(nil))
	d, _ := newPeer(b, udpmux.New(nil))
	la := tt.Listen(b, a, "/ip4/127.0.0.1/udp/0/quic-v1")
	defer la.Close()
	// The dials leave from a listening socket, kept for the whole run.
	ld := tt.Listen(b, d, "/ip4/127.0.0.1/udp/0/quic-v1")
	defer ld.Close()
	raddr := la.Multiaddrs()[0]
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuTime()
	for range b.N {
		dc, err := d.Dial(ctx, raddr, pa.ID)
		if err != nil {
			b.Fatal(err)
		}
		ac, err := la.Accept()
		if err != nil {
			b.Fatal(err)
		}
		dc.Close()
		ac.Close()
	}
	b.ReportMetric(float64(cpuTime()-start)/float64(time.Millisecond)/float64(b.N), "cpu-ms/conn")
}
