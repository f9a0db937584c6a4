package leakcheck

import (
	"testing"
	"time"
)

type recorder struct {
	testing.TB
	failed   bool
	cleanups []func()
}

func (r *recorder) Errorf(string, ...any) { r.failed = true }
func (r *recorder) Helper()               {}
func (r *recorder) Cleanup(f func())      { r.cleanups = append(r.cleanups, f) }

func TestDetectsLeak(t *testing.T) {
	r := &recorder{TB: t}
	Check(r)
	stop := make(chan struct{})
	go func() { <-stop }()
	start := time.Now()
	r.cleanups[0]()
	close(stop)
	if !r.failed {
		t.Fatal("a blocked goroutine was not reported")
	}
	if time.Since(start) < 4*time.Second {
		t.Fatal("did not wait before reporting")
	}
}

func TestNoLeak(t *testing.T) {
	r := &recorder{TB: t}
	Check(r)
	done := make(chan struct{})
	go func() { time.Sleep(50 * time.Millisecond); close(done) }()
	r.cleanups[0]()
	<-done
	if r.failed {
		t.Fatal("a goroutine that exits was reported")
	}
}
