package dialrank

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/internal/streamtest"
)

// checkPlan asserts what must hold of any plan (the property test and the
// fuzz target share it).
func checkPlan(t testing.TB, addrs []ma.Multiaddr, k Knowledge, r Ranking) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s\nknowledge: %+v\n%s", fmt.Sprintf(format, args...), k, explain(r))
	}
	// Every address is accounted for exactly once.
	if len(r.Dials)+len(r.Skipped) != len(addrs) {
		fail("%d dials + %d skipped for %d addresses", len(r.Dials), len(r.Skipped), len(addrs))
	}
	seen := make(map[string]bool)
	sockets := make(map[string]bool)
	directs, loopbacks, publics := 0, 0, 0
	for _, a := range addrs {
		if in, ok := parse(a); ok && in.kind != Relay {
			directs++
			switch in.scope {
			case loopback:
				loopbacks++
			case public:
				publics++
			}
		}
	}
	var probed [numClasses]bool
	lastDirect, firstRelay := time.Duration(-1), time.Duration(-1)
	for i, d := range r.Dials {
		in, ok := parse(d.Addr)
		switch {
		case !ok:
			fail("dialed %s, which has no IP", d.Addr)
		case seen[string(d.Addr.Bytes())]:
			fail("dialed %s twice", d.Addr)
		case in.sock != "" && sockets[in.sock]:
			fail("dialed the socket of %s twice", d.Addr)
		case i > 0 && d.Delay < r.Dials[i-1].Delay:
			fail("delays out of order at %d", i)
		case i == 0 && d.Delay != 0:
			fail("first dial at %v", d.Delay)
		case d.Delay > 30*time.Second:
			fail("dial at %v", d.Delay)
		case in.kind == Relay && k.DirectConn:
			fail("relay %s dialed next to a direct connection", d.Addr)
		case in.scope == loopback && !k.AllowLoopback && loopbacks != directs:
			fail("loopback %s dialed", d.Addr)
		case in.scope == private && publics > 0 && !k.SameNetwork && !k.local(in.ip):
			fail("private %s dialed", d.Addr)
		case k.CanDial != nil && !k.CanDial(d.Addr):
			fail("%s dialed without a transport", d.Addr)
		}
		seen[string(d.Addr.Bytes())] = true
		if in.sock != "" {
			sockets[in.sock] = true
		}
		if in.kind == Relay {
			if firstRelay < 0 {
				firstRelay = d.Delay
			}
		} else {
			if firstRelay >= 0 {
				fail("direct %s after a relay", d.Addr)
			}
			lastDirect = d.Delay
		}
		if k.Unfiltered {
			continue
		}
		switch c := in.class(); k.BlackHoles.Of(c) {
		case Blocked:
			fail("%s dialed into a black hole (%s)", d.Addr, c)
		case Probe:
			if !d.Probe || probed[c] {
				fail("%s: not the one probe of %s", d.Addr, c)
			}
			probed[c] = true
		default:
			if d.Probe {
				fail("%s: a probe of an open class", d.Addr)
			}
		}
	}
	// QUIC before TCP on the same host, among the scheduled dials of a
	// group (a probe rides beside the schedule).
	isTCP := func(k Transport) bool { return k == TCP || k == TCPTLS || k == TCPNoise }
	for i, d := range r.Dials {
		for _, e := range r.Dials[i+1:] {
			di, _ := parse(d.Addr)
			ei, _ := parse(e.Addr)
			sameGroup := k.Backoff == nil || k.Backoff(d.Addr).IsZero() == k.Backoff(e.Addr).IsZero()
			if isTCP(di.kind) && ei.kind == QUIC && di.ip == ei.ip && !d.Probe && !e.Probe && sameGroup {
				fail("tcp %s before quic %s on the same host", d.Addr, e.Addr)
			}
		}
	}
	if firstRelay >= 0 && lastDirect > firstRelay {
		fail("relay at %v before a direct dial at %v", firstRelay, lastDirect)
	}
}

var (
	propHosts = []string{"/ip4/1.2.3.4", "/ip4/1.2.3.5", "/ip4/5.6.7.8", "/ip6/2001:db8::1", "/ip6/2001:db8:1::1",
		"/ip4/192.168.1.7", "/ip4/10.0.0.1", "/ip6/fd00::1", "/ip4/127.0.0.1", "/ip6/::1", "/ip4/0.0.0.0", "/dns4/example.com"}
	propTails = []string{"/tcp/%d", "/tcp/%d/tls", "/tcp/%d/noise", "/udp/%d/quic-v1", "/udp/%d/quic-v1/webtransport" + certhash,
		"/udp/%d/webrtc-direct" + certhash, "/tcp/%d/ws", "/tcp/%d/wss", "/udp/%d/quic"}
	propRelay = "/p2p/12D3KooWGRUVh2HTwJHRjfyuYJfkgjiTu5yWKAVt7zZpSWWJqD7z/p2p-circuit"
)

func randomCase(t testing.TB, rng *rand.Rand) ([]ma.Multiaddr, Knowledge) {
	var ss []string
	for range rng.IntN(20) {
		s := propHosts[rng.IntN(len(propHosts))] + fmt.Sprintf(propTails[rng.IntN(len(propTails))], 4001+rng.IntN(2))
		if rng.IntN(5) == 0 {
			s += propRelay
		}
		ss = append(ss, s)
		if rng.IntN(10) == 0 {
			ss = append(ss, s) // duplicates
		}
	}
	addrs := mas(t, ss...)
	now := time.Unix(1_700_000_000, 0)
	k := Knowledge{
		Peer:          streamtest.PeerID(t, "prop"),
		Now:           now,
		Unfiltered:    rng.IntN(8) == 0,
		DirectConn:    rng.IntN(4) == 0,
		SameNetwork:   rng.IntN(4) == 0,
		AllowLoopback: rng.IntN(4) == 0,
		NoDelay:       rng.IntN(8) == 0,
	}
	for c := UDP4; c < numClasses; c++ {
		k.BlackHoles[c] = Verdict(rng.IntN(3))
	}
	if rng.IntN(2) == 0 {
		k.LocalPrefixes = []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")}
	}
	if rng.IntN(2) == 0 {
		in := rng.Uint64()
		k.Backoff = func(a ma.Multiaddr) time.Time {
			if (in>>(len(a.Bytes())%64))&1 == 1 {
				return now.Add(time.Minute)
			}
			return time.Time{}
		}
	}
	if rng.IntN(2) == 0 {
		no := Transport(rng.IntN(int(Relay) + 1))
		k.CanDial = func(a ma.Multiaddr) bool { kind, _ := TransportOf(a); return kind != no }
	}
	if rng.IntN(2) == 0 {
		k.RTT = fixedRTT{"1.2.3.4": 20 * time.Millisecond, "2001:db8::1": 300 * time.Millisecond, "192.168.1.7": time.Millisecond}
	}
	return addrs, k
}

func TestPlanProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		addrs, k := randomCase(t, rng)
		in := slices.Clone(addrs)
		r := Plan(addrs, k)
		if !slices.EqualFunc(in, addrs, func(a, b ma.Multiaddr) bool { return a.Equal(b) }) {
			t.Fatal("Plan changed its input")
		}
		checkPlan(t, addrs, k, r)
	}
}

// FuzzPlan ranks arbitrary binary multiaddrs: data is a flags byte, then
// addresses, each prefixed by its length in one byte.
func FuzzPlan(f *testing.F) {
	seed := func(flags byte, ss ...string) {
		b := []byte{flags}
		for _, a := range mas(f, ss...) {
			b = append(b, byte(len(a.Bytes())))
			b = append(b, a.Bytes()...)
		}
		f.Add(b)
	}
	seed(0, listener(v4, v6)...)
	seed(0xff, append(listener("192.168.1.7", "::1"), rly)...)
	seed(0x5a, q4, q4, t4, t4s, t4n, "/ip4/127.0.0.1/udp/1/quic-v1", "/dns4/example.com/tcp/1")
	peer := streamtest.PeerID(f, "fuzz")
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		flags := data[0]
		data = data[1:]
		var addrs []ma.Multiaddr
		for len(data) > 0 && len(addrs) < 64 {
			n := int(data[0])
			data = data[1:]
			if n > len(data) {
				break
			}
			if a, err := ma.NewMultiaddrBytes(data[:n]); err == nil {
				addrs = append(addrs, a)
			}
			data = data[n:]
		}
		k := Knowledge{Peer: peer, DirectConn: flags&1 != 0, SameNetwork: flags&2 != 0, AllowLoopback: flags&4 != 0,
			Unfiltered: flags&8 != 0, NoDelay: flags&16 != 0}
		for c := UDP4; c < numClasses; c++ {
			k.BlackHoles[c] = Verdict((flags >> (2 * (c - 1))) % 3)
		}
		checkPlan(t, addrs, k, Plan(addrs, k))
	})
}

func BenchmarkRank20(b *testing.B) {
	p := streamtest.PeerID(b, "bench")
	addrs := mas(b, append(listener(v4, v6, "192.168.1.7"), rly, rly+"/p2p/"+p.String())...)
	if len(addrs) != 20 {
		b.Fatalf("%d addresses", len(addrs))
	}
	rtts := NewRTTs(nil)
	for _, a := range addrs {
		rtts.AddHandshake(p, a, 80*time.Millisecond)
	}
	var v BlackHoleView
	v[UDP6] = Blocked
	k := Knowledge{Peer: p, RTT: rtts, BlackHoles: v, LocalPrefixes: []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")}}
	b.ReportAllocs()
	for b.Loop() {
		Rank(addrs, k)
	}
}
