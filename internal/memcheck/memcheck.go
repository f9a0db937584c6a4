// Package memcheck measures what code allocates, for tests that hold a
// path to a memory budget.
package memcheck

import "runtime"

// AllocatedAfterGC returns the fewest bytes allocated by any of rounds
// calls of f, each made right after two collections: sync.Pools are empty
// then (the first collection moves their items to the victim cache, the
// second drops them), so a buffer f takes from a pool is counted as the
// allocation a pool refill costs. Whatever runs concurrently with f is
// counted too; the minimum keeps a stray background allocation in one
// round out of the result.
func AllocatedAfterGC(rounds int, f func()) uint64 {
	least := ^uint64(0)
	for range rounds {
		runtime.GC()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	return least
}
