package tachyon

import (
	"context"
	"io"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// TestDialBacker: dial-backs come from an identity of their own, on new
// connections from ephemeral ports, over TCP and QUIC; DialBackAny skips
// dead addresses; names and relayed addresses are never dialed.
func TestDialBacker(t *testing.T) {
	leakcheck.Check(t)
	const proto = "/tachyon-test/dialback"
	b := testHost(t, ListenAddrStrings("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"))
	got := make(chan network.Stream, 4)
	b.SetStreamHandler(proto, func(s network.Stream) {
		buf := make([]byte, 2)
		if _, err := io.ReadFull(s, buf); err == nil {
			s.Write(buf)
		}
		got <- s
		s.Close()
	})
	cfg, err := newConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := newDialBacker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if d.id == b.ID() || d.id == "" {
		t.Fatalf("dial-back identity %s", d.id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var listen []ma.Multiaddr
	for _, a := range b.swarm.ListenAddrs() {
		if d.CanDial(a) {
			listen = append(listen, a)
		}
	}
	if len(listen) != 2 {
		t.Fatalf("listening on %v", b.swarm.ListenAddrs())
	}
	for _, a := range listen {
		t.Run(a.String(), func(t *testing.T) {
			s, err := d.DialBack(ctx, b.ID(), a, proto)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Conn().Close()
			s.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := s.Write([]byte("hi")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 2)
			if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "hi" {
				t.Fatalf("echo %q, %v", buf, err)
			}
			var bs network.Stream
			select {
			case bs = <-got:
			case <-ctx.Done():
				t.Fatal("no stream at the peer")
			}
			if bs.RemotePeer() != d.id || s.RemotePeer() != b.ID() {
				t.Fatalf("peers: the peer sees %s, want the dial-back identity %s", bs.RemotePeer(), d.id)
			}
		})
	}

	// A dead address first: the next one answers.
	dead := ma.StringCast("/ip4/127.0.0.1/tcp/1")
	tcpAddr := listen[0]
	a, err := d.DialBackAny(ctx, b.ID(), []ma.Multiaddr{dead, tcpAddr})
	if err != nil || !a.Equal(tcpAddr) {
		t.Fatalf("DialBackAny: %v, %v; want %s", a, err, tcpAddr)
	}
	if _, err := d.DialBackAny(ctx, b.ID(), []ma.Multiaddr{dead}); err == nil {
		t.Fatal("DialBackAny to a dead address succeeded")
	}
	for _, s := range []string{"/dns4/localhost/tcp/1", "/ip4/127.0.0.1/tcp/1/p2p/" + b.ID().String() + "/p2p-circuit"} {
		if d.CanDial(ma.StringCast(s)) {
			t.Errorf("CanDial(%s)", s)
		}
	}
}
