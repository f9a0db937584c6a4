package udpmux

import "testing"

// Hole-punching datagrams are neither QUIC (quic-go's test: fixed bit or
// long-header bit), nor STUN (0-3), nor DTLS (20-63).
func TestPunchDatagramIsNotQUIC(t *testing.T) {
	b := make([]byte, punchSize)
	for range 1000 {
		fillPunch(b)
		if b[0]&0xc0 != 0 || b[0] <= 3 || b[0] >= 20 {
			t.Fatalf("first byte %#x", b[0])
		}
	}
}
