//go:build unix

package limits

import "syscall"

// fdLimit is the soft RLIMIT_NOFILE (Go raises it to the hard limit at
// start on Linux and macOS).
func fdLimit() int64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	return int64(min(r.Cur, 1<<30)) // RLIM_INFINITY is all ones

}
