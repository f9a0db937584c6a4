package perf

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

type recTracer struct {
	mu             sync.Mutex
	runs           int
	sent, received uint64
	err            error
}

func (r *recTracer) Run(sent, received uint64, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs++
	r.sent, r.received, r.err = sent, received, err
}

func TestTracer(t *testing.T) {
	leakcheck.Check(t)
	for _, tc := range []struct {
		name             string
		upload, download uint64
	}{
		{"both", BufferSize + 3, 2*BufferSize - 5},
		{"nothing", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, server := pair(t)
			var srvT, cliT recTracer
			done := make(chan struct{})
			go func() { defer close(done); handle(server, &srvT) }()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := RunTraced(ctx, client, tc.upload, tc.download, nil, &cliT); err != nil {
				t.Fatal(err)
			}
			<-done
			if cliT.runs != 1 || cliT.sent != tc.upload || cliT.received != tc.download || cliT.err != nil {
				t.Errorf("client traced %+v", &cliT)
			}
			srvT.mu.Lock()
			defer srvT.mu.Unlock()
			if srvT.runs != 1 || srvT.sent != tc.download || srvT.received != tc.upload || srvT.err != nil {
				t.Errorf("server traced runs %d sent %d received %d err %v", srvT.runs, srvT.sent, srvT.received, srvT.err)
			}
		})
	}
	t.Run("server error", func(t *testing.T) {
		client, server := pair(t)
		var srvT recTracer
		done := make(chan struct{})
		go func() { defer close(done); handle(server, &srvT) }()
		client.w.Write([]byte{0, 0})
		client.CloseWrite()
		<-done
		if srvT.runs != 1 || srvT.err == nil || srvT.sent != 0 {
			t.Errorf("server traced runs %d sent %d err %v", srvT.runs, srvT.sent, srvT.err)
		}
	})
}
