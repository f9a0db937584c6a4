package udpmux_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/transport/udpmux"
)

// TestListenVerified: ListenVerified's verify runs on each connection once
// its handshake completed and before Accept sees it; a connection it
// refuses is closed with RefusedReason and never accepted; and it runs
// inside the handshake budget, so clients that are slow to verify (or
// many that fail) cannot take more than MaxHandshakes at a time.
func TestListenVerified(t *testing.T) {
	leakcheck.Check(t)
	server := udpmux.New(&udpmux.Config{MaxHandshakes: 1})
	client := udpmux.New(nil)
	release := make(chan struct{})
	entered := make(chan struct{}, 4)
	var calls atomic.Int32
	verify := func(c *quic.Conn) error {
		if !c.ConnectionState().TLS.HandshakeComplete {
			t.Error("verify called before the handshake completed")
		}
		n := calls.Add(1)
		entered <- struct{}{}
		if n == 1 {
			<-release
			return errors.New("refused by the test")
		}
		return nil
	}
	l, err := server.ListenVerified(loopback, udpmux.ALPNLibp2p, serverTLS(t), verify)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The first client's verify holds the only handshake slot.
	refused, err := client.Dial(ctx, l.Addr(), clientTLS(udpmux.ALPNLibp2p))
	if err != nil {
		t.Fatal(err)
	}
	defer refused.CloseWithError(0, "")
	wait(t, ctx, entered)
	dctx, dcancel := context.WithTimeout(ctx, 3*time.Second)
	// A ClientHello in one Initial packet: the default one, with its
	// post-quantum key share, takes two, and the server refuses each
	// packet on its own (quic-go keeps nothing of a refused connection).
	// A second packet read after the first client's refusal freed the slot
	// would start a handshake that never completes and holds the slot for
	// the handshake timeout.
	one := clientTLS(udpmux.ALPNLibp2p)
	one.CurvePreferences = []tls.CurveID{tls.X25519}
	if c, err := client.Dial(dctx, l.Addr(), one); err == nil {
		c.CloseWithError(0, "")
		t.Fatal("a second handshake was admitted while the first one's verify held the only slot")
	}
	dcancel()

	close(release)
	wait(t, ctx, refused.Context().Done())
	var ae *quic.ApplicationError
	if err := context.Cause(refused.Context()); !errors.As(err, &ae) || !ae.Remote || ae.ErrorMessage != udpmux.RefusedReason {
		t.Fatalf("the refused client's connection ended with %v, want the listener's close with %q", err, udpmux.RefusedReason)
	}
	// Nothing of it is kept: it left the pending set before its close was
	// sent, and its handshake slot goes with it.
	if n := server.PendingConns(); n != 0 {
		t.Fatalf("%d connections pending after the refusal, want 0", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for server.HandshakesInFlight() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d handshakes in flight after the refusal, want 0", server.HandshakesInFlight())
		}
		time.Sleep(time.Millisecond)
	}

	// The slot is free again; the next client passes and is the one
	// Accept returns.
	ok, err := client.Dial(ctx, l.Addr(), clientTLS(udpmux.ALPNLibp2p))
	if err != nil {
		t.Fatal(err)
	}
	defer ok.CloseWithError(0, "")
	c, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseWithError(0, "")
	if got, want := c.RemoteAddr().(*net.UDPAddr).Port, ok.LocalAddr().(*net.UDPAddr).Port; got != want {
		t.Fatalf("Accept returned the connection from port %d, want %d (the verified client)", got, want)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("verify ran %d times, want 2 (the refused second dial never completed a handshake)", n)
	}
}

// wait receives from ch or fails when ctx ends first.
func wait[T any](t *testing.T, ctx context.Context, ch <-chan T) {
	t.Helper()
	select {
	case <-ch:
	case <-ctx.Done():
		t.Fatal("timed out")
	}
}

// TestCloseTellsClients: closing a socket's last listener closes the
// connections it had not handed over with a CONNECTION_CLOSE their
// clients receive, before the socket goes: a connection in verify, and one
// whose client has not finished its handshake. Sent after the socket was
// closed, the close never leaves, and the clients learn of it only from
// their idle timeout.
func TestCloseTellsClients(t *testing.T) {
	for _, tc := range []struct {
		name string
		// stall holds the connection on the listener's side (in verify) or
		// on the client's (before its Finished); it returns a release.
		stall func(verifying chan<- struct{}) (verify func(*quic.Conn) error, client *tls.Config, release func())
		// closed says whether the client's connection ended with the
		// listener's close rather than a timeout.
		closed func(error) bool
	}{
		{
			name: "in verify",
			stall: func(verifying chan<- struct{}) (func(*quic.Conn) error, *tls.Config, func()) {
				rel := make(chan struct{})
				verify := func(*quic.Conn) error {
					verifying <- struct{}{}
					<-rel
					return nil
				}
				return verify, clientTLS(udpmux.ALPNLibp2p), func() { close(rel) }
			},
			closed: func(err error) bool {
				var ae *quic.ApplicationError
				return errors.As(err, &ae) && ae.Remote && ae.ErrorMessage == "listener closed"
			},
		},
		{
			name: "client handshake unfinished",
			stall: func(verifying chan<- struct{}) (func(*quic.Conn) error, *tls.Config, func()) {
				rel := make(chan struct{})
				cc := clientTLS(udpmux.ALPNLibp2p)
				cc.VerifyPeerCertificate = func([][]byte, [][]*x509.Certificate) error {
					verifying <- struct{}{}
					<-rel
					return nil
				}
				return nil, cc, func() { close(rel) }
			},
			closed: func(err error) bool {
				// In the handshake an application's close is sent as the
				// transport error APPLICATION_ERROR (RFC 9000, 10.2.3).
				var te *quic.TransportError
				return errors.As(err, &te) && te.Remote && te.ErrorCode == quic.ApplicationErrorErrorCode
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			server := udpmux.New(nil)
			// A long handshake timeout (the idle timeout is 30 s): a
			// missing close shows as this test's deadline, not as a
			// timeout that passes for a close.
			client := udpmux.New(&udpmux.Config{HandshakeTimeout: time.Minute})
			verifying := make(chan struct{}, 1)
			verify, cc, release := tc.stall(verifying)
			var l *udpmux.Listener
			var err error
			if verify != nil {
				l, err = server.ListenVerified(loopback, udpmux.ALPNLibp2p, serverTLS(t), verify)
			} else {
				l, err = server.Listen(loopback, udpmux.ALPNLibp2p, serverTLS(t))
			}
			if err != nil {
				t.Fatal(err)
			}
			type dialed struct {
				c   *quic.Conn
				err error
			}
			done := make(chan dialed, 1)
			go func() {
				c, err := client.Dial(ctx, l.Addr(), cc)
				done <- dialed{c, err}
			}()
			wait(t, ctx, verifying)
			// The client can be verifying the server's flight before the
			// socket's accept loop has taken the connection (it becomes
			// pending then): the close is for pending connections.
			for server.PendingConns() != 1 {
				if ctx.Err() != nil {
					t.Fatalf("%d connections pending, want 1", server.PendingConns())
				}
				time.Sleep(time.Millisecond)
			}
			closing := make(chan struct{})
			go func() {
				l.Close()
				close(closing)
			}()
			// The listener's close waits for its CONNECTION_CLOSE to be
			// sent; in verify the connection's goroutine still waits too.
			wait(t, ctx, closing)
			release()
			d := <-done
			end := d.err
			if d.c != nil {
				wait(t, ctx, d.c.Context().Done())
				end = context.Cause(d.c.Context())
			}
			if !tc.closed(end) {
				t.Fatalf("the client's connection ended with %v, want the listener's close", end)
			}
			if n := server.NumSockets(); n != 0 {
				t.Fatalf("%d sockets after closing the only listener", n)
			}
		})
	}
}
