package quic_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/transport/udpmux"
	tt "github.com/tachyon-p2p/tachyon/transport/udpmux/transporttest"
)

// acceptAll accepts on l until it closes and returns what it accepted.
func acceptAll(l network.Listener) (wait func() []network.TransportConn) {
	var got []network.TransportConn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
			got = append(got, c)
		}
	}()
	return func() []network.TransportConn {
		l.Close()
		<-done
		return got
	}
}

// waitPunching waits until m has a hole punch waiting, so that the peer's
// dial is not accepted as a plain inbound connection before it.
func waitPunching(t *testing.T, m *udpmux.Mux) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for m.HolePunchesInFlight() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the hole punch never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestHolePunch: B punches towards A's listening address while A dials B
// as usual. B gets the connection from HolePunch, A from Dial, and B's
// listener never sees it.
func TestHolePunch(t *testing.T) {
	for _, tc := range []struct {
		ip      string
		viaDial bool // Dial with the server role of a simultaneous connect
	}{{"/ip4/127.0.0.1", false}, {"/ip6/::1", false}, {"/ip4/127.0.0.1", true}} {
		ip := tc.ip
		name := ip
		if tc.viaDial {
			name += "/Dial"
		}
		t.Run(name, func(t *testing.T) {
			leakcheck.Check(t)
			tt.CheckQUICGoroutines(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			muxA, muxB := udpmux.New(nil), udpmux.New(nil)
			a, pa := newPeer(t, muxA)
			b, pb := newPeer(t, muxB)
			la := tt.Listen(t, a, ip+"/udp/0/quic-v1")
			lb := tt.Listen(t, b, ip+"/udp/0/quic-v1")
			acceptedByB := acceptAll(lb)

			type res struct {
				c   network.TransportConn
				err error
			}
			punched := make(chan res, 1)
			go func() {
				var c network.TransportConn
				var err error
				if tc.viaDial {
					c, err = b.Dial(network.WithSimultaneousConnect(ctx, false), la.Multiaddrs()[0], pa.ID)
				} else {
					c, err = b.HolePunch(ctx, la.Multiaddrs()[0], pa.ID)
				}
				punched <- res{c, err}
			}()
			waitPunching(t, muxB)
			dctx := ctx
			if tc.viaDial {
				dctx = network.WithSimultaneousConnect(ctx, true)
			}
			dc, err := a.Dial(dctx, lb.Multiaddrs()[0], pb.ID)
			if err != nil {
				t.Fatalf("A's dial: %v", err)
			}
			defer dc.Close()
			r := <-punched
			if r.err != nil {
				t.Fatalf("B's hole punch: %v", r.err)
			}
			bc := r.c
			defer bc.Close()

			if bc.RemotePeer() != pa.ID || dc.RemotePeer() != pb.ID {
				t.Fatalf("peers: B sees %s, A sees %s", bc.RemotePeer(), dc.RemotePeer())
			}
			if bc.Direction() != network.DirOutbound {
				t.Fatalf("the punched connection is %v, want outbound", bc.Direction())
			}
			if st := bc.ConnState(); st.Transport != "quic-v1" || st.Security != "/tls/1.0.0" {
				t.Fatalf("ConnState = %+v", st)
			}
			if got, want := bc.RemoteMultiaddr().String(), la.Multiaddrs()[0].String(); got != want {
				t.Fatalf("B sees the connection from %s, want A's listening address %s", got, want)
			}
			// Streams both ways.
			var wg sync.WaitGroup
			tt.ServeEcho(bc, &wg)
			tt.ServeEcho(dc, &wg)
			if err := tt.Echo(ctx, dc, 1<<16); err != nil {
				t.Fatalf("A to B: %v", err)
			}
			if err := tt.Echo(ctx, bc, 1<<16); err != nil {
				t.Fatalf("B to A: %v", err)
			}
			if muxB.HolePunchesInFlight() != 0 {
				t.Fatal("the punch is still registered")
			}
			dc.Close()
			bc.Close()
			wg.Wait()
			if got := acceptedByB(); len(got) != 0 {
				t.Fatalf("B's listener accepted %d connections", len(got))
			}
			la.Close()
			waitSockets(t, muxA, 0)
			waitSockets(t, muxB, 0)
		})
	}
}

// A punch that gets no connection from its peer fails when its context
// ends, says so, and leaves nothing behind. A connection from another
// peer meanwhile is not the punch's: the listener gets it.
func TestHolePunchTimeout(t *testing.T) {
	leakcheck.Check(t)
	tt.CheckQUICGoroutines(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	muxA, muxB := udpmux.New(nil), udpmux.New(nil)
	a, _ := newPeer(t, muxA)
	b, pb := newPeer(t, muxB)
	_, other := newPeer(t, nil)
	la := tt.Listen(t, a, "/ip4/127.0.0.1/udp/0/quic-v1")
	lb := tt.Listen(t, b, "/ip4/127.0.0.1/udp/0/quic-v1")
	acceptedByB := acceptAll(lb)

	punchCtx, punchCancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer punchCancel()
	errc := make(chan error, 1)
	go func() {
		c, err := b.HolePunch(punchCtx, la.Multiaddrs()[0], other.ID)
		if c != nil {
			c.Close()
		}
		errc <- err
	}()
	waitPunching(t, muxB)
	dc, err := a.Dial(ctx, lb.Multiaddrs()[0], pb.ID)
	if err != nil {
		t.Fatal(err)
	}
	err = <-errc
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no connection from the peer within") ||
		!strings.Contains(err.Error(), other.ID.String()) {
		t.Fatalf("punch error %v: want the timeout, naming the peer", err)
	}
	t.Log(err)
	if n := muxB.HolePunchesInFlight(); n != 0 {
		t.Fatalf("%d punches still registered", n)
	}
	dc.Close()
	if got := acceptedByB(); len(got) != 1 {
		t.Fatalf("B's listener accepted %d connections, want A's", len(got))
	}
	la.Close()
	waitSockets(t, muxA, 0)
	waitSockets(t, muxB, 0)
}

// Punching needs a listening socket of the address family.
func TestHolePunchWithoutListener(t *testing.T) {
	leakcheck.Check(t)
	muxB := udpmux.New(nil)
	b, _ := newPeer(t, muxB)
	_, pa := newPeer(t, nil)
	tt.Listen(t, b, "/ip6/::1/udp/0/quic-v1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := b.HolePunch(ctx, ma.StringCast("/ip4/127.0.0.1/udp/1234/quic-v1"), pa.ID)
	if err == nil || !strings.Contains(err.Error(), "no listening socket") {
		t.Fatalf("punch without an IPv4 listener: %v", err)
	}
}

// Closing the listener ends a punch at its next datagram.
func TestHolePunchListenerClosed(t *testing.T) {
	leakcheck.Check(t)
	tt.CheckQUICGoroutines(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	muxA, muxB := udpmux.New(nil), udpmux.New(nil)
	a, pa := newPeer(t, muxA)
	b, _ := newPeer(t, muxB)
	la := tt.Listen(t, a, "/ip4/127.0.0.1/udp/0/quic-v1")
	lb := tt.Listen(t, b, "/ip4/127.0.0.1/udp/0/quic-v1")
	errc := make(chan error, 1)
	go func() {
		_, err := b.HolePunch(ctx, la.Multiaddrs()[0], pa.ID)
		errc <- err
	}()
	waitPunching(t, muxB)
	lb.Close()
	if err := <-errc; err == nil || !strings.Contains(err.Error(), "listener") || ctx.Err() != nil {
		t.Fatalf("punch after the listener closed: %v", err)
	}
	la.Close()
	waitSockets(t, muxA, 0)
	waitSockets(t, muxB, 0)
}
