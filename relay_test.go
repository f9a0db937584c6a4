package tachyon

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/circuit"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/mss"
	"github.com/tachyon-p2p/tachyon/protocol/relay"
	"github.com/tachyon-p2p/tachyon/swarm"
)

// relayTrio is a relay R, a peer B holding a reservation on R, and a peer A
// that does not listen: A can reach B only through R.
type relayTrio struct {
	r, a, b *Host
	circuit ma.Multiaddr // B's address through R
}

func newRelayTrio(t *testing.T, ctx context.Context, cfg relay.Config, bOpts ...Option) *relayTrio {
	t.Helper()
	r := testHost(t, ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), RelayService(cfg))
	relayAddrs, _ := peer.AddrInfo{ID: r.ID(), Addrs: r.Addrs()}.P2pAddrs()
	// B does not listen: like a node behind a NAT, it is reached through R.
	b := testHost(t, append([]Option{StaticRelays(relayAddrs[0]), ForceReachability(network.ReachabilityPrivate)}, bOpts...)...)
	a := testHost(t)
	tr := &relayTrio{r: r, a: a, b: b}
	// B's address through R appears once the reservation is made.
	for tr.circuit == nil {
		for _, addr := range b.Addrs() {
			if swarm.IsRelayAddr(addr) {
				tr.circuit = addr
			}
		}
		if tr.circuit != nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no reservation on the relay: %v", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	// A knows B only by its relayed address.
	a.Peerstore().AddAddrs(b.ID(), []ma.Multiaddr{tr.circuit}, time.Hour)
	return tr
}

func TestRelayedConnection(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := newRelayTrio(t, ctx, relay.DefaultConfig())
	a, b, r := tr.a, tr.b, tr.r

	rsv := b.RelayReservations()
	if len(rsv) != 1 || rsv[0].Relay != r.ID() || rsv[0].Voucher == nil || rsv[0].Voucher.Peer != b.ID() {
		t.Fatalf("reservations %+v", rsv)
	}
	if !rsv[0].Expire.After(time.Now().Add(50 * time.Minute)) {
		t.Errorf("reservation expires at %s, want about an hour from now", rsv[0].Expire)
	}
	var want []string
	for _, ra := range r.Addrs() {
		want = append(want, ra.String()+"/p2p/"+r.ID().String()+"/p2p-circuit")
	}
	if !slices.Contains(want, tr.circuit.String()) {
		t.Errorf("relayed address %s, want one of %s", tr.circuit, want)
	}

	// Ping opts in to limited connections: it goes through the relay.
	if err := a.Ping(ctx, b.ID(), 2, 0, 10*time.Second, nil); err != nil {
		t.Fatalf("ping through the relay: %v", err)
	}
	conns := a.Network().ConnsToPeer(b.ID())
	if len(conns) != 1 {
		t.Fatalf("%d connections from A to B, want 1", len(conns))
	}
	st := conns[0].ConnState()
	if !st.Limited || st.Transport != "p2p-circuit" || st.Security == "" || st.Muxer == "" {
		t.Errorf("relayed connection state %+v", st)
	}
	if !swarm.IsRelayAddr(conns[0].RemoteMultiaddr()) {
		t.Errorf("remote address %s is not a relayed one", conns[0].RemoteMultiaddr())
	}
	bConns := b.Network().ConnsToPeer(a.ID())
	if len(bConns) != 1 || bConns[0].Direction() != network.DirInbound || !bConns[0].ConnState().Limited {
		t.Fatalf("B's connections to A: %v", bConns)
	}

	// A protocol that did not opt in: NewStream refuses the limited
	// connection (no direct address to dial instead).
	b.SetStreamHandler(echoID, echo)
	_, err := a.NewStream(ctx, b.ID(), echoID)
	if !errors.Is(err, network.ErrLimitedConn) {
		for _, c := range a.Network().ConnsToPeer(b.ID()) {
			t.Logf("A-B connection %s %+v", c.RemoteMultiaddr(), c.ConnState())
		}
		t.Fatalf("NewStream over a limited connection: %v, want ErrLimitedConn", err)
	}
	// Allowed by the caller, refused by B's handler, which did not opt in.
	s, err := a.NewStream(network.WithAllowLimitedConn(ctx, "test"), b.ID(), echoID)
	if err == nil {
		s.Write([]byte("x"))
		_, err = s.Read(make([]byte, 1))
		s.Reset()
	}
	if !errors.Is(err, mss.ErrNotSupported) {
		t.Fatalf("a stream for a protocol that did not opt in: %v, want ErrNotSupported", err)
	}
	// Both opt in: the stream works.
	b.SetStreamHandler(echoID, echo, AllowLimitedConns())
	msg := make([]byte, 64<<10)
	rand.Read(msg)
	s, err = a.NewStream(network.WithAllowLimitedConn(ctx, "test"), b.ID(), echoID)
	if err != nil {
		t.Fatal(err)
	}
	if err := echoRoundTrip(s, msg); err != nil {
		t.Fatalf("echo through the relay: %v", err)
	}
	if rs, ok := r.RelayStat(); !ok || rs.Reservations != 1 || rs.CircuitsOpened != 1 {
		t.Errorf("relay stat %+v", rs)
	}
}

func echoRoundTrip(s network.Stream, msg []byte) error {
	errc := sendAll(s, msg)
	got, err := io.ReadAll(s)
	if werr := <-errc; werr != nil {
		return werr
	}
	if err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return errors.New("echo differs")
	}
	return s.Close()
}

// A circuit past the relay's data limit is reset on both ends.
func TestRelayDataLimit(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := relay.DefaultConfig()
	cfg.Limit = &relay.Limit{Data: 32 << 10, Duration: time.Minute}
	tr := newRelayTrio(t, ctx, cfg)
	a, b := tr.a, tr.b
	b.SetStreamHandler(echoID, echo, AllowLimitedConns())
	s, err := a.NewStream(network.WithAllowLimitedConn(ctx, "test"), b.ID(), echoID)
	if err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 256<<10)
	if err := echoRoundTrip(s, msg); err == nil {
		t.Fatal("256 KiB crossed a circuit limited to 32 KiB")
	}
	// Both ends lose the relayed connection.
	for _, h := range []*Host{a, b} {
		other := a.ID()
		if h == a {
			other = b.ID()
		}
		for len(h.Network().ConnsToPeer(other)) > 0 {
			select {
			case <-ctx.Done():
				t.Fatalf("the relayed connection outlived the data limit on %s", h.ID())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	// The relay counts the reset once both of its pipes have stopped, which
	// may be after the peers saw their connections go.
	for {
		rs, _ := tr.r.RelayStat()
		if rs.DataLimitResets == 1 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("relay stat %+v, want one data limit reset", rs)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Without a reservation the relay answers NO_RESERVATION, and the dial
// error says so.
func TestRelayNoReservation(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := testHost(t, ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), RelayService(relay.DefaultConfig()))
	b := testHost(t, ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	a := testHost(t)
	if err := b.Connect(ctx, peer.AddrInfo{ID: r.ID(), Addrs: r.Addrs()}); err != nil {
		t.Fatal(err)
	}
	circ := ma.StringCast(r.Addrs()[0].String() + "/p2p/" + r.ID().String() + "/p2p-circuit")
	err := a.Connect(network.WithAllowLimitedConn(ctx, "test"), peer.AddrInfo{ID: b.ID(), Addrs: []ma.Multiaddr{circ}})
	var se *circuit.StatusError
	if !errors.As(err, &se) || se.Status != circuit.StatusNoReservation {
		t.Fatalf("dial without a reservation: %v, want NO_RESERVATION", err)
	}
}

// A reservation lost with the relay's connection is made again: the relay
// drops a reservation with its connection, so reaching B through the relay
// afterwards proves a new one.
func TestRelayReservationRecovers(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tr := newRelayTrio(t, ctx, relay.DefaultConfig())
	tr.b.ClosePeer(tr.r.ID())
	for {
		err := tr.a.Ping(ctx, tr.b.ID(), 1, 0, 5*time.Second, nil)
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("B unreachable through the relay after losing its connection to it: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	// B records its reservation once its request returns, which can be
	// after the relay, holding it already, carried A's ping.
	n := len(tr.b.RelayReservations())
	for deadline := time.Now().Add(5 * time.Second); n != 1 && time.Now().Before(deadline); n = len(tr.b.RelayReservations()) {
		time.Sleep(20 * time.Millisecond)
	}
	if n != 1 {
		t.Errorf("%d reservations, want 1", n)
	}
}
