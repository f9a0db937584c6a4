//go:build linux || darwin

package tcp

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// reusePortSupported says whether sockets get SO_REUSEPORT (reuse.go).
const reusePortSupported = true

// reuseControl sets SO_REUSEADDR and SO_REUSEPORT on a socket before its
// bind.
func reuseControl(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
			serr = fmt.Errorf("setting SO_REUSEADDR: %w", serr)
			return
		}
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); serr != nil {
			serr = fmt.Errorf("setting SO_REUSEPORT: %w", serr)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// errIsAddrInUse tells the errors of a bind or connect whose addresses are
// taken: EADDRINUSE (bind, or connect on macOS) and EADDRNOTAVAIL (connect
// on Linux: no free 4-tuple).
func errIsAddrInUse(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || errors.Is(err, syscall.EADDRNOTAVAIL)
}
