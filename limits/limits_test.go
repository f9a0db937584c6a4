package limits

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/logs/logtest"
)

const (
	in  = network.DirInbound
	out = network.DirOutbound
)

// unlimited has no limit at all and no exemptions; tests set the one
// they exercise.
func unlimited() Config {
	return Config{
		Conns: -1, ConnsInbound: -1, ConnsPerPeer: -1, ConnsPerIP: -1, ConnsPerSubnet4: -1, ConnsPerSubnet6: -1,
		Handshakes: -1, HandshakesPerIP: -1, Streams: -1, StreamsPerConn: -1, StreamsPerProtocol: -1,
		InboundStreamRate: Rate{PerSecond: -1},
		Memory:            -1, MemoryPerPeer: -1, MemoryPerConn: -1, MemoryPerIP: -1,
		NoIPLimits: []netip.Prefix{},
	}
}

// newTest builds a Manager whose defaults do not depend on the machine and
// checks, when the test ends, that everything was released.
func newTest(t *testing.T, cfg Config) *Manager {
	t.Helper()
	m, err := newManager(cfg, defaults(system{ram: 24 << 30, fds: 1 << 20}), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			if st := m.Stat(); st != (Stat{}) {
				t.Errorf("left behind: %+v", st)
			}
		}
	})
	return m
}

type connSpec struct {
	dir  network.Direction
	peer peer.ID
	addr string
}

func open(m *Manager, c connSpec) (network.ConnScope, error) {
	return m.OpenConn(c.dir, c.peer, ma.StringCast(c.addr))
}

// wantLimit checks that err is the refusal described by want (Limit,
// Scope, Option, Value, Current; empty strings are not checked), or nil
// when want is.
func wantLimit(t *testing.T, err error, want *LimitError) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	var e *LimitError
	if !errors.As(err, &e) || !errors.Is(err, ErrLimit) {
		t.Fatalf("err = %v, want a *LimitError matching ErrLimit", err)
	}
	if e.Option != want.Option || e.Value != want.Value || e.Current != want.Current ||
		(want.Limit != "" && e.Limit != want.Limit) || (want.Scope != "" && e.Scope != want.Scope) {
		t.Fatalf("refusal %+v, want %+v", e, want)
	}
	if !strings.Contains(err.Error(), "raise limits.Config."+want.Option) {
		t.Fatalf("%q does not name the option", err)
	}
}

func TestConnLimits(t *testing.T) {
	with := func(f func(*Config)) Config {
		c := unlimited()
		f(&c)
		return c
	}
	for _, tt := range []struct {
		name string
		cfg  Config
		open []connSpec
		try  connSpec
		want *LimitError
		text string // the whole error text, when set
	}{{
		name: "conns",
		cfg:  with(func(c *Config) { c.Conns = 2 }),
		open: []connSpec{{in, "a", "/ip4/10.0.0.1/tcp/1"}, {out, "b", "/ip4/10.0.0.2/tcp/1"}},
		try:  connSpec{out, "c", "/ip4/10.0.0.3/tcp/1"},
		want: &LimitError{Limit: "connections", Scope: "node", Option: "Conns", Value: 2, Current: 2},
		text: "limit reached: connections for node is 2 (2 in use); raise limits.Config.Conns",
	}, {
		name: "inbound",
		cfg:  with(func(c *Config) { c.ConnsInbound = 1 }),
		open: []connSpec{{in, "a", "/ip4/10.0.0.1/tcp/1"}, {out, "b", "/ip4/10.0.0.2/tcp/1"}},
		try:  connSpec{in, "c", "/ip4/10.0.0.3/tcp/1"},
		want: &LimitError{Option: "ConnsInbound", Value: 1, Current: 1},
	}, {
		name: "outbound beside a full inbound budget",
		cfg:  with(func(c *Config) { c.ConnsInbound = 1 }),
		open: []connSpec{{in, "a", "/ip4/10.0.0.1/tcp/1"}},
		try:  connSpec{out, "c", "/ip4/10.0.0.3/tcp/1"},
	}, {
		name: "per peer, both directions",
		cfg:  with(func(c *Config) { c.ConnsPerPeer = 2 }),
		open: []connSpec{{in, "a", "/ip4/10.0.0.1/tcp/1"}, {out, "a", "/ip4/10.0.0.2/tcp/1"}, {in, "b", "/ip4/10.0.0.1/tcp/2"}},
		try:  connSpec{in, "a", "/ip4/10.0.0.3/tcp/1"},
		want: &LimitError{Limit: "connections per peer", Scope: peer.ID("a").String(), Option: "ConnsPerPeer", Value: 2, Current: 2},
	}, {
		name: "allowed peer",
		cfg:  with(func(c *Config) { c.ConnsPerPeer = 1; c.Conns = 1; c.AllowPeers = []peer.ID{"a"} }),
		open: []connSpec{{in, "a", "/ip4/10.0.0.1/tcp/1"}},
		try:  connSpec{in, "a", "/ip4/10.0.0.1/tcp/2"},
	}, {
		name: "per IP",
		cfg:  with(func(c *Config) { c.ConnsPerIP = 2 }),
		open: []connSpec{{in, "a", "/ip4/10.1.0.2/tcp/1"}, {in, "b", "/ip4/10.1.0.2/udp/1/quic-v1"}, {in, "c", "/ip4/10.1.0.3/tcp/1"}},
		try:  connSpec{in, "d", "/ip4/10.1.0.2/tcp/2"},
		want: &LimitError{Limit: "connections per IP", Scope: "10.1.0.2", Option: "ConnsPerIP", Value: 2, Current: 2},
		text: "limit reached: connections per IP for 10.1.0.2 is 2 (2 in use); raise limits.Config.ConnsPerIP",
	}, {
		name: "per IP, IPv4-mapped IPv6",
		cfg:  with(func(c *Config) { c.ConnsPerIP = 1 }),
		open: []connSpec{{in, "a", "/ip4/10.1.0.2/tcp/1"}},
		try:  connSpec{in, "b", "/ip6/::ffff:10.1.0.2/tcp/1"},
		want: &LimitError{Scope: "10.1.0.2", Option: "ConnsPerIP", Value: 1, Current: 1},
	}, {
		name: "per IP ignores outbound",
		cfg:  with(func(c *Config) { c.ConnsPerIP = 1 }),
		open: []connSpec{{in, "a", "/ip4/10.1.0.2/tcp/1"}, {out, "b", "/ip4/10.1.0.2/tcp/2"}},
		try:  connSpec{out, "c", "/ip4/10.1.0.2/tcp/3"},
	}, {
		name: "per IP, loopback exempt by default",
		cfg:  with(func(c *Config) { c.ConnsPerIP = 1; c.NoIPLimits = nil }),
		open: []connSpec{{in, "a", "/ip4/127.0.0.1/tcp/1"}, {in, "b", "/ip6/::1/tcp/1"}},
		try:  connSpec{in, "c", "/ip4/127.0.0.1/tcp/2"},
	}, {
		name: "per IP, not exempt without NoIPLimits",
		cfg:  with(func(c *Config) { c.ConnsPerIP = 1 }),
		open: []connSpec{{in, "a", "/ip4/127.0.0.1/tcp/1"}},
		try:  connSpec{in, "c", "/ip4/127.0.0.1/tcp/2"},
		want: &LimitError{Scope: "127.0.0.1", Option: "ConnsPerIP", Value: 1, Current: 1},
	}, {
		name: "per IP, exemption keeps other limits",
		cfg:  with(func(c *Config) { c.ConnsPerIP = 1; c.ConnsPerPeer = 1; c.NoIPLimits = nil }),
		open: []connSpec{{in, "a", "/ip4/127.0.0.1/tcp/1"}},
		try:  connSpec{in, "a", "/ip4/127.0.0.1/tcp/2"},
		want: &LimitError{Option: "ConnsPerPeer", Value: 1, Current: 1},
	}, {
		name: "allowed subnet",
		cfg: with(func(c *Config) {
			c.ConnsPerIP = 1
			c.ConnsPerPeer = 1
			c.AllowSubnets = []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}
		}),
		open: []connSpec{{in, "a", "/ip4/10.9.1.1/tcp/1"}},
		try:  connSpec{in, "a", "/ip4/10.9.1.1/tcp/2"},
	}, {
		name: "relayed connections are not counted by address",
		cfg:  with(func(c *Config) { c.ConnsPerIP = 1 }),
		open: []connSpec{{in, "a", "/ip4/10.1.0.2/tcp/1/p2p-circuit"}},
		try:  connSpec{in, "b", "/ip4/10.1.0.2/tcp/1/p2p-circuit"},
	}, {
		name: "per /24",
		cfg:  with(func(c *Config) { c.ConnsPerSubnet4 = 2 }),
		open: []connSpec{{in, "a", "/ip4/10.1.0.2/tcp/1"}, {in, "b", "/ip4/10.1.0.3/tcp/1"}, {in, "c", "/ip4/10.1.1.3/tcp/1"}},
		try:  connSpec{in, "d", "/ip4/10.1.0.250/tcp/1"},
		want: &LimitError{Limit: "connections per subnet", Scope: "10.1.0.0/24", Option: "ConnsPerSubnet4", Value: 2, Current: 2},
	}, {
		name: "per /56",
		cfg:  with(func(c *Config) { c.ConnsPerSubnet6 = 2; c.ConnsPerSubnet4 = 1 }),
		open: []connSpec{{in, "a", "/ip6/2001:db8:0:100::1/tcp/1"}, {in, "b", "/ip6/2001:db8:0:1ff::2/tcp/1"}, {in, "c", "/ip6/2001:db8:0:200::1/tcp/1"}},
		try:  connSpec{in, "d", "/ip6/2001:db8:0:1ab::3/tcp/1"},
		want: &LimitError{Scope: "2001:db8:0:100::/56", Option: "ConnsPerSubnet6", Value: 2, Current: 2},
	}, {
		name: "another /56",
		cfg:  with(func(c *Config) { c.ConnsPerSubnet6 = 1 }),
		open: []connSpec{{in, "a", "/ip6/2001:db8:0:100::1/tcp/1"}},
		try:  connSpec{in, "d", "/ip6/2001:db8:0:200::1/tcp/1"},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			m := newTest(t, tt.cfg)
			var scopes []network.ConnScope
			defer func() {
				for _, s := range scopes {
					s.Close()
				}
			}()
			for _, c := range tt.open {
				s, err := open(m, c)
				if err != nil {
					t.Fatalf("opening %v: %v", c, err)
				}
				scopes = append(scopes, s)
			}
			s, err := open(m, tt.try)
			if s != nil {
				scopes = append(scopes, s)
			}
			wantLimit(t, err, tt.want)
			if tt.text != "" && err.Error() != tt.text {
				t.Fatalf("error text\n%s\nwant\n%s", err, tt.text)
			}
			if tt.want != nil {
				// Closing one of those it counted makes room.
				scopes[0].Close()
				s, err := open(m, tt.try)
				if err != nil {
					t.Fatalf("after a close: %v", err)
				}
				scopes = append(scopes, s)
			}
		})
	}
}

func TestHandshakeLimits(t *testing.T) {
	a := netip.MustParseAddr
	for _, tt := range []struct {
		name string
		cfg  func(*Config)
		open []netip.Addr
		try  netip.Addr
		want *LimitError
	}{{
		name: "total",
		cfg:  func(c *Config) { c.Handshakes = 2 },
		open: []netip.Addr{a("10.0.0.1"), a("10.0.0.2")},
		try:  a("10.0.0.3"),
		want: &LimitError{Limit: "inbound handshakes", Scope: "node", Option: "Handshakes", Value: 2, Current: 2},
	}, {
		name: "per IP",
		cfg:  func(c *Config) { c.HandshakesPerIP = 2 },
		open: []netip.Addr{a("10.0.0.1"), a("10.0.0.1"), a("10.0.0.2")},
		try:  a("10.0.0.1"),
		want: &LimitError{Limit: "inbound handshakes per IP", Scope: "10.0.0.1", Option: "HandshakesPerIP", Value: 2, Current: 2},
	}, {
		name: "per IP, IPv6",
		cfg:  func(c *Config) { c.HandshakesPerIP = 1 },
		open: []netip.Addr{a("2001:db8::1")},
		try:  a("2001:db8::1"),
		want: &LimitError{Scope: "2001:db8::1", Option: "HandshakesPerIP", Value: 1, Current: 1},
	}, {
		name: "per IP, loopback exempt",
		cfg:  func(c *Config) { c.HandshakesPerIP = 1; c.NoIPLimits = nil },
		open: []netip.Addr{a("127.0.0.1")},
		try:  a("127.0.0.1"),
	}, {
		name: "allowed subnet bypasses the total",
		cfg: func(c *Config) {
			c.Handshakes = 1
			c.AllowSubnets = []netip.Prefix{netip.MustParsePrefix("2001:db8::/32")}
		},
		open: []netip.Addr{a("10.0.0.1")},
		try:  a("2001:db8::1"),
	}, {
		name: "no address: only the total",
		cfg:  func(c *Config) { c.HandshakesPerIP = 1 },
		open: []netip.Addr{{}},
		try:  netip.Addr{},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := unlimited()
			tt.cfg(&cfg)
			m := newTest(t, cfg)
			var dones []func()
			defer func() {
				for _, d := range dones {
					d()
				}
			}()
			for _, addr := range tt.open {
				done, err := m.BeginHandshake(addr)
				if err != nil {
					t.Fatal(err)
				}
				dones = append(dones, done)
			}
			done, err := m.BeginHandshake(tt.try)
			wantLimit(t, err, tt.want)
			if done != nil {
				dones = append(dones, done)
			}
			if tt.want != nil {
				dones[0]()
				dones[0]() // a second call must not release twice
				done, err := m.BeginHandshake(tt.try)
				if err != nil {
					t.Fatalf("after a done: %v", err)
				}
				dones = append(dones, done)
				if _, err := m.BeginHandshake(tt.try); err == nil {
					t.Fatal("a done called twice released twice")
				}
			}
		})
	}
}

func TestStreamLimits(t *testing.T) {
	for _, tt := range []struct {
		name   string
		cfg    func(*Config)
		peer   peer.ID
		opened int // streams that succeed on the first connection
		want   *LimitError
	}{
		{"per conn", func(c *Config) { c.StreamsPerConn = 3 }, "a", 3, &LimitError{Limit: "inbound streams per connection", Option: "StreamsPerConn", Value: 3, Current: 3}},
		{"node", func(c *Config) { c.Streams = 2 }, "a", 2, &LimitError{Limit: "streams", Scope: "node", Option: "Streams", Value: 2, Current: 2}},
		{"allowed peer", func(c *Config) { c.Streams = 2; c.StreamsPerConn = 2; c.AllowPeers = []peer.ID{"a"} }, "a", 5, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := unlimited()
			tt.cfg(&cfg)
			m := newTest(t, cfg)
			s, err := m.OpenConn(in, tt.peer, ma.StringCast("/ip4/10.0.0.1/tcp/1"))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var dones []func()
			for i := range tt.opened {
				done, err := s.OpenStream(in)
				if err != nil {
					t.Fatalf("stream %d: %v", i, err)
				}
				dones = append(dones, done)
			}
			_, err = s.OpenStream(in)
			wantLimit(t, err, tt.want)
			if tt.want == nil {
				return
			}
			if tt.want.Option == "StreamsPerConn" {
				// Our own streams do not count against it.
				done, err := s.OpenStream(out)
				if err != nil {
					t.Fatalf("outbound stream: %v", err)
				}
				done()
			}
			if !strings.Contains(err.Error(), "for inbound connection with "+peer.ID("a").String()+" at /ip4/10.0.0.1/tcp/1") && tt.want.Scope == "" {
				t.Fatalf("%q does not name the connection", err)
			}
			dones[0]()
			dones[0]()
			if got := m.Stat().Streams; got != tt.opened-1 {
				t.Fatalf("%d streams after one done (twice), want %d", got, tt.opened-1)
			}
			done, err := s.OpenStream(out)
			if err != nil {
				t.Fatalf("after a done: %v", err)
			}
			done()
			// Close releases the streams still open; their done funcs
			// then do nothing.
			s.Close()
			if got := m.Stat().Streams; got != 0 {
				t.Fatalf("%d streams after Close", got)
			}
			for _, d := range dones {
				d()
			}
			if got := m.Stat().Streams; got != 0 {
				t.Fatalf("%d streams after done funcs that followed Close", got)
			}
			if _, err := s.OpenStream(in); err == nil || errors.Is(err, ErrLimit) {
				t.Fatalf("OpenStream after Close: %v", err)
			}
		})
	}
}

func TestMemoryLimits(t *testing.T) {
	const KiB = 1 << 10
	type conn struct {
		peer peer.ID
		addr string
	}
	for _, tt := range []struct {
		name  string
		cfg   func(*Config)
		conns []conn
		// reserve on conns[0] until refused; then the same on conns[1]
		first, second int64 // bytes each gets before the refusal
		want          *LimitError
	}{{
		name:  "per conn",
		cfg:   func(c *Config) { c.MemoryPerConn = 64 * KiB },
		conns: []conn{{"a", "/ip4/10.0.0.1/tcp/1"}, {"a", "/ip4/10.0.0.1/tcp/2"}},
		first: 64 * KiB, second: 64 * KiB,
		want: &LimitError{Limit: "memory per connection", Option: "MemoryPerConn", Value: 64 * KiB, Current: 64 * KiB, Unit: "bytes"},
	}, {
		name:  "per IP, across peers",
		cfg:   func(c *Config) { c.MemoryPerIP = 64 * KiB },
		conns: []conn{{"a", "/ip4/10.0.0.1/tcp/1"}, {"b", "/ip4/10.0.0.1/tcp/2"}},
		first: 64 * KiB, second: 0,
		want: &LimitError{Scope: "10.0.0.1", Option: "MemoryPerIP", Value: 64 * KiB, Current: 64 * KiB},
	}, {
		name:  "per IP, loopback exempt",
		cfg:   func(c *Config) { c.MemoryPerIP = 64 * KiB; c.MemoryPerConn = 128 * KiB; c.NoIPLimits = nil },
		conns: []conn{{"a", "/ip4/127.0.0.1/tcp/1"}, {"b", "/ip4/127.0.0.1/tcp/2"}},
		first: 128 * KiB, second: 128 * KiB,
		want: &LimitError{Option: "MemoryPerConn", Value: 128 * KiB, Current: 128 * KiB},
	}, {
		name:  "per peer, across addresses",
		cfg:   func(c *Config) { c.MemoryPerPeer = 96 * KiB },
		conns: []conn{{"a", "/ip4/10.0.0.1/tcp/1"}, {"a", "/ip4/10.0.0.2/tcp/1"}},
		first: 96 * KiB, second: 0,
		want: &LimitError{Scope: peer.ID("a").String(), Option: "MemoryPerPeer", Value: 96 * KiB, Current: 96 * KiB},
	}, {
		name:  "node",
		cfg:   func(c *Config) { c.Memory = 80 * KiB },
		conns: []conn{{"a", "/ip4/10.0.0.1/tcp/1"}, {"b", "/ip4/10.0.0.2/tcp/1"}},
		first: 80 * KiB, second: 0,
		want: &LimitError{Scope: "node", Option: "Memory", Value: 80 * KiB, Current: 80 * KiB},
	}, {
		name:  "allowed peer",
		cfg:   func(c *Config) { c.Memory = 16 * KiB; c.MemoryPerConn = 16 * KiB; c.AllowPeers = []peer.ID{"a"} },
		conns: []conn{{"a", "/ip4/10.0.0.1/tcp/1"}, {"b", "/ip4/10.0.0.2/tcp/1"}},
		first: -1, // never refused
	}} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := unlimited()
			tt.cfg(&cfg)
			m := newTest(t, cfg)
			var scopes []network.ConnScope
			for _, c := range tt.conns {
				s, err := m.OpenConn(in, c.peer, ma.StringCast(c.addr))
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				scopes = append(scopes, s)
			}
			const step = 16 * KiB
			fill := func(s network.ConnScope, max int) (int64, error) {
				var got int64
				for range max {
					if err := s.ReserveMemory(step); err != nil {
						return got, err
					}
					got += step
				}
				return got, nil
			}
			if tt.first < 0 {
				if _, err := fill(scopes[0], 100); err != nil {
					t.Fatal(err)
				}
				scopes[0].Close()
				return
			}
			got, err := fill(scopes[0], 100)
			if got != tt.first {
				t.Fatalf("first connection got %d bytes, want %d", got, tt.first)
			}
			wantLimit(t, err, tt.want)
			if tt.want.Unit != "" && !strings.Contains(err.Error(), "is 64 KiB (64 KiB in use)") {
				t.Fatalf("error text %q", err)
			}
			before := m.Stat().Memory
			if got, _ := fill(scopes[1], 100); got != tt.second {
				t.Fatalf("second connection got %d bytes, want %d", got, tt.second)
			}
			if tt.second == 0 && m.Stat().Memory != before {
				t.Fatalf("a refused reservation left %d bytes", m.Stat().Memory-before)
			}
			// Releasing makes room again; releasing more than reserved
			// releases what is.
			scopes[0].ReleaseMemory(step)
			if err := scopes[1].ReserveMemory(step); err != nil && tt.second == 0 {
				t.Fatalf("after a release: %v", err)
			}
			scopes[1].ReleaseMemory(1 << 30)
			scopes[0].Close()
			scopes[0].ReleaseMemory(step) // after Close: ignored
			if err := scopes[0].ReserveMemory(1); err == nil {
				t.Fatal("ReserveMemory after Close succeeded")
			}
			if got := m.Stat().Memory; got != 0 {
				t.Fatalf("%d bytes still reserved", got)
			}
		})
	}
}

func TestProtocolStreams(t *testing.T) {
	cfg := unlimited()
	cfg.StreamsPerProtocol = 2
	cfg.ProtocolStreams = map[protocol.ID]int{"/big": 3, "/free": -1}
	m := newTest(t, cfg)
	for _, tt := range []struct {
		proto  protocol.ID
		opened int
		want   *LimitError
	}{
		{"/p", 2, &LimitError{Limit: "streams per protocol", Scope: "/p", Option: "StreamsPerProtocol", Value: 2, Current: 2}},
		{"/big", 3, &LimitError{Scope: "/big", Option: `ProtocolStreams["/big"]`, Value: 3, Current: 3}},
		{"/free", 50, nil},
	} {
		t.Run(string(tt.proto), func(t *testing.T) {
			var dones []func()
			for i := range tt.opened {
				done, err := m.OpenProtocolStream(network.Direction(1+i%2), peer.ID(fmt.Sprint(i)), tt.proto)
				if err != nil {
					t.Fatal(err)
				}
				dones = append(dones, done)
			}
			done, err := m.OpenProtocolStream(out, "x", tt.proto)
			wantLimit(t, err, tt.want)
			if done != nil {
				done()
			}
			for _, d := range dones {
				d()
				d()
			}
			if tt.want != nil {
				done, err := m.OpenProtocolStream(out, "x", tt.proto)
				if err != nil {
					t.Fatalf("after done: %v", err)
				}
				done()
			}
		})
	}
}

func TestInboundStreamRate(t *testing.T) {
	cfg := unlimited()
	cfg.InboundStreamRate = Rate{PerSecond: 2, Burst: 3}
	cfg.ProtocolRates = map[protocol.ID]Rate{"/fast": {PerSecond: 1000}, "/free": {PerSecond: -1}}
	m := newTest(t, cfg)
	now := time.Unix(1000, 0)
	m.now = func() time.Time { return now }
	scope, err := m.OpenConn(in, "a", ma.StringCast("/ip4/10.0.0.1/tcp/1"))
	if err != nil {
		t.Fatal(err)
	}
	// take opens n streams of proto from peer p at once and reports how
	// many were admitted; it checks the refusal's text.
	take := func(p peer.ID, dir network.Direction, proto protocol.ID, n int) int {
		t.Helper()
		ok := 0
		for range n {
			done, err := m.OpenProtocolStream(dir, p, proto)
			if err != nil {
				var e *LimitError
				if !errors.As(err, &e) || e.Unit != "streams/s" || e.Scope != string(proto)+" from "+p.String() {
					t.Fatalf("refusal %v", err)
				}
				continue
			}
			done()
			ok++
		}
		return ok
	}
	for _, step := range []struct {
		name  string
		wait  time.Duration
		peer  peer.ID
		dir   network.Direction
		proto protocol.ID
		try   int
		want  int
	}{
		{"burst", 0, "a", in, "/p", 5, 3},
		{"not yet refilled", 400 * time.Millisecond, "a", in, "/p", 1, 0},
		{"refilled one", 100 * time.Millisecond, "a", in, "/p", 2, 1},
		{"refills to the burst, no more", time.Hour, "a", in, "/p", 5, 3},
		{"another protocol has its own bucket", 0, "a", in, "/q", 4, 3},
		{"outbound streams are not limited", 0, "a", out, "/p", 10, 10},
		{"a peer without connections is not tracked", 0, "b", in, "/p", 10, 10},
		{"per-protocol rate", 0, "a", in, "/fast", 1000, 1000},
		{"per-protocol no rate", 0, "a", in, "/free", 10000, 10000},
	} {
		now = now.Add(step.wait)
		if got := take(step.peer, step.dir, step.proto, step.try); got != step.want {
			t.Fatalf("%s: %d of %d admitted, want %d", step.name, got, step.try, step.want)
		}
	}
	_, err = m.OpenProtocolStream(in, "a", "/p")
	want := fmt.Sprintf("limit reached: inbound stream rate for /p from %s is 2 streams/s (burst of 3 used up); raise limits.Config.InboundStreamRate", peer.ID("a"))
	if err == nil || err.Error() != want {
		t.Fatalf("error text\n%v\nwant\n%s", err, want)
	}
	// The buckets go with the peer's last connection: a new one starts
	// full.
	scope.Close()
	if st := m.Stat(); st.Peers != 0 {
		t.Fatalf("%d peers kept after their connections closed", st.Peers)
	}
	scope, err = m.OpenConn(in, "a", ma.StringCast("/ip4/10.0.0.1/tcp/1"))
	if err != nil {
		t.Fatal(err)
	}
	defer scope.Close()
	if got := take("a", in, "/p", 5); got != 3 {
		t.Fatalf("%d admitted on a new connection, want the burst of 3", got)
	}
}

// TestPeerStateBounded: an attacker choosing peer IDs and protocols at
// will leaves nothing behind, and keeps at most maxBuckets per peer.
func TestPeerStateBounded(t *testing.T) {
	cfg := unlimited()
	cfg.InboundStreamRate = Rate{PerSecond: 1, Burst: 1}
	m := newTest(t, cfg)
	for i := range 1000 {
		p := peer.ID(fmt.Sprint("peer", i))
		s, err := m.OpenConn(in, p, ma.StringCast(fmt.Sprintf("/ip4/10.%d.%d.1/tcp/1", i/256, i%256)))
		if err != nil {
			t.Fatal(err)
		}
		for j := range 3 {
			if done, err := m.OpenProtocolStream(in, p, protocol.ID(fmt.Sprint("/p", j))); err == nil {
				done()
			}
		}
		s.Close()
	}
	s, err := m.OpenConn(in, "a", ma.StringCast("/ip4/10.0.0.1/tcp/1"))
	if err != nil {
		t.Fatal(err)
	}
	admitted := 0
	for j := range 10 * maxBuckets {
		if done, err := m.OpenProtocolStream(in, "a", protocol.ID(fmt.Sprint("/p", j))); err == nil {
			done()
			admitted++
		}
	}
	m.mu.Lock()
	buckets := m.peers["a"].numBuckets()
	m.mu.Unlock()
	if buckets > maxBuckets {
		t.Fatalf("%d buckets for one peer", buckets)
	}
	if admitted != maxBuckets {
		t.Fatalf("%d admitted, want %d (one per bucket, the overflow one shared)", admitted, maxBuckets)
	}
	s.Close()
}

// TestOneProtocolNoMap: a peer that opens streams of one protocol only,
// as most do (identify), keeps its bucket inline, without a map.
func TestOneProtocolNoMap(t *testing.T) {
	cfg := unlimited()
	cfg.InboundStreamRate = Rate{PerSecond: 100, Burst: 100}
	m := newTest(t, cfg)
	s, err := m.OpenConn(in, "a", ma.StringCast("/ip4/10.0.0.1/tcp/1"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 3 {
		done, err := m.OpenProtocolStream(in, "a", "/id")
		if err != nil {
			t.Fatal(err)
		}
		done()
	}
	m.mu.Lock()
	ps := m.peers["a"]
	n, inMap := ps.numBuckets(), ps.buckets != nil
	m.mu.Unlock()
	if n != 1 || inMap {
		t.Fatalf("%d buckets, map allocated %v; want 1, inline", n, inMap)
	}
}

// TestConcurrent hammers one manager from many goroutines (run it with
// -race): limits hold at every instant and everything is released.
func TestConcurrent(t *testing.T) {
	cfg := unlimited()
	cfg.Conns, cfg.ConnsPerIP, cfg.StreamsPerConn, cfg.Streams = 12, 4, 4, 30
	cfg.MemoryPerConn, cfg.MemoryPerIP, cfg.Memory = 64<<10, 128<<10, 512<<10
	cfg.Handshakes, cfg.HandshakesPerIP = 8, 2
	m := newTest(t, cfg)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var peak Stat
	for g := range 16 {
		wg.Go(func() {
			for i := range 200 {
				if hsDone, err := m.BeginHandshake(netip.AddrFrom4([4]byte{10, 0, 0, byte(g % 4)})); err == nil {
					hsDone()
				}
				s, err := m.OpenConn(in, peer.ID(fmt.Sprint(g, "-", i)), ma.StringCast(fmt.Sprintf("/ip4/10.0.0.%d/tcp/1", g%4)))
				if err != nil {
					continue
				}
				var dones []func()
				for range 3 {
					if d, err := s.OpenStream(in); err == nil {
						dones = append(dones, d)
					}
					if s.ReserveMemory(16<<10) == nil && i%2 == 0 {
						s.ReleaseMemory(16 << 10)
					}
				}
				st := m.Stat()
				mu.Lock()
				peak.Conns, peak.Streams, peak.Memory = max(peak.Conns, st.Conns), max(peak.Streams, st.Streams), max(peak.Memory, st.Memory)
				peak.Handshakes = max(peak.Handshakes, st.Handshakes)
				mu.Unlock()
				for _, d := range dones[:len(dones)/2] {
					d()
				}
				s.Close()
				for _, d := range dones {
					d()
				}
			}
		})
	}
	wg.Wait()
	if peak.Conns > 12 || peak.Streams > 30 || peak.Memory > 512<<10 || peak.Handshakes > 8 {
		t.Fatalf("peak use %+v exceeds the limits", peak)
	}
}

func TestRefusalLog(t *testing.T) {
	log, buf := logtest.New()
	cfg := unlimited()
	cfg.ConnsPerIP = 1
	m, err := newManager(cfg, defaults(system{}), log)
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.OpenConn(in, "a", ma.StringCast("/ip4/10.1.0.2/tcp/1"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 5 {
		if _, err := m.OpenConn(in, "b", ma.StringCast("/ip4/10.1.0.2/tcp/2")); err == nil {
			t.Fatal("admitted")
		}
	}
	line := buf.WaitLine(t, time.Second, "resource limit reached", `limit="connections per IP"`, "scope=10.1.0.2", "value=1", "in_use=1", "raise=limits.Config.ConnsPerIP")
	if n := strings.Count(buf.String(), "resource limit reached"); n != 1 {
		t.Fatalf("%d lines logged for a burst of 5 refusals, want 1 a second: %s", n, line)
	}
}

func TestLimitErrorText(t *testing.T) {
	for _, tt := range []struct {
		e    LimitError
		want string
	}{
		{LimitError{"memory per IP", "10.0.0.1", "MemoryPerIP", 16 << 20, 16<<20 - 100<<10, "bytes"},
			"limit reached: memory per IP for 10.0.0.1 is 16 MiB (15.90 MiB in use); raise limits.Config.MemoryPerIP"},
		{LimitError{"memory", "node", "Memory", 1 << 30, 1536, "bytes"},
			"limit reached: memory for node is 1024 MiB (1.50 KiB in use); raise limits.Config.Memory"},
		{LimitError{"memory", "node", "Memory", 100, 2048, "bytes"},
			"limit reached: memory for node is 100 B (2 KiB in use); raise limits.Config.Memory"},
	} {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("got  %s\nwant %s", got, tt.want)
		}
	}
}

func TestDefaults(t *testing.T) {
	for _, tt := range []struct {
		name string
		sys  system
		want func(Config) string // "" when fine
	}{
		{"24 GiB, many fds", system{ram: 24 << 30, fds: 1 << 20}, func(c Config) string {
			if c.Memory != 3<<30 || c.Conns != 3072 || c.ConnsInbound != 2304 || c.Handshakes != 384 || c.Streams != 49152 || c.StreamsPerProtocol != 12288 {
				return "scaled values"
			}
			if c.MemoryPerConn != 32<<20 || c.MemoryPerIP != 16<<20 || c.ConnsPerIP != 8 || c.HandshakesPerIP != 8 {
				return "fixed values"
			}
			// One attacking address cannot buffer more than its budget,
			// and its budget stays well under the 64 MiB goal.
			if c.MemoryPerIP > 32<<20 || int64(c.ConnsPerIP)*c.MemoryPerConn < 16<<20 {
				return "per-address budget"
			}
			return ""
		}},
		{"few fds", system{ram: 24 << 30, fds: 1024}, func(c Config) string {
			if c.Conns != 512 || c.Handshakes != 64 {
				return "fd-bound values"
			}
			return ""
		}},
		{"small machine", system{ram: 512 << 20, fds: 64}, func(c Config) string {
			if c.Memory != 128<<20 || c.Conns != 64 || c.MemoryPerPeer != 64<<20 || c.Handshakes != 32 {
				return "floors"
			}
			return ""
		}},
		{"unknown", system{}, func(c Config) string {
			if c.Memory != 256<<20 || c.Conns != 256 {
				return "fallbacks"
			}
			return ""
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := defaults(tt.sys)
			if msg := tt.want(c); msg != "" {
				t.Fatalf("%s wrong: %+v", msg, c)
			}
			for _, p := range c.NoIPLimits {
				if !p.Addr().IsLoopback() {
					t.Fatalf("NoIPLimits has %v", p)
				}
			}
		})
	}
	if d := Default(); d.Memory <= 0 || d.Conns <= 0 || d.ConnsPerIP <= 0 {
		t.Fatalf("Default() = %+v", d)
	}
}

func TestResolve(t *testing.T) {
	def := defaults(system{ram: 24 << 30, fds: 1 << 20})
	m, err := newManager(Config{Conns: -5, ConnsPerIP: 3, InboundStreamRate: Rate{PerSecond: 0.5}, ProtocolStreams: map[protocol.ID]int{"/x": 0}}, def, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := m.Config()
	if c.Conns != -1 || c.ConnsPerIP != 3 || c.ConnsPerPeer != def.ConnsPerPeer || c.Memory != def.Memory || c.HandshakeTimeout != def.HandshakeTimeout {
		t.Fatalf("resolved %+v", c)
	}
	if c.InboundStreamRate != (Rate{PerSecond: 0.5, Burst: 1}) || c.ProtocolStreams["/x"] != def.StreamsPerProtocol || len(c.NoIPLimits) != 2 {
		t.Fatalf("resolved %+v", c)
	}
	if c.ConnStreamRate != (Rate{PerSecond: 32, Burst: 64}) || c.AbusePenalty != time.Second || c.AbusePenaltyMax != time.Minute {
		t.Fatalf("resolved %+v", c)
	}
	// The connection's stream rate follows the per-protocol one.
	for _, tt := range []struct{ cfg, want Rate }{
		{Rate{}, Rate{PerSecond: 6400, Burst: 12800}},
		{Rate{PerSecond: -1}, Rate{PerSecond: -1}},
	} {
		m, err := newManager(Config{InboundStreamRate: tt.cfg}, def, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Config().ConnStreamRate; got != tt.want {
			t.Errorf("InboundStreamRate %+v: ConnStreamRate %+v, want %+v", tt.cfg, got, tt.want)
		}
	}
	if m, _ := newManager(Config{ConnStreamRate: Rate{PerSecond: 7}}, def, nil); m.Config().ConnStreamRate != (Rate{PerSecond: 7, Burst: 7}) {
		t.Errorf("ConnStreamRate set: %+v", m.Config().ConnStreamRate)
	}
	for _, bad := range []Config{
		{InboundStreamRate: Rate{Burst: 3}},
		{InboundStreamRate: Rate{PerSecond: 1, Burst: -1}},
		{ProtocolRates: map[protocol.ID]Rate{"/x": {PerSecond: math.NaN()}}},
		{ConnStreamRate: Rate{Burst: 3}},
		{AllowSubnets: []netip.Prefix{{}}},
	} {
		if _, err := newManager(bad, def, nil); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestParseSystem(t *testing.T) {
	if got := parseMemInfo(strings.NewReader("MemFree: 1 kB\nMemTotal:       24593892 kB\n")); got != 24593892<<10 {
		t.Fatalf("MemTotal = %d", got)
	}
	for _, bad := range []string{"", "MemTotal: x kB\n", "MemTotal: 5 MB\n"} {
		if got := parseMemInfo(strings.NewReader(bad)); got != 0 {
			t.Fatalf("%q: %d", bad, got)
		}
	}
	for in, want := range map[string]int64{"max\n": 0, "1073741824\n": 1 << 30, "-1": 0, "": 0} {
		if got := parseCgroupLimit([]byte(in)); got != want {
			t.Fatalf("%q: %d, want %d", in, got, want)
		}
	}
}

// TestConnStreamRate: the rate at which a peer opens streams on one
// connection, whatever their protocol, counted as the muxer admits them.
func TestConnStreamRate(t *testing.T) {
	for _, tt := range []struct {
		name  string
		cfg   func(*Config)
		peer  peer.ID
		dir   network.Direction
		burst int // admitted at once; then one per 500 ms
	}{
		{"inbound", func(c *Config) {}, "a", in, 3},
		{"outbound is not limited", func(c *Config) {}, "a", out, -1},
		{"allowed peer", func(c *Config) { c.AllowPeers = []peer.ID{"a"} }, "a", in, -1},
		{"off", func(c *Config) { c.ConnStreamRate = Rate{PerSecond: -1} }, "a", in, -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := unlimited()
			cfg.ConnStreamRate = Rate{PerSecond: 2, Burst: 3}
			tt.cfg(&cfg)
			m := newTest(t, cfg)
			now := time.Unix(1000, 0)
			m.now = func() time.Time { return now }
			s, err := m.OpenConn(tt.dir, tt.peer, ma.StringCast("/ip4/10.0.0.1/tcp/1"))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			take := func(n int) (ok int, last error) {
				for range n {
					done, err := s.OpenStream(tt.dir)
					if err != nil {
						last = err
						continue
					}
					done() // ended at once: only the rate can refuse
					ok++
				}
				return ok, last
			}
			if tt.burst < 0 {
				if ok, err := take(100); ok != 100 {
					t.Fatalf("%d of 100 admitted: %v", ok, err)
				}
				return
			}
			ok, err := take(5)
			if ok != tt.burst {
				t.Fatalf("%d of 5 admitted at once, want the burst of %d", ok, tt.burst)
			}
			wantLimit(t, err, &LimitError{Limit: "inbound stream rate per connection", Option: "ConnStreamRate", Value: 2, Current: 3})
			if !strings.Contains(err.Error(), "for inbound connection with "+peer.ID("a").String()+" at /ip4/10.0.0.1/tcp/1 is 2 streams/s") {
				t.Fatalf("%q does not name the connection and rate", err)
			}
			now = now.Add(500 * time.Millisecond)
			if ok, _ := take(2); ok != 1 {
				t.Fatalf("%d admitted 500 ms later, want 1", ok)
			}
		})
	}
}

// abuse reports the connection behind s as abusive, as a muxer does.
func abuse(s network.ConnScope) {
	s.(interface{ Abuse(error) }).Abuse(errors.New("test: kept opening refused streams"))
}

// TestAbusePenalty: the address of a connection closed for abuse is
// refused handshakes for a penalty that doubles with each offence up to
// the maximum, starts over after a quiet period, and spares addresses
// exempt from address limits.
func TestAbusePenalty(t *testing.T) {
	type step struct {
		wait    time.Duration // before the step
		abuse   bool          // open a connection from addr and report it
		refused time.Duration // then: 0 if a handshake is admitted, else the penalty it reports
	}
	const addr = "10.0.0.1"
	for _, tt := range []struct {
		name  string
		cfg   func(*Config)
		addr  string
		steps []step
	}{
		{"doubles, caps, starts over", func(c *Config) {}, addr, []step{
			{0, false, 0},
			{0, true, time.Second},
			{999 * time.Millisecond, false, time.Second},
			{time.Millisecond, false, 0},
			{0, true, 2 * time.Second},
			{2 * time.Second, true, 4 * time.Second},
			{4 * time.Second, true, 5 * time.Second}, // AbusePenaltyMax
			{5 * time.Second, true, 5 * time.Second},
			{5*time.Second + 5*time.Second, true, time.Second}, // quiet for AbusePenaltyMax
		}},
		{"offences while serving do not double", func(c *Config) {}, addr, []step{
			{0, true, time.Second},
			{0, true, time.Second},
			{500 * time.Millisecond, true, time.Second},
			{500 * time.Millisecond, false, 0},
		}},
		{"loopback is exempt", func(c *Config) { c.NoIPLimits = nil }, "127.0.0.1", []step{
			{0, true, 0},
		}},
		{"allowed subnet is exempt", func(c *Config) { c.AllowSubnets = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} }, addr, []step{
			{0, true, 0},
		}},
		{"off", func(c *Config) { c.AbusePenalty = -1 }, addr, []step{
			{0, true, 0},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := unlimited()
			cfg.AbusePenaltyMax = 5 * time.Second
			tt.cfg(&cfg)
			m := newTest(t, cfg)
			now := time.Unix(1000, 0)
			m.now = func() time.Time { return now }
			ip := netip.MustParseAddr(tt.addr)
			for i, st := range tt.steps {
				now = now.Add(st.wait)
				if st.abuse {
					s, err := m.OpenConn(in, "a", ma.StringCast("/ip4/"+tt.addr+"/tcp/1"))
					if err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
					abuse(s)
					abuse(s) // once per connection
					s.Close()
				}
				done, err := m.BeginHandshake(ip)
				if st.refused == 0 {
					if err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
					done()
					continue
				}
				var e *LimitError
				if !errors.As(err, &e) || e.Option != "AbusePenalty" || e.Value != st.refused.Milliseconds() {
					t.Fatalf("step %d: %v, want a penalty of %s", i, err, st.refused)
				}
				// Other addresses are not affected.
				if done, err := m.BeginHandshake(netip.MustParseAddr("10.0.0.2")); err != nil {
					t.Fatalf("step %d: another address: %v", i, err)
				} else {
					done()
				}
			}
		})
	}
}

func TestPenaltiesBounded(t *testing.T) {
	cfg := unlimited()
	m := newTest(t, cfg)
	now := time.Unix(1000, 0)
	m.now = func() time.Time { return now }
	offend := func(i int) {
		s, err := m.OpenConn(in, "a", ma.StringCast(fmt.Sprintf("/ip6/2001:db8::%x/tcp/1", i)))
		if err != nil {
			t.Fatal(err)
		}
		abuse(s)
		s.Close()
	}
	for i := range maxPenalties + 10 {
		offend(i)
	}
	if n := len(m.penalties); n != maxPenalties {
		t.Fatalf("%d penalties kept, want the cap %d", n, maxPenalties)
	}
	// Once the old ones would start over, they make room.
	now = now.Add(m.cfg.AbusePenalty + m.cfg.AbusePenaltyMax)
	offend(maxPenalties + 20)
	if n := len(m.penalties); n != 1 {
		t.Fatalf("%d penalties kept after the old ones expired, want 1", n)
	}
}

func TestPenaltyText(t *testing.T) {
	e := LimitError{"abuse penalty", "10.0.0.1", "AbusePenalty", 2000, 1500, "ms"}
	if want := "limit reached: abuse penalty for 10.0.0.1 is 2s (1.5s left); raise limits.Config.AbusePenalty"; e.Error() != want {
		t.Fatalf("got  %s\nwant %s", e.Error(), want)
	}
}

func TestAbuseLog(t *testing.T) {
	log, buf := logtest.New()
	m, err := newManager(unlimited(), defaults(system{}), log)
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.OpenConn(in, "a", ma.StringCast("/ip4/10.1.0.2/tcp/1"))
	if err != nil {
		t.Fatal(err)
	}
	abuse(s)
	s.Close()
	buf.WaitLine(t, time.Second, "connection closed for abuse", "remote=/ip4/10.1.0.2/tcp/1", "kept opening refused streams", "address_refused_for=1s")
	if _, err := m.BeginHandshake(netip.MustParseAddr("10.1.0.2")); err == nil {
		t.Fatal("the abuser's address was admitted")
	}
	buf.WaitLine(t, time.Second, "resource limit reached", `limit="abuse penalty"`, "scope=10.1.0.2", "raise=limits.Config.AbusePenalty")
}

// TestReserveMemoryLeaving: a reservation that must leave spare bytes free
// in every budget is refused when it would not, holds nothing when
// refused, and never holds the spare.
func TestReserveMemoryLeaving(t *testing.T) {
	const KiB = 1 << 10
	for _, tt := range []struct {
		name   string
		cfg    func(*Config)
		peer   peer.ID
		addr   string
		option string // the refusing limit; "" for never refused
	}{
		{"per conn", func(c *Config) { c.MemoryPerConn = 64 * KiB }, "a", "/ip4/10.0.0.1/tcp/1", "MemoryPerConn"},
		{"per IP", func(c *Config) { c.MemoryPerIP = 64 * KiB }, "a", "/ip4/10.0.0.1/tcp/1", "MemoryPerIP"},
		{"per peer", func(c *Config) { c.MemoryPerPeer = 64 * KiB }, "a", "/ip4/10.0.0.1/tcp/1", "MemoryPerPeer"},
		{"node", func(c *Config) { c.Memory = 64 * KiB }, "a", "/ip4/10.0.0.1/tcp/1", "Memory"},
		{"allowed peer", func(c *Config) {
			c.Memory, c.MemoryPerConn, c.AllowPeers = 64*KiB, 64*KiB, []peer.ID{"a"}
		}, "a", "/ip4/10.0.0.1/tcp/1", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := unlimited()
			tt.cfg(&cfg)
			m := newTest(t, cfg)
			s, err := m.OpenConn(in, tt.peer, ma.StringCast(tt.addr))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.ReserveMemoryLeaving(16*KiB, 48*KiB); err != nil {
				t.Fatalf("16 KiB leaving 48 KiB of 64: %v", err)
			}
			if got := m.Stat().Memory; got != 16*KiB {
				t.Fatalf("%d bytes reserved, want 16 KiB (the spare is not held)", got)
			}
			err = s.ReserveMemoryLeaving(16*KiB, 32*KiB+1)
			if tt.option == "" {
				if err != nil {
					t.Fatalf("allowed peer refused: %v", err)
				}
				return
			}
			var le *LimitError
			if !errors.As(err, &le) || le.Option != tt.option {
				t.Fatalf("16 more KiB leaving 32 KiB + 1 of the 48 left: %v, want a refusal by %s", err, tt.option)
			}
			if got := m.Stat().Memory; got != 16*KiB {
				t.Fatalf("a refused reservation left %d bytes reserved, want 16 KiB", got)
			}
			// The room the spare asked for is still there for others.
			if err := s.ReserveMemory(48 * KiB); err != nil {
				t.Fatalf("the 48 KiB left: %v", err)
			}
		})
	}
}
