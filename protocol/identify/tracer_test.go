package identify

import (
	"slices"
	"sync"
	"testing"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// recTracer records the tracer calls.
type recTracer struct {
	mu    sync.Mutex
	calls []traced
}

type traced struct {
	dir  Direction
	kind Kind
	ok   bool
}

func (r *recTracer) Message(dir Direction, kind Kind, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, traced{dir, kind, err == nil})
}

func (r *recTracer) got() []traced {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]traced(nil), r.calls...)
}

func TestTracer(t *testing.T) {
	leakcheck.Check(t)
	for _, tc := range []struct {
		name     string
		run      func(t *testing.T, srvT, cliT *recTracer)
		srv, cli []traced
	}{
		{
			name: "identify",
			run: func(t *testing.T, srvT, cliT *recTracer) {
				srvHost := newHost(t, 1, "/ip4/127.0.0.1/tcp/4001")
				srv := NewService(srvHost, "srv")
				srv.Tracer = srvT
				cli := NewService(newHost(t, 2), "cli")
				cli.Tracer = cliT
				a, b := streamPair(t, newHost(t, 2).id, srvHost.id, addrClient, addrServer)
				done := make(chan struct{})
				go func() { defer close(done); srv.Handle(b) }()
				if _, err := cli.Identify(ctxT(t), a); err != nil {
					t.Fatal(err)
				}
				<-done
			},
			srv: []traced{{Sent, KindIdentify, true}},
			cli: []traced{{Received, KindIdentify, true}},
		},
		{
			name: "push",
			run: func(t *testing.T, srvT, cliT *recTracer) {
				pa, pb := newHost(t, 5, "/ip4/127.0.0.1/tcp/7"), newHost(t, 6)
				sa, sb := streamPair(t, pa.id, pb.id, addrServer, addrClient)
				sa.proto, sb.proto = PushID, PushID
				pusher, receiver := NewService(pa, "a"), NewService(pb, "b")
				pusher.Tracer, receiver.Tracer = srvT, cliT
				errc := make(chan error, 1)
				go func() { errc <- pusher.Push(ctxT(t), sa) }()
				if _, err := receiver.HandlePush(sb); err != nil {
					t.Fatal(err)
				}
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
			},
			srv: []traced{{Sent, KindPush, true}},
			cli: []traced{{Received, KindPush, true}},
		},
		{
			name: "push failed",
			run: func(t *testing.T, _, cliT *recTracer) {
				pb := newHost(t, 6)
				sa, sb := streamPair(t, newHost(t, 5).id, pb.id, addrServer, addrClient)
				go func() {
					sa.Write([]byte{0xff, 0x01}) // a length prefix and nothing after it
					sa.Close()
				}()
				receiver := NewService(pb, "b")
				receiver.Tracer = cliT
				if _, err := receiver.HandlePush(sb); err == nil {
					t.Fatal("HandlePush accepted a truncated message")
				}
			},
			cli: []traced{{Received, KindPush, false}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var srvT, cliT recTracer
			tc.run(t, &srvT, &cliT)
			if got := srvT.got(); !slices.Equal(got, tc.srv) {
				t.Errorf("sender traced %+v, want %+v", got, tc.srv)
			}
			if got := cliT.got(); !slices.Equal(got, tc.cli) {
				t.Errorf("receiver traced %+v, want %+v", got, tc.cli)
			}
		})
	}
}
