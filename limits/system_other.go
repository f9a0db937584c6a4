//go:build !unix

package limits

// fdLimit is unknown off Unix: Windows has no descriptor limit that
// matters for sockets.
func fdLimit() int64 { return 0 }
