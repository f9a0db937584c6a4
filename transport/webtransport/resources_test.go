package webtransport_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/transport/udpmux"
	tt "github.com/tachyon-p2p/tachyon/transport/udpmux/transporttest"
	"github.com/tachyon-p2p/tachyon/transport/webtransport"
	"github.com/tachyon-p2p/tachyon/upgrader/rmtest"
)

// Sessions are admitted once the peer is known, both ways; a refused one
// is closed, and every scope is closed with its session.
func TestWebTransportResources(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		refuseDial, refuseIn bool
	}{
		{"admitted", false, false},
		{"dialer refuses", true, false},
		{"listener refuses", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			tt.CheckQUICGoroutines(t)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			srm := &rmtest.Manager{RefuseConns: tc.refuseIn}
			crm := &rmtest.Manager{RefuseConns: tc.refuseDial}
			server, sp, _ := newPeer(t, udpmux.New(&udpmux.Config{Resources: srm}), &webtransport.Config{Resources: srm})
			client, _, _ := newPeer(t, nil, &webtransport.Config{Resources: crm})
			l := tt.Listen(t, server, "/ip4/127.0.0.1/udp/0/quic-v1/webtransport")
			accepted := make(chan error, 1)
			go func() {
				c, err := l.Accept()
				if err == nil {
					c.Close()
				}
				accepted <- err
			}()
			c, err := client.Dial(ctx, l.Multiaddrs()[0], sp.ID)
			switch {
			case tc.refuseDial:
				var le *rmtest.LimitError
				if !errors.Is(err, webtransport.ErrRefused) || !errors.As(err, &le) {
					t.Fatalf("dial: %v, want the refusal", err)
				}
			case err != nil:
				t.Fatal(err)
			case tc.refuseIn:
				if _, err := c.AcceptStream(); err == nil {
					t.Fatal("the dialer's session outlived the listener's refusal")
				}
				c.Close()
			default:
				// Wait for the listener before closing: the dialer's
				// handshake ends first, and a session closed before the
				// listener finished its own is never accepted.
				select {
				case err := <-accepted:
					if err != nil {
						t.Fatal(err)
					}
				case <-ctx.Done():
					t.Fatal("the listener did not accept the admitted session")
				}
				c.Close()
			}
			l.Close()
			if tc.refuseIn || tc.refuseDial {
				<-accepted // the refused session never comes; Close ends Accept
			}
			for _, m := range []*rmtest.Manager{srm, crm} {
				for range 1000 { // the listener's scope closes with its QUIC connection
					if m.Stats().Conns == 0 {
						break
					}
					time.Sleep(10 * time.Millisecond)
				}
				if st := m.Stats(); st.Conns != 0 || st.Handshakes != 0 || len(st.Misuse) != 0 {
					t.Fatalf("stats %+v", st)
				}
			}
		})
	}
}
