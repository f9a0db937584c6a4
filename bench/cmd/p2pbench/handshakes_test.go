package main

import (
	"context"
	"testing"
	"time"
)

// TestPhasedHandshake checks that -hs-phases's connection goes through
// every phase with both implementations, and leaves neither end connected
// (the next connection must be new at both ends).
func TestPhasedHandshake(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, impl := range impls {
		t.Run(impl, func(t *testing.T) {
			srv, err := newHost(impl, secNoise, true)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.close()
			if err := serve(srv); err != nil {
				t.Fatal(err)
			}
			c, err := newHost(impl, secNoise, false)
			if err != nil {
				t.Fatal(err)
			}
			defer c.close()
			ds, err := phasedHandshake(ctx, impl, c, srv)
			if err != nil {
				t.Fatal(err)
			}
			if len(ds) != len(hsPhaseNames) {
				t.Fatalf("%d phases timed, want %d", len(ds), len(hsPhaseNames))
			}
			if !c.identified(srv.ref()) || !srv.identified(c.ref()) {
				t.Error("identify has not finished at both ends")
			}
			if c.connectedTo(srv.ref()) || srv.connectedTo(c.ref()) {
				t.Error("still connected after the close phase")
			}
		})
	}
}
