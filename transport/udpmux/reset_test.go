package udpmux_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/tachyon-p2p/tachyon/transport/udpmux"
	tt "github.com/tachyon-p2p/tachyon/transport/udpmux/transporttest"
)

// A server that forgot a connection (here: a new server behind the same
// address, as after a restart) answers the peer's next packet with a
// stateless reset, and the peer closes the connection at once, when both
// servers derive their reset key from the same secret. With keys of their
// own (a Mux without a key gets a random one) the reset does not verify
// and the peer waits for its idle timeout.
func TestStatelessResetAfterServerForgot(t *testing.T) {
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
				k, err := udpmux.StatelessResetKeyFrom([]byte("a node's identity key"))
				if err != nil {
					t.Fatal(err)
				}
				return k
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()

			a := udpmux.New(&udpmux.Config{StatelessResetKey: key()})
			la, err := a.Listen(loopback, udpmux.ALPNLibp2p, serverTLS(t))
			if err != nil {
				t.Fatal(err)
			}
			defer la.Close()
			p := tt.NewUDPProxy(t, la.Addr())
			d := udpmux.New(nil)
			cc, err := d.Dial(ctx, p.Addr(), clientTLS(udpmux.ALPNLibp2p))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.CloseWithError(0, "")
			sc, err := la.Accept(ctx)
			if err != nil {
				t.Fatal(err)
			}
			echo(ctx, t, cc, sc)

			// B takes A's place behind the address; then A forgets the
			// connection, and its CONNECTION_CLOSE goes nowhere.
			b := udpmux.New(&udpmux.Config{StatelessResetKey: key()})
			lb, err := b.Listen(loopback, udpmux.ALPNLibp2p, serverTLS(t))
			if err != nil {
				t.Fatal(err)
			}
			defer lb.Close()
			p.SetTarget(lb.Addr())
			sc.CloseWithError(0, "")
			la.Close()

			// The client's next packets reach B, which has no such connection.
			s, err := cc.OpenStream()
			if err != nil {
				t.Fatal(err)
			}
			s.Write(bytes.Repeat([]byte("x"), 100))

			wait := 10 * time.Second // far below the idle timeout (30 s)
			if !sameKey {
				wait = 2 * time.Second
			}
			select {
			case <-cc.Context().Done():
				var reset *quic.StatelessResetError
				if !sameKey {
					t.Fatalf("connection closed by a reset with another node's key: %v", context.Cause(cc.Context()))
				}
				if err := context.Cause(cc.Context()); !errors.As(err, &reset) {
					t.Fatalf("connection closed by %v, want a stateless reset", err)
				}
			case <-time.After(wait):
				if sameKey {
					t.Fatal("no stateless reset: the client still holds a connection the server forgot")
				}
			}
		})
	}
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
	k1, err := udpmux.StatelessResetKeyFrom([]byte("secret one"))
	if err != nil {
		t.Fatal(err)
	}
	k1again, _ := udpmux.StatelessResetKeyFrom([]byte("secret one"))
	k2, _ := udpmux.StatelessResetKeyFrom([]byte("secret two"))
	if *k1 != *k1again {
		t.Fatal("the same secret derived two keys")
	}
	if *k1 == *k2 {
		t.Fatal("two secrets derived the same key")
	}
}
