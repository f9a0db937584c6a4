package limits

import (
	"net/netip"
	"slices"
	"sync"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

type recTracer struct {
	mu  sync.Mutex
	got [][2]string
}

func (r *recTracer) Refused(scope, resource string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, [2]string{scope, resource})
}

func TestTracer(t *testing.T) {
	ip := netip.MustParseAddr("10.0.0.1")
	for _, tt := range []struct {
		name string
		cfg  func(*Config)
		// refuse runs until one refusal; it returns what to release.
		refuse func(t *testing.T, m *Manager) (release func())
		want   [][2]string
	}{
		{"no refusal", func(c *Config) {}, func(t *testing.T, m *Manager) func() {
			done, err := m.BeginHandshake(ip)
			if err != nil {
				t.Fatal(err)
			}
			return done
		}, nil},
		{"node handshakes", func(c *Config) { c.Handshakes = 1 }, func(t *testing.T, m *Manager) func() {
			done, _ := m.BeginHandshake(ip)
			m.BeginHandshake(netip.MustParseAddr("10.0.0.2"))
			return done
		}, [][2]string{{"node", "handshakes"}}},
		{"connections per peer", func(c *Config) { c.ConnsPerPeer = 1 }, func(t *testing.T, m *Manager) func() {
			s, err := m.OpenConn(in, "a", ma.StringCast("/ip4/10.0.0.1/tcp/1"))
			if err != nil {
				t.Fatal(err)
			}
			m.OpenConn(in, "a", ma.StringCast("/ip4/10.0.0.2/tcp/1"))
			return s.Close
		}, [][2]string{{"peer", "connections"}}},
		{"streams per connection, then memory", func(c *Config) { c.StreamsPerConn = 1; c.MemoryPerConn = 10 }, func(t *testing.T, m *Manager) func() {
			s, err := m.OpenConn(in, "a", ma.StringCast("/ip4/10.0.0.1/tcp/1"))
			if err != nil {
				t.Fatal(err)
			}
			done, err := s.OpenStream(in)
			if err != nil {
				t.Fatal(err)
			}
			s.OpenStream(in)
			s.ReserveMemory(11)
			return func() { done(); s.Close() }
		}, [][2]string{{"conn", "streams"}, {"conn", "memory"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := unlimited()
			tt.cfg(&cfg)
			tr := &recTracer{}
			cfg.Tracer = tr
			m := newTest(t, cfg)
			tt.refuse(t, m)()
			if !slices.Equal(tr.got, tt.want) {
				t.Fatalf("traced %v, want %v", tr.got, tt.want)
			}
		})
	}
}

// TestKindsLabelled keeps every limit's scope and resource filled in: a
// new limit must say what a Tracer is told.
func TestKindsLabelled(t *testing.T) {
	for k, d := range kinds {
		if d.scope == "" || d.resource == "" {
			t.Errorf("limit %d (%s) has no scope or resource", k, d.limit)
		}
	}
}
