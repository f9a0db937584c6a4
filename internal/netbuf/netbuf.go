// Package netbuf tells how many received bytes a connection holds ready,
// so that a protocol can tell data that arrived together from data still to
// come (the multistream listener batches its header with its answer only
// when the dialer's proposal came with its header).
package netbuf

// Bufferer is implemented by connections and streams that know how many
// received bytes a Read would return without waiting for the network.
type Bufferer interface {
	Buffered() int
}

// Buffered returns what c holds ready: its own count if it has one, what
// the kernel holds for its socket otherwise, and 0 when neither can tell.
func Buffered(c any) int {
	n, _ := Queued(c)
	return n
}

// Queued is Buffered that also says whether c could tell: ok is false when
// c neither counts for itself nor has a socket the kernel can be asked
// about (a pipe, a socket on a system without SIOCINQ).
func Queued(c any) (n int, ok bool) {
	if b, isB := c.(Bufferer); isB {
		return b.Buffered(), true
	}
	return kernelQueued(c)
}

// Exacter is implemented by a Bufferer whose count may not be exact: a
// WebSocket counts frame headers and control frames, which its Read never
// returns, so a Read may still wait although the count says bytes are
// there. Wrappers that add to another connection's count forward it.
type Exacter interface {
	BufferedExact() bool
}

// Exact reports whether a Read of up to Buffered(c) bytes returns without
// waiting for the network: c counts exactly (its own count unless it says
// otherwise, or the kernel's for a socket). Reading ahead on that count is
// safe only then.
func Exact(c any) bool {
	if e, ok := c.(Exacter); ok {
		return e.BufferedExact()
	}
	_, ok := Queued(c)
	return ok
}
