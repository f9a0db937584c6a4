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
//   - AddSignedAddrs defers the check of a signed record until p's addresses
//     are next read or changed (Addrs, AddAddrs, SetAddrs, UpdateAddrs,
//     another AddSignedAddrs); then the record's addresses, or the unsigned
//     ones if it does not verify, are added as AddAddrs would have added
//     them when given, except that a connected lifetime that ended since
//     counts from its end: checked after p's last disconnect, they are
//     timed addresses expiring RecentlyConnectedAddrTTL after it, as p's
//     connected addresses became then, and rank so against the bound.
//     Connects and disconnects leave the record unchecked; ClearAddrs drops
//     it; GC drops it once its lifetime is over (without counting its
//     addresses) and keeps its peer until then. The peer is recorded even if
//     its record turns out to hold no address of it.
//
// # Bounds
//
// What a peer says about itself is bounded, so that no peer can make the
// store hold more than some tens of kilobytes for it. Each bound has a
// default and an option to change it (n <= 0 removes it):
//
//	bound                             default               option
//	addresses per peer                MaxAddrsPerPeer       WithMaxAddrsPerPeer
//	protocols per peer                MaxProtocolsPerPeer   WithMaxProtocolsPerPeer
//	bytes per protocol ID             MaxProtocolIDLen      WithMaxProtocolIDLen
//	bytes per agent/protocol version  MaxAgentLen           WithMaxAgentLen
//
// The rules:
//
//   - A peer holding MaxAddrsPerPeer addresses takes a new one (from AddAddrs
//     or SetAddrs) only by dropping the one that ranks lowest, counting the
//     new one: permanent addresses rank above connected ones, connected ones
//     above timed ones, and timed ones by their expiry, the later the higher
//     (an expired one, not yet collected, is the lowest). Among equals the
//     one held longer stays, so a new address goes in only if it ranks
//     strictly above the lowest held one, and of the addresses given in one
//     call the first ones go in first. So a new timed address is dropped
//     when the peer is full of addresses that live longer, and a permanent
//     or connected one displaces a timed one.
//   - SetProtocols drops protocol IDs longer than MaxProtocolIDLen, then
//     keeps the first MaxProtocolsPerPeer of the rest, in the order given.
//   - SetAgent cuts the agent and protocol versions to MaxAgentLen bytes,
//     at a UTF-8 boundary.
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
	"strings"
	"sync"
	"time"
	"unicode/utf8"

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

// Bounds on what is recorded about one peer (see Bounds in the package
// doc). These are the defaults; the With options change them.
const (
	// MaxAddrsPerPeer bounds the addresses held for a peer.
	MaxAddrsPerPeer = 64
	// MaxProtocolsPerPeer bounds the protocols recorded for a peer, as
	// go-libp2p does.
	MaxProtocolsPerPeer = 128
	// MaxProtocolIDLen is the longest protocol ID recorded, in bytes;
	// multistream-select allows up to 1024.
	MaxProtocolIDLen = 256
	// MaxAgentLen bounds the agent and protocol versions, in bytes.
	MaxAgentLen = 256
)

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
	signed    *pending  // a signed record not checked yet (AddSignedAddrs)

	// Place in the list of evictable peers (not connected, no permanent
	// address), least recently seen first; nil when not on it.
	prev, next *record
}

// pending is what AddSignedAddrs was given, kept until p's addresses are
// next read or changed.
type pending struct {
	open     func() ([]ma.Multiaddr, bool)
	unsigned []ma.Multiaddr
	ttl      time.Duration
	given    time.Time
	// connected: given while the peer was connected; ended is when its
	// last connection ended since (zero while it lasts).
	connected bool
	ended     time.Time
}

// lifetime is the lifetime the addresses would have now had they been
// added when given; ok is false once it is over.
func (pd *pending) lifetime(now time.Time) (a addr, ok bool) {
	if pd.ttl == ConnectedAddrTTL && pd.connected && !pd.ended.IsZero() {
		a = addr{class: timed, ttl: RecentlyConnectedAddrTTL, expires: pd.ended.Add(RecentlyConnectedAddrTTL)}
	} else {
		set(&a, pd.ttl, pd.given, pd.connected)
	}
	return a, a.alive(now)
}

func (r *record) evictable() bool {
	return r.conns == 0 && !slices.ContainsFunc(r.addrs, func(a addr) bool { return a.class == permanent })
}

// Peerstore is the in-memory store. The zero value is not usable; use New.
type Peerstore struct {
	now       func() time.Time
	maxUnconn int
	maxAddrs  int
	maxProtos int
	maxProtoL int
	maxAgent  int

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

// WithMaxAddrsPerPeer bounds the addresses held for a peer (default
// MaxAddrsPerPeer); n <= 0 removes the bound.
func WithMaxAddrsPerPeer(n int) Option {
	return func(ps *Peerstore) { ps.maxAddrs = n }
}

// WithMaxProtocolsPerPeer bounds the protocols recorded for a peer (default
// MaxProtocolsPerPeer); n <= 0 removes the bound.
func WithMaxProtocolsPerPeer(n int) Option {
	return func(ps *Peerstore) { ps.maxProtos = n }
}

// WithMaxProtocolIDLen sets the longest protocol ID recorded, in bytes
// (default MaxProtocolIDLen); n <= 0 removes the bound.
func WithMaxProtocolIDLen(n int) Option {
	return func(ps *Peerstore) { ps.maxProtoL = n }
}

// WithMaxAgentLen bounds the agent and protocol versions, in bytes (default
// MaxAgentLen); n <= 0 removes the bound.
func WithMaxAgentLen(n int) Option {
	return func(ps *Peerstore) { ps.maxAgent = n }
}

// New returns an empty peerstore.
func New(opts ...Option) *Peerstore {
	ps := &Peerstore{
		now:       time.Now,
		maxUnconn: DefaultMaxUnconnectedPeers,
		maxAddrs:  MaxAddrsPerPeer,
		maxProtos: MaxProtocolsPerPeer,
		maxProtoL: MaxProtocolIDLen,
		maxAgent:  MaxAgentLen,
		peers:     make(map[peer.ID]*record),
	}
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

// raiseTo gives a the class and expiry of n where they are higher or later.
func raiseTo(a *addr, n addr) {
	if n.class > a.class {
		a.class = n.class
	}
	if n.class == timed && (a.expires.IsZero() || n.expires.After(a.expires)) {
		a.ttl, a.expires = n.ttl, n.expires
	}
}

// below reports whether a ranks below b for staying in a full address list:
// by class, then timed ones by expiry.
func below(a, b *addr) bool {
	if a.class != b.class {
		return a.class < b.class
	}
	return a.class == timed && a.expires.Before(b.expires)
}

// bound drops one address of r if it holds more than the bound allows: the
// lowest ranked, and of equals the one added last. Called after each
// address added, it keeps r at the bound.
func (ps *Peerstore) bound(r *record) {
	if ps.maxAddrs <= 0 || len(r.addrs) <= ps.maxAddrs {
		return
	}
	low := len(r.addrs) - 1
	for i := low - 1; i >= 0; i-- {
		if below(&r.addrs[i], &r.addrs[low]) {
			low = i
		}
	}
	r.addrs = slices.Delete(r.addrs, low, low+1)
}

// AddAddrs adds addresses for p that live for ttl. An address already known
// keeps its lifetime if that is longer, and its class if that is higher.
// A /p2p suffix naming p is removed; addresses of other peers are ignored,
// and so is a ttl <= 0. Past MaxAddrsPerPeer the lowest ranked addresses
// are dropped (see Bounds in the package doc).
func (ps *Peerstore) AddAddrs(p peer.ID, addrs []ma.Multiaddr, ttl time.Duration) {
	if ttl <= 0 || len(addrs) == 0 {
		return
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	now := ps.now()
	ps.openSigned(p, now)
	ps.add(p, addrs, func(isConnected bool) (n addr) {
		set(&n, ttl, now, isConnected)
		return n
	}, now)
}

// add adds addrs to p with the lifetime life returns, as AddAddrs does.
// ps.mu is held.
func (ps *Peerstore) add(p peer.ID, addrs []ma.Multiaddr, life func(isConnected bool) addr, now time.Time) {
	var r *record
	for _, a := range addrs {
		if a = normalize(p, a); a == nil {
			continue
		}
		if r == nil {
			r = ps.rec(p, now)
		}
		n := life(r.conns > 0)
		i := slices.IndexFunc(r.addrs, func(x addr) bool { return x.a.Equal(a) })
		if i < 0 {
			r.addrs = append(r.addrs, addr{a: a})
			raiseTo(&r.addrs[len(r.addrs)-1], n)
			ps.bound(r)
			continue
		}
		if !r.addrs[i].alive(now) {
			r.addrs[i] = addr{a: r.addrs[i].a}
		}
		raiseTo(&r.addrs[i], n)
	}
	if r != nil {
		ps.replace(r)
	}
}

// AddSignedAddrs records the addresses of a peer's signed record, as
// AddAddrs would, without checking the record now: open checks it and
// returns its addresses (ok false: it does not verify, and unsigned, the
// addresses the peer sent without signing them, are added instead). It is
// called, once, when p's addresses are next read or changed (see Address
// lifetimes in the package doc), so that a record whose addresses nobody
// reads costs no signature check. A PermanentAddrTTL record is checked now.
//
// open runs with the store locked: it must not call the store, nor panic.
// Only the unsigned addresses AddAddrs would keep are held (at most
// MaxAddrsPerPeer); what open holds is the caller's to bound.
func (ps *Peerstore) AddSignedAddrs(p peer.ID, open func() (addrs []ma.Multiaddr, ok bool), unsigned []ma.Multiaddr, ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	var kept []ma.Multiaddr
	for _, a := range unsigned {
		if a = normalize(p, a); a != nil && !slices.ContainsFunc(kept, a.Equal) {
			if ps.maxAddrs > 0 && len(kept) == ps.maxAddrs {
				break
			}
			kept = append(kept, a)
		}
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	now := ps.now()
	ps.openSigned(p, now)
	r := ps.rec(p, now)
	r.signed = &pending{open: open, unsigned: kept, ttl: ttl, given: now, connected: r.conns > 0}
	if ttl == PermanentAddrTTL {
		ps.openSigned(p, now)
	}
	ps.replace(r)
}

// openSigned checks p's pending signed record, if any, and adds its
// addresses (or the unsigned ones) with the lifetime they were given.
// ps.mu is held.
func (ps *Peerstore) openSigned(p peer.ID, now time.Time) {
	r := ps.peers[p]
	if r == nil || r.signed == nil {
		return
	}
	pd := r.signed
	r.signed = nil
	n, ok := pd.lifetime(now)
	if !ok {
		ps.replace(r)
		return
	}
	addrs, ok := pd.open()
	if !ok {
		addrs = pd.unsigned
	}
	// Checking the record is not hearing of the peer: its place among
	// the peers to evict stays.
	seen := r.seen
	ps.add(p, addrs, func(bool) addr { return n }, now)
	ps.unlink(r)
	r.seen = seen
	ps.replace(r)
}

// openSignedNow is openSigned for a caller that does not hold ps.mu.
func (ps *Peerstore) openSignedNow(p peer.ID) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.openSigned(p, ps.now())
}

// SetAddrs gives the addresses ttl, replacing their lifetime and class even
// when that shortens or lowers them (a permanent address included); a
// ttl <= 0 removes them. Other addresses of p are left alone, unless p
// would hold more than MaxAddrsPerPeer (see Bounds in the package doc).
func (ps *Peerstore) SetAddrs(p peer.ID, addrs []ma.Multiaddr, ttl time.Duration) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	now := ps.now()
	ps.openSigned(p, now)
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
			ps.bound(r)
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
	now := ps.now()
	ps.openSigned(p, now)
	r := ps.peers[p]
	if r == nil {
		return
	}
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
		r.addrs, r.signed = nil, nil
		ps.replace(r)
	}
}

// Addrs returns the unexpired addresses of p.
func (ps *Peerstore) Addrs(p peer.ID) []ma.Multiaddr {
	ps.mu.RLock()
	r := ps.peers[p]
	if r != nil && r.signed != nil {
		ps.mu.RUnlock()
		ps.openSignedNow(p)
		ps.mu.RLock()
		r = ps.peers[p]
	}
	defer ps.mu.RUnlock()
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
	// A record still unchecked stays so: its addresses' lifetime, if
	// connected, is counted from now, as the others' is below. (Checking it
	// here would cost a signature check on nearly every dialed peer, whose
	// address is known from the dial, for the order of the bound alone.)
	if pd := r.signed; pd != nil && pd.ended.IsZero() {
		pd.ended = now
	}
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
		if pd := r.signed; pd != nil {
			if _, ok := pd.lifetime(now); !ok {
				r.signed = nil
			}
		}
		if len(kept) == 0 && r.signed == nil {
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

// SetProtocols replaces the protocols p supports. IDs longer than
// MaxProtocolIDLen are dropped, and of the rest only the first
// MaxProtocolsPerPeer are kept.
func (ps *Peerstore) SetProtocols(p peer.ID, protos []protocol.ID) {
	kept := ps.boundProtocols(protos)
	ps.mu.Lock()
	r := ps.rec(p, ps.now())
	r.protocols = kept
	ps.replace(r)
	ps.mu.Unlock()
}

// boundProtocols returns a copy of protos within the bounds.
func (ps *Peerstore) boundProtocols(protos []protocol.ID) []protocol.ID {
	n := len(protos)
	if ps.maxProtos > 0 {
		n = min(n, ps.maxProtos)
	}
	if n == 0 {
		return nil
	}
	out := make([]protocol.ID, 0, n)
	for _, id := range protos {
		if len(out) == n {
			break
		}
		if ps.maxProtoL <= 0 || len(id) <= ps.maxProtoL {
			out = append(out, id)
		}
	}
	return out
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

// SetAgent records the agent and protocol versions p reported, each cut to
// MaxAgentLen bytes at a UTF-8 boundary.
func (ps *Peerstore) SetAgent(p peer.ID, agent, protocolVersion string) {
	agent, protocolVersion = truncate(agent, ps.maxAgent), truncate(protocolVersion, ps.maxAgent)
	ps.mu.Lock()
	r := ps.rec(p, ps.now())
	r.agent, r.protoVer = agent, protocolVersion
	ps.replace(r)
	ps.mu.Unlock()
}

// truncate cuts s to at most n bytes (n <= 0: no bound), before the UTF-8
// sequence that would cross the bound. The result is a copy, so that the
// rest of a long string is not kept alive.
func truncate(s string, n int) string {
	if n <= 0 || len(s) <= n {
		return s
	}
	i := n
	// A rune has at most utf8.UTFMax-1 continuation bytes; past that the
	// string is not UTF-8 there and is cut at the bound.
	for i > 0 && n-i < utf8.UTFMax-1 && !utf8.RuneStart(s[i]) {
		i--
	}
	if !utf8.RuneStart(s[i]) {
		i = n
	}
	return strings.Clone(s[:i])
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
