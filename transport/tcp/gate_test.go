package tcp

import (
	"errors"
	"net/netip"
	"testing"
)

// The built-in gate: a total cap, a per-IP cap that groups IPv6 by /64 and
// skips loopback, and done funcs that give a slot back once.
func TestGate(t *testing.T) {
	type step struct {
		ip   string
		ok   bool
		done int // index of an earlier admitted step to end first, or -1
	}
	for _, tc := range []struct {
		name  string
		max   int
		perIP int
		steps []step
	}{
		{"per IP", 10, 2, []step{
			{"1.2.3.4", true, -1}, {"1.2.3.4", true, -1}, {"1.2.3.4", false, -1},
			{"1.2.3.5", true, -1}, {"1.2.3.4", true, 0}, {"1.2.3.4", false, 0}, // a second done is a no-op
		}},
		{"IPv6 by /64", 10, 2, []step{
			{"2001:db8::1", true, -1}, {"2001:db8::ffff:2", true, -1}, {"2001:db8::3", false, -1},
			{"2001:db8:0:1::1", true, -1},
		}},
		{"mapped IPv4 is IPv4", 10, 1, []step{{"1.2.3.4", true, -1}, {"::ffff:1.2.3.4", false, -1}}},
		{"total", 3, 2, []step{
			{"1.1.1.1", true, -1}, {"2.2.2.2", true, -1}, {"3.3.3.3", true, -1}, {"4.4.4.4", false, -1},
			{"4.4.4.4", true, 1},
		}},
		{"loopback exempt per IP", 3, 1, []step{
			{"127.0.0.1", true, -1}, {"127.0.0.1", true, -1}, {"::1", true, -1}, {"127.0.0.1", false, -1},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGate(nil, tc.max, tc.perIP)
			dones := make([]func(), len(tc.steps))
			for i, s := range tc.steps {
				if s.done >= 0 {
					dones[s.done]()
				}
				done, err := g.begin(netip.MustParseAddr(s.ip).Unmap())
				if (err == nil) != s.ok {
					t.Fatalf("step %d (%s): err %v, want ok %v", i, s.ip, err, s.ok)
				}
				if err != nil && !errors.Is(err, ErrTooManyHandshakes) {
					t.Fatalf("step %d: %v does not wrap ErrTooManyHandshakes", i, err)
				}
				dones[i] = done
			}
			for _, d := range dones {
				if d != nil {
					d()
				}
			}
			if g.total != 0 || len(g.perIP) != 0 {
				t.Fatalf("after every done: total %d, per IP %v", g.total, g.perIP)
			}
		})
	}
}
