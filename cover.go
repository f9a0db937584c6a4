package tachyon

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/protocol/autonatv2"
	"github.com/tachyon-p2p/tachyon/swarm"
)

// Observers in every family we listen in.
//
// A node learns its outside address in a family only from peers that reach
// it over that family, and identify runs once per peer, on its first
// connection. A dual-stack node's dials mostly end in one family (the
// ranker prefers one), so behind an IPv4 NAT with public IPv6 it can hold
// a single IPv4 connection, or none, and never learn the IPv4 address it
// should check. When a family we listen in is reported by fewer observer
// groups than a guess needs (guessGroups), the host opens one more
// connection in that family to a few peers it already knows, AutoNAT
// servers first, each in a group not heard from yet, and asks them
// identify over it.

const (
	// coverRetry is how long a peer is left alone in a family after a
	// connection for observation was tried with it, whatever the outcome:
	// a family that does not work here costs a few dials per period.
	coverRetry   = 10 * time.Minute
	coverTimeout = 10 * time.Second
	// coverPause is the wait in a family after an observation connection
	// failed, doubled after each failure (up to coverPauseMax) and cleared
	// by a success: a family that does not work here (IPv6 listed but not
	// routed) costs a few dials an hour.
	coverPause    = 30 * time.Second
	coverPauseMax = time.Hour
)

// familyCover remembers the observation connections tried.
type familyCover struct {
	mu      sync.Mutex
	tried   map[coverKey]time.Time
	running int
	next    [2]time.Time     // per family (index 1: IPv4): no dial before
	pause   [2]time.Duration // per family: the wait after the next failure
}

func famIndex(v4 bool) int {
	if v4 {
		return 1
	}
	return 0
}

type coverKey struct {
	p  peer.ID
	v4 bool
}

// coverPeer is a connected peer as coverPlan sees it.
type coverPeer struct {
	id     peer.ID
	server bool // speaks AutoNAT v2
	// families it is connected to us in (direct connections only).
	conn4, conn6 bool
	// addrs are its public direct addresses.
	addrs []ma.Multiaddr
}

// coverDial is an observation connection to open: p at addrs, all of one
// family.
type coverDial struct {
	p     peer.ID
	v4    bool
	addrs []ma.Multiaddr
}

// coverPlan picks the observation connections to open: for each family in
// listen whose observer groups (heard) are fewer than guessGroups, peers
// not connected in it, with public addresses in it, in groups not heard
// from, servers first, at most as many as groups are missing. tried says
// when a peer was last tried in a family.
func coverPlan(listen map[bool]bool, heard map[bool]map[netip.Prefix]bool, peers []coverPeer, tried func(coverKey) time.Time, now time.Time) []coverDial {
	var out []coverDial
	for _, v4 := range []bool{false, true} {
		if !listen[v4] {
			continue
		}
		missing := guessGroups - len(heard[v4])
		if missing <= 0 {
			continue
		}
		groups := maps.Clone(heard[v4])
		if groups == nil {
			groups = map[netip.Prefix]bool{}
		}
		var cands []coverDial
		var servers []bool
		for _, p := range peers {
			if v4 && p.conn4 || !v4 && p.conn6 {
				continue
			}
			if t := tried(coverKey{p.id, v4}); !t.IsZero() && now.Sub(t) < coverRetry {
				continue
			}
			var addrs []ma.Multiaddr
			for _, a := range p.addrs {
				if ip, ok := ipOf(a); ok && ip.Is4() == v4 {
					addrs = append(addrs, a)
				}
			}
			if len(addrs) == 0 {
				continue
			}
			cands = append(cands, coverDial{p.id, v4, addrs})
			servers = append(servers, p.server)
		}
		// Servers first, the order of peers otherwise.
		idx := make([]int, len(cands))
		for i := range idx {
			idx[i] = i
		}
		slices.SortStableFunc(idx, func(a, b int) int {
			switch {
			case servers[a] == servers[b]:
				return 0
			case servers[a]:
				return -1
			}
			return 1
		})
		for _, i := range idx {
			if missing == 0 {
				break
			}
			g, ok := coverGroup(cands[i].addrs[0])
			if !ok || groups[g] {
				continue
			}
			groups[g] = true
			out = append(out, cands[i])
			missing--
		}
	}
	return out
}

// coverGroup is the observer group of a peer at a: its /24 or /48, as the
// observed address manager counts observers.
func coverGroup(a ma.Multiaddr) (netip.Prefix, bool) {
	ip, ok := ipOf(a)
	if !ok {
		return netip.Prefix{}, false
	}
	bits := 48
	if ip.Is4() {
		bits = 24
	}
	p, err := ip.Prefix(bits)
	return p, err == nil
}

// coverNeeded says whether a family we listen on in (listen) has fewer
// observer groups than guessGroups. A family we do not listen on needs
// none: an IPv4-only node would otherwise read every connected peer's
// addresses on every round of the address loop, for nothing.
func coverNeeded(listen map[bool]bool, heard map[bool]map[netip.Prefix]bool) bool {
	for v4, on := range listen {
		if on && len(heard[v4]) < guessGroups {
			return true
		}
	}
	return false
}

// coverFamilies opens the observation connections coverPlan asks for. It
// runs on the address loop; the dials run on the host's goroutines.
func (h *Host) coverFamilies() {
	if h.an == nil || h.an.reach == nil {
		return
	}
	listen := map[bool]bool{}
	for _, a := range h.listenAddrs() {
		if ip, ok := ipOf(a); ok && ip.IsGlobalUnicast() {
			listen[ip.Is4()] = true
		}
	}
	// A family paused after failed dials waits out its pause before its
	// peers are looked at again.
	cv := &h.an.cover
	now := time.Now()
	cv.mu.Lock()
	for _, v4 := range []bool{false, true} {
		if now.Before(cv.next[famIndex(v4)]) {
			delete(listen, v4)
		}
	}
	cv.mu.Unlock()
	if len(listen) == 0 {
		return
	}
	// Observers behind whatever NAT count here: they were heard, even
	// if their ports mean nothing.
	groups, _ := h.observedIPGroups(true)
	heard := map[bool]map[netip.Prefix]bool{false: {}, true: {}}
	for ip, gs := range groups {
		for g := range gs {
			heard[ip.Is4()][g] = true
		}
	}
	if !coverNeeded(listen, heard) {
		return
	}
	var peers []coverPeer
	for _, p := range h.swarm.Peers() {
		cp := coverPeer{id: p}
		for _, c := range h.swarm.ConnsToPeer(p) {
			if c.Limited() || swarm.IsRelayAddr(c.RemoteMultiaddr()) {
				continue
			}
			if ip, ok := ipOf(c.RemoteMultiaddr()); ok {
				cp.conn4 = cp.conn4 || ip.Is4()
				cp.conn6 = cp.conn6 || !ip.Is4()
			}
		}
		for _, a := range h.ps.Addrs(p) {
			if !swarm.IsRelayAddr(a) && scopeOf(a, h.cfg.publicPrefixes) == scopePublic {
				cp.addrs = append(cp.addrs, a)
			}
		}
		_, cp.server = h.ps.SupportsProtocol(p, autonatv2.DialRequestID)
		peers = append(peers, cp)
	}
	cv.mu.Lock()
	defer cv.mu.Unlock()
	if cv.tried == nil {
		cv.tried = make(map[coverKey]time.Time)
	}
	for k, t := range cv.tried {
		if now.Sub(t) >= coverRetry {
			delete(cv.tried, k)
		}
	}
	for _, d := range coverPlan(listen, heard, peers, func(k coverKey) time.Time { return cv.tried[k] }, now) {
		if cv.running >= 2*guessGroups {
			break
		}
		cv.tried[coverKey{d.p, d.v4}] = now
		cv.running++
		h.wg.Add(1)
		go h.coverDial(d)
	}
}

// coverDial opens one observation connection and runs identify over it;
// what the peer says it sees us at goes to the observed address manager.
func (h *Host) coverDial(d coverDial) {
	defer h.wg.Done()
	defer func() {
		h.an.cover.mu.Lock()
		h.an.cover.running--
		h.an.cover.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(h.ctx, coverTimeout)
	defer cancel()
	err := h.observeOver(ctx, d)
	cv := &h.an.cover
	cv.mu.Lock()
	defer cv.mu.Unlock()
	i := famIndex(d.v4)
	if err == nil {
		cv.pause[i], cv.next[i] = 0, time.Time{}
		return
	}
	h.log.Debug("observation connection failed", "peer", d.p, "ipv4", d.v4, "err", err)
	cv.pause[i] = min(max(2*cv.pause[i], coverPause), coverPauseMax)
	cv.next[i] = time.Now().Add(cv.pause[i])
}

func (h *Host) observeOver(ctx context.Context, d coverDial) error {
	c, err := h.swarm.DialDirect(ctx, d.p, d.addrs)
	if err != nil {
		return err
	}
	res, err := h.runIdentify(ctx, c)
	if err != nil {
		return err
	}
	h.recordObserved(c, res.Message.ObservedAddr)
	return nil
}
