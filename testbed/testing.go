package testbed

import (
	"errors"
	"os"
	"testing"
)

// ForTest returns a new Network with opts that is closed when tb ends. On a machine
// that cannot run it (not root, tools missing) the test fails saying what
// to do, or is skipped if TACHYON_SKIP_NETNS=1.
func ForTest(tb testing.TB, opts ...Option) *Network {
	tb.Helper()
	n, err := New(opts...)
	if errors.Is(err, ErrNotSupported) && os.Getenv("TACHYON_SKIP_NETNS") == "1" {
		tb.Skipf("TACHYON_SKIP_NETNS=1: %v", err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := n.Close(); err != nil {
			tb.Errorf("closing testbed: %v", err)
		}
	})
	return n
}
