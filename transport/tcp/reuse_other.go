//go:build !linux && !darwin

package tcp

import "syscall"

// reusePortSupported says whether sockets get SO_REUSEPORT (reuse.go):
// not on this platform, where sockets are bound plainly.
const reusePortSupported = false

func reuseControl(string, string, syscall.RawConn) error { return nil }

func errIsAddrInUse(error) bool { return false }
