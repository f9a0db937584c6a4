// Package streamctx ties a stream's blocking reads and writes to a
// context: protocols that exchange a few messages under one deadline use it
// instead of a goroutine per call.
package streamctx

import (
	"context"
	"errors"
	"os"
	"time"
)

// Deadliner is what a stream needs to be bound to a context.
type Deadliner interface {
	SetDeadline(t time.Time) error
}

// Bind applies ctx's deadline to s, and ends its reads and writes when ctx
// is cancelled. Call stop when done (it does not clear the deadline).
func Bind(ctx context.Context, s Deadliner) (stop func() bool) {
	if dl, ok := ctx.Deadline(); ok {
		s.SetDeadline(dl)
	}
	return context.AfterFunc(ctx, func() { s.SetDeadline(time.Unix(1, 0)) })
}

// Err blames ctx for err when ctx ended: the stream deadline Bind set may
// fire a moment before ctx notices its own.
func Err(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if dl, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return err
}
