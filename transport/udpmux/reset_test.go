package udpmux_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/tachyon-p2p/tachyon/transport/udpmux"
	tt "github.com/tachyon-p2p/tachyon/transport/udpmux/transporttest"
)

// A node restarted on the same address answers the packets of a
// connection its former self had with a stateless reset, and the peer
// closes the connection at once, when both derive their reset keys from
// the same secret. With keys of their own (a Mux without a key gets a
// random one) the reset does not verify and the peer waits for its idle
// timeout.
func TestStatelessResetAfterRestart(t *testing.T) {
	for _, sameKey := range []bool{true, false} {
		name := "same key"
		if !sameKey {
			name = "own keys"
		}
		t.Run(name, func(t *testing.T) {
			key := func() *quic.StatelessResetKey {
				if !sameKey {
					return nil
				}
				k, err := udpmux.StatelessResetKeyFrom([]byte("a node's identity key, 32 bytes or more"))
				if err != nil {
					t.Fatal(err)
				}
				return k
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()

			former := udpmux.New(&udpmux.Config{StatelessResetKey: key()})
			lf, err := former.Listen(loopback, udpmux.ALPNLibp2p, serverTLS(t))
			if err != nil {
				t.Fatal(err)
			}
			defer lf.Close()
			addr := lf.Addr()
			p, cc, sc := connectViaProxy(ctx, t, lf)

			// The former node goes, its goodbyes lost; the restarted one
			// binds the same address.
			p.SetTarget(netip.AddrPort{})
			sc.CloseWithError(0, "")
			lf.Close()
			waitSockets(t, former, 0)
			restarted := udpmux.New(&udpmux.Config{StatelessResetKey: key()})
			lr, err := restarted.Listen(addr, udpmux.ALPNLibp2p, serverTLS(t))
			if err != nil {
				t.Fatal(err)
			}
			defer lr.Close()
			p.SetTarget(addr)

			wantReset(t, cc, sameKey)
		})
	}
}

// One node's sockets derive keys of their own: a socket that gets the
// packets of a connection living on another socket of the node answers
// with a reset the peer does not accept (else anyone who saw a connection
// ID could have any other socket of the node reset it: RFC 9000, 10.3.2).
func TestStatelessResetNotFromAnotherSocket(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	k, err := udpmux.StatelessResetKeyFrom([]byte("a node's identity key, 32 bytes or more"))
	if err != nil {
		t.Fatal(err)
	}
	m := udpmux.New(&udpmux.Config{StatelessResetKey: k})
	l1, err := m.Listen(loopback, udpmux.ALPNLibp2p, serverTLS(t))
	if err != nil {
		t.Fatal(err)
	}
	defer l1.Close()
	l2, err := m.Listen(loopback, udpmux.ALPNLibp2p, serverTLS(t))
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	p, cc, sc := connectViaProxy(ctx, t, l1)
	defer sc.CloseWithError(0, "")

	p.SetTarget(l2.Addr()) // the other socket answers the connection's packets
	wantReset(t, cc, false)
}

// wantReset sends on c and checks that a stateless reset ends it (want)
// or that c outlives two seconds.
func wantReset(t *testing.T, c *quic.Conn, want bool) {
	t.Helper()
	s, err := c.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	s.Write(bytes.Repeat([]byte("x"), 100))
	wait := 10 * time.Second // far below the idle timeout (30 s)
	if !want {
		wait = 2 * time.Second
	}
	select {
	case <-c.Context().Done():
		var reset *quic.StatelessResetError
		err := context.Cause(c.Context())
		if !want {
			t.Fatalf("connection closed: %v", err)
		}
		if !errors.As(err, &reset) {
			t.Fatalf("connection closed by %v, want a stateless reset", err)
		}
	case <-time.After(wait):
		if want {
			t.Fatal("no stateless reset: the client still holds a connection the server forgot")
		}
	}
}

// connectViaProxy dials l through a new UDP proxy and checks that a
// stream gets through; the client's connection closes when the test ends.
func connectViaProxy(ctx context.Context, t *testing.T, l *udpmux.Listener) (p *tt.UDPProxy, cc, sc *quic.Conn) {
	t.Helper()
	p = tt.NewUDPProxy(t, l.Addr())
	cc, err := udpmux.New(nil).Dial(ctx, p.Addr(), clientTLS(udpmux.ALPNLibp2p))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.CloseWithError(0, "") })
	if sc, err = l.Accept(ctx); err != nil {
		t.Fatal(err)
	}
	echo(ctx, t, cc, sc)
	return p, cc, sc
}

// echo checks that c's stream reaches s.
func echo(ctx context.Context, t *testing.T, c, s *quic.Conn) {
	t.Helper()
	cs, err := c.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	ss, err := s.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	if _, err := io.ReadFull(ss, b); err != nil || string(b) != "ping" {
		t.Fatalf("read %q, %v", b, err)
	}
}

func TestStatelessResetKeyFrom(t *testing.T) {
	k1, err := udpmux.StatelessResetKeyFrom([]byte("secret one, which is 32 bytes long"))
	if err != nil {
		t.Fatal(err)
	}
	k1again, _ := udpmux.StatelessResetKeyFrom([]byte("secret one, which is 32 bytes long"))
	k2, _ := udpmux.StatelessResetKeyFrom([]byte("secret two, which is 32 bytes long"))
	if *k1 != *k1again {
		t.Fatal("the same secret derived two keys")
	}
	if *k1 == *k2 {
		t.Fatal("two secrets derived the same key")
	}
	if _, err := udpmux.StatelessResetKeyFrom(make([]byte, 16)); err == nil {
		t.Fatal("a 16-byte secret was taken")
	}
}
