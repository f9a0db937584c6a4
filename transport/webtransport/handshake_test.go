package webtransport_test

import (
	"testing"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	tt "github.com/tachyon-p2p/tachyon/transport/udpmux/transporttest"
)

// TestHandshakeDuration: an accepted connection reports how long its
// QUIC, HTTP/3 and Noise handshakes took, a dialed one 0.
func TestHandshakeDuration(t *testing.T) {
	leakcheck.Check(t)
	tt.CheckQUICGoroutines(t)
	a, pa, _ := newPeer(t, nil, nil)
	_, pb, _ := newPeer(t, nil, nil)
	la := tt.Listen(t, a, "/ip4/127.0.0.1/udp/0/quic-v1/webtransport")
	tt.RunHandshakeDuration(t, pb, la, pa.ID)
}
