package webrtc

import (
	"testing"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	tt "github.com/tachyon-p2p/tachyon/transport/udpmux/transporttest"
)

// TestHandshakeDuration: an accepted WebRTC-direct connection reports
// how long its handshake took from the first STUN binding request, a
// dialed one 0.
func TestHandshakeDuration(t *testing.T) {
	leakcheck.Check(t)
	a, aID := newTransport(t)
	b, bID := newTransport(t)
	l := listen(t, a, "/ip4/127.0.0.1/udp/0/webrtc-direct")
	tt.RunHandshakeDuration(t, tt.Peer{T: b, ID: bID}, l, aID)
}
