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
// It returns when ctx ends.
func keepConnected(ctx context.Context, h *tachyon.Host, peers []peer.AddrInfo, stderr io.Writer) {
	var wg sync.WaitGroup
	for _, ai := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			backoff := time.Second
			for ctx.Err() == nil {
				wait := time.Second // how often a live connection is looked at
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
