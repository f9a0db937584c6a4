package peerstore

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
)

// A bstep acts on the addresses named by the letters of names, or (connect,
// wait, gc) on the peer or the clock.
type bstep struct {
	do    string // add, set, connect, disconnect, wait, gc
	names string
	ttl   time.Duration
}

func badd(names string, ttl time.Duration) bstep { return bstep{do: "add", names: names, ttl: ttl} }
func bset(names string, ttl time.Duration) bstep { return bstep{do: "set", names: names, ttl: ttl} }
func bwait(d time.Duration) bstep                { return bstep{do: "wait", ttl: d} }
func bdo(what string) bstep                      { return bstep{do: what} }

// letterAddr is the address named by a letter.
func letterAddr(c byte) ma.Multiaddr {
	return ma.StringCast(fmt.Sprintf("/ip4/10.0.0.%d/tcp/1", c))
}

func TestAddrBound(t *testing.T) {
	const hour = time.Hour
	cases := []struct {
		name  string
		steps []bstep
		want  string // the addresses listed, in any order
	}{
		{"under the bound all are kept", []bstep{badd("ab", hour)}, "ab"},
		{"at the bound all are kept", []bstep{badd("abc", hour)}, "abc"},
		{"one call past the bound keeps the first given", []bstep{badd("abcde", hour)}, "abc"},
		{"a new timed address is dropped when full of longer-lived ones",
			[]bstep{badd("abc", hour), badd("d", TempAddrTTL)}, "abc"},
		{"a new timed address living as long as the shortest is dropped",
			[]bstep{badd("abc", hour), badd("d", hour)}, "abc"},
		{"a longer-lived timed address displaces the shortest-lived",
			[]bstep{badd("a", hour), badd("b", TempAddrTTL), badd("c", RecentlyConnectedAddrTTL), badd("d", 2*hour)}, "acd"},
		{"expiry counts, not the TTL: of equals the one added last goes",
			[]bstep{badd("abc", hour), bwait(time.Minute), badd("d", hour)}, "abd"},
		{"an expired address not yet collected goes first",
			[]bstep{badd("a", time.Minute), badd("bc", hour), bwait(2 * time.Minute), badd("d", TempAddrTTL)}, "bcd"},
		{"an expired address goes even before a shorter-lived new one",
			[]bstep{badd("abc", time.Minute), bwait(time.Minute), badd("d", time.Nanosecond)}, "d"},
		{"permanent displaces timed",
			[]bstep{badd("abc", hour), badd("p", PermanentAddrTTL)}, "abp"},
		{"connected displaces timed",
			[]bstep{bdo("connect"), badd("abc", hour), badd("x", ConnectedAddrTTL)}, "abx"},
		{"connected given to an unconnected peer is timed",
			[]bstep{badd("abc", hour), badd("x", ConnectedAddrTTL)}, "abc"},
		{"permanent displaces connected",
			[]bstep{bdo("connect"), badd("abc", ConnectedAddrTTL), badd("p", PermanentAddrTTL)}, "abp"},
		{"timed does not displace connected",
			[]bstep{bdo("connect"), badd("abc", ConnectedAddrTTL), badd("d", PermanentAddrTTL-2)}, "abc"},
		{"full of permanent: nothing displaces them",
			[]bstep{badd("pqr", PermanentAddrTTL), bdo("connect"), badd("x", ConnectedAddrTTL), badd("y", hour), badd("s", PermanentAddrTTL)}, "pqr"},
		{"permanent and connected first, then the longest-lived, in one mix",
			[]bstep{bdo("connect"), badd("a", hour), badd("b", TempAddrTTL), badd("x", ConnectedAddrTTL), badd("p", PermanentAddrTTL)}, "apx"},
		{"raising a held address drops nothing",
			[]bstep{badd("abc", TempAddrTTL), badd("a", PermanentAddrTTL), badd("b", hour)}, "abc"},
		{"a removed address frees its place",
			[]bstep{badd("abc", hour), bset("b", 0), badd("d", TempAddrTTL)}, "acd"},
		{"GC frees the places of expired addresses",
			[]bstep{badd("abc", time.Minute), bwait(time.Minute), bdo("gc"), badd("de", hour)}, "de"},
		{"after the last disconnect connected addresses rank as timed",
			[]bstep{bdo("connect"), badd("ab", ConnectedAddrTTL), badd("c", hour), bdo("disconnect"), badd("d", 2*hour)}, "acd"},
		{"set past the bound keeps the first given", []bstep{bset("abcde", hour)}, "abc"},
		{"set: permanent displaces timed", []bstep{badd("abc", hour), bset("p", PermanentAddrTTL)}, "abp"},
		{"set: a shorter-lived new address is dropped", []bstep{badd("abc", hour), bset("d", TempAddrTTL)}, "abc"},
		{"set on held addresses drops nothing", []bstep{badd("abc", hour), bset("abc", TempAddrTTL)}, "abc"},
		{"set can lower a held address below a new one",
			[]bstep{badd("abc", PermanentAddrTTL), bset("a", TempAddrTTL), badd("d", hour)}, "bcd"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ps, clk := newClocked(WithMaxAddrsPerPeer(3))
			p, _ := newPeer(t)
			for _, s := range tc.steps {
				var as []ma.Multiaddr
				for i := range len(s.names) {
					as = append(as, letterAddr(s.names[i]))
				}
				switch s.do {
				case "add":
					ps.AddAddrs(p, as, s.ttl)
				case "set":
					ps.SetAddrs(p, as, s.ttl)
				case "connect":
					ps.Connected(p)
				case "disconnect":
					ps.Disconnected(p)
				case "wait":
					clk.wait(s.ttl)
				case "gc":
					ps.GC()
				default:
					t.Fatalf("bad step %q", s.do)
				}
				if r := ps.peers[p]; r != nil && len(r.addrs) > 3 {
					t.Fatalf("after %s %q: %d addresses held", s.do, s.names, len(r.addrs))
				}
			}
			var want []ma.Multiaddr
			for i := range len(tc.want) {
				want = append(want, letterAddr(tc.want[i]))
			}
			got := ps.Addrs(p)
			cmp := func(a, b ma.Multiaddr) int { return strings.Compare(a.String(), b.String()) }
			slices.SortFunc(got, cmp)
			slices.SortFunc(want, cmp)
			if !slices.EqualFunc(got, want, ma.Multiaddr.Equal) {
				t.Fatalf("listed %v, want %v", got, want)
			}
			checkInvariants(t, ps)
		})
	}
}

func TestAddrBoundDefaultAndNone(t *testing.T) {
	many := make([]ma.Multiaddr, 100)
	for i := range many {
		many[i] = ma.StringCast(fmt.Sprintf("/ip4/10.0.%d.%d/tcp/1", i/256, i%256))
	}
	for _, tc := range []struct {
		name string
		opts []Option
		want int
	}{
		{"default", nil, MaxAddrsPerPeer},
		{"changed", []Option{WithMaxAddrsPerPeer(10)}, 10},
		{"none", []Option{WithMaxAddrsPerPeer(0)}, len(many)},
		{"negative is none", []Option{WithMaxAddrsPerPeer(-1)}, len(many)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := New(tc.opts...)
			p, _ := newPeer(t)
			ps.AddAddrs(p, many, time.Hour)
			if got := ps.Addrs(p); !slices.EqualFunc(got, many[:tc.want], ma.Multiaddr.Equal) {
				t.Fatalf("AddAddrs kept %d, want the first %d", len(got), tc.want)
			}
			q, _ := newPeer(t)
			ps.SetAddrs(q, many, time.Hour)
			if got := ps.Addrs(q); !slices.EqualFunc(got, many[:tc.want], ma.Multiaddr.Equal) {
				t.Fatalf("SetAddrs kept %d, want the first %d", len(got), tc.want)
			}
		})
	}
}

func TestProtocolBound(t *testing.T) {
	ids := func(n int, prefix string) []protocol.ID {
		out := make([]protocol.ID, n)
		for i := range out {
			out[i] = protocol.ID(fmt.Sprintf("%s/%d", prefix, i))
		}
		return out
	}
	long := func(n int) protocol.ID { return protocol.ID("/" + strings.Repeat("x", n-1)) }
	many := ids(200, "/p")
	cases := []struct {
		name string
		opts []Option
		in   []protocol.ID
		want []protocol.ID
	}{
		{"nil", nil, nil, nil},
		{"under the bound", nil, ids(3, "/p"), ids(3, "/p")},
		{"at the bound", nil, many[:MaxProtocolsPerPeer], many[:MaxProtocolsPerPeer]},
		{"past the bound keeps the first given", nil, many, many[:MaxProtocolsPerPeer]},
		{"changed bound", []Option{WithMaxProtocolsPerPeer(2)}, []protocol.ID{"/c", "/a", "/b"}, []protocol.ID{"/c", "/a"}},
		{"no bound", []Option{WithMaxProtocolsPerPeer(0)}, many, many},
		{"an ID at the length bound is kept", nil,
			[]protocol.ID{"/a", long(MaxProtocolIDLen)}, []protocol.ID{"/a", long(MaxProtocolIDLen)}},
		{"a longer ID is dropped", nil,
			[]protocol.ID{"/a", long(MaxProtocolIDLen + 1), "/b"}, []protocol.ID{"/a", "/b"}},
		{"a multistream-sized ID is dropped", nil,
			[]protocol.ID{long(1024), "/a"}, []protocol.ID{"/a"}},
		{"only long IDs", nil, []protocol.ID{long(MaxProtocolIDLen + 1)}, []protocol.ID{}},
		{"dropped IDs take no place", []Option{WithMaxProtocolsPerPeer(2)},
			[]protocol.ID{long(300), "/a", long(300), "/b", "/c"}, []protocol.ID{"/a", "/b"}},
		{"changed length bound", []Option{WithMaxProtocolIDLen(3)},
			[]protocol.ID{"/ab", "/abc", "/a"}, []protocol.ID{"/ab", "/a"}},
		{"no length bound", []Option{WithMaxProtocolIDLen(0)},
			[]protocol.ID{long(5000)}, []protocol.ID{long(5000)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ps := New(tc.opts...)
			p, _ := newPeer(t)
			in := slices.Clone(tc.in)
			ps.SetProtocols(p, in)
			got := ps.Protocols(p)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("kept %d %v, want %d %v", len(got), trim(got), len(tc.want), trim(tc.want))
			}
			if len(in) > 0 {
				in[0] = "/changed"
				if slices.Contains(ps.Protocols(p), "/changed") {
					t.Fatal("the store shares the caller's slice")
				}
			}
			if len(tc.want) > 0 {
				if _, ok := ps.SupportsProtocol(p, tc.want[len(tc.want)-1]); !ok {
					t.Fatal("the last kept protocol is not supported")
				}
			}
		})
	}
}

// trim shortens long IDs for failure messages.
func trim(ids []protocol.ID) []string {
	var out []string
	for _, id := range ids {
		s := string(id)
		if len(s) > 20 {
			s = fmt.Sprintf("%s...(%d)", s[:10], len(s))
		}
		out = append(out, s)
	}
	return out
}

func TestAgentBound(t *testing.T) {
	const euro, emoji = "€", "😀" // 3 and 4 bytes
	cases := []struct {
		name, in string
		n        int
		want     string
	}{
		{"empty", "", 4, ""},
		{"under", "ab", 4, "ab"},
		{"at", "abcd", 4, "abcd"},
		{"over", "abcdef", 4, "abcd"},
		{"no bound", "abcdef", 0, "abcdef"},
		{"negative is no bound", "abcdef", -1, "abcdef"},
		{"2-byte rune ends at the bound", "abé", 4, "abé"},
		{"2-byte rune crosses the bound", "abcé", 4, "abc"},
		{"3-byte rune ends at the bound", "a" + euro + "b", 4, "a" + euro},
		{"3-byte rune crosses by 1", "ab" + euro, 4, "ab"},
		{"3-byte rune crosses by 2", "abc" + euro, 4, "abc"},
		{"4-byte rune ends at the bound", emoji + "x", 4, emoji},
		{"4-byte rune crosses by 1", "a" + emoji, 4, "a"},
		{"4-byte rune crosses by 3", "abc" + emoji, 4, "abc"},
		{"a bound inside the first rune", emoji, 2, ""},
		{"a bound of one byte", euro, 1, ""},
		{"not UTF-8: cut at the bound", "a\x80\x80\x80\x80\x80", 4, "a\x80\x80\x80"},
		{"a stray continuation byte is kept", "\x80abc", 2, "\x80a"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := truncate(tc.in, tc.n)
			if got != tc.want {
				t.Fatalf("truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
			}
			if utf8.ValidString(tc.in) && !utf8.ValidString(got) {
				t.Fatalf("cut valid UTF-8 into invalid: %q", got)
			}
			ps := New(WithMaxAgentLen(tc.n))
			p, _ := newPeer(t)
			ps.SetAgent(p, tc.in, "v/"+tc.in)
			a, v := ps.Agent(p)
			if a != tc.want || v != truncate("v/"+tc.in, tc.n) {
				t.Fatalf("Agent = %q, %q", a, v)
			}
		})
	}

	// The default, on both strings, and on every possible cut.
	ps := New()
	p, _ := newPeer(t)
	s := strings.Repeat("a"+euro+emoji+"é", 100)
	ps.SetAgent(p, s, s)
	a, v := ps.Agent(p)
	for _, got := range []string{a, v} {
		if len(got) > MaxAgentLen || len(got) < MaxAgentLen-3 || !strings.HasPrefix(s, got) || !utf8.ValidString(got) {
			t.Fatalf("default cut: %d bytes, valid %v", len(got), utf8.ValidString(got))
		}
	}
	for n := 1; n <= 20; n++ {
		got := truncate(s, n)
		if len(got) > n || len(got) < n-3 || !strings.HasPrefix(s, got) || !utf8.ValidString(got) {
			t.Fatalf("truncate at %d: %q", n, got)
		}
	}
}

func TestBoundDefaults(t *testing.T) {
	ps := New()
	if ps.maxAddrs != MaxAddrsPerPeer || ps.maxProtos != MaxProtocolsPerPeer ||
		ps.maxProtoL != MaxProtocolIDLen || ps.maxAgent != MaxAgentLen {
		t.Fatal("defaults not set")
	}
}

func TestBoundsConcurrent(t *testing.T) {
	ps := New(WithMaxAddrsPerPeer(4), WithMaxProtocolsPerPeer(3), WithMaxUnconnectedPeers(6))
	ids := make([]peer.ID, 8)
	for i := range ids {
		ids[i], _ = newPeer(t)
	}
	as := make([]ma.Multiaddr, 12)
	for i := range as {
		as[i] = ma.StringCast(fmt.Sprintf("/ip4/10.0.0.%d/tcp/1", i))
	}
	protos := []protocol.ID{"/a", "/b", "/c", "/d", "/e"}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 400 {
				p := ids[(g*3+i)%len(ids)]
				lo := (g + i) % 8
				switch i % 8 {
				case 0:
					ps.Connected(p)
					ps.AddAddrs(p, as[lo:lo+2], ConnectedAddrTTL)
				case 1:
					ps.Disconnected(p)
				case 2:
					ps.AddAddrs(p, as[lo:], time.Duration(1+i%5)*time.Minute)
				case 3:
					ps.SetAddrs(p, as[lo:lo+3], PermanentAddrTTL)
				case 4:
					ps.SetAddrs(p, as[:lo], time.Duration(i%3)*time.Minute)
				case 5:
					ps.SetProtocols(p, protos[i%3:])
					ps.SetAgent(p, strings.Repeat("é", 300), "v")
				case 6:
					ps.GC()
					ps.RemovePeer(p)
				default:
					if n := len(ps.Addrs(p)); n > 4 {
						t.Errorf("%d addresses listed", n)
					}
					if n := len(ps.Protocols(p)); n > 3 {
						t.Errorf("%d protocols listed", n)
					}
					if a, _ := ps.Agent(p); len(a) > MaxAgentLen || !utf8.ValidString(a) {
						t.Errorf("agent of %d bytes", len(a))
					}
				}
			}
		}()
	}
	wg.Wait()
	checkInvariants(t, ps)
}
