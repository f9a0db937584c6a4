//go:build !linux

package udpmux

import (
	"errors"
	"net"
	"net/netip"
)

// SharesNonQUIC says whether ListenNonQUIC can share a QUIC socket's port.
// It needs Linux's reuseport BPF programs; elsewhere listening sockets are
// bound plainly and ListenNonQUIC fails, so WebRTC-direct binds a port of
// its own.
const SharesNonQUIC = false

func listenReusePort(network string, addr netip.AddrPort) (*net.UDPConn, error) {
	return net.ListenUDP(network, net.UDPAddrFromAddrPort(addr))
}

func attachSplitProgram(*net.UDPConn) error {
	return errors.New("sharing a UDP port with QUIC needs Linux (reuseport BPF)")
}
