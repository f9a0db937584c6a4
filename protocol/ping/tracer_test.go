package ping

import (
	"errors"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

type recTracer struct {
	n   int
	rtt time.Duration
	err error
}

func (r *recTracer) Ping(rtt time.Duration, err error) { r.n, r.rtt, r.err = r.n+1, rtt, err }

func TestOnceTraced(t *testing.T) {
	for _, tc := range []struct {
		name string
		echo func([]byte) []byte
		is   error
	}{
		{"good echo", func(b []byte) []byte { return b }, nil},
		{"flipped byte", func(b []byte) []byte { b[0] ^= 1; return b }, ErrMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			client, server := pipe(t)
			done := responder(server, tc.echo)
			var tr recTracer
			rtt, err := OnceTraced(t.Context(), client, &tr)
			wait(t, done)
			if tr.n != 1 || tr.rtt != rtt || !errors.Is(tr.err, err) || (tc.is == nil) != (tr.err == nil) {
				t.Fatalf("traced %d calls, last (%v, %v); Once returned (%v, %v)", tr.n, tr.rtt, tr.err, rtt, err)
			}
			if tc.is == nil && rtt <= 0 {
				t.Fatalf("traced rtt %v", rtt)
			}
		})
	}
	t.Run("nil tracer", func(t *testing.T) {
		leakcheck.Check(t)
		client, server := pipe(t)
		done := responder(server, func(b []byte) []byte { return b })
		if _, err := OnceTraced(t.Context(), client, nil); err != nil {
			t.Fatal(err)
		}
		wait(t, done)
	})
}
