package connmgr

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/core/peer"
)

type recTracer struct{ trims []int }

func (r *recTracer) Trimmed(n int) { r.trims = append(r.trims, n) }

func TestTracer(t *testing.T) {
	base := time.Unix(1_000_000, 0)
	for _, tc := range []struct {
		name      string
		low, high int
		conns     int
		want      []int
	}{
		{"under high", 2, 4, 4, nil},
		{"over high", 1, 2, 4, []int{3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &recTracer{}
			m := New(Config{Low: tc.low, High: tc.high, Tracer: tr})
			m.now = func() time.Time { return base }
			for i := range tc.conns {
				m.Connected(&fakeConn{id: uint64(i), p: peer.ID(rune('a' + i)), opened: base.Add(-time.Hour)})
			}
			m.TrimOpenConns(context.Background())
			if !slices.Equal(tr.trims, tc.want) {
				t.Fatalf("traced trims %v, want %v", tr.trims, tc.want)
			}
		})
	}
}
