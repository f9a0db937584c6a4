package memcheck

import (
	"sync"
	"testing"
)

var sink []byte

// TestAllocatedAfterGC: an allocation is counted, and so is a pooled
// buffer, since the pool is empty when f runs.
func TestAllocatedAfterGC(t *testing.T) {
	if n := AllocatedAfterGC(3, func() { sink = make([]byte, 1<<20) }); n < 1<<20 {
		t.Errorf("a 1 MiB allocation counted as %d bytes", n)
	}
	pool := sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}
	pool.Put(pool.Get())
	if n := AllocatedAfterGC(3, func() { pool.Put(pool.Get()) }); n < 1<<20 {
		t.Errorf("a pooled 1 MiB buffer counted as %d bytes: the pool was not emptied", n)
	}
}
