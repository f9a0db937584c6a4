package metrics

import "sync"

// memo keeps the children of metric vectors by a comparable key, so that
// an event whose labels come from a bounded set costs one map lookup
// instead of client_golang hashing and validating every label value again
// (six of them for a connection, on each of its events). The key sets are
// bounded the way the label sets are: transports, protocols, outcomes.
type memo[K comparable, V any] struct {
	mu      sync.RWMutex
	m       map[K]V
	resolve func(K) V
}

func newMemo[K comparable, V any](resolve func(K) V) *memo[K, V] {
	return &memo[K, V]{m: map[K]V{}, resolve: resolve}
}

// get returns the children of k, resolving them on first use.
func (c *memo[K, V]) get(k K) V {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.m[k]; ok {
		return v
	}
	v = c.resolve(k)
	c.m[k] = v
	return v
}
