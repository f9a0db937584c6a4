package dashboards

import (
	"os/exec"
	"syscall"
)

// dieWithTest has Linux kill cmd when the test process dies, even without
// running its cleanups (a panic, a timeout).
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
