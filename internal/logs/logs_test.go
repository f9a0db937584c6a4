package logs

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	var r Limiter
	if ok, held := r.Allow(time.Hour); !ok || held != 0 {
		t.Fatalf("first event: ok %v, held %d", ok, held)
	}
	for range 3 {
		if ok, _ := r.Allow(time.Hour); ok {
			t.Fatal("a second event within the interval was let through")
		}
	}
	r.next.Store(0) // the interval is over
	if ok, held := r.Allow(time.Hour); !ok || held != 3 {
		t.Fatalf("after the interval: ok %v, held %d, want true, 3", ok, held)
	}
	if Or(nil) == nil || Or(nil).Enabled(t.Context(), -8) {
		t.Fatal("Or(nil) is not a discarding logger")
	}
}
