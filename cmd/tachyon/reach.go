package main

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/event"
	"github.com/tachyon-p2p/tachyon/protocol/holepunch"
	"github.com/tachyon-p2p/tachyon/swarm"
)

// reportReachability prints, as they happen, the node's addresses through
// relays and the outcome of every hole punch. The returned func stops it.
func reportReachability(h *tachyon.Host, w io.Writer) (stop func()) {
	sub := h.EventBus().Subscribe(64, event.EvtLocalAddrsUpdated{}, event.EvtHolePunch{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ev := range sub.Out() {
			switch e := ev.(type) {
			case event.EvtLocalAddrsUpdated:
				for _, a := range e.Added {
					if swarm.IsRelayAddr(a) {
						fmt.Fprintf(w, "relay address: %s/p2p/%s\n", a, h.ID())
					}
				}
				for _, a := range e.Removed {
					if swarm.IsRelayAddr(a) {
						fmt.Fprintf(w, "relay address gone: %s/p2p/%s\n", a, h.ID())
					}
				}
			case event.EvtHolePunch:
				what := fmt.Sprintf("attempt %d", e.Attempt)
				if e.Attempt == 0 {
					what = "direct dial (connection reversal)"
				}
				if e.Success {
					fmt.Fprintf(w, "hole punch with %s (%s, %s): direct over %s to %s in %s, relay rtt %s\n",
						e.Peer, e.Side, what, e.Transport, e.Remote, round(e.Took), round(e.RTT))
				} else {
					fmt.Fprintf(w, "hole punch with %s (%s, %s) failed after %s: %s", e.Peer, e.Side, what, round(e.Took), e.Reason)
					if e.Err != nil {
						fmt.Fprintf(w, ": %v", e.Err)
					}
					fmt.Fprintln(w)
				}
			}
		}
	}()
	return func() {
		sub.Close()
		wg.Wait()
	}
}

// holePunchConfig is the hole punching set-up of the
// --holepunch-private-addrs and --holepunch-public-prefixes flags.
func holePunchConfig(private bool, prefixes string) (holepunch.Config, error) {
	cfg := holepunch.Config{AllowPrivateAddrs: private}
	for _, f := range strings.Split(prefixes, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return cfg, usagef("--holepunch-public-prefixes %q: %w", f, err)
		}
		cfg.PublicPrefixes = append(cfg.PublicPrefixes, p.Masked())
	}
	return cfg, nil
}
