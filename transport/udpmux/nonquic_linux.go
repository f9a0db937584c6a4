package udpmux

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// SharesNonQUIC says whether ListenNonQUIC can share a QUIC socket's port
// (Linux: reuseport BPF).
const SharesNonQUIC = true

func listenReusePort(network string, addr netip.AddrPort) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		if err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("setting SO_REUSEPORT: %w", serr)
		}
		return nil
	}}
	pc, err := lc.ListenPacket(context.Background(), network, addr.String())
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

// splitProgram runs on each datagram of the port's reuseport group, with
// the UDP payload at offset 0, and returns the index of the socket that
// gets it: 0, the QUIC socket (bound first), for a first byte with the
// fixed bit or the long-header bit set (quic-go's own test), else 1, the
// view. An empty datagram fails the load, which returns 0.
var splitProgram = []unix.SockFilter{
	{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: 0},
	{Code: unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K, Jt: 0, Jf: 1, K: 0xc0},
	{Code: unix.BPF_RET | unix.BPF_K, K: 0},
	{Code: unix.BPF_RET | unix.BPF_K, K: 1},
}

// attachSplitProgram installs splitProgram on c's reuseport group.
func attachSplitProgram(c *net.UDPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		prog := unix.SockFprog{Len: uint16(len(splitProgram)), Filter: &splitProgram[0]}
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF, &prog)
	})
	if err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("attaching the QUIC/non-QUIC split program: %w", serr)
	}
	return nil
}
