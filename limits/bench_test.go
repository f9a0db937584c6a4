package limits

import (
	"fmt"
	"sync/atomic"
	"testing"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/peer"
)

// BenchmarkReserveRelease is the per-buffer cost a muxer pays: one
// reservation and one release, on connections of different peers from
// one address (the address's counter is shared).
func BenchmarkReserveRelease(b *testing.B) {
	m, err := newManager(Config{NoIPLimits: nil}, defaults(system{ram: 24 << 30, fds: 1 << 20}), nil)
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		s, err := m.OpenConn(in, peer.ID(fmt.Sprint("p", n.Add(1))), ma.StringCast("/ip4/10.0.0.1/tcp/1"))
		if err != nil {
			b.Error(err)
			return
		}
		defer s.Close()
		for pb.Next() {
			if err := s.ReserveMemory(64 << 10); err != nil {
				b.Error(err)
				return
			}
			s.ReleaseMemory(64 << 10)
		}
	})
}
