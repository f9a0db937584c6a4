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
// relays, the verdict on each of its addresses, the addresses it
// advertises, and the outcome of every hole punch. The returned func stops
// it.
func reportReachability(h *tachyon.Host, w io.Writer) (stop func()) {
	sub := h.EventBus().Subscribe(64, event.EvtLocalAddrsUpdated{}, event.EvtHolePunch{},
		event.EvtAddrReachability{}, event.EvtAdvertisedAddrsUpdated{})
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
			case event.EvtAddrReachability:
				fmt.Fprintf(w, "reachability: %s %s (was %s; %d servers)\n", e.Addr, e.To, e.From, len(e.Servers))
			case event.EvtAdvertisedAddrsUpdated:
				var as []string
				for _, a := range e.Current {
					as = append(as, a.String())
				}
				if len(as) == 0 {
					as = []string{"(none)"}
				}
				fmt.Fprintf(w, "advertised: %s\n", strings.Join(as, " "))
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

// parsePrefixes reads a comma-separated list of CIDRs for flag name.
func parsePrefixes(name, list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(list, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, usagef("%s %q: %w", name, f, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// holePunchConfig is the hole punching set-up of the
// --holepunch-private-addrs and --holepunch-public-prefixes flags.
func holePunchConfig(private bool, prefixes string) (holepunch.Config, error) {
	cfg := holepunch.Config{AllowPrivateAddrs: private}
	var err error
	cfg.PublicPrefixes, err = parsePrefixes("--holepunch-public-prefixes", prefixes)
	return cfg, err
}
