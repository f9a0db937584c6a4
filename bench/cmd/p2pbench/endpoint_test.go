package main

import (
	"context"
	"testing"
	"time"
)

// TestStacks checks that every stack of both implementations connects,
// echoes and uploads, so a broken transport fails here rather than minutes
// into a full run.
func TestStacks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, impl := range impls {
		for _, sec := range stacks(impl) {
			t.Run(impl+"/"+sec, func(t *testing.T) {
				srv, err := newHost(impl, sec, true)
				if err != nil {
					t.Fatal(err)
				}
				defer srv.close()
				if err := serve(srv); err != nil {
					t.Fatal(err)
				}
				if len(srv.ref().addrs) == 0 {
					t.Fatal("server has no address")
				}
				d, err := firstReply(ctx, setup{impl, impl, sec}, srv)
				if err != nil {
					t.Fatal(err)
				}
				c, err := newHost(impl, sec, false)
				if err != nil {
					t.Fatal(err)
				}
				defer c.close()
				if err := c.connect(ctx, srv.ref()); err != nil {
					t.Fatal(err)
				}
				r, err := uploadOnce(ctx, c, srv.ref(), 4<<20)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("first reply %v, upload %.0f MiB/s, addrs %v", d, r, srv.ref().addrs)
			})
		}
	}
}
