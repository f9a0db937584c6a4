package yamux

import (
	"testing"
	"time"
)

// Setting a deadline after stop must not wait for a timer that stop
// cancelled (it used to block forever).
func TestDeadlineSetAfterStop(t *testing.T) {
	var d deadline
	d.set(time.Now().Add(time.Hour))
	d.stop()
	done := make(chan struct{})
	go func() {
		d.set(time.Time{})
		d.set(time.Now().Add(time.Hour))
		d.stop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("set after stop blocked")
	}
	// A deadline that fired stays observable after stop.
	var f deadline
	f.set(time.Now().Add(time.Millisecond))
	<-f.wait()
	f.stop()
	f.set(time.Time{})
	if isClosed(f.wait()) {
		t.Fatal("cleared deadline still passed")
	}
}
