package udpmux

import (
	"testing"

	"github.com/quic-go/quic-go"

	"github.com/tachyon-p2p/tachyon/upgrader/rmtest"
)

// Connection window growth is granted only as far as the connection's
// scope reserves it; connections without a scope grow freely.
func TestWindowGrowthReserved(t *testing.T) {
	m := New(nil)
	if m.QUICConfig().AllowConnectionWindowIncrease == nil {
		t.Fatal("the QUIC config has no window hook")
	}
	rm := &rmtest.Manager{MemoryPerConn: 1 << 20}
	scope, _ := rm.OpenConn(0, "p", nil)
	c, other := new(quic.Conn), new(quic.Conn) // keys only: the hook never calls them
	m.scopes.Store(c, scope)
	for _, tc := range []struct {
		c     *quic.Conn
		delta uint64
		ok    bool
		mem   int
	}{
		{c, 512 << 10, true, 512 << 10},
		{c, 512 << 10, true, 1 << 20},
		{c, 1, false, 1 << 20},
		{other, 1 << 40, true, 1 << 20},
		{c, 1 << 40, false, 1 << 20},
	} {
		if ok := m.allowWindowIncrease(tc.c, tc.delta); ok != tc.ok || scope.(*rmtest.Scope).Memory() != tc.mem {
			t.Fatalf("grow by %d: %v, reserved %d; want %v, %d", tc.delta, ok, scope.(*rmtest.Scope).Memory(), tc.ok, tc.mem)
		}
	}
	scope.Close()
	if st := rm.Stats(); st.Memory != 0 {
		t.Fatalf("closing the scope left %d bytes", st.Memory)
	}
}
