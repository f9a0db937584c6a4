// Package verified remembers signature checks that passed, so that the same
// bytes seen again cost a hash instead of a public-key verification: a peer
// reconnecting with the key, static key and signature it sent before (Noise),
// the same certificate (TLS). Only checks that passed are kept, each under a
// SHA-256 digest of every byte the check read, so an entry answers for exactly
// those bytes and nothing else; a table that fills up starts over, so a peer
// sending endless distinct keys costs what it cost without the table.
package verified

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
)

// Digest names the bytes of one check.
type Digest [sha256.Size]byte

// Sum digests domain and parts, each part prefixed by its length so that no
// two different splits of the same bytes give the same digest.
func Sum(domain string, parts ...[]byte) Digest {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(domain)))
	h.Write(n[:])
	h.Write([]byte(domain))
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	var d Digest
	h.Sum(d[:0])
	return d
}

// Table maps the digests of checks that passed to what they established
// (the key they authenticated, say). It keeps two generations of at most
// max entries each: when the current one is full it becomes the old one
// and a new one starts, and an entry found in the old one moves to the
// current one. So an entry used again within a generation stays, and a
// stream of checks never seen again (go-libp2p makes a new Noise static key
// per handshake; a peer may send endless identities) pushes out only
// entries that were not used meanwhile. Safe for concurrent use; the zero
// value is not usable, use New.
type Table[V any] struct {
	mu       sync.RWMutex
	cur, old map[Digest]V
	max      int
}

// New returns a table keeping at most 2*max entries.
func New[V any](max int) *Table[V] {
	return &Table[V]{max: max}
}

// Get returns what the check named d established, if it passed before.
func (t *Table[V]) Get(d Digest) (V, bool) {
	t.mu.RLock()
	v, ok := t.cur[d]
	if !ok {
		v, ok = t.old[d]
	}
	t.mu.RUnlock()
	if ok {
		t.mu.Lock()
		if _, in := t.cur[d]; !in {
			t.addLocked(d, v)
		}
		t.mu.Unlock()
	}
	return v, ok
}

// Add records that the check named d passed and established v. Call it
// only after the check passed.
func (t *Table[V]) Add(d Digest, v V) {
	t.mu.Lock()
	t.addLocked(d, v)
	t.mu.Unlock()
}

func (t *Table[V]) addLocked(d Digest, v V) {
	if _, in := t.cur[d]; !in && len(t.cur) >= t.max {
		t.old, t.cur = t.cur, nil
	}
	if t.cur == nil {
		t.cur = make(map[Digest]V) // grown as filled: most tables hold a few entries
	}
	t.cur[d] = v
	delete(t.old, d)
}

// Len is the number of entries kept.
func (t *Table[V]) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.cur) + len(t.old)
}

// Reset forgets every entry (tests use it to start from a known state).
func (t *Table[V]) Reset() {
	t.mu.Lock()
	t.cur, t.old = nil, nil
	t.mu.Unlock()
}
