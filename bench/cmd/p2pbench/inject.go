package main

import (
	"os"
	"strconv"
	"time"
)

// slowTachyon, from the environment variable P2PBENCH_SLOW_TACHYON (a
// fraction such as 0.3), makes tachyon that much slower on purpose: a
// tachyon client's first reply spins for that fraction of its time before
// the clock stops, and every write on a tachyon stream is followed by a
// sleep of that fraction of its own duration. It exists to prove that the
// regression gate catches a regression; only p2pbench reads it, tachyon
// itself is untouched.
var slowTachyon = func() float64 {
	f, err := strconv.ParseFloat(os.Getenv("P2PBENCH_SLOW_TACHYON"), 64)
	if err != nil || f < 0 {
		return 0
	}
	return f
}()

// slowed is a tachyon stream whose writes pay the injected slowdown. The
// sleeps are batched (owed time is slept once it reaches a millisecond),
// since a timer cannot sleep a few microseconds accurately.
type slowed struct {
	stream
	owed time.Duration
}

func (s *slowed) Write(b []byte) (int, error) {
	t0 := time.Now()
	n, err := s.stream.Write(b)
	s.owed += time.Duration(slowTachyon * float64(time.Since(t0)))
	if s.owed >= time.Millisecond {
		s.pay()
	}
	return n, err
}

func (s *slowed) CloseWrite() error {
	s.pay()
	return s.stream.CloseWrite()
}

func (s *slowed) pay() {
	t0 := time.Now()
	time.Sleep(s.owed)
	s.owed -= time.Since(t0) // a late wake-up is credited
}

// spin waits d without sleeping: a timer sleep of a fraction of a
// millisecond overshoots by about a millisecond here, which would inject a
// much larger regression than asked for.
func spin(d time.Duration) {
	for t0 := time.Now(); time.Since(t0) < d; {
	}
}
