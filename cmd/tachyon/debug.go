package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"runtime/metrics"
	"time"

	"github.com/tachyon-p2p/tachyon"
)

// debugStats is what GET /debug/stats answers: what a test (the attack
// suite, test/adversary) cannot read from /proc. The go-libp2p test peer
// answers the same JSON.
type debugStats struct {
	Goroutines    int    `json:"goroutines"`
	HeapLiveBytes uint64 `json:"heapLiveBytes"` // live heap as of the last GC
	Conns         int    `json:"conns"`
	Peerstore     int    `json:"peerstore"` // peers the peerstore holds
	// Relay is the relay service's counters, when the node is a relay.
	Relay *relayStats `json:"relay,omitempty"`
}

// relayStats is relay.Stat as JSON.
type relayStats struct {
	Reservations        int               `json:"reservations"`
	Circuits            int               `json:"circuits"`
	CircuitsOpened      uint64            `json:"circuitsOpened"`
	BytesRelayed        uint64            `json:"bytesRelayed"`
	DataLimitResets     uint64            `json:"dataLimitResets"`
	DurationLimitResets uint64            `json:"durationLimitResets"`
	Refused             map[string]uint64 `json:"refused,omitempty"`
}

// serveDebug serves /debug/stats and /debug/pprof/ on addr until ctx ends.
// GET /debug/stats?gc=1 runs a GC first, so the live heap is current. It
// returns once the listener is bound, and a function that waits for the
// server to stop.
func serveDebug(ctx context.Context, addr string, h *tachyon.Host, stderr io.Writer) (wait func(), err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--debug-addr %s: %w", addr, err)
	}
	// Port 0 picks one: say which.
	fmt.Fprintf(stderr, "debug server on http://%s/debug/stats\n", l.Addr())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/stats", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("gc") == "1" {
			runtime.GC()
		}
		live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		metrics.Read(live)
		st := debugStats{
			Goroutines: runtime.NumGoroutine(),
			Conns:      len(h.Network().Conns()),
			Peerstore:  len(h.Peerstore().Peers()),
		}
		if rs, ok := h.RelayStat(); ok {
			st.Relay = &relayStats{
				Reservations: rs.Reservations, Circuits: rs.Circuits, CircuitsOpened: rs.CircuitsOpened,
				BytesRelayed: rs.BytesRelayed, DataLimitResets: rs.DataLimitResets, DurationLimitResets: rs.DurationLimitResets,
			}
			for k, v := range rs.Refused {
				if st.Relay.Refused == nil {
					st.Relay.Refused = map[string]uint64{}
				}
				st.Relay.Refused[fmt.Sprint(k)] = v
			}
		}
		if live[0].Value.Kind() == metrics.KindUint64 {
			st.HeapLiveBytes = live[0].Value.Uint64()
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(stderr, "debug server:", err)
		}
	}()
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	return func() { stop(); srv.Close(); <-done }, nil
}
