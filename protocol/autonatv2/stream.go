package autonatv2

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/tachyon-p2p/tachyon/core/network"
)

// deadline applies ctx's deadline and cancellation to st, so that every
// read and write on it ends with ctx.
func deadline(ctx context.Context, st network.Stream) (stop func() bool) {
	if dl, ok := ctx.Deadline(); ok {
		st.SetDeadline(dl)
	}
	return context.AfterFunc(ctx, func() { st.SetDeadline(time.Unix(1, 0)) })
}

// ctxErr blames ctx for err when ctx ended: the stream deadline may fire
// a moment before ctx notices its own.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if dl, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return err
}
