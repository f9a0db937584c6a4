//go:build !unix

package quic

// isUnreachable reports whether a read on a connected UDP socket failed
// because of an ICMP destination-unreachable answer. Outside Unix the probe
// does not tell (Windows hides ICMP errors from UDP sockets unless
// SIO_UDP_CONNRESET is set), and a dial to a closed port ends at its
// timeout.
func isUnreachable(error) bool { return false }
