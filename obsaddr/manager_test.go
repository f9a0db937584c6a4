package obsaddr

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

const (
	certA = "/certhash/uEiBHj_Qs0FmHdRSztpzT5qS1lfllpClDMy4topK5Cpdbcg"
	certB = "/certhash/uEiDDq4_xNyDorZBH3TlGazyJdOWSwvo4PUo5YHFMrvDE8g"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTest(cfg Config) (*Manager, *clock) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg.Now = c.now
	return New(cfg), c
}

func addr(t testing.TB, s string) ma.Multiaddr {
	t.Helper()
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		t.Fatalf("multiaddr %q: %v", s, err)
	}
	return a
}

func addrs(t testing.TB, ss ...string) []ma.Multiaddr {
	t.Helper()
	out := make([]ma.Multiaddr, len(ss))
	for i, s := range ss {
		out[i] = addr(t, s)
	}
	return out
}

func strs(as []ma.Multiaddr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

// ob is an observation on connection id, from the observer at IP from.
type ob struct {
	local, observed, from string
	conn                  uint64
}

func (o ob) obs(t testing.TB) Observation {
	t.Helper()
	var observer ma.Multiaddr
	if o.from != "" {
		observer = addr(t, o.from)
	}
	return Observation{
		Local: addr(t, o.local), Observed: addr(t, o.observed), Observer: observer,
		Peer: peer.ID(fmt.Sprintf("peer-%d", o.conn)), ConnID: o.conn, Dir: network.DirOutbound,
	}
}

func record(t testing.TB, m *Manager, obs ...ob) {
	t.Helper()
	for _, o := range obs {
		if err := m.Record(o.obs(t)); err != nil {
			t.Fatalf("Record %+v: %v", o, err)
		}
	}
}

const (
	tcpLocal   = "/ip4/10.0.0.2/tcp/4001"
	tcpOutside = "/ip4/203.0.113.7/tcp/4001"
	tcpListen  = "/ip4/0.0.0.0/tcp/4001"
)

// tcpFrom is tcpOutside observed by n distinct /24s on connections base...
func tcpFrom(n int, base uint64) []ob {
	return many(n, base, tcpLocal, tcpOutside, "/ip4/198.51.%d.1/tcp/5000")
}

// many is observed seen for local by n observers, observer(i) for
// i=base... (a format with one %d), on connections base...
func many(n int, base uint64, local, observed, observer string) []ob {
	var out []ob
	for i := range uint64(n) {
		out = append(out, ob{local, observed, fmt.Sprintf(observer, (base+i)%250), base + i})
	}
	return out
}

func TestActivationAtThreshold(t *testing.T) {
	for _, tc := range []struct {
		name      string
		threshold int
	}{
		{"default 4", 0},
		{"3 like the AutoNAT testbed", 3},
		{"1", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := newTest(Config{ActivationThreshold: tc.threshold})
			want := tc.threshold
			if want == 0 {
				want = DefaultActivationThreshold
			}
			listen := addrs(t, tcpListen)
			obs := tcpFrom(want, 1)
			record(t, m, obs[:want-1]...)
			if got := m.Addrs(listen); len(got) != 0 {
				t.Fatalf("%d groups: Addrs = %v, want none", want-1, got)
			}
			// A second peer of a group already counted adds nothing.
			if want > 1 {
				record(t, m, ob{tcpLocal, tcpOutside, "/ip4/198.51.1.99/tcp/7000", 100})
				if got := m.Addrs(listen); len(got) != 0 {
					t.Fatalf("same /24 again: Addrs = %v, want none", got)
				}
			}
			record(t, m, obs[want-1])
			if got := strs(m.Addrs(listen)); !slices.Equal(got, []string{tcpOutside}) {
				t.Fatalf("%d groups: Addrs = %v, want %s", want, got, tcpOutside)
			}
		})
	}
}

func TestObserverGroups(t *testing.T) {
	for _, tc := range []struct {
		name       string
		bits4      int
		local, out string
		observers  []string
		groups     int
	}{
		{"GroupBits4 32: one group per IPv4 address", 32, tcpLocal, tcpOutside, []string{"/ip4/10.0.0.3/tcp/1", "/ip4/10.0.0.4/tcp/1", "/ip4/10.0.0.4/tcp/2"}, 2},
		{"same IPv4 /24", 0, tcpLocal, tcpOutside, []string{"/ip4/198.51.100.1/tcp/1", "/ip4/198.51.100.200/tcp/2", "/ip4/198.51.100.7/udp/3/quic-v1"}, 1},
		{"distinct IPv4 /24s", 0, tcpLocal, tcpOutside, []string{"/ip4/198.51.100.1/tcp/1", "/ip4/198.51.101.1/tcp/1", "/ip4/198.52.100.1/tcp/1"}, 3},
		{"IPv4-mapped IPv6 is its IPv4 /24", 0, tcpLocal, tcpOutside, []string{"/ip4/198.51.100.1/tcp/1", "/ip6/::ffff:198.51.100.9/tcp/1"}, 1},
		{"same IPv6 /48", 0, "/ip6/2001:db8:1::2/tcp/4001", "/ip6/2001:db8:1::2/tcp/4001", []string{"/ip6/2001:db8:aaaa:1::1/tcp/1", "/ip6/2001:db8:aaaa:ffff::9/tcp/1"}, 1},
		{"distinct IPv6 /48s", 0, "/ip6/2001:db8:1::2/tcp/4001", "/ip6/2001:db8:1::2/tcp/4001", []string{"/ip6/2001:db8:aaaa::1/tcp/1", "/ip6/2001:db8:aaab::1/tcp/1", "/ip6/2001:db9:aaaa::1/tcp/1"}, 3},
		{"one IP, many connections", 0, tcpLocal, tcpOutside, []string{"/ip4/198.51.100.1/tcp/1", "/ip4/198.51.100.1/tcp/2", "/ip4/198.51.100.1/tcp/3", "/ip4/198.51.100.1/tcp/4"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := newTest(Config{GroupBits4: tc.bits4})
			for i, o := range tc.observers {
				record(t, m, ob{tc.local, tc.out, o, uint64(i + 1)})
			}
			st := m.Status()
			if len(st) != 1 || len(st[0].Endpoints) != 1 {
				t.Fatalf("Status = %+v, want one listener with one endpoint", st)
			}
			if st[0].Groups != tc.groups || st[0].Endpoints[0].Groups != tc.groups {
				t.Fatalf("groups = %d/%d, want %d", st[0].Groups, st[0].Endpoints[0].Groups, tc.groups)
			}
		})
	}
}

func TestExpiry(t *testing.T) {
	const ttl = 10 * time.Minute
	listen := addrs(t, tcpListen)
	active := func(m *Manager) bool { return len(m.Addrs(listen)) == 1 }

	t.Run("TTL after the last report", func(t *testing.T) {
		m, c := newTest(Config{TTL: ttl})
		obs := tcpFrom(4, 1)
		record(t, m, obs...)
		c.advance(4 * time.Minute)
		record(t, m, obs[0]) // refreshed: counts until 14 min
		c.advance(ttl - 4*time.Minute - 1)
		if !active(m) {
			t.Fatal("inactive 1ns before the TTL")
		}
		c.advance(1)
		if active(m) {
			t.Fatal("active at the TTL: three of four reports lapsed")
		}
		st := m.Status()
		if len(st) != 1 || st[0].Endpoints[0].Groups != 1 || !st[0].Endpoints[0].Expires.Equal(c.t.Add(4*time.Minute)) {
			t.Fatalf("Status = %+v, want the refreshed report alone, expiring in 4 min", st)
		}
		if got, want := m.NextExpiry(), c.t.Add(4*time.Minute); !got.Equal(want) {
			t.Fatalf("NextExpiry = %v, want %v", got, want)
		}
		c.advance(4 * time.Minute)
		if st := m.Status(); len(st) != 0 {
			t.Fatalf("Status = %+v after every TTL, want empty", st)
		}
		if got := m.NextExpiry(); !got.IsZero() {
			t.Fatalf("NextExpiry = %v with nothing kept, want zero", got)
		}
	})

	t.Run("closing does not extend without UntilClosed", func(t *testing.T) {
		m, c := newTest(Config{TTL: ttl})
		record(t, m, tcpFrom(4, 1)...)
		c.advance(ttl - time.Minute)
		for i := range uint64(4) {
			m.ConnClosed(i + 1)
		}
		c.advance(time.Minute)
		if active(m) {
			t.Fatal("active past the TTL")
		}
	})

	t.Run("UntilClosed holds while open, TTL after ConnClosed", func(t *testing.T) {
		m, c := newTest(Config{TTL: ttl, UntilClosed: true})
		record(t, m, tcpFrom(4, 1)...)
		c.advance(5 * ttl)
		if !active(m) {
			t.Fatal("inactive while all connections are open")
		}
		if got := m.NextExpiry(); !got.IsZero() {
			t.Fatalf("NextExpiry = %v with every connection open, want zero", got)
		}
		if e := m.Status()[0].Endpoints[0]; !e.Expires.IsZero() {
			t.Fatalf("Expires = %v while held, want zero", e.Expires)
		}
		m.ConnClosed(2)
		c.advance(time.Minute)
		m.ConnClosed(2) // twice: the first close counts
		c.advance(-time.Minute)
		err := m.Record(tcpFrom(4, 1)[1].obs(t))
		if !errors.Is(err, ErrConnClosed) {
			t.Fatalf("Record after ConnClosed: %v, want ErrConnClosed", err)
		}
		if got, want := m.NextExpiry(), c.t.Add(ttl); !got.Equal(want) {
			t.Fatalf("NextExpiry = %v, want %v (the close + TTL)", got, want)
		}
		c.advance(ttl - 1)
		if !active(m) {
			t.Fatal("inactive 1ns before the closed connection's TTL")
		}
		c.advance(1)
		if active(m) {
			t.Fatal("active at the closed connection's TTL")
		}
		if st := m.Status(); st[0].Endpoints[0].Groups != 3 {
			t.Fatalf("Status = %+v, want the three open reports", st)
		}
		m.ConnClosed(99) // unknown: nothing happens
	})

	t.Run("a new address on a connection replaces its old one", func(t *testing.T) {
		m, _ := newTest(Config{TTL: ttl, ActivationThreshold: 1})
		record(t, m, ob{tcpLocal, tcpOutside, "/ip4/198.51.100.1/tcp/1", 1})
		record(t, m, ob{tcpLocal, "/ip4/203.0.113.8/tcp/4001", "/ip4/198.51.100.1/tcp/1", 1})
		if got := strs(m.Addrs(listen)); !slices.Equal(got, []string{"/ip4/203.0.113.8/tcp/4001"}) {
			t.Fatalf("Addrs = %v, want only the new address", got)
		}
	})
}

func TestAddrsMapping(t *testing.T) {
	quic := func(n int) []ob {
		return many(n, 100, "/ip4/10.0.0.2/udp/4001/quic-v1", "/ip4/203.0.113.7/udp/6001/quic-v1", "/ip4/198.51.%d.1/udp/1/quic-v1")
	}
	webrtc := func(n int) []ob {
		return many(n, 200, "/ip4/10.0.0.2/udp/4001/webrtc-direct"+certA, "/ip4/203.0.113.7/udp/6001/webrtc-direct", "/ip4/198.52.%d.1/udp/1/webrtc-direct")
	}
	ws := func(n int) []ob {
		return many(n, 300, "/ip4/10.0.0.2/tcp/4002/ws", "/ip4/203.0.113.7/tcp/4002/ws", "/ip4/198.51.%d.1/tcp/1/ws")
	}
	v6 := func(n int) []ob {
		return many(n, 400, "/ip6/2001:db8::2/udp/4001/quic-v1", "/ip6/2001:db8::2/udp/4001/quic-v1", "/ip6/2001:db8:%d::1/udp/1/quic-v1")
	}
	for _, tc := range []struct {
		name   string
		obs    []ob
		listen []string
		want   []string
	}{
		{"TCP onto a wildcard listener", tcpFrom(4, 1), []string{tcpListen}, []string{tcpOutside}},
		{"TCP onto its specific listener", tcpFrom(4, 1), []string{tcpLocal}, []string{tcpOutside}},
		{"TCP: another IP's listener on the port", tcpFrom(4, 1), []string{"/ip4/192.168.1.2/tcp/4001"}, nil},
		{"TCP: another port", tcpFrom(4, 1), []string{"/ip4/0.0.0.0/tcp/4002"}, nil},
		{"TCP: not onto UDP", tcpFrom(4, 1), []string{"/ip4/0.0.0.0/udp/4001/quic-v1"}, nil},
		{"TCP: not onto IPv6", tcpFrom(4, 1), []string{"/ip6/::/tcp/4001"}, nil},
		{"TCP: relayed and DNS listeners", tcpFrom(4, 1), []string{"/ip4/1.2.3.4/tcp/4001/p2p/12D3KooWGzBHDbyNoiZWwjthxuwDLsUJxCXYpREjaPuTbBUjQp6g/p2p-circuit", "/dns4/example.com/tcp/4001"}, nil},
		{"QUIC onto QUIC, WebTransport and WebRTC-direct on its port", quic(4), []string{
			"/ip4/0.0.0.0/udp/4001/quic-v1",
			"/ip4/0.0.0.0/udp/4001/quic-v1/webtransport" + certA + certB,
			"/ip4/0.0.0.0/udp/4001/webrtc-direct" + certA,
			"/ip4/0.0.0.0/tcp/4001",
		}, []string{
			"/ip4/203.0.113.7/udp/6001/quic-v1",
			"/ip4/203.0.113.7/udp/6001/quic-v1/webtransport" + certA + certB,
			"/ip4/203.0.113.7/udp/6001/webrtc-direct" + certA,
		}},
		{"QUIC and WebRTC-direct observers count together on one UDP port", append(quic(2), webrtc(2)...), []string{"/ip4/0.0.0.0/udp/4001/quic-v1"}, []string{"/ip4/203.0.113.7/udp/6001/quic-v1"}},
		{"WebSocket and secure WebSocket", ws(4), []string{"/ip4/0.0.0.0/tcp/4002/ws", "/ip4/0.0.0.0/tcp/4002/tls/ws", "/ip4/10.0.0.2/tcp/4002/tls/sni/example.com/ws"}, []string{
			"/ip4/203.0.113.7/tcp/4002/ws", "/ip4/203.0.113.7/tcp/4002/tls/ws", "/ip4/203.0.113.7/tcp/4002/tls/sni/example.com/ws",
		}},
		{"IPv6 without NAT, IPv4 listener ignored", v6(4), []string{"/ip4/0.0.0.0/udp/4001/quic-v1", "/ip6/::/udp/4001/quic-v1"}, []string{"/ip6/2001:db8::2/udp/4001/quic-v1"}},
		{"duplicate listeners give one address", tcpFrom(4, 1), []string{tcpListen, tcpLocal, tcpListen}, []string{tcpOutside}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := newTest(Config{})
			record(t, m, tc.obs...)
			if got := strs(m.Addrs(addrs(t, tc.listen...))); !slices.Equal(got, tc.want) && len(got)+len(tc.want) > 0 {
				t.Fatalf("Addrs = %q\nwant     %q", got, tc.want)
			}
		})
	}
}

func TestAddrsWildcardLocalIPs(t *testing.T) {
	// Two interfaces behind two NATs, one wildcard listener: both outside
	// addresses, each only from its own interface.
	m, _ := newTest(Config{ActivationThreshold: 2})
	record(t, m,
		ob{"/ip4/10.0.0.2/tcp/4001", "/ip4/203.0.113.7/tcp/4001", "/ip4/198.51.1.1/tcp/1", 1},
		ob{"/ip4/10.0.0.2/tcp/4001", "/ip4/203.0.113.7/tcp/4001", "/ip4/198.51.2.1/tcp/1", 2},
		ob{"/ip4/192.168.1.5/tcp/4001", "/ip4/192.0.2.9/tcp/7000", "/ip4/198.51.1.1/tcp/1", 3},
		ob{"/ip4/192.168.1.5/tcp/4001", "/ip4/192.0.2.9/tcp/7000", "/ip4/198.51.2.1/tcp/1", 4},
	)
	if got := strs(m.Addrs(addrs(t, tcpListen))); !slices.Equal(got, []string{"/ip4/203.0.113.7/tcp/4001", "/ip4/192.0.2.9/tcp/7000"}) {
		t.Fatalf("wildcard: Addrs = %v", got)
	}
	if got := strs(m.Addrs(addrs(t, "/ip4/192.168.1.5/tcp/4001"))); !slices.Equal(got, []string{"/ip4/192.0.2.9/tcp/7000"}) {
		t.Fatalf("192.168.1.5: Addrs = %v", got)
	}
}

func TestIgnored(t *testing.T) {
	const observer = "/ip4/198.51.100.1/tcp/5000"
	for _, tc := range []struct {
		name            string
		local, observed string
		from            string
		listen          []string
		want            error
	}{
		{"relayed local", "/ip4/1.2.3.4/tcp/1/p2p/12D3KooWGzBHDbyNoiZWwjthxuwDLsUJxCXYpREjaPuTbBUjQp6g/p2p-circuit", tcpOutside, observer, nil, ErrRelayed},
		{"relayed observed", tcpLocal, "/p2p/12D3KooWGzBHDbyNoiZWwjthxuwDLsUJxCXYpREjaPuTbBUjQp6g/p2p-circuit", observer, nil, ErrRelayed},
		{"relayed observer", tcpLocal, tcpOutside, "/ip4/198.51.100.1/tcp/5000/p2p/12D3KooWGzBHDbyNoiZWwjthxuwDLsUJxCXYpREjaPuTbBUjQp6g/p2p-circuit", nil, ErrRelayed},
		{"local without port", "/ip4/10.0.0.2", tcpOutside, observer, nil, ErrLocalAddr},
		{"observed DNS", tcpLocal, "/dns4/example.com/tcp/4001", observer, nil, ErrObserved},
		{"observed without port", tcpLocal, "/ip4/203.0.113.7", observer, nil, ErrObserved},
		{"observed zoned", "/ip6/fe80::1/tcp/4001", "/ip6zone/eth0/ip6/fe80::1/tcp/4001", observer, nil, ErrObserved},
		{"observed loopback", tcpLocal, "/ip4/127.0.0.1/tcp/4001", observer, nil, ErrNotUsable},
		{"observed IPv6 loopback", "/ip6/2001:db8::2/tcp/4001", "/ip6/::1/tcp/4001", "/ip6/2001:db8:5::1/tcp/1", nil, ErrNotUsable},
		{"observed unspecified", tcpLocal, "/ip4/0.0.0.0/tcp/4001", observer, nil, ErrNotUsable},
		{"observed multicast", tcpLocal, "/ip4/224.0.0.1/tcp/4001", observer, nil, ErrNotUsable},
		{"observed NAT64", "/ip6/2001:db8::2/tcp/4001", "/ip6/64:ff9b::cb00:7107/tcp/4001", "/ip6/2001:db8:5::1/tcp/1", nil, ErrNotUsable},
		{"observed port 0", tcpLocal, "/ip4/203.0.113.7/tcp/0", observer, nil, ErrNotUsable},
		{"other family", tcpLocal, "/ip6/2001:db8::7/tcp/4001", observer, nil, ErrMismatch},
		{"TCP observed for UDP", "/ip4/10.0.0.2/udp/4001/quic-v1", tcpOutside, observer, nil, ErrMismatch},
		{"WebRTC-direct observed for QUIC", "/ip4/10.0.0.2/udp/4001/quic-v1", "/ip4/203.0.113.7/udp/4001/webrtc-direct", observer, nil, ErrMismatch},
		{"observer without IP", tcpLocal, tcpOutside, "/dns4/example.com/tcp/1", nil, ErrObserver},
		{"no observer", tcpLocal, tcpOutside, "", nil, ErrObserver},
		{"ephemeral local port", "/ip4/10.0.0.2/tcp/53211", tcpOutside, observer, []string{tcpListen}, ErrNotListening},
		{"listener on another IP", tcpLocal, tcpOutside, observer, []string{"/ip4/192.168.1.2/tcp/4001"}, ErrNotListening},
		{"listener of the other protocol", tcpLocal, tcpOutside, observer, []string{"/ip4/0.0.0.0/udp/4001/quic-v1"}, ErrNotListening},
		{"no listeners", tcpLocal, tcpOutside, observer, []string{}, ErrNotListening},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{ActivationThreshold: 1}
			if tc.listen != nil {
				listen := addrs(t, tc.listen...)
				cfg.ListenAddrs = func() []ma.Multiaddr { return listen }
			}
			m, _ := newTest(cfg)
			err := m.Record(ob{tc.local, tc.observed, tc.from, 1}.obs(t))
			if err != tc.want { // the sentinel itself: nothing formatted per call
				t.Fatalf("Record: %v, want %v", err, tc.want)
			}
			if st := m.Status(); len(st) != 0 {
				t.Fatalf("Status = %+v after an ignored observation", st)
			}
		})
	}

	t.Run("accepted: a listening port, outbound reuse", func(t *testing.T) {
		listen := addrs(t, tcpListen, "/ip4/0.0.0.0/udp/4001/quic-v1")
		m, _ := newTest(Config{ListenAddrs: func() []ma.Multiaddr { return listen }, ActivationThreshold: 1})
		record(t, m, ob{tcpLocal, tcpOutside, observer, 1},
			ob{"/ip4/10.0.0.2/udp/4001/quic-v1/webtransport", "/ip4/203.0.113.7/udp/4001/quic-v1/webtransport" + certA, observer, 2})
		if got := m.Addrs(listen); len(got) != 2 {
			t.Fatalf("Addrs = %v, want TCP and QUIC", got)
		}
	})
}

func TestEndpointDependent(t *testing.T) {
	o := func(outPort, net, host int) ob {
		return ob{"/ip4/10.0.0.2/udp/4001/quic-v1", fmt.Sprintf("/ip4/203.0.113.7/udp/%d/quic-v1", outPort),
			fmt.Sprintf("/ip4/198.51.%d.%d/udp/1/quic-v1", net, host), uint64(net*1000 + host)}
	}
	for _, tc := range []struct {
		name      string
		obs       []ob
		dependent bool
		active    int
	}{
		{"symmetric: three groups, three ports", []ob{o(30001, 1, 1), o(30002, 2, 1), o(30003, 3, 1)}, true, 0},
		{"symmetric, first mapping port-preserving", []ob{o(4001, 1, 1), o(30002, 2, 1), o(30003, 3, 1), o(30004, 4, 1), o(30005, 5, 1)}, true, 0},
		{"two ports only", []ob{o(30001, 1, 1), o(30002, 2, 1)}, false, 0},
		{"one group's three peers", []ob{o(30001, 1, 1), o(30002, 1, 2), o(30003, 1, 3)}, false, 0},
		{"independent with liars", []ob{o(4001, 1, 1), o(4001, 2, 1), o(4001, 3, 1), o(4001, 4, 1), o(1, 5, 1), o(2, 6, 1), o(3, 7, 1), o(5, 8, 1), o(6, 9, 1)}, false, 1},
		{"half the groups agree", []ob{o(4001, 1, 1), o(4001, 2, 1), o(30001, 3, 1), o(30002, 4, 1)}, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := newTest(Config{})
			record(t, m, tc.obs...)
			st := m.Status()
			if len(st) != 1 {
				t.Fatalf("Status = %+v, want one listener", st)
			}
			active := 0
			for _, e := range st[0].Endpoints {
				if e.Active {
					active++
				}
			}
			if st[0].EndpointDependent != tc.dependent || active != tc.active {
				t.Fatalf("EndpointDependent = %v with %d active, want %v with %d", st[0].EndpointDependent, active, tc.dependent, tc.active)
			}
			if got := m.Addrs(addrs(t, "/ip4/0.0.0.0/udp/4001/quic-v1")); len(got) != tc.active {
				t.Fatalf("Addrs = %v, want %d", got, tc.active)
			}
		})
	}
}

func TestCaps(t *testing.T) {
	listen := addrs(t, tcpListen)
	outside := func(port int) string { return fmt.Sprintf("/ip4/203.0.113.7/tcp/%d", port) }

	t.Run("a group holds two endpoints per socket, newest kept", func(t *testing.T) {
		m, c := newTest(Config{ActivationThreshold: 1})
		for i := range 5 {
			record(t, m, ob{tcpLocal, outside(5000 + i), fmt.Sprintf("/ip4/198.51.100.%d/tcp/1", i+1), uint64(i + 1)})
			c.advance(time.Second)
		}
		if got := strs(m.Addrs(listen)); !slices.Equal(got, []string{outside(5003), outside(5004)}) {
			t.Fatalf("Addrs = %v, want the two newest", got)
		}
	})

	t.Run("a report tracks eight connections", func(t *testing.T) {
		m, c := newTest(Config{})
		for i := range 20 {
			record(t, m, ob{tcpLocal, tcpOutside, "/ip4/198.51.100.1/tcp/1", uint64(i + 1)})
			c.advance(time.Second)
		}
		if o := m.Status()[0].Endpoints[0].Observers[0]; o.Conns != maxConnsPerReport {
			t.Fatalf("Conns = %d, want %d", o.Conns, maxConnsPerReport)
		}
		if len(m.conns) != maxConnsPerReport {
			t.Fatalf("%d connections indexed, want %d", len(m.conns), maxConnsPerReport)
		}
	})

	t.Run("a flood of lone claims does not evict agreed ones", func(t *testing.T) {
		m, c := newTest(Config{MaxPerListener: 8})
		record(t, m, tcpFrom(4, 1)...)
		for i := range 200 {
			c.advance(time.Second)
			err := m.Record(ob{tcpLocal, outside(10000 + i), fmt.Sprintf("/ip4/100.%d.%d.1/tcp/1", i/250, i%250), uint64(1000 + i)}.obs(t))
			if err != nil && !errors.Is(err, ErrFull) {
				t.Fatal(err)
			}
		}
		if got := strs(m.Addrs(listen)); !slices.Equal(got, []string{tcpOutside}) {
			t.Fatalf("Addrs = %v, want %s still", got, tcpOutside)
		}
		st := m.Status()
		n := 0
		for _, e := range st[0].Endpoints {
			n += e.Groups
		}
		if n != 8 {
			t.Fatalf("%d reports kept, want 8", n)
		}
	})

	t.Run("equal support: oldest first", func(t *testing.T) {
		m, c := newTest(Config{MaxPerListener: 3, ActivationThreshold: 1})
		for i := range 4 {
			record(t, m, ob{tcpLocal, outside(5000 + i), fmt.Sprintf("/ip4/198.51.%d.1/tcp/1", i), uint64(i + 1)})
			c.advance(time.Second)
		}
		if got := strs(m.Addrs(listen)); !slices.Equal(got, []string{outside(5001), outside(5002), outside(5003)}) {
			t.Fatalf("Addrs = %v, want the oldest dropped", got)
		}
	})

	t.Run("a lone claim is refused when every kept one is backed by more", func(t *testing.T) {
		m, c := newTest(Config{MaxPerListener: 4, ActivationThreshold: 1})
		record(t, m,
			ob{tcpLocal, outside(5000), "/ip4/198.51.1.1/tcp/1", 1}, ob{tcpLocal, outside(5000), "/ip4/198.51.2.1/tcp/1", 2},
			ob{tcpLocal, outside(5001), "/ip4/198.51.3.1/tcp/1", 3}, ob{tcpLocal, outside(5001), "/ip4/198.51.4.1/tcp/1", 4})
		c.advance(time.Second)
		err := m.Record(ob{tcpLocal, outside(5002), "/ip4/198.51.5.1/tcp/1", 5}.obs(t))
		if !errors.Is(err, ErrFull) {
			t.Fatalf("Record: %v, want ErrFull", err)
		}
		if got := strs(m.Addrs(listen)); !slices.Equal(got, []string{outside(5000), outside(5001)}) {
			t.Fatalf("Addrs = %v", got)
		}
		if len(m.conns) != 4 {
			t.Fatalf("%d connections indexed after a refusal, want 4", len(m.conns))
		}
	})

	t.Run("total cap across sockets", func(t *testing.T) {
		m, c := newTest(Config{MaxTotal: 10})
		for i := range 30 {
			local := fmt.Sprintf("/ip4/10.0.0.2/tcp/%d", 4001+i%3)
			record(t, m, ob{local, outside(6000 + i), fmt.Sprintf("/ip4/198.51.%d.1/tcp/1", i), uint64(i + 1)})
			c.advance(time.Second)
		}
		n := 0
		for _, l := range m.Status() {
			for _, e := range l.Endpoints {
				n += e.Groups
			}
		}
		if n != 10 || len(m.reports) != 10 {
			t.Fatalf("%d reports kept (%d stored), want 10", n, len(m.reports))
		}
	})

	t.Run("at most four active endpoints per socket, most supported", func(t *testing.T) {
		m, _ := newTest(Config{ActivationThreshold: 1})
		conn := uint64(0)
		for port := range 6 {
			for g := range port + 1 { // endpoint 5000+p has p+1 groups
				conn++
				record(t, m, ob{tcpLocal, outside(5000 + port), fmt.Sprintf("/ip4/198.%d.%d.1/tcp/1", port, g), conn})
			}
		}
		if got := strs(m.Addrs(listen)); !slices.Equal(got, []string{outside(5005), outside(5004), outside(5003), outside(5002)}) {
			t.Fatalf("Addrs = %v", got)
		}
	})
}

// TestAddrsOnlyOntoListeners: whatever was observed, every address Addrs
// returns is an activated outside endpoint followed by the components of a
// listener that could hold its local socket.
func TestAddrsOnlyOntoListeners(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	localIPs := []string{"/ip4/10.0.0.2", "/ip4/10.0.0.3", "/ip6/2001:db8::2"}
	outIPs := map[bool][]string{true: {"/ip4/203.0.113.7", "/ip4/203.0.113.8"}, false: {"/ip6/2001:db8::2", "/ip6/2001:db8::9"}}
	ports := []int{4001, 4002, 5000}
	kinds := []string{"/tcp/%d", "/tcp/%d/ws", "/udp/%d/quic-v1", "/udp/%d/webrtc-direct"}
	wild := map[bool]string{true: "/ip4/0.0.0.0", false: "/ip6/::"}
	pick := func(s []string) string { return s[rng.IntN(len(s))] }

	produced := 0
	for round := range 100 {
		m, _ := newTest(Config{ActivationThreshold: 1 + rng.IntN(3)})
		for i := range 60 {
			lip := pick(localIPs)
			v4 := lip[:4] == "/ip4"
			kind := pick(kinds)
			local := lip + fmt.Sprintf(kind, ports[rng.IntN(len(ports))])
			observed := pick(outIPs[v4]) + fmt.Sprintf(kind, ports[rng.IntN(len(ports))])
			from := fmt.Sprintf("/ip4/198.51.%d.1/tcp/1", rng.IntN(6))
			_ = m.Record(ob{local, observed, from, uint64(i)}.obs(t))
		}
		var listen []ma.Multiaddr
		for range 1 + rng.IntN(4) {
			v4 := rng.IntN(2) == 0
			ip := wild[v4]
			if rng.IntN(2) == 0 {
				ip = pick(localIPs)
			}
			kind := pick(append(kinds, "/udp/%d/quic-v1/webtransport"+certA, "/tcp/%d/tls/ws"))
			listen = append(listen, addr(t, ip+fmt.Sprintf(kind, ports[rng.IntN(len(ports))])))
		}

		type endpoint struct {
			local sock
			out   string
		}
		var active []endpoint
		for _, l := range m.Status() {
			ls, _, _, _ := thinWaist(l.Local)
			for _, e := range l.Endpoints {
				if e.Active {
					active = append(active, endpoint{ls, e.Addr.String()})
				}
			}
		}
		for _, a := range m.Addrs(listen) {
			produced++
			s, _, rest, ok := thinWaist(a)
			if !ok {
				t.Fatalf("round %d: %s is not thin waist", round, a)
			}
			out := sock{udp: s.udp, ip: s.ip, port: s.port}.multiaddr().String()
			found := false
			for _, l := range listen {
				ls, _, lrest, _ := thinWaist(l)
				if !rest.Equal(lrest) {
					continue
				}
				for _, e := range active {
					// Spelled out, not ls.listens: the test must not share
					// the code it checks.
					sameIP := ls.ip == e.local.ip || ls.ip.IsUnspecified() && ls.ip.Is4() == e.local.ip.Is4()
					if e.out == out && ls.udp == e.local.udp && ls.port == e.local.port && sameIP {
						found = true
					}
				}
			}
			if !found {
				t.Fatalf("round %d: %s matches no listener of %v", round, a, listen)
			}
		}
	}
	if produced < 50 {
		t.Fatalf("only %d addresses over all rounds: the property was hardly exercised", produced)
	}
}

func TestConcurrent(t *testing.T) {
	leakcheck.Check(t)
	m := New(Config{UntilClosed: true, MaxTotal: 64})
	listen := addrs(t, tcpListen)
	var obs [4][200]Observation
	for w := range obs {
		for i := range obs[w] {
			obs[w][i] = ob{tcpLocal, tcpOutside, fmt.Sprintf("/ip4/198.51.%d.1/tcp/1", i%50), uint64(w*1000 + i)}.obs(t)
		}
	}
	var wg sync.WaitGroup
	for w := range obs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, o := range obs[w] {
				id := o.ConnID
				_ = m.Record(o)
				if i%3 == 0 {
					m.ConnClosed(id)
				}
				_ = m.Addrs(listen)
				_ = m.Status()
			}
		}()
	}
	wg.Wait()
	if got := strs(m.Addrs(listen)); !slices.Equal(got, []string{tcpOutside}) {
		t.Fatalf("Addrs = %v", got)
	}
}

// BenchmarkRecordFlood is the cost of a lone claim arriving while the caps
// are full: what a flood pays us per identify.
func BenchmarkRecordFlood(b *testing.B) {
	m, c := newTest(Config{})
	var obs []Observation
	for i := range 4096 {
		obs = append(obs, ob{fmt.Sprintf("/ip4/10.0.0.2/tcp/%d", 4001+i%8), fmt.Sprintf("/ip4/203.0.113.7/tcp/%d", 10000+i),
			fmt.Sprintf("/ip4/100.%d.%d.1/tcp/1", i/250, i%250), uint64(i)}.obs(b))
	}
	for _, o := range obs[:DefaultMaxTotal] {
		_ = m.Record(o)
	}
	b.ResetTimer()
	for i := range b.N {
		c.advance(time.Millisecond)
		o := obs[i%len(obs)]
		o.ConnID = uint64(1_000_000 + i)
		_ = m.Record(o)
	}
}

// TestMovedNAT: with UntilClosed, once open connections report a new
// outside endpoint for a socket, an old one that only closed connections
// still vouch for is no longer returned (the NAT moved); alone, it is.
func TestMovedNAT(t *testing.T) {
	const local = "/ip4/10.0.0.2/tcp/4001"
	listen := addrs(t, local)
	m, _ := newTest(Config{ActivationThreshold: 3, UntilClosed: true})
	record(t, m, many(3, 1, local, "/ip4/11.0.0.2/tcp/4001", "/ip4/198.51.%d.1/tcp/1")...)
	if got := strs(m.Addrs(listen)); !slices.Equal(got, []string{"/ip4/11.0.0.2/tcp/4001"}) {
		t.Fatalf("before: %v", got)
	}
	for id := uint64(1); id <= 3; id++ {
		m.ConnClosed(id)
	}
	if got := strs(m.Addrs(listen)); !slices.Equal(got, []string{"/ip4/11.0.0.2/tcp/4001"}) {
		t.Fatalf("connections closed, nothing newer: %v, want the old endpoint for its TTL", got)
	}
	record(t, m, many(3, 11, local, "/ip4/11.0.0.3/tcp/4001", "/ip4/198.51.%d.1/tcp/1")...)
	if got := strs(m.Addrs(listen)); !slices.Equal(got, []string{"/ip4/11.0.0.3/tcp/4001"}) {
		t.Fatalf("after the move: %v, want only the new endpoint", got)
	}
}
