// Package peerstore keeps what the node knows about other peers: their
// addresses (each with an expiry), public keys, supported protocols and
// agent versions. It is in memory and safe for concurrent use.
package peerstore

import (
	"slices"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
)

// Common address lifetimes.
const (
	// TempAddrTTL is for addresses seen in passing.
	TempAddrTTL = 2 * time.Minute
	// RecentlyConnectedAddrTTL keeps the address of a peer we were connected to.
	RecentlyConnectedAddrTTL = 15 * time.Minute
	// ConnectedAddrTTL is used while connected; it is replaced on disconnect.
	ConnectedAddrTTL = 1<<63 - 1
	// PermanentAddrTTL never expires.
	PermanentAddrTTL = 1<<63 - 1 - 1
)

type addr struct {
	a       ma.Multiaddr
	expires time.Time
}

type record struct {
	addrs     []addr
	key       crypto.PubKey
	protocols []protocol.ID
	agent     string
	protoVer  string
}

// Peerstore is the in-memory store. The zero value is not usable; use New.
type Peerstore struct {
	now func() time.Time

	mu    sync.Mutex
	peers map[peer.ID]*record
}

// New returns an empty peerstore.
func New() *Peerstore {
	return &Peerstore{now: time.Now, peers: make(map[peer.ID]*record)}
}

func (ps *Peerstore) rec(p peer.ID) *record {
	r := ps.peers[p]
	if r == nil {
		r = &record{}
		ps.peers[p] = r
	}
	return r
}

func expiry(now time.Time, ttl time.Duration) time.Time {
	if ttl >= ConnectedAddrTTL-1 {
		return time.Time{} // never
	}
	return now.Add(ttl)
}

// AddAddrs adds addresses for p that live for ttl, extending the lifetime of
// ones already known. A /p2p suffix naming p is removed.
func (ps *Peerstore) AddAddrs(p peer.ID, addrs []ma.Multiaddr, ttl time.Duration) {
	if ttl <= 0 || len(addrs) == 0 {
		return
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	now := ps.now()
	r := ps.rec(p)
	exp := expiry(now, ttl)
	for _, a := range addrs {
		if tpt, id := peer.SplitAddr(a); id != "" {
			if id != p {
				continue
			}
			a = tpt
		}
		if len(a) == 0 {
			continue
		}
		i := slices.IndexFunc(r.addrs, func(x addr) bool { return x.a.Equal(a) })
		if i < 0 {
			r.addrs = append(r.addrs, addr{a: a, expires: exp})
			continue
		}
		cur := r.addrs[i].expires
		if !cur.IsZero() && (exp.IsZero() || exp.After(cur)) {
			r.addrs[i].expires = exp
		}
	}
}

// SetAddrs sets the lifetime of the given addresses to ttl, even when that
// shortens it; a ttl of 0 removes them.
func (ps *Peerstore) SetAddrs(p peer.ID, addrs []ma.Multiaddr, ttl time.Duration) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	r := ps.rec(p)
	exp := expiry(ps.now(), ttl)
	for _, a := range addrs {
		i := slices.IndexFunc(r.addrs, func(x addr) bool { return x.a.Equal(a) })
		switch {
		case ttl <= 0 && i >= 0:
			r.addrs = slices.Delete(r.addrs, i, i+1)
		case ttl > 0 && i >= 0:
			r.addrs[i].expires = exp
		case ttl > 0:
			r.addrs = append(r.addrs, addr{a: a, expires: exp})
		}
	}
}

// UpdateAddrs changes every address of p whose lifetime is oldTTL-like
// (never expiring when oldTTL is ConnectedAddrTTL) to newTTL. The host calls
// it on disconnect to let connected addresses age out.
func (ps *Peerstore) UpdateAddrs(p peer.ID, newTTL time.Duration) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	r := ps.peers[p]
	if r == nil {
		return
	}
	exp := expiry(ps.now(), newTTL)
	for i := range r.addrs {
		if r.addrs[i].expires.IsZero() {
			r.addrs[i].expires = exp
		}
	}
}

// Addrs returns the unexpired addresses of p.
func (ps *Peerstore) Addrs(p peer.ID) []ma.Multiaddr {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	r := ps.peers[p]
	if r == nil {
		return nil
	}
	now := ps.now()
	out := make([]ma.Multiaddr, 0, len(r.addrs))
	kept := r.addrs[:0]
	for _, a := range r.addrs {
		if !a.expires.IsZero() && !now.Before(a.expires) {
			continue
		}
		kept = append(kept, a)
		out = append(out, a.a)
	}
	clear(r.addrs[len(kept):])
	r.addrs = kept
	return out
}

// AddPubKey records p's public key. It is ignored unless the key derives p.
func (ps *Peerstore) AddPubKey(p peer.ID, k crypto.PubKey) bool {
	if k == nil || !p.MatchesPublicKey(k) {
		return false
	}
	ps.mu.Lock()
	ps.rec(p).key = k
	ps.mu.Unlock()
	return true
}

// PubKey returns p's public key: the recorded one, or the one inlined in an
// identity-hashed ID.
func (ps *Peerstore) PubKey(p peer.ID) crypto.PubKey {
	ps.mu.Lock()
	r := ps.peers[p]
	var k crypto.PubKey
	if r != nil {
		k = r.key
	}
	ps.mu.Unlock()
	if k == nil {
		k, _ = p.ExtractPublicKey()
	}
	return k
}

// SetProtocols replaces the protocols p supports.
func (ps *Peerstore) SetProtocols(p peer.ID, protos []protocol.ID) {
	ps.mu.Lock()
	ps.rec(p).protocols = slices.Clone(protos)
	ps.mu.Unlock()
}

// Protocols returns the protocols p is known to support.
func (ps *Peerstore) Protocols(p peer.ID) []protocol.ID {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if r := ps.peers[p]; r != nil {
		return slices.Clone(r.protocols)
	}
	return nil
}

// SupportsProtocol returns the first of protos that p is known to support.
func (ps *Peerstore) SupportsProtocol(p peer.ID, protos ...protocol.ID) (protocol.ID, bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
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
	r := ps.rec(p)
	r.agent, r.protoVer = agent, protocolVersion
	ps.mu.Unlock()
}

// Agent returns the agent and protocol versions p reported.
func (ps *Peerstore) Agent(p peer.ID) (agent, protocolVersion string) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if r := ps.peers[p]; r != nil {
		return r.agent, r.protoVer
	}
	return "", ""
}

// Peers lists every peer with a record.
func (ps *Peerstore) Peers() []peer.ID {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	out := make([]peer.ID, 0, len(ps.peers))
	for p := range ps.peers {
		out = append(out, p)
	}
	return out
}

// RemovePeer forgets everything about p.
func (ps *Peerstore) RemovePeer(p peer.ID) {
	ps.mu.Lock()
	delete(ps.peers, p)
	ps.mu.Unlock()
}
