package swarm

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/muxer/yamux"
	"github.com/tachyon-p2p/tachyon/peerstore"
	"github.com/tachyon-p2p/tachyon/security/noise"
	"github.com/tachyon-p2p/tachyon/transport/tcp"
	"github.com/tachyon-p2p/tachyon/upgrader"
)

type counter struct{ connected, disconnected atomic.Int32 }

func (c *counter) Connected(*Conn)    { c.connected.Add(1) }
func (c *counter) Disconnected(*Conn) { c.disconnected.Add(1) }

func newSwarm(t *testing.T, listen bool) *Swarm {
	t.Helper()
	k, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	sec, err := noise.New(k, &noise.Config{Muxers: nil})
	if err != nil {
		t.Fatal(err)
	}
	up := &upgrader.Upgrader{Security: []network.SecureTransport{sec}, Muxers: []network.Multiplexer{&yamux.Transport{}}, Transport: "tcp"}
	s := New(id, peerstore.New(), []network.Transport{tcp.New(up, nil)}, &Config{DialTimeout: 5 * time.Second})
	t.Cleanup(func() { s.Close() })
	if listen {
		if err := s.Listen(ma.StringCast("/ip4/127.0.0.1/tcp/0")); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func TestDialDedupAndStreams(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, b := newSwarm(t, false), newSwarm(t, true)
	var na, nb counter
	a.SetNotifiee(&na)
	b.SetNotifiee(&nb)
	b.SetStreamHandler(func(s *Stream) {
		defer s.Close()
		io.Copy(s, s)
	})
	a.Peerstore().AddAddrs(b.LocalPeer(), b.ListenAddrs(), time.Hour)

	var wg sync.WaitGroup
	conns := make([]*Conn, 8)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := a.DialPeer(ctx, b.LocalPeer())
			if err != nil {
				t.Error(err)
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	for _, c := range conns[1:] {
		if c != conns[0] {
			t.Fatal("concurrent dials made more than one connection")
		}
	}
	if n := len(a.ConnsToPeer(b.LocalPeer())); n != 1 {
		t.Fatalf("%d conns", n)
	}
	s, err := a.NewStream(ctx, b.LocalPeer())
	if err != nil {
		t.Fatal(err)
	}
	s.Write([]byte("hello"))
	s.CloseWrite()
	got, err := io.ReadAll(s)
	if err != nil || string(got) != "hello" {
		t.Fatalf("echo %q %v", got, err)
	}
	s.Close()
	if na.connected.Load() != 1 {
		t.Fatalf("dialer notified %d times", na.connected.Load())
	}
	waitFor(t, func() bool { return nb.connected.Load() == 1 })
	a.ClosePeer(b.LocalPeer())
	waitFor(t, func() bool { return na.disconnected.Load() == 1 && nb.disconnected.Load() == 1 })
	if len(b.Peers()) != 0 {
		t.Fatal("listener still lists the peer")
	}
}

func TestDialFallsBackAndReportsErrors(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, b := newSwarm(t, false), newSwarm(t, true)
	dead := newSwarm(t, true)
	deadAddr := dead.ListenAddrs()[0]
	dead.Close()

	// The dead address first: the dialer moves on at once to the good one.
	a.Peerstore().AddAddrs(b.LocalPeer(), append([]ma.Multiaddr{deadAddr}, b.ListenAddrs()...), time.Hour)
	if _, err := a.DialPeer(ctx, b.LocalPeer()); err != nil {
		t.Fatal(err)
	}

	// Only dead addresses: a DialError naming each.
	k, _ := crypto.GenerateEd25519Key(nil)
	ghost, _ := peer.IDFromPrivateKey(k)
	a.Peerstore().AddAddrs(ghost, []ma.Multiaddr{deadAddr}, time.Hour)
	_, err := a.DialPeer(ctx, ghost)
	var de *DialError
	if !errors.As(err, &de) || len(de.Errors) != 1 || !de.Errors[0].Addr.Equal(deadAddr) {
		t.Fatalf("err = %v", err)
	}
	// No addresses at all.
	k2, _ := crypto.GenerateEd25519Key(nil)
	nobody, _ := peer.IDFromPrivateKey(k2)
	if _, err := a.DialPeer(ctx, nobody); !errors.Is(err, ErrNoAddresses) {
		t.Fatalf("err = %v", err)
	}
	if _, err := a.DialPeer(ctx, a.LocalPeer()); !errors.Is(err, ErrDialSelf) {
		t.Fatalf("self: %v", err)
	}
}

func TestCloseStopsHandlersAndRefuses(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, b := newSwarm(t, false), newSwarm(t, true)
	started := make(chan struct{})
	b.SetStreamHandler(func(s *Stream) {
		close(started)
		io.Copy(io.Discard, s) // blocks until the conn dies
	})
	a.Peerstore().AddAddrs(b.LocalPeer(), b.ListenAddrs(), time.Hour)
	s, err := a.NewStream(ctx, b.LocalPeer())
	if err != nil {
		t.Fatal(err)
	}
	s.Write([]byte("x"))
	<-started
	done := make(chan struct{})
	go func() { b.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return while a handler was blocked reading")
	}
	if _, err := b.DialPeer(ctx, a.LocalPeer()); !errors.Is(err, ErrClosed) {
		t.Fatalf("dial after close: %v", err)
	}
	if err := b.Listen(ma.StringCast("/ip4/127.0.0.1/tcp/0")); !errors.Is(err, ErrClosed) {
		t.Fatalf("listen after close: %v", err)
	}
}

func TestNoHandlerResets(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, b := newSwarm(t, false), newSwarm(t, true)
	a.Peerstore().AddAddrs(b.LocalPeer(), b.ListenAddrs(), time.Hour)
	s, err := a.NewStream(ctx, b.LocalPeer())
	if err != nil {
		t.Fatal(err)
	}
	s.Write([]byte("x"))
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := s.Read(make([]byte, 1)); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read on an unhandled stream: %v", err)
	}
}

func TestListenRejectsUnknownAddress(t *testing.T) {
	s := newSwarm(t, false)
	if err := s.Listen(ma.StringCast("/ip4/127.0.0.1/udp/0/quic-v1")); err == nil {
		t.Fatal("listened on an address no transport handles")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
