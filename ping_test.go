package tachyon

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/protocol/ping"
)

// TestConcurrentPingsOneStream: concurrent Pings to one peer share one
// outbound stream (specs ping/ping.md: MUST NOT keep more than one), and
// the next Ping after a failed one opens a new stream.
func TestConcurrentPingsOneStream(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	server := testHost(t, ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	client := testHost(t)

	// An echoing listener that counts streams and answers slowly, so the
	// Pings below overlap; resetNext makes it reset its stream instead.
	var streams atomic.Int32
	var resetNext atomic.Bool
	server.SetStreamHandler(ping.ID, func(s network.Stream) {
		streams.Add(1)
		s.SetDeadline(time.Now().Add(20 * time.Second))
		buf := make([]byte, ping.Size)
		for {
			if _, err := io.ReadFull(s, buf); err != nil {
				s.Close()
				return
			}
			if resetNext.Swap(false) {
				s.Reset()
				return
			}
			time.Sleep(20 * time.Millisecond)
			if _, err := s.Write(buf); err != nil {
				s.Reset()
				return
			}
		}
	})
	if err := client.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}); err != nil {
		t.Fatal(err)
	}

	const pingers, count = 4, 3
	var wg sync.WaitGroup
	var answered atomic.Int32
	errs := make(chan error, pingers)
	for range pingers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- client.Ping(ctx, server.ID(), count, 0, 5*time.Second, func(_ int, rtt time.Duration) {
				if rtt < 20*time.Millisecond {
					t.Errorf("rtt %v shorter than the listener's delay", rtt)
				}
				answered.Add(1)
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := answered.Load(); n != pingers*count {
		t.Fatalf("%d pings answered, want %d", n, pingers*count)
	}
	if n := streams.Load(); n != 1 {
		t.Fatalf("%d concurrent Pings opened %d ping streams, want 1", pingers, n)
	}

	// A failed ping drops the stream; the next Ping opens a new one.
	resetNext.Store(true)
	if err := client.Ping(ctx, server.ID(), 1, 0, 5*time.Second, nil); err == nil {
		t.Fatal("ping over a stream the listener reset succeeded")
	}
	if err := client.Ping(ctx, server.ID(), 1, 0, 5*time.Second, nil); err != nil {
		t.Fatalf("ping after a failed one: %v", err)
	}
	if n := streams.Load(); n != 3 {
		t.Fatalf("%d ping streams in all, want 3", n)
	}
}
