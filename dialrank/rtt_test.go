package dialrank

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/internal/streamtest"
)

func TestRTTsSmoothing(t *testing.T) {
	r := NewRTTs(nil)
	p := streamtest.PeerID(t, "a")
	a := mas(t, q4)[0]
	cases := []struct {
		sample       time.Duration
		srtt, rttvar time.Duration
	}{
		{80 * time.Millisecond, 80 * time.Millisecond, 40 * time.Millisecond}, // first: R, R/2
		{40 * time.Millisecond, 75 * time.Millisecond, 40 * time.Millisecond}, // 7/8 x 80 + 1/8 x 40; (3 x 40 + 40)/4
		{75 * time.Millisecond, 75 * time.Millisecond, 30 * time.Millisecond},
	}
	for i, tc := range cases {
		r.AddRTT(p, a, tc.sample)
		e, ok := r.Estimate(p, a)
		if !ok || e.SRTT != tc.srtt || e.RTTVar != tc.rttvar || e.Samples != i+1 {
			t.Errorf("after %v: %+v, want srtt %v rttvar %v", tc.sample, e, tc.srtt, tc.rttvar)
		}
	}
}

func TestRTTsLevels(t *testing.T) {
	clk := newClock()
	r := NewRTTs(&RTTConfig{Now: clk.now, MaxAge: time.Hour})
	p, other := streamtest.PeerID(t, "a"), streamtest.PeerID(t, "b")
	r.AddHandshake(p, mas(t, t4s)[0], 40*time.Millisecond) // 2 rounds: 20 ms
	cases := []struct {
		name string
		p    string
		addr string
		src  string
		ok   bool
	}{
		{"same peer, same IP", "a", q4, "host", true},
		{"same peer, other IP", "a", q6, "peer", true},
		{"other peer, same /24", "b", "/ip4/1.2.3.99/udp/1/quic-v1", "prefix", true},
		{"other peer, same transport and family", "b", "/ip4/9.9.9.9/tcp/1/tls", "transport", true},
		{"other peer, other transport", "b", "/ip4/9.9.9.9/udp/1/quic-v1", "", false},
		{"no IP", "b", "/dns4/example.com/tcp/1", "", false},
	}
	for _, tc := range cases {
		id := p
		if tc.p == "b" {
			id = other
		}
		e, ok := r.Estimate(id, mas(t, tc.addr)[0])
		if ok != tc.ok || e.Source != tc.src || (ok && e.SRTT != 20*time.Millisecond) {
			t.Errorf("%s: %+v %v, want source %q %v", tc.name, e, ok, tc.src, tc.ok)
		}
	}
	// Stale estimates are ignored.
	clk.add(2 * time.Hour)
	if e, ok := r.Estimate(p, mas(t, q4)[0]); ok {
		t.Errorf("stale estimate used: %+v", e)
	}
	r.AddRTT(p, mas(t, q4)[0], 30*time.Millisecond)
	r.Reset()
	if h, ps, pf := r.Len(); h+ps+pf != 0 {
		t.Errorf("after Reset: %d %d %d", h, ps, pf)
	}
}

func TestRTTsCaps(t *testing.T) {
	r := NewRTTs(&RTTConfig{MaxHosts: 10, MaxPeers: 6, MaxPrefixes: 8})
	keep := streamtest.PeerID(t, "keep")
	keepAddr := mas(t, "/ip4/7.7.7.7/udp/1/quic-v1")[0]
	for i := range 200 {
		p := streamtest.PeerID(t, fmt.Sprint("p", i%50))
		r.AddRTT(p, mas(t, fmt.Sprintf("/ip4/10.%d.%d.1/udp/1/quic-v1", i/200, i%250))[0], time.Duration(i+1)*time.Millisecond)
		// An entry in use survives the churn.
		r.AddRTT(keep, keepAddr, 5*time.Millisecond)
		h, ps, pf := r.Len()
		if h > 10 || ps > 6 || pf > 8 {
			t.Fatalf("after %d: %d hosts, %d peers, %d prefixes", i, h, ps, pf)
		}
	}
	if e, ok := r.Estimate(keep, keepAddr); !ok || e.Source != "host" {
		t.Errorf("a busy entry was evicted: %+v %v", e, ok)
	}
	// Entries not touched for a generation are gone: only the (uncapped,
	// fixed-size) transport level is left for them.
	if e, _ := r.Estimate(streamtest.PeerID(t, "p0"), mas(t, "/ip4/10.0.0.1/udp/1/quic-v1")[0]); e.Source != "transport" {
		t.Errorf("the oldest entry survived: %+v", e)
	}
}

func TestRTTsConcurrent(t *testing.T) {
	leakcheck.Check(t)
	r := NewRTTs(&RTTConfig{MaxHosts: 16, MaxPeers: 8, MaxPrefixes: 16})
	ps := peers(t, 4)
	a := mas(t, q4, q6, t4s)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				r.AddHandshake(ps[g], a[i%3], time.Duration(i+1)*time.Millisecond)
				r.Estimate(ps[(g+1)%4], a[(i+1)%3])
				Rank(a, Knowledge{Peer: ps[g], RTT: r})
			}
		}()
	}
	wg.Wait()
}

func TestRTTsLearn(t *testing.T) {
	r := NewRTTs(nil)
	p := streamtest.PeerID(t, "a")
	tr := trace(t, p, false, attempt(q6, Timeout), attemptSpec{t4s, Connected, 60 * time.Millisecond})
	r.Learn(tr)
	if e, ok := r.Estimate(p, mas(t, t4s)[0]); !ok || e.SRTT != 30*time.Millisecond {
		t.Errorf("learned %+v %v, want 30ms (60 ms over 2 rounds)", e, ok)
	}
	if _, ok := r.Estimate(p, mas(t, "/ip6/2001:db8::1/tcp/1/tls")[0]); !ok {
		t.Error("peer level not learned")
	}
}
