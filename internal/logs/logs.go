// Package logs holds what the swarm and the transports share for logging:
// the logger that stands in for a nil one, and a limiter for records an
// attacker could otherwise make at will.
package logs

import (
	"log/slog"
	"sync/atomic"
	"time"
)

// discard drops every record; its Enabled reports false, so a call on it
// costs no more than a check of the level.
var discard = slog.New(slog.DiscardHandler)

// Or returns l, or a logger that discards everything when l is nil.
// Constructors call it once, so that nothing else checks for nil.
func Or(l *slog.Logger) *slog.Logger {
	if l == nil {
		return discard
	}
	return l
}

// Limiter lets one event through per interval. The zero value is ready to
// use and safe for concurrent use.
type Limiter struct {
	next atomic.Int64 // UnixNano before which events are held back
	held atomic.Int64 // events held back since the last one let through
}

// Allow reports whether an event may be logged now, at most one per every,
// and if so how many were held back before it.
func (r *Limiter) Allow(every time.Duration) (ok bool, held int64) {
	now := time.Now().UnixNano()
	next := r.next.Load()
	if now < next || !r.next.CompareAndSwap(next, now+int64(every)) {
		r.held.Add(1)
		return false, 0
	}
	return true, r.held.Swap(0)
}
