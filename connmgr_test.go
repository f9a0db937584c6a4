package tachyon

import (
	"context"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/connmgr"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
)

// TestConnManagerTrims runs a host whose connection manager keeps two
// connections when more than two are open: of three peers, the protected
// one and the one with a stream of a tagged protocol open survive.
func TestConnManagerTrims(t *testing.T) {
	a := testHost(t, Transports(TCP), ListenAddrs(mustAddr(t, "/ip4/127.0.0.1/tcp/0")),
		ConnManager(connmgr.Config{Low: 2, High: 2, GracePeriod: time.Millisecond, SilencePeriod: time.Millisecond}))
	const proto = "/tachyon-test/hold/1.0.0"
	hold := make(chan struct{})
	defer close(hold)
	started := make(chan struct{}, 1)
	a.SetStreamHandler(proto, func(s network.Stream) { started <- struct{}{}; <-hold })
	a.ConnManager().TagProtocol(proto, 10)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var bs []*Host
	for i := 0; i < 3; i++ {
		b := testHost(t, Transports(TCP))
		bs = append(bs, b)
	}
	a.ConnManager().Protect(bs[0].ID(), "test")
	// Until its stream is counted, bs[1] must not be the one trimmed.
	a.ConnManager().Protect(bs[1].ID(), "setup")
	for _, i := range []int{2, 0, 1} {
		b := bs[i]
		if err := b.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: a.Addrs()}); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			// bs[1] holds a stream of the tagged protocol: worth more than bs[2].
			s, err := b.NewStream(network.WithEagerNegotiation(ctx), a.ID(), proto)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Reset()
			<-started // a has counted the stream
			a.ConnManager().Unprotect(bs[1].ID(), "setup")
		}
	}
	// The third connection passes High; Run trims to Low once bs[2] is out
	// of its grace period.
	for a.Connectedness(bs[2].ID()) == network.Connected {
		select {
		case <-ctx.Done():
			t.Fatalf("not trimmed: connected to %d peers", len(a.Peers()))
		case <-time.After(10 * time.Millisecond):
		}
	}
	if a.Connectedness(bs[0].ID()) != network.Connected {
		t.Fatal("the protected peer was trimmed")
	}
	if a.Connectedness(bs[1].ID()) != network.Connected {
		t.Fatal("the peer with a stream of a tagged protocol was trimmed")
	}
}
