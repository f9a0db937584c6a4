package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"runtime"
	"runtime/metrics"

	"github.com/libp2p/go-libp2p/core/host"
)

// debugStats is what GET /debug/stats answers: the figures the attack suite
// (test/adversary) cannot read from /proc. `tachyon node --debug-addr`
// answers the same JSON.
type debugStats struct {
	Goroutines    int    `json:"goroutines"`
	HeapLiveBytes uint64 `json:"heapLiveBytes"` // live heap as of the last GC
	Conns         int    `json:"conns"`
	Peerstore     int    `json:"peerstore"` // peers the peerstore holds
}

// serveDebug serves /debug/stats on addr until the listener is closed. With
// ?gc=1 a GC runs first, so heapLiveBytes is current (the suite asks for it
// only before and after an attack, never during one).
func serveDebug(addr string, h host.Host) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("debug listener on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/stats", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("gc") == "1" {
			runtime.GC()
		}
		s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		metrics.Read(s)
		st := debugStats{
			Goroutines: runtime.NumGoroutine(),
			Conns:      len(h.Network().Conns()),
			Peerstore:  len(h.Peerstore().Peers()),
		}
		if s[0].Value.Kind() == metrics.KindUint64 {
			st.HeapLiveBytes = s[0].Value.Uint64()
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(st)
	})
	go func() {
		// Ends when the listener is closed at shutdown.
		if err := http.Serve(l, mux); err != nil && !errors.Is(err, net.ErrClosed) {
			log.Printf("debug server: %v", err)
		}
	}()
	return l, nil
}
