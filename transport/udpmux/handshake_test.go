package udpmux_test

import (
	"context"
	"crypto/x509"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/transport/udpmux"
	tt "github.com/tachyon-p2p/tachyon/transport/udpmux/transporttest"
)

// TestHandshakeTimes: an accepted connection's handshake is timed from
// its creation to its completion, which the client holds back by a known
// delay, so the duration lies between that delay and the wall time around
// dial and accept; a dialed connection has no server handshake to report.
func TestHandshakeTimes(t *testing.T) {
	const hold = 50 * time.Millisecond
	for _, tc := range []struct {
		name  string
		early bool
	}{
		{"Listen", false},
		{"ListenEarly", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			tt.CheckQUICGoroutines(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			m := udpmux.New(nil)
			listen := m.Listen
			if tc.early {
				listen = m.ListenEarly
			}
			l, err := listen(loopback, udpmux.ALPNLibp2p, serverTLS(t))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			d := udpmux.New(nil)
			cc := clientTLS(udpmux.ALPNLibp2p)
			// The server cannot complete before the client's Finished,
			// which follows this check.
			cc.VerifyPeerCertificate = func([][]byte, [][]*x509.Certificate) error {
				select {
				case <-time.After(hold):
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}

			begin := time.Now()
			dialed := make(chan *quic.Conn, 1)
			go func() {
				c, err := d.Dial(ctx, l.Addr(), cc)
				if err != nil {
					t.Errorf("dial: %v", err)
				}
				dialed <- c
			}()
			sc, err := l.Accept(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer sc.CloseWithError(0, "")
			if c := <-dialed; c != nil {
				defer c.CloseWithError(0, "")
				if _, ok := udpmux.HandshakeStart(c); ok {
					t.Error("HandshakeStart of a dialed connection: ok")
				}
				if took, ok := udpmux.HandshakeDuration(c); ok || took != 0 {
					t.Errorf("HandshakeDuration of a dialed connection = %v, %v; want 0, false", took, ok)
				}
			}
			select {
			case <-sc.HandshakeComplete():
			case <-ctx.Done():
				t.Fatal("the accepted connection never completed its handshake")
			}
			// An early connection's completion is recorded by the Mux's
			// waiter, a moment after HandshakeComplete.
			took, ok := udpmux.HandshakeDuration(sc)
			for deadline := time.Now().Add(5 * time.Second); !ok && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
				took, ok = udpmux.HandshakeDuration(sc)
			}
			wall := time.Since(begin)
			start, sok := udpmux.HandshakeStart(sc)
			if !sok || start.Before(begin) || start.After(begin.Add(wall)) {
				t.Errorf("HandshakeStart = %v, %v; want within the %v after %v", start, sok, wall, begin)
			}
			if !ok || took < hold || took > wall {
				t.Errorf("HandshakeDuration = %v, %v; want between %v and the wall time %v", took, ok, hold, wall)
			}
		})
	}
}
