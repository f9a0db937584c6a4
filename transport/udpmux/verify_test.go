package udpmux_test

import (
	"context"
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
	if c, err := client.Dial(dctx, l.Addr(), clientTLS(udpmux.ALPNLibp2p)); err == nil {
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
