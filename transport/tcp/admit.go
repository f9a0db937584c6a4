package tcp

// Handshake admission.
//
// An inbound connection is accepted at once and then admitted, or closed at
// once: a socket left in the kernel's accept queue would hold up every
// connection behind it, whoever sent it. With a network.ResourceManager the
// manager decides (per-IP and total handshake caps, exemptions). Without
// one, a built-in gate keeps a total cap per socket and a per-IP cap (IPv6
// counted per /64, which one host usually owns), so that one address cannot
// take every slot; loopback is exempt from the per-IP cap, as the limits
// package exempts it by default. The slot is held from accept until the
// upgrade ends (sniff, WebSocket handshake, security and muxer).

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/internal/logs"
)

// Built-in handshake caps, used without a ResourceManager.
const (
	defaultMaxPending      = 256
	defaultMaxPendingPerIP = 16
)

// ErrTooManyHandshakes is wrapped by the built-in gate's refusals.
var ErrTooManyHandshakes = errors.New("too many inbound handshakes in progress")

// gate admits inbound connections to their handshakes.
type gate struct {
	rm       network.ResourceManager // decides when set; the caps below are then unused
	max      int
	maxPerIP int

	mu    sync.Mutex
	total int
	perIP map[netip.Addr]int
}

func newGate(rm network.ResourceManager, max, maxPerIP int) *gate {
	if max <= 0 {
		max = defaultMaxPending
	}
	if maxPerIP <= 0 {
		maxPerIP = defaultMaxPendingPerIP
	}
	return &gate{rm: rm, max: max, maxPerIP: maxPerIP, perIP: map[netip.Addr]int{}}
}

// begin admits a handshake from ip; done must be called exactly once when
// it ends.
func (g *gate) begin(ip netip.Addr) (done func(), err error) {
	if g.rm != nil {
		return g.rm.BeginHandshake(ip)
	}
	key := ip
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			key = p.Addr()
		}
	}
	perIP := !ip.IsLoopback()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.total >= g.max {
		return nil, fmt.Errorf("%w: %d (the most a socket takes)", ErrTooManyHandshakes, g.max)
	}
	if perIP && g.perIP[key] >= g.maxPerIP {
		return nil, fmt.Errorf("%w from %s: %d (the most one address gets)", ErrTooManyHandshakes, ip, g.maxPerIP)
	}
	g.total++
	if perIP {
		g.perIP[key]++
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.total--
			if perIP {
				if g.perIP[key]--; g.perIP[key] == 0 {
					delete(g.perIP, key)
				}
			}
		})
	}, nil
}

// remoteIP is the IP of c's other end, unmapped; the zero Addr if c is not
// an IP connection.
func remoteIP(c net.Conn) netip.Addr {
	switch a := c.RemoteAddr().(type) {
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	case interface{ AddrPort() netip.AddrPort }:
		return a.AddrPort().Addr().Unmap()
	}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// refusalLog logs refused connections at Debug, at most once a second: an
// attacker makes them at will.
type refusalLog struct {
	log *slog.Logger
	lim logs.Limiter
}

func (r *refusalLog) refused(addr any, c net.Conn, err error) {
	if ok, held := r.lim.Allow(time.Second); ok {
		r.log.Debug("inbound connection refused before its handshake", "addr", addr, "remote", c.RemoteAddr(), "err", err, "refused_unlogged", held)
	}
}
