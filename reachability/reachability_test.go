package reachability

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/internal/streamtest"
)

var (
	addrTCP  = ma.StringCast("/ip4/203.0.113.5/tcp/4001")
	addrQUIC = ma.StringCast("/ip4/203.0.113.5/udp/4001/quic-v1")
)

func servers(t *testing.T, n int) []peer.ID {
	out := make([]peer.ID, n)
	for i := range out {
		out[i] = streamtest.PeerID(t, fmt.Sprintf("server-%d", i))
	}
	return out
}

// sim drives a state with a fake clock: every due probe is answered by
// answer(server, addr) after latency.
type sim struct {
	t       *testing.T
	st      *state
	now     time.Time
	servers []peer.ID
	answer  func(server peer.ID, addr ma.Multiaddr) Outcome
	changes []Change
	probes  map[string]int // per address, probes run
	// byServer counts the probes each server got; maxAtOnce is the most
	// one server ran at once.
	byServer  map[peer.ID]int
	maxAtOnce int
	// latencyOf, if set, is each server's answer time for an address
	// (else run's).
	latencyOf func(peer.ID, ma.Multiaddr) time.Duration
}

func newSim(t *testing.T, cfg Config, nServers int, answer func(peer.ID, ma.Multiaddr) Outcome) *sim {
	return &sim{t: t, st: newState(cfg.withDefaults()), now: time.Unix(1e6, 0), servers: servers(t, nServers), answer: answer, probes: map[string]int{}, byServer: map[peer.ID]int{}}
}

// run advances the clock by d, running the probes that fall due; each
// probe takes latency.
func (s *sim) run(d, latency time.Duration) {
	end := s.now.Add(d)
	type pending struct {
		j  job
		at time.Time
	}
	var inflight []pending
	for i := 0; ; i++ {
		if i > 100000 {
			s.t.Fatal("simulation does not settle")
		}
		jobs, wake := s.st.due(s.now, s.servers)
		for _, j := range jobs {
			lat := latency
			if s.latencyOf != nil {
				lat = s.latencyOf(j.server, j.addr)
			}
			inflight = append(inflight, pending{j, s.now.Add(lat)})
			s.probes[j.addr.String()]++
			s.byServer[j.server]++
		}
		atOnce := map[peer.ID]int{}
		for _, p := range inflight {
			atOnce[p.j.server]++
			s.maxAtOnce = max(s.maxAtOnce, atOnce[p.j.server])
		}
		// The next event: a probe's answer or a wake-up.
		next := end
		if !wake.IsZero() && wake.Before(next) {
			next = wake
		}
		for _, p := range inflight {
			if p.at.Before(next) {
				next = p.at
			}
		}
		if next.After(end) || (next.Equal(end) && len(jobs) == 0 && !slices.ContainsFunc(inflight, func(p pending) bool { return !p.at.After(end) })) {
			s.now = end
			return
		}
		s.now = next
		var rest []pending
		for _, p := range inflight {
			if p.at.After(s.now) {
				rest = append(rest, p)
				continue
			}
			if ch := s.st.result(s.now, p.j.key, p.j.server, s.answer(p.j.server, p.j.addr)); ch != nil {
				s.changes = append(s.changes, *ch)
			}
		}
		inflight = rest
	}
}

func (s *sim) verdict(a ma.Multiaddr) Verdict {
	for _, r := range s.st.table() {
		if r.Addr.Equal(a) {
			return r.Verdict
		}
	}
	s.t.Fatalf("%s not in the table", a)
	return Unknown
}

func always(o Outcome) func(peer.ID, ma.Multiaddr) Outcome {
	return func(peer.ID, ma.Multiaddr) Outcome { return o }
}

// TestVerdicts: how many probes and how long each kind of address takes to
// its verdict, with three servers answering in 100 ms.
func TestVerdicts(t *testing.T) {
	const latency = 100 * time.Millisecond
	for _, tc := range []struct {
		name       string
		answer     func(peer.ID, ma.Multiaddr) Outcome
		want       Verdict
		maxProbes  int
		wantChange int
	}{
		{"all servers reach it", always(Reached), Public, 3, 1},
		{"no server reaches it", always(Unreached), Private, 3, 1},
		{"no server can tell", always(Inconclusive), Unknown, 1000, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, Config{}, 3, tc.answer)
			s.st.setAddrs(s.now, []ma.Multiaddr{addrTCP})
			s.run(latency, latency)
			if v := s.verdict(addrTCP); v != tc.want {
				t.Fatalf("verdict after one round trip of probes: %v, want %v", v, tc.want)
			}
			if n := s.probes[addrTCP.String()]; n > tc.maxProbes {
				t.Fatalf("%d probes, want at most %d", n, tc.maxProbes)
			}
			s.run(time.Hour, latency)
			if v := s.verdict(addrTCP); v != tc.want {
				t.Fatalf("verdict after an hour: %v, want %v", v, tc.want)
			}
			if len(s.changes) != tc.wantChange {
				t.Fatalf("changes %+v, want %d", s.changes, tc.wantChange)
			}
		})
	}
}

// TestNoFlap: a dissenting server, or one lost dial-back, never flips a
// verdict; the address is probed again at once by the others, and the
// verdict moves only when the others agree with the dissent.
func TestNoFlap(t *testing.T) {
	srv := servers(t, 3)
	dissenter := srv[2]
	var mu sync.Mutex
	flipped := false
	answer := func(p peer.ID, _ ma.Multiaddr) Outcome {
		mu.Lock()
		defer mu.Unlock()
		if p == dissenter || flipped {
			return Unreached
		}
		return Reached
	}
	s := newSim(t, Config{}, 3, answer)
	s.servers = srv
	s.st.setAddrs(s.now, []ma.Multiaddr{addrTCP})
	s.run(6*time.Hour, 100*time.Millisecond)
	if v := s.verdict(addrTCP); v != Public || len(s.changes) != 1 {
		t.Fatalf("verdict %v, changes %+v: want public once", v, s.changes)
	}
	// The dissent is re-checked, with backoff, not every round trip.
	if n := s.probes[addrTCP.String()]; n > 20 {
		t.Fatalf("%d probes in 6 h for one dissenting server", n)
	}
	// The network really changed: everyone now fails to reach it.
	mu.Lock()
	flipped = true
	mu.Unlock()
	s.st.recheck(s.now)
	s.run(time.Second, 100*time.Millisecond)
	if v := s.verdict(addrTCP); v != Private || len(s.changes) != 2 || s.changes[1].From != Public {
		t.Fatalf("after the change: verdict %v, changes %+v: want private", v, s.changes)
	}
}

// TestSchedule: re-checks back off while answers agree, retries back off
// while nothing is learned, and a new server is asked at once.
func TestSchedule(t *testing.T) {
	cfg := Config{RetryMin: time.Second, RetryMax: 8 * time.Second, RecheckMin: time.Minute, RecheckMax: 4 * time.Minute}.withDefaults()
	st := newState(cfg)
	now := time.Unix(1e6, 0)
	srv := servers(t, 2)
	st.setAddrs(now, []ma.Multiaddr{addrTCP})

	// Decided by both servers: next check after RecheckMin, then doubling.
	jobs, _ := st.due(now, srv)
	if len(jobs) != 2 {
		t.Fatalf("%d probes for a new address with 2 servers, want 2", len(jobs))
	}
	for _, j := range jobs {
		st.result(now, j.key, j.server, Reached)
	}
	var waits []time.Duration
	for range 4 {
		jobs, wake := st.due(now, srv)
		if len(jobs) != 0 {
			t.Fatalf("probes %v before the re-check is due", jobs)
		}
		waits = append(waits, wake.Sub(now))
		now = wake
		jobs, _ = st.due(now, srv)
		if len(jobs) != 1 {
			t.Fatalf("%d probes for a re-check, want 1", len(jobs))
		}
		st.result(now, jobs[0].key, jobs[0].server, Reached)
	}
	if want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 4 * time.Minute}; !slices.Equal(waits, want) {
		t.Fatalf("re-check waits %v, want %v", waits, want)
	}

	// Nothing learned: retries after 1, 2, 4, 8, 8 s.
	st.setAddrs(now, []ma.Multiaddr{addrTCP, addrQUIC})
	waits = nil
	for range 5 {
		jobs, wake := st.due(now, srv)
		var quic []job
		for _, j := range jobs {
			if j.addr.Equal(addrQUIC) {
				quic = append(quic, j)
			}
		}
		if len(quic) == 0 {
			if wake.IsZero() {
				t.Fatal("nothing due and no wake-up")
			}
			waits = append(waits, wake.Sub(now))
			now = wake
			continue
		}
		for _, j := range quic {
			st.result(now, j.key, j.server, Inconclusive)
		}
		_, wake = st.due(now, srv)
		waits = append(waits, wake.Sub(now))
		now = wake
	}
	if want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second}; !slices.Equal(waits, want) {
		t.Fatalf("retry waits %v, want %v", waits, want)
	}

	// A new server: asked at once.
	st.serversChanged(now.Add(-time.Millisecond))
	jobs, _ = st.due(now.Add(-time.Millisecond), append(srv, servers(t, 3)[2]))
	if len(jobs) == 0 {
		t.Fatal("a new server was not asked about the undecided address")
	}
}

// TestEvidenceExpires: old answers stop counting, so a verdict rests on
// recent ones.
func TestEvidenceExpires(t *testing.T) {
	cfg := Config{EvidenceTTL: time.Hour, RecheckMin: 2 * time.Hour, RecheckMax: 2 * time.Hour}.withDefaults()
	st := newState(cfg)
	now := time.Unix(1e6, 0)
	srv := servers(t, 2)
	st.setAddrs(now, []ma.Multiaddr{addrTCP})
	jobs, _ := st.due(now, srv)
	for _, j := range jobs {
		st.result(now, j.key, j.server, Reached)
	}
	if r := st.table()[0]; r.Verdict != Public || len(r.Evidence) != 2 {
		t.Fatalf("row %+v", r)
	}
	st.due(now.Add(90*time.Minute), srv)
	if r := st.table()[0]; r.Verdict != Public || len(r.Evidence) != 0 {
		t.Fatalf("after the TTL: row %+v, want the verdict kept and no evidence", r)
	}
}

// TestForgottenAddress: results for an address no longer a candidate are
// dropped, and its probes count against MaxInflight and PerServer until
// they end (the servers still run them).
func TestForgottenAddress(t *testing.T) {
	st := newState(Config{MaxInflight: 2}.withDefaults())
	now := time.Unix(1e6, 0)
	srv := servers(t, 3)
	st.setAddrs(now, []ma.Multiaddr{addrTCP})
	jobs, _ := st.due(now, srv)
	if len(jobs) != 2 {
		t.Fatalf("%d probes, want MaxInflight 2", len(jobs))
	}
	st.setAddrs(now, []ma.Multiaddr{addrQUIC})
	if more, _ := st.due(now, srv); len(more) != 0 {
		t.Fatalf("probes %v while the forgotten address's two still run", more)
	}
	var started []job
	for _, j := range jobs {
		if ch := st.result(now, j.key, j.server, Reached); ch != nil {
			t.Fatalf("change %+v for a forgotten address", ch)
		}
		more, _ := st.due(now, srv)
		started = append(started, more...)
	}
	if len(started) != 2 || !started[0].addr.Equal(addrQUIC) || !started[1].addr.Equal(addrQUIC) {
		t.Fatalf("probes %v, want 2 for the new address as the old ones ended", started)
	}
	if st.inflight != 2 {
		t.Fatalf("%d probes counted in flight, want 2", st.inflight)
	}
}

// fakeProber answers from a function after a delay, with real goroutines.
type fakeProber struct {
	mu      sync.Mutex
	servers []peer.ID
	answer  func(peer.ID, ma.Multiaddr) (Outcome, error)
	delay   time.Duration
	calls   int
}

func (f *fakeProber) Servers() []peer.ID {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.servers)
}

func (f *fakeProber) Probe(ctx context.Context, server peer.ID, addr ma.Multiaddr) (Outcome, error) {
	f.mu.Lock()
	f.calls++
	delay := f.delay
	f.mu.Unlock()
	select {
	case <-time.After(delay):
	case <-ctx.Done():
		return Inconclusive, ctx.Err()
	}
	return f.answer(server, addr)
}

// TestManagerRun: the goroutine shell around the state: verdicts arrive
// through OnChange, servers that come late are used, probes that hang are
// abandoned when Run ends, and nothing leaks.
func TestManagerRun(t *testing.T) {
	leakcheck.Check(t)
	refused := errors.New("dial refused")
	fp := &fakeProber{delay: 20 * time.Millisecond, answer: func(_ peer.ID, a ma.Multiaddr) (Outcome, error) {
		switch {
		case a.Equal(addrTCP):
			return Reached, nil
		case a.Equal(addrQUIC):
			return Unreached, nil
		}
		return Inconclusive, refused
	}}
	changes := make(chan Change, 10)
	m := New(fp, Config{OnChange: func(c Change) { changes <- c }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		m.Run(ctx)
		close(done)
	}()
	m.SetAddrs([]ma.Multiaddr{addrTCP, addrQUIC, ma.StringCast("/ip4/203.0.113.5/udp/4002/quic-v1")})
	// No server yet: nothing happens until one comes.
	time.Sleep(50 * time.Millisecond)
	if len(changes) != 0 {
		t.Fatalf("a verdict without servers: %+v", <-changes)
	}
	fp.mu.Lock()
	fp.servers = servers(t, 3)
	fp.mu.Unlock()
	m.ServersChanged()
	got := map[string]Verdict{}
	timeout := time.After(5 * time.Second)
	for len(got) < 2 {
		select {
		case c := <-changes:
			got[c.Addr.String()] = c.To
		case <-timeout:
			t.Fatalf("verdicts so far %v", got)
		}
	}
	if got[addrTCP.String()] != Public || got[addrQUIC.String()] != Private {
		t.Fatalf("verdicts %v", got)
	}
	if pub := m.Addrs(Public); len(pub) != 1 || !pub[0].Equal(addrTCP) {
		t.Fatalf("public addresses %v", pub)
	}
	// Probes that hang do not hold Run up.
	fp.mu.Lock()
	fp.delay = time.Hour
	fp.mu.Unlock()
	m.Recheck()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

// TestNoReaskWhileWaiting: with one server counted and no other to ask,
// an undecided address waits for a new server instead of asking the same
// one again (its answer would be the same, and it spends the server's
// rate limit); a new server is asked at once; after a Recheck the counted
// server is asked again, since the network may have changed.
func TestNoReaskWhileWaiting(t *testing.T) {
	const latency = 100 * time.Millisecond
	s := newSim(t, Config{}, 1, always(Reached))
	s.st.setAddrs(s.now, []ma.Multiaddr{addrTCP})
	s.run(10*time.Minute, latency)
	if n := s.probes[addrTCP.String()]; n != 1 {
		t.Fatalf("%d probes in 10 minutes with one server, want 1", n)
	}
	if v := s.verdict(addrTCP); v != Unknown {
		t.Fatalf("verdict %v from one server", v)
	}
	// A second server comes: asked at once, and the address is public.
	s.servers = servers(t, 2)
	s.st.serversChanged(s.now)
	s.run(time.Second, latency)
	if n := s.probes[addrTCP.String()]; n != 2 || s.verdict(addrTCP) != Public {
		t.Fatalf("after a second server: %d probes, verdict %v; want 2, public", n, s.verdict(addrTCP))
	}
	// A Recheck asks both again.
	s.st.recheck(s.now)
	s.run(time.Second, latency)
	if n := s.probes[addrTCP.String()]; n != 4 {
		t.Fatalf("after a recheck: %d probes, want 4", n)
	}
}

// TestServerSparedWhenBusy: a server is never given more than PerServer
// probes at once, one that answers Busy is left alone for a cool-down that
// doubles, and one whose probe of an address failed is not asked about it
// again while the others still probe it. Before these rules a fast
// failing answer freed the slot for the same server at once: a tachyon
// client sent go-libp2p servers a request per round trip, spent their
// per-peer rate limit in seconds, and a verdict took 17 s instead of 1.
func TestServerSparedWhenBusy(t *testing.T) {
	addrs := []ma.Multiaddr{addrTCP, addrQUIC, ma.StringCast("/ip6/2001:db8::5/tcp/4001"), ma.StringCast("/ip6/2001:db8::5/udp/4001/quic-v1")}
	t.Run("per-server cap", func(t *testing.T) {
		s := newSim(t, Config{}, 3, always(Reached))
		s.st.setAddrs(s.now, addrs)
		s.run(time.Second, 100*time.Millisecond)
		if s.maxAtOnce != 2 {
			t.Errorf("a server ran %d probes at once, want at most (and at some point) 2", s.maxAtOnce)
		}
		for _, a := range addrs {
			if v := s.verdict(a); v != Public {
				t.Errorf("%s: %v after 1 s, want public", a, v)
			}
		}
	})
	t.Run("slow answers do not hold every slot", func(t *testing.T) {
		// The IPv4 addresses are private (dial-backs time out after 3 s),
		// the IPv6 ones public (answered in 300 ms): every verdict is in
		// once the slow probes end, not one slow round later.
		ip4 := func(a ma.Multiaddr) bool { _, err := a.ValueForProtocol(ma.P_IP4); return err == nil }
		s := newSim(t, Config{}, 3, func(_ peer.ID, a ma.Multiaddr) Outcome {
			if ip4(a) {
				return Unreached
			}
			return Reached
		})
		s.latencyOf = func(_ peer.ID, a ma.Multiaddr) time.Duration {
			if ip4(a) {
				return 3 * time.Second
			}
			return 300 * time.Millisecond
		}
		s.st.setAddrs(s.now, addrs)
		s.run(3050*time.Millisecond, 0)
		for _, a := range addrs {
			want := Public
			if ip4(a) {
				want = Private
			}
			if v := s.verdict(a); v != want {
				t.Errorf("%s: %v after 3.05 s, want %v", a, v, want)
			}
		}
		if s.maxAtOnce > 2 {
			t.Errorf("a server ran %d probes at once, want at most 2", s.maxAtOnce)
		}
	})
	t.Run("busy server", func(t *testing.T) {
		var s *sim
		s = newSim(t, Config{}, 3, func(p peer.ID, _ ma.Multiaddr) Outcome {
			if p == s.servers[0] {
				return Busy
			}
			return Reached
		})
		s.latencyOf = func(p peer.ID, _ ma.Multiaddr) time.Duration {
			if p == s.servers[0] {
				return 10 * time.Millisecond // rejected at once
			}
			return 300 * time.Millisecond
		}
		s.st.setAddrs(s.now, addrs)
		s.run(time.Minute, 0)
		// Asked at 0, then after cool-downs of 5, 10, 20 s: at most 4 times
		// in the minute (once per cool-down, for one address each time).
		if n := s.byServer[s.servers[0]]; n < 2 || n > 4 {
			t.Errorf("the busy server got %d requests in a minute, want 2-4", n)
		}
		for _, a := range addrs {
			if v := s.verdict(a); v != Public {
				t.Errorf("%s: %v, want public from the two other servers", a, v)
			}
		}
	})
	t.Run("failed on an address", func(t *testing.T) {
		var s *sim
		s = newSim(t, Config{}, 3, func(p peer.ID, _ ma.Multiaddr) Outcome {
			if p == s.servers[0] {
				return Inconclusive // e.g. refuses to dial it
			}
			return Unreached
		})
		s.latencyOf = func(p peer.ID, _ ma.Multiaddr) time.Duration {
			if p == s.servers[0] {
				return 10 * time.Millisecond
			}
			return 2 * time.Second // dial-back timeouts
		}
		s.st.setAddrs(s.now, addrs[:1])
		s.run(2500*time.Millisecond, 0)
		if n := s.byServer[s.servers[0]]; n != 1 {
			t.Errorf("the server that failed on the address was asked %d times while the others probed it, want 1", n)
		}
		if v := s.verdict(addrs[0]); v != Private {
			t.Errorf("verdict %v, want private from the two other servers", v)
		}
	})
}
