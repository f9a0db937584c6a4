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
	if b, ok := c.(Bufferer); ok {
		return b.Buffered()
	}
	return kernelQueued(c)
}
