package tachyon

import (
	"context"
	"fmt"
	"slices"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/circuit"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/protocol/relay"
	"github.com/tachyon-p2p/tachyon/transport/relayed"
	"github.com/tachyon-p2p/tachyon/upgrader"
)

// NoRelayClient turns off the circuit relay client: the host neither dials
// /p2p-circuit addresses nor accepts connections through relays. It is on
// by default, as in go-libp2p.
func NoRelayClient() Option {
	return func(c *config) error {
		c.noRelayClient = true
		return nil
	}
}

// StaticRelays names relays (full addresses ending in /p2p/<relay>) on
// which the host keeps reservations while it is not publicly reachable
// (see ForceReachability), and whose /p2p-circuit addresses it then
// advertises. RelayReservations sets how many it holds at once.
func StaticRelays(addrs ...ma.Multiaddr) Option {
	return func(c *config) error {
		infos, err := peer.AddrInfosFromP2pAddrs(addrs...)
		if err != nil {
			return fmt.Errorf("tachyon: StaticRelays: %w", err)
		}
		c.staticRelays = append(c.staticRelays, infos...)
		return nil
	}
}

// RelayReservations sets how many relays of StaticRelays the host holds a
// reservation on at once (default 2).
func RelayReservations(n int) Option {
	return func(c *config) error {
		if n <= 0 {
			return fmt.Errorf("tachyon: RelayReservations: %d is not positive", n)
		}
		c.relayReservations = n
		return nil
	}
}

// ForceReachability sets the host's reachability instead of measuring it:
// a public host keeps no relay reservations; a private or unknown one keeps
// them on its StaticRelays.
func ForceReachability(r network.Reachability) Option {
	return func(c *config) error {
		c.reachability = r
		return nil
	}
}

// RelayService makes the host a circuit relay v2 relay (hop): peers behind
// NATs reserve a slot on it, and others reach them through it, each
// circuit within cfg's limits (relay.DefaultConfig: go-libp2p's, 2 minutes
// and 128 KiB each way). Off by default.
func RelayService(cfg relay.Config) Option {
	return func(c *config) error {
		c.relayService = &cfg
		return nil
	}
}

// RelayStat reports the relay service's counters; ok is false when the
// host is not a relay.
func (h *Host) RelayStat() (st relay.Stat, ok bool) {
	if h.relaySvc == nil {
		return relay.Stat{}, false
	}
	return h.relaySvc.Stat(), true
}

// startRelayService serves the hop protocol when RelayService was given.
func (h *Host) startRelayService() error {
	if h.cfg.relayService == nil {
		return nil
	}
	cfg := *h.cfg.relayService
	if cfg.Tracer == nil {
		cfg.Tracer = h.cfg.metrics.RelayService()
	}
	h.relaySvc = relay.New(h, cfg, h.log.With("component", "relay"))
	return h.SetStreamHandler(circuit.HopID, h.relaySvc.HandleHop)
}

// newRelayedTransport builds the relay client transport over the TCP
// upgrader's security and muxers.
func newRelayedTransport(cfg config, up *upgrader.Upgrader) *relayed.Transport {
	ru := *up
	ru.Transport = relayed.Name
	return relayed.New(&ru, cfg.log.With("component", "relay-client"))
}

// circuitListenAddr is where the relay client listens: circuits from any
// relay.
var circuitListenAddr = ma.Multiaddr{func() ma.Component { c, _ := ma.NewComponent("p2p-circuit", ""); return *c }()}

// startRelayClient accepts circuits and, with StaticRelays, keeps
// reservations.
func (h *Host) startRelayClient() error {
	if h.relayed == nil {
		return nil
	}
	h.relayed.SetHost(relayHost{h})
	if err := h.SetStreamHandler(circuit.StopID, h.relayed.HandleStop); err != nil {
		return err
	}
	if err := h.swarm.Listen(circuitListenAddr); err != nil {
		return fmt.Errorf("tachyon: listening for relayed connections: %w", err)
	}
	if len(h.cfg.staticRelays) == 0 {
		return nil
	}
	h.rsv = relayed.NewReservations(relayHost{h}, h.id, relayed.ReservationsConfig{
		Relays:   h.cfg.staticRelays,
		Want:     h.cfg.relayReservations,
		OnChange: h.reservationsChanged,
		Log:      h.log.With("component", "relay-client"),
		Tracer:   h.cfg.metrics.RelayClient(),
	})
	h.rsv.SetActive(h.cfg.reachability != network.ReachabilityPublic)
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.rsv.Run(h.ctx)
	}()
	return nil
}

// reservationsChanged keeps the connections to the relays we hold
// reservations on (a reservation ends with its connection), and announces
// the new addresses.
func (h *Host) reservationsChanged() {
	held := h.rsv.Held()
	if h.cm != nil {
		h.mu.Lock()
		before := h.relayProtected
		h.relayProtected = make(map[peer.ID]bool, len(held))
		for _, r := range held {
			h.relayProtected[r.Relay] = true
		}
		now := h.relayProtected
		h.mu.Unlock()
		for p := range now {
			if !before[p] {
				h.cm.Protect(p, "relay-reservation")
			}
		}
		for p := range before {
			if !now[p] {
				h.cm.Unprotect(p, "relay-reservation")
			}
		}
	}
	h.addrsChanged()
}

// RelayReservations lists the relay reservations the host holds now
// (none without StaticRelays).
func (h *Host) RelayReservations() []relayed.Reservation {
	if h.rsv == nil {
		return nil
	}
	return h.rsv.Held()
}

// relayAddrs are the host's addresses through relays.
func (h *Host) relayAddrs() []ma.Multiaddr {
	if h.rsv == nil {
		return nil
	}
	return h.rsv.CircuitAddrs()
}

// isCircuitListen reports whether a is the relay client's listen address,
// which is not an address anyone can dial.
func isCircuitListen(a ma.Multiaddr) bool {
	return slices.EqualFunc(a, circuitListenAddr, func(x, y ma.Component) bool { return x.Equal(&y) })
}

// relayHost is the relay client's view of the host.
type relayHost struct{ h *Host }

func (r relayHost) Connect(ctx context.Context, ai peer.AddrInfo) error { return r.h.Connect(ctx, ai) }
func (r relayHost) NewStream(ctx context.Context, p peer.ID, protos ...protocol.ID) (network.Stream, error) {
	return r.h.NewStream(ctx, p, protos...)
}
