package streamctx

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/internal/streamtest"
)

func TestBind(t *testing.T) {
	a, _ := streamtest.Pair(streamtest.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	stop := Bind(ctx, a)
	defer stop()
	done := make(chan error, 1)
	go func() {
		_, err := a.Read(make([]byte, 1))
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.Is(Err(ctx, err), context.Canceled) {
			t.Fatalf("read after cancel: %v (%v)", err, Err(ctx, err))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read not ended by the cancelled context")
	}

	b, _ := streamtest.Pair(streamtest.Config{})
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	defer Bind(ctx, b)()
	_, err := b.Read(make([]byte, 1))
	if got := Err(ctx, err); !errors.Is(got, context.DeadlineExceeded) {
		t.Fatalf("read past the deadline: %v", got)
	}
	if got := Err(context.Background(), os.ErrClosed); got != os.ErrClosed {
		t.Fatalf("Err without an ended ctx changed %v", got)
	}
}
