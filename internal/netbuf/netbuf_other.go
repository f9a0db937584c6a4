//go:build !linux

package netbuf

// kernelQueued cannot ask the kernel here.
func kernelQueued(any) (int, bool) { return 0, false }
