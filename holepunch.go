package tachyon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/event"
	"github.com/tachyon-p2p/tachyon/protocol/holepunch"
	"github.com/tachyon-p2p/tachyon/swarm"
	"github.com/tachyon-p2p/tachyon/transport/tcp"
)

// HolePunching tunes DCUtR hole punching, which is on by default: when a
// peer reaches us through a relay, we try to replace the relayed connection
// with a direct one (see protocol/holepunch). cfg.OnEvent, if set, is
// called besides the host's EvtHolePunch.
func HolePunching(cfg holepunch.Config) Option {
	return func(c *config) error {
		c.holePunch = &cfg
		c.noHolePunch = false
		return nil
	}
}

// NoHolePunching turns DCUtR off: relayed connections stay relayed.
func NoHolePunching() Option {
	return func(c *config) error {
		c.noHolePunch = true
		return nil
	}
}

// relayGrace is how long a relayed connection may stay after a direct one
// replaced it, for the streams still on it to finish.
const relayGrace = time.Minute

// relayRetireDelay is how long an idle relayed connection stays after a
// direct one came up.
const relayRetireDelay = 3 * time.Second

// observedTTL is how long an address a peer observed for us stays a hole
// punching candidate without being seen again.
const observedTTL = 30 * time.Minute

// maxObserved bounds the observed addresses kept.
const maxObserved = 16

// observedAddrs are the addresses peers told us (identify) they see us at.
type observedAddrs struct {
	mu    sync.Mutex
	addrs []observedAddr
}

type observedAddr struct {
	addr ma.Multiaddr
	seen time.Time
}

func (o *observedAddrs) add(a ma.Multiaddr, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.expireLocked(now)
	if i := slices.IndexFunc(o.addrs, func(x observedAddr) bool { return x.addr.Equal(a) }); i >= 0 {
		o.addrs[i].seen = now
		return
	}
	if len(o.addrs) == maxObserved {
		// Drop the stalest.
		oldest := 0
		for i, x := range o.addrs {
			if x.seen.Before(o.addrs[oldest].seen) {
				oldest = i
			}
		}
		o.addrs = slices.Delete(o.addrs, oldest, oldest+1)
	}
	o.addrs = append(o.addrs, observedAddr{a, now})
}

func (o *observedAddrs) expireLocked(now time.Time) {
	o.addrs = slices.DeleteFunc(o.addrs, func(x observedAddr) bool { return now.Sub(x.seen) > observedTTL })
}

func (o *observedAddrs) list(now time.Time) []ma.Multiaddr {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.expireLocked(now)
	out := make([]ma.Multiaddr, len(o.addrs))
	for i, x := range o.addrs {
		out[i] = x.addr
	}
	return out
}

// observe keeps the address the peer of c says it sees us at. Addresses
// seen over relayed connections are the relay's, not ours.
func (h *Host) observe(c *swarm.Conn, a ma.Multiaddr) {
	if len(a) == 0 || c.Limited() || swarm.IsRelayAddr(c.RemoteMultiaddr()) || swarm.IsRelayAddr(a) {
		return
	}
	h.observed.add(a, time.Now())
}

// ObservedAddrs are the addresses peers said they see us at (identify),
// seen within the last 30 minutes.
func (h *Host) ObservedAddrs() []ma.Multiaddr {
	return h.observed.list(time.Now())
}

// startHolePunching serves DCUtR unless NoHolePunching.
func (h *Host) startHolePunching() error {
	if h.cfg.noHolePunch {
		return nil
	}
	var cfg holepunch.Config
	if h.cfg.holePunch != nil {
		cfg = *h.cfg.holePunch
	}
	// The host's public prefixes count for hole punching too.
	cfg.PublicPrefixes = append(slices.Clone(cfg.PublicPrefixes), h.cfg.publicPrefixes...)
	user := cfg.OnEvent
	cfg.OnEvent = func(e holepunch.Event) {
		h.bus.Emit(event.EvtHolePunch{
			Peer: e.Peer, Side: string(e.Side), Attempt: e.Attempt, Addrs: e.Addrs, RTT: e.RTT, Took: e.Took,
			Success: e.Success, Transport: e.Transport, Remote: e.Remote, Reason: e.Reason, Err: e.Err,
		})
		if user != nil {
			user(e)
		}
	}
	if cfg.Log == nil {
		cfg.Log = h.log.With("component", "holepunch")
	}
	if cfg.Tracer == nil {
		cfg.Tracer = h.cfg.metrics.HolePunch()
	}
	h.hp = holepunch.New(hpHost{h}, cfg)
	return h.SetStreamHandler(holepunch.ID, h.hp.HandleStream, AllowLimitedConns())
}

// maybeHolePunch starts DCUtR on a relayed connection we accepted: we are
// B, the side that leads the exchange.
func (h *Host) maybeHolePunch(c *swarm.Conn) {
	if h.hp == nil || c.Direction() != network.DirInbound || !swarm.IsRelayAddr(c.RemoteMultiaddr()) {
		return
	}
	p := c.RemotePeer()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		ctx, cancel := context.WithTimeout(h.ctx, 3*time.Minute)
		defer cancel()
		// Identify tells us the peer's addresses and whether it speaks
		// DCUtR.
		if _, err := h.IdentifyWait(network.WithAllowLimitedConn(ctx, "hole punch"), p); err != nil {
			h.log.Debug("hole punch: identify failed", "peer", p, "err", err)
			return
		}
		if _, ok := h.ps.SupportsProtocol(p, holepunch.ID); !ok {
			h.log.Debug("hole punch: the peer does not speak DCUtR", "peer", p)
			return
		}
		if _, err := h.hp.DirectConnect(ctx, p); err != nil {
			h.log.Debug("hole punch: no direct connection", "peer", p, "err", err)
		}
	}()
}

// retireRelayed closes p's relayed connections once a direct one exists:
// new streams already prefer the direct one; the relayed ones get
// relayGrace for the streams still on them.
func (h *Host) retireRelayed(p peer.ID) {
	var relayed []*swarm.Conn
	for _, c := range h.swarm.ConnsToPeer(p) {
		if swarm.IsRelayAddr(c.RemoteMultiaddr()) {
			relayed = append(relayed, c)
		}
	}
	if len(relayed) == 0 {
		return
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		start := time.Now()
		deadline := start.Add(relayGrace)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for len(relayed) > 0 {
			relayed = slices.DeleteFunc(relayed, func(c *swarm.Conn) bool {
				if c.IsClosed() {
					return true
				}
				// Not at once, even when idle: the peer may still be
				// finishing on it what brought the direct connection up
				// (the end of WebRTC's signalling, DCUtR's last message)
				// and would take the close for a failure.
				if time.Since(start) < relayRetireDelay {
					return false
				}
				if c.NumStreams() == 0 || time.Now().After(deadline) {
					h.log.Debug("closing the relayed connection replaced by a direct one", "peer", p, "streams", c.NumStreams())
					c.Close()
					return true
				}
				return false
			})
			select {
			case <-h.ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

// hpHost is the hole punching service's view of the host.
type hpHost struct{ h *Host }

func (x hpHost) NewStream(ctx context.Context, p peer.ID, protos ...protocol.ID) (network.Stream, error) {
	return x.h.NewStream(ctx, p, protos...)
}

// DialDirect dials, and also counts a direct connection the peer made to
// us meanwhile: a SYN or QUIC Initial that got through before our own dial
// (or punch) was ready lands on our listener, and our dial then fails
// (tcp.ErrPortInUse: the address pair is taken by that very connection).
func (x hpHost) DialDirect(ctx context.Context, p peer.ID, addrs []ma.Multiaddr) (network.Conn, error) {
	c, err := x.h.swarm.DialDirect(ctx, p, x.h.namedSecurity(p, addrs))
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, tcp.ErrPortInUse) {
		if c := x.h.swarm.DirectConn(p); c != nil {
			return c, nil
		}
		return nil, err
	}
	// The inbound connection is still in its handshake.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if c := x.h.swarm.DirectConn(p); c != nil {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (and no connection from the peer came in: %w)", err, ctx.Err())
		case <-tick.C:
		}
	}
}

// namedSecurity rewrites p's plain TCP addresses (/tcp/P, what DCUtR
// exchanges) to the form that names a security protocol (/tcp/P/tls or
// /tcp/P/noise, the first of ours that p advertised) when p advertised such
// forms in identify. A peer that does is a tachyon node, whose upgrader
// takes a direct TLS or Noise handshake in either role of a simultaneous
// open (it looks at the first byte): the security negotiation's round trip
// is saved. Other peers get the plain addresses and multistream-select.
func (h *Host) namedSecurity(p peer.ID, addrs []ma.Multiaddr) []ma.Multiaddr {
	advertised := map[int]bool{}
	for _, a := range h.ps.Addrs(p) {
		if tpt, _ := peer.SplitAddr(a); len(tpt) == 3 && tpt[1].Code() == ma.P_TCP {
			advertised[tpt[2].Code()] = true
		}
	}
	var name *ma.Component
	for _, sec := range h.cfg.securityFor(TCP) {
		if c := securityComponent(sec); c != nil && advertised[c.Code()] {
			name = c
			break
		}
	}
	if name == nil {
		return addrs
	}
	out := make([]ma.Multiaddr, len(addrs))
	for i, a := range addrs {
		if len(a) == 2 && a[1].Code() == ma.P_TCP {
			a = slices.Clone(a).AppendComponent(name)
		}
		out[i] = a
	}
	return out
}

func (x hpHost) DirectConn(p peer.ID) network.Conn {
	if c := x.h.swarm.DirectConn(p); c != nil {
		return c
	}
	return nil
}

func (x hpHost) PeerAddrs(p peer.ID) []ma.Multiaddr { return x.h.ps.Addrs(p) }

func (x hpHost) OwnAddrs() []ma.Multiaddr {
	observed := x.h.ObservedAddrs()
	own := append(x.h.Addrs(), observed...)
	return appendPredicted(own, observed, x.h.swarm.ListenAddrs())
}

// appendPredicted adds to own, for every observed address whose port is
// none of our listen ports of its form, the observed IP with each such
// listen port: what DCUtR calls a predicted address. A NAT that keeps the
// inside port whenever it can (Linux masquerade, most home routers) gives
// a connection to a new destination, such as the hole punch, our listen
// port outside, even when the connection that was observed got another
// port because that one mapping was taken (a stale mapping of an earlier
// connection to the same server); the observed port alone would send the
// peer where no packet of ours goes. Both are dialed at once, so a wrong
// guess costs one dial that fails.
func appendPredicted(own, observed, listen []ma.Multiaddr) []ma.Multiaddr {
	for _, o := range observed {
		if len(o) < 2 || (o[0].Code() != ma.P_IP4 && o[0].Code() != ma.P_IP6) {
			continue
		}
		var ports []*ma.Component
		for _, l := range listen {
			// A listener on loopback sends nothing outside.
			if len(l) != len(o) || l[0].Code() != o[0].Code() || l[1].Code() != o[1].Code() ||
				!ma.Multiaddr(l[2:]).Equal(o[2:]) || l[1].Value() == "0" || manet.IsIPLoopback(l) {
				continue
			}
			if l[1].Value() == o[1].Value() {
				ports = nil // the observed port is ours: nothing to predict
				break
			}
			ports = append(ports, &l[1])
		}
		for _, port := range ports {
			a := slices.Clone(o)
			a[1] = *port
			if !slices.ContainsFunc(own, a.Equal) {
				own = append(own, a)
			}
		}
	}
	return own
}
