// Package memcheck measures what code allocates, for tests that hold a
// path to a memory budget.
package memcheck

import "runtime"

// AllocatedAfterGC returns the mean bytes allocated by f over rounds calls,
// each made right after two collections: sync.Pools are empty then (the
// first collection moves their items to the victim cache, the second drops
// them), so a buffer f takes from a pool is counted as the allocation a
// pool refill costs. Whatever runs concurrently with f is counted too.
func AllocatedAfterGC(rounds int, f func()) uint64 {
	var total uint64
	for range rounds {
		runtime.GC()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		total += after.TotalAlloc - before.TotalAlloc
	}
	return total / uint64(rounds)
}
