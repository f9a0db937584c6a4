//go:build !linux

package udpmux

import (
	"errors"
	"net"
	"net/netip"
)

// Sharing a port between QUIC and a non-QUIC view needs Linux's reuseport
// BPF programs; elsewhere sockets are bound plainly and views refused.

func listenReusePort(network string, addr netip.AddrPort) (*net.UDPConn, error) {
	return net.ListenUDP(network, net.UDPAddrFromAddrPort(addr))
}

func attachSplitProgram(*net.UDPConn) error {
	return errors.New("sharing a UDP port with QUIC needs Linux (reuseport BPF)")
}
