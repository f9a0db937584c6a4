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

// hot keeps the last buffer given back of the classes that full-size
// frames take: 64 KiB (go-yamux and js-yamux frames) and 256 KiB (ours).
// A stream at full speed takes one for each frame and gives it back a
// moment later; sync.Pool would hand out the oldest of another core's,
// and the reader would copy each frame into memory out of cache (in
// profiles of a loopback transfer, the copy into pooled buffers cost
// several times the same copy into one reused buffer). At most 320 KiB
// per process stay here.
var hot [maxClassShift - minClassShift + 1]chan []byte

func init() {
	for _, shift := range []int{16, 18} {
		hot[shift-minClassShift] = make(chan []byte, 1)
	}
}

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
	if hot[c] != nil {
		select {
		case b := <-hot[c]:
			return b[:0]
		default:
		}
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
	if hot[c] != nil {
		select {
		case hot[c] <- b[:0]:
			return
		default:
		}
	}
	bufPools[c].Put(b[:0]) //nolint:staticcheck // a slice header per Put is cheap next to the buffer
}
