// Package peerstore keeps what the node knows about other peers: their
// addresses, public keys, supported protocols and agent versions. It is in
// memory and safe for concurrent use.
//
// # Address lifetimes
//
// Every address is given a TTL, which puts it in one of three classes:
//
//	TTL given                 class      expires                    on the peer's last disconnect
//	PermanentAddrTTL          permanent  never                      unchanged
//	ConnectedAddrTTL          connected  not while connected        becomes RecentlyConnectedAddrTTL from then
//	d > 0 (TempAddrTTL, ...)  timed      d after it was given       unchanged
//	d <= 0                    -          AddAddrs ignores it; SetAddrs and UpdateAddrs remove the address
//
// The rules:
//
//   - AddAddrs never shortens a lifetime nor lowers a class; it can raise the
//     class (timed -> connected -> permanent) and extend a timed expiry.
//   - SetAddrs replaces the class and expiry of the addresses it is given,
//     shortening or lowering them if so asked; a TTL <= 0 removes them.
//   - UpdateAddrs(p, oldTTL, newTTL) changes only the addresses whose TTL is
//     currently oldTTL, as SetAddrs would; it never changes permanent ones.
//   - A permanent address goes only through SetAddrs (which may also give it
//     a timed TTL), ClearAddrs or RemovePeer: connects, disconnects, AddAddrs
//     and GC leave it alone.
//   - Connected addresses exist only while the peer is connected (see
//     Connected and Disconnected): given to a peer that is not, ConnectedAddrTTL
//     means RecentlyConnectedAddrTTL. On the last disconnect a connected
//     address keeps a later timed expiry it was also given, if any.
//   - Addrs never returns an expired address, whether GC has run or not.
//
// # Forgetting peers
//
// The store does not run anything by itself. Its owner calls GC
// periodically (or runs Run): GC drops expired addresses and every peer that
// is not connected and has no address left, with its key, protocols and
// agent. A connected peer is never dropped.
//
// Peers that are not connected and hold no permanent address are bounded
// (WithMaxUnconnectedPeers, DefaultMaxUnconnectedPeers): past the bound, the
// least recently seen of them are forgotten at once. A peer is seen when
// anything is recorded about it and when its last connection ends.
package peerstore

import (
	"context"
	"math"
	"slices"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
)

// Address lifetimes. The two that never expire have the values go-libp2p
// gives them.
const (
	// TempAddrTTL is for addresses seen in passing.
	TempAddrTTL = 2 * time.Minute
	// RecentlyConnectedAddrTTL is for addresses of a peer we were connected
	// to; connected addresses get it when the last connection ends.
	RecentlyConnectedAddrTTL = 15 * time.Minute
	// PermanentAddrTTL never expires (bootstrap and other configured peers).
	PermanentAddrTTL time.Duration = math.MaxInt64
	// ConnectedAddrTTL lasts while the peer is connected.
	ConnectedAddrTTL time.Duration = math.MaxInt64 - 1
)

// DefaultMaxUnconnectedPeers bounds the peers that are not connected and
// hold no permanent address.
const DefaultMaxUnconnectedPeers = 10_000

// DefaultGCInterval is how often Run calls GC when given no interval.
const DefaultGCInterval = time.Minute

type class uint8

const (
	timed class = iota
	connected
	permanent
)

type addr struct {
	a     ma.Multiaddr
	class class
	// The latest timed lifetime given (zero if none): it is what a timed
	// address lives by, and what a connected one falls back on if longer
	// than RecentlyConnectedAddrTTL.
	ttl     time.Duration
	expires time.Time
}

func (a *addr) alive(now time.Time) bool {
	return a.class != timed || now.Before(a.expires)
}

type record struct {
	id        peer.ID
	addrs     []addr
	key       crypto.PubKey
	protocols []protocol.ID
	agent     string
	protoVer  string
	conns     int       // Connected minus Disconnected calls
	seen      time.Time // last recorded about, or last disconnected

	// Place in the list of evictable peers (not connected, no permanent
	// address), least recently seen first; nil when not on it.
	prev, next *record
}

func (r *record) evictable() bool {
	return r.conns == 0 && !slices.ContainsFunc(r.addrs, func(a addr) bool { return a.class == permanent })
}

// Peerstore is the in-memory store. The zero value is not usable; use New.
type Peerstore struct {
	now       func() time.Time
	maxUnconn int

	mu    sync.RWMutex
	peers map[peer.ID]*record
	lru   record // sentinel of the evictable list: lru.next is the oldest
	nlru  int
}

// Option configures a Peerstore.
type Option func(*Peerstore)

// WithMaxUnconnectedPeers bounds the peers that are neither connected nor
// hold a permanent address; n <= 0 removes the bound.
func WithMaxUnconnectedPeers(n int) Option {
	return func(ps *Peerstore) { ps.maxUnconn = n }
}

// New returns an empty peerstore.
func New(opts ...Option) *Peerstore {
	ps := &Peerstore{now: time.Now, maxUnconn: DefaultMaxUnconnectedPeers, peers: make(map[peer.ID]*record)}
	ps.lru.prev, ps.lru.next = &ps.lru, &ps.lru
	for _, o := range opts {
		o(ps)
	}
	return ps
}

// rec returns p's record, creating it, and marks p as seen now. The caller
// calls replace once done changing it.
func (ps *Peerstore) rec(p peer.ID, now time.Time) *record {
	r := ps.peers[p]
	if r == nil {
		r = &record{id: p}
		ps.peers[p] = r
	}
	r.seen = now
	ps.unlink(r)
	return r
}

// place puts r on the evictable list, in order of when it was seen, if it
// belongs there and is not on it, and enforces the bound.
func (ps *Peerstore) place(r *record) {
	if r.next != nil || !r.evictable() {
		return
	}
	at := ps.lru.prev
	for at != &ps.lru && at.seen.After(r.seen) {
		at = at.prev
	}
	r.prev, r.next = at, at.next
	at.next.prev, at.next = r, r
	ps.nlru++
	for ps.maxUnconn > 0 && ps.nlru > ps.maxUnconn {
		old := ps.lru.next
		ps.unlink(old)
		delete(ps.peers, old.id)
	}
}

func (ps *Peerstore) unlink(r *record) {
	if r.next == nil {
		return
	}
	r.prev.next, r.next.prev = r.next, r.prev
	r.prev, r.next = nil, nil
	ps.nlru--
}

// replace re-checks r's place on the evictable list after it changed.
func (ps *Peerstore) replace(r *record) {
	if r.evictable() {
		ps.place(r)
	} else {
		ps.unlink(r)
	}
}

// normalize strips a /p2p suffix naming p; it returns nil for an address of
// another peer or an empty one.
func normalize(p peer.ID, a ma.Multiaddr) ma.Multiaddr {
	if tpt, id := peer.SplitAddr(a); id != "" {
		if id != p {
			return nil
		}
		a = tpt
	}
	if len(a) == 0 {
		return nil
	}
	return a
}

// set gives a the lifetime ttl > 0, replacing its class and expiry.
func set(a *addr, ttl time.Duration, now time.Time, isConnected bool) {
	switch {
	case ttl == PermanentAddrTTL:
		a.class, a.ttl, a.expires = permanent, 0, time.Time{}
	case ttl == ConnectedAddrTTL && isConnected:
		a.class, a.ttl, a.expires = connected, 0, time.Time{}
	default:
		if ttl == ConnectedAddrTTL {
			ttl = RecentlyConnectedAddrTTL
		}
		a.class, a.ttl, a.expires = timed, ttl, now.Add(ttl)
	}
}

// raise gives a the lifetime ttl > 0 unless that would shorten it.
func raise(a *addr, ttl time.Duration, now time.Time, isConnected bool) {
	var n addr
	set(&n, ttl, now, isConnected)
	if n.class > a.class {
		a.class = n.class
	}
	if n.class == timed && (a.expires.IsZero() || n.expires.After(a.expires)) {
		a.ttl, a.expires = n.ttl, n.expires
	}
}

// AddAddrs adds addresses for p that live for ttl. An address already known
// keeps its lifetime if that is longer, and its class if that is higher.
// A /p2p suffix naming p is removed; addresses of other peers are ignored,
// and so is a ttl <= 0.
func (ps *Peerstore) AddAddrs(p peer.ID, addrs []ma.Multiaddr, ttl time.Duration) {
	if ttl <= 0 || len(addrs) == 0 {
		return
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	now := ps.now()
	var r *record
	for _, a := range addrs {
		if a = normalize(p, a); a == nil {
			continue
		}
		if r == nil {
			r = ps.rec(p, now)
		}
		i := slices.IndexFunc(r.addrs, func(x addr) bool { return x.a.Equal(a) })
		if i < 0 {
			r.addrs = append(r.addrs, addr{a: a})
			i = len(r.addrs) - 1
		} else if !r.addrs[i].alive(now) {
			r.addrs[i] = addr{a: r.addrs[i].a}
		}
		raise(&r.addrs[i], ttl, now, r.conns > 0)
	}
	if r != nil {
		ps.replace(r)
	}
}

// SetAddrs gives the addresses ttl, replacing their lifetime and class even
// when that shortens or lowers them (a permanent address included); a
// ttl <= 0 removes them. Other addresses of p are left alone.
func (ps *Peerstore) SetAddrs(p peer.ID, addrs []ma.Multiaddr, ttl time.Duration) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	now := ps.now()
	r := ps.peers[p]
	if r == nil && ttl <= 0 {
		return
	}
	seen := false
	for _, a := range addrs {
		if a = normalize(p, a); a == nil {
			continue
		}
		if ttl > 0 && !seen {
			r, seen = ps.rec(p, now), true
		}
		i := slices.IndexFunc(r.addrs, func(x addr) bool { return x.a.Equal(a) })
		switch {
		case ttl <= 0 && i >= 0:
			r.addrs = slices.Delete(r.addrs, i, i+1)
		case ttl > 0 && i >= 0:
			set(&r.addrs[i], ttl, now, r.conns > 0)
		case ttl > 0:
			r.addrs = append(r.addrs, addr{a: a})
			set(&r.addrs[len(r.addrs)-1], ttl, now, r.conns > 0)
		}
	}
	if r != nil {
		ps.replace(r)
	}
}

// UpdateAddrs gives newTTL, as SetAddrs would, to every address of p whose
// TTL is now oldTTL: connected addresses for ConnectedAddrTTL, timed ones
// last given oldTTL otherwise. Permanent addresses are never changed
// (oldTTL == PermanentAddrTTL does nothing); use SetAddrs for them.
func (ps *Peerstore) UpdateAddrs(p peer.ID, oldTTL, newTTL time.Duration) {
	if oldTTL == PermanentAddrTTL || oldTTL <= 0 {
		return
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	r := ps.peers[p]
	if r == nil {
		return
	}
	now := ps.now()
	kept := r.addrs[:0]
	for _, a := range r.addrs {
		match := a.alive(now) && (oldTTL == ConnectedAddrTTL && a.class == connected ||
			a.class == timed && a.ttl == oldTTL)
		if match {
			if newTTL <= 0 {
				continue
			}
			set(&a, newTTL, now, r.conns > 0)
		}
		kept = append(kept, a)
	}
	clear(r.addrs[len(kept):])
	r.addrs = kept
	ps.replace(r)
}

// ClearAddrs removes every address of p, permanent ones included.
func (ps *Peerstore) ClearAddrs(p peer.ID) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if r := ps.peers[p]; r != nil {
		r.addrs = nil
		ps.replace(r)
	}
}

// Addrs returns the unexpired addresses of p.
func (ps *Peerstore) Addrs(p peer.ID) []ma.Multiaddr {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	r := ps.peers[p]
	if r == nil || len(r.addrs) == 0 {
		return nil
	}
	now := ps.now()
	out := make([]ma.Multiaddr, 0, len(r.addrs))
	for i := range r.addrs {
		if r.addrs[i].alive(now) {
			out = append(out, r.addrs[i].a)
		}
	}
	return out
}

// Connected records that a connection to p opened. Calls nest: p counts as
// connected until Disconnected has been called as many times.
func (ps *Peerstore) Connected(p peer.ID) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	r := ps.rec(p, ps.now())
	r.conns++
}

// Disconnected records that a connection to p closed. When it was the last,
// p's connected addresses get RecentlyConnectedAddrTTL from now and p counts
// as seen now.
func (ps *Peerstore) Disconnected(p peer.ID) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	r := ps.peers[p]
	if r == nil || r.conns == 0 {
		return
	}
	if r.conns--; r.conns > 0 {
		return
	}
	now := ps.now()
	exp := now.Add(RecentlyConnectedAddrTTL)
	for i := range r.addrs {
		a := &r.addrs[i]
		if a.class != connected {
			continue
		}
		a.class = timed
		if !a.expires.After(exp) {
			a.ttl, a.expires = RecentlyConnectedAddrTTL, exp
		}
	}
	r.seen = now
	ps.replace(r)
}

// GC drops expired addresses, and peers that are not connected and have no
// address left. It returns how many of each it dropped.
func (ps *Peerstore) GC() (addrs, peers int) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	now := ps.now()
	for p, r := range ps.peers {
		kept := r.addrs[:0]
		for _, a := range r.addrs {
			if a.alive(now) {
				kept = append(kept, a)
			}
		}
		addrs += len(r.addrs) - len(kept)
		clear(r.addrs[len(kept):])
		r.addrs = kept
		if len(kept) == 0 {
			r.addrs = nil
			if r.conns == 0 {
				ps.unlink(r)
				delete(ps.peers, p)
				peers++
			}
		}
	}
	return addrs, peers
}

// Run calls GC every interval (DefaultGCInterval if interval <= 0) until ctx
// is done. The owner of the store runs it in a goroutine of its own.
func (ps *Peerstore) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultGCInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			ps.GC()
		}
	}
}

// AddPubKey records p's public key. It is ignored unless the key derives p.
func (ps *Peerstore) AddPubKey(p peer.ID, k crypto.PubKey) bool {
	if k == nil || !p.MatchesPublicKey(k) {
		return false
	}
	ps.mu.Lock()
	r := ps.rec(p, ps.now())
	r.key = k
	ps.replace(r)
	ps.mu.Unlock()
	return true
}

// PubKey returns p's public key: the recorded one, or the one inlined in an
// identity-hashed ID.
func (ps *Peerstore) PubKey(p peer.ID) crypto.PubKey {
	ps.mu.RLock()
	r := ps.peers[p]
	var k crypto.PubKey
	if r != nil {
		k = r.key
	}
	ps.mu.RUnlock()
	if k == nil {
		k, _ = p.ExtractPublicKey()
	}
	return k
}

// SetProtocols replaces the protocols p supports.
func (ps *Peerstore) SetProtocols(p peer.ID, protos []protocol.ID) {
	ps.mu.Lock()
	r := ps.rec(p, ps.now())
	r.protocols = slices.Clone(protos)
	ps.replace(r)
	ps.mu.Unlock()
}

// Protocols returns the protocols p is known to support.
func (ps *Peerstore) Protocols(p peer.ID) []protocol.ID {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	if r := ps.peers[p]; r != nil {
		return slices.Clone(r.protocols)
	}
	return nil
}

// SupportsProtocol returns the first of protos that p is known to support.
func (ps *Peerstore) SupportsProtocol(p peer.ID, protos ...protocol.ID) (protocol.ID, bool) {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	r := ps.peers[p]
	if r == nil {
		return "", false
	}
	for _, want := range protos {
		if slices.Contains(r.protocols, want) {
			return want, true
		}
	}
	return "", false
}

// SetAgent records the agent and protocol versions p reported.
func (ps *Peerstore) SetAgent(p peer.ID, agent, protocolVersion string) {
	ps.mu.Lock()
	r := ps.rec(p, ps.now())
	r.agent, r.protoVer = agent, protocolVersion
	ps.replace(r)
	ps.mu.Unlock()
}

// Agent returns the agent and protocol versions p reported.
func (ps *Peerstore) Agent(p peer.ID) (agent, protocolVersion string) {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	if r := ps.peers[p]; r != nil {
		return r.agent, r.protoVer
	}
	return "", ""
}

// Peers lists every peer with a record.
func (ps *Peerstore) Peers() []peer.ID {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	out := make([]peer.ID, 0, len(ps.peers))
	for p := range ps.peers {
		out = append(out, p)
	}
	return out
}

// RemovePeer forgets everything about p, permanent addresses included. Only
// that p is connected, if it is, is kept.
func (ps *Peerstore) RemovePeer(p peer.ID) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	r := ps.peers[p]
	if r == nil {
		return
	}
	if r.conns > 0 {
		ps.peers[p] = &record{id: p, conns: r.conns, seen: r.seen}
		return
	}
	ps.unlink(r)
	delete(ps.peers, p)
}
