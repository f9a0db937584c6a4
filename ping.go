package tachyon

import (
	"context"
	"fmt"
	"time"

	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/protocol/ping"
)

// Ping opens one ping stream to p (dialing if needed) and measures count
// round trips, waiting interval between them. Each ping may take up to
// timeout. each, if not nil, is called with every measured round trip.
func (h *Host) Ping(ctx context.Context, p peer.ID, count int, interval, timeout time.Duration, each func(seq int, rtt time.Duration)) error {
	s, err := h.NewStream(ctx, p, ping.ID)
	if err != nil {
		return err
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	for i := 0; i < count; i++ {
		if i > 0 && interval > 0 {
			select {
			case <-time.After(interval):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		rtt, err := ping.Once(pctx, s)
		cancel()
		if err != nil {
			s.Reset()
			return fmt.Errorf("tachyon: ping %d to %s: %w", i+1, p, err)
		}
		if each != nil {
			each(i+1, rtt)
		}
	}
	return nil
}
