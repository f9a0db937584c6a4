//go:build unix

package quic

import (
	"errors"
	"syscall"
)

// isUnreachable reports whether a read on a connected UDP socket failed
// because of an ICMP destination-unreachable answer.
func isUnreachable(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH)
}
