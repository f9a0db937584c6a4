package quic_test

import (
	"testing"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	tt "github.com/tachyon-p2p/tachyon/transport/udpmux/transporttest"
)

// TestHandshakeDuration: an accepted connection reports its QUIC
// handshake's duration, a dialed one 0.
func TestHandshakeDuration(t *testing.T) {
	leakcheck.Check(t)
	tt.CheckQUICGoroutines(t)
	a, pa := newPeer(t, nil)
	_, pb := newPeer(t, nil)
	la := tt.Listen(t, a, "/ip4/127.0.0.1/udp/0/quic-v1")
	tt.RunHandshakeDuration(t, pb, la, pa.ID)
}
