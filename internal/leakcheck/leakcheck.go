// Package leakcheck fails a test that leaves goroutines behind.
package leakcheck

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// Check records the goroutines running now and, when the test ends, waits up
// to five seconds for every goroutine started since to exit. Call it first
// in a test, before anything that starts goroutines, so its cleanup runs last.
func Check(t testing.TB) {
	t.Helper()
	before := map[string]bool{}
	for _, g := range stacks() {
		before[id(g)] = true
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			var leaked []string
			for _, g := range stacks() {
				if !before[id(g)] && !ignorable(g) {
					leaked = append(leaked, g)
				}
			}
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("leakcheck: %d goroutines left behind:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func stacks() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	return strings.Split(strings.TrimSpace(string(buf)), "\n\n")
}

// id is the "goroutine N" prefix of a stack.
func id(g string) string {
	if i := strings.Index(g, " ["); i > 0 {
		return g[:i]
	}
	return g
}

// ignorable keeps runtime and test-framework goroutines out of the report:
// only goroutines running or started by this module's code count, and test
// bodies (other tests still running) never do.
func ignorable(g string) bool {
	return !strings.Contains(g, "tachyon-p2p/tachyon") || strings.Contains(g, "testing.tRunner")
}
