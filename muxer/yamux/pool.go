package yamux

import (
	"math/bits"
	"sync"
)

// Receive buffers come from power-of-two size classes between 4 KiB and
// 1 MiB, so a buffered frame never holds more than twice its size.
const (
	minClassShift = 12 // 4 KiB
	maxClassShift = 20 // 1 MiB
)

var bufPools [maxClassShift - minClassShift + 1]sync.Pool

func classOf(n int) int {
	if n <= 1<<minClassShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minClassShift
}

// getBuf returns an empty buffer with capacity at least n.
func getBuf(n int) []byte {
	c := classOf(n)
	if c >= len(bufPools) {
		return make([]byte, 0, n)
	}
	if b, ok := bufPools[c].Get().([]byte); ok {
		return b[:0]
	}
	return make([]byte, 0, 1<<(c+minClassShift))
}

// putBuf recycles a buffer obtained from getBuf.
func putBuf(b []byte) {
	c := classOf(cap(b))
	if c >= len(bufPools) || cap(b) != 1<<(c+minClassShift) {
		return
	}
	bufPools[c].Put(b[:0]) //nolint:staticcheck // a slice header per Put is cheap next to the buffer
}
