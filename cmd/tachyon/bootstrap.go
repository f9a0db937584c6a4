package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
)

// keepConnected connects to each of peers and reconnects whenever the
// connection is lost, with a back-off from 1 s to 30 s between failed
// attempts: the node's bootstrap peers (AutoNAT servers, relays, friends).
// A live connection is pinged every pingEvery: one that does not answer
// within pingTimeout is closed and made again. That is how a node behind
// a NAT that moved (a new outside address) notices within seconds: its old
// connections are dead, and the new ones bring the new observed address.
// The two bound that delay (4 s), which the 10 s goal for re-advertising a
// new outside address must absorb along with the reconnection and the
// AutoNAT probes; a ping every 2 s to a few bootstrap peers costs nothing.
// It returns when ctx ends.
const (
	pingEvery   = 2 * time.Second
	pingTimeout = 2 * time.Second
)

func keepConnected(ctx context.Context, h *tachyon.Host, peers []peer.AddrInfo, stderr io.Writer) {
	var wg sync.WaitGroup
	for _, ai := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			backoff := time.Second
			var lastPing time.Time
			for ctx.Err() == nil {
				wait := time.Second // how often a live connection is looked at
				if h.Connectedness(ai.ID) == network.Connected && time.Since(lastPing) >= pingEvery {
					lastPing = time.Now()
					pctx, cancel := context.WithTimeout(ctx, pingTimeout)
					err := h.Ping(pctx, ai.ID, 1, 0, pingTimeout, nil)
					cancel()
					if err != nil && ctx.Err() == nil {
						fmt.Fprintf(stderr, "bootstrap peer %s: no answer to a ping, reconnecting: %v\n", ai.ID, err)
						h.ClosePeer(ai.ID)
					}
				}
				if h.Connectedness(ai.ID) != network.Connected {
					cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					err := h.Connect(cctx, ai)
					cancel()
					switch {
					case err == nil:
						backoff = time.Second
					case ctx.Err() == nil:
						fmt.Fprintf(stderr, "bootstrap peer %s: %v (again in %s)\n", ai.ID, err, backoff)
						wait = backoff
						backoff = min(2*backoff, 30*time.Second)
					}
				}
				select {
				case <-ctx.Done():
				case <-time.After(wait):
				}
			}
		}()
	}
	wg.Wait()
}
