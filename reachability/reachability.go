// Package reachability decides, address by address, whether other peers
// can dial us: public, private or unknown. The evidence comes from AutoNAT
// probes (a server dials the address back, or fails to) that the package
// schedules through a Prober; what a verdict needs and when an address is
// checked again are the rules below.
//
// # Verdicts
//
// Each server counts once per address, with its latest conclusive answer
// (reached or unreached; a refusal, a rejection or an error says nothing
// about the address). With C = Config.Confirmations (default 2):
//
//   - public when at least C servers reached it and the reached outnumber
//     the unreached by at least C;
//   - private, the same the other way round;
//   - otherwise the verdict stays what it was (unknown for a new address).
//
// The last rule is what keeps a verdict from flapping: one dissenting
// server, or a lost dial-back, never flips it; only C more servers saying
// the opposite than the same do. A dissent makes the address undecided for
// scheduling, though: it is probed again at once, by other servers.
//
// # Schedule
//
//   - A new or undecided address is probed by up to Config.Parallel servers
//     at once, only by servers whose opinion is not counted yet (or not
//     since the last Recheck): one asked again would repeat itself. When
//     no server gives a conclusive answer, or none is left to ask, it is
//     retried after RetryMin, doubling up to RetryMax.
//   - A server runs at most Config.PerServer of our probes at once; the
//     slots go first to every undecided address's Confirmations probes,
//     then to extra ones, each to the least loaded server. One
//     that answers Busy (rate limits) is asked nothing for BusyMin,
//     doubling up to BusyMax while it stays busy; one whose probe of an
//     address taught nothing is not asked about that address again for
//     RetryMin, doubling up to RetryMax. Without these, a probe that fails
//     at once frees its slot for the same server, which is asked again
//     every round trip and spends its rate limit on nothing.
//   - A decided address is re-checked by one server after RecheckMin,
//     doubling up to RecheckMax while the answers agree.
//   - Recheck (a network change, a new observed address) makes every
//     address due at once, as if undecided; ServersChanged (a server came)
//     makes due the addresses waiting for a retry.
//
// Evidence older than Config.EvidenceTTL is forgotten, so a verdict rests
// on what the network looks like now.
package reachability

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/peer"
)

// Verdict is what is known about an address.
type Verdict int

const (
	Unknown Verdict = iota
	Public
	Private
)

func (v Verdict) String() string {
	switch v {
	case Public:
		return "public"
	case Private:
		return "private"
	}
	return "unknown"
}

// Outcome is what one probe said about one address.
type Outcome int

const (
	// Inconclusive: the server refused or rejected the request, failed,
	// or its answer could not be trusted; nothing is learned.
	Inconclusive Outcome = iota
	// Reached: the server dialed the address and our answer came back.
	Reached
	// Unreached: the server tried the address and its dial failed.
	Unreached
	// Busy: the server would not serve the request now (rate limits, too
	// many requests at once, an internal error). Nothing is learned about
	// the address, and the server is left alone for a while.
	Busy
)

func (o Outcome) String() string {
	switch o {
	case Reached:
		return "reached"
	case Unreached:
		return "unreached"
	case Busy:
		return "busy"
	}
	return "inconclusive"
}

// Result is one server's conclusive answer about an address.
type Result struct {
	Server  peer.ID
	Outcome Outcome
	At      time.Time
}

// AddrState is the table row of one address.
type AddrState struct {
	Addr    ma.Multiaddr
	Verdict Verdict
	// Since is when the verdict was reached, or when the address was added
	// while it is unknown.
	Since time.Time
	// Evidence holds each server's latest conclusive answer, oldest first.
	Evidence []Result
	// NextCheck is when the address is probed next; zero while probes are
	// in flight.
	NextCheck time.Time
	// Probing counts the probes in flight.
	Probing int
}

// Change is a verdict that changed.
type Change struct {
	Addr     ma.Multiaddr
	From, To Verdict
	// Evidence is what decided it.
	Evidence []Result
}

// Config tunes the decisions and the schedule; zero fields take defaults.
type Config struct {
	// Confirmations is C in the verdict rules (default 2).
	Confirmations int
	// Parallel bounds the probes of one undecided address at once
	// (default 3).
	Parallel int
	// MaxInflight bounds all probes at once (default 8).
	MaxInflight int
	// PerServer bounds the probes one server runs for us at once (default
	// 2: AutoNAT v2 servers, go-libp2p's and ours, reject a peer's third
	// concurrent request).
	PerServer int
	// BusyMin and BusyMax bound how long a server that answered Busy is
	// not asked anything (defaults 5 s and 1 min, doubling while it stays
	// busy): a rate-limited server asked again at once only spends the
	// limit further.
	BusyMin, BusyMax time.Duration
	// RetryMin and RetryMax bound the wait after probes that taught
	// nothing (defaults 2 s and 1 min).
	RetryMin, RetryMax time.Duration
	// RecheckMin and RecheckMax bound the wait before re-checking a
	// decided address (defaults 5 min and 1 h).
	RecheckMin, RecheckMax time.Duration
	// EvidenceTTL is how long an answer counts (default 3 h).
	EvidenceTTL time.Duration
	// ProbeTimeout bounds one probe (default 30 s: a request, paid dial
	// data and a dial-back).
	ProbeTimeout time.Duration
	// OnChange, if set, is called for every verdict change, from the
	// goroutine running Run, in order.
	OnChange func(Change)
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log, if set, gets a debug line for every probe that failed.
	Log *slog.Logger
	// Tracer, if set, is told about verdict changes and counts.
	Tracer Tracer
}

// Tracer is told what the Manager decides, from the goroutine that
// changed it; it must not block. Changed comes with every verdict change
// (as OnChange does); Addrs with the number of candidates of each verdict
// whenever it may have changed.
type Tracer interface {
	Changed(from, to Verdict)
	Addrs(public, private, unknown int)
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.Confirmations <= 0 {
		c.Confirmations = 2
	}
	if c.Parallel <= 0 {
		c.Parallel = 3
	}
	if c.MaxInflight <= 0 {
		c.MaxInflight = 8
	}
	if c.PerServer <= 0 {
		c.PerServer = 2
	}
	def(&c.BusyMin, 5*time.Second)
	def(&c.BusyMax, time.Minute)
	def(&c.RetryMin, 2*time.Second)
	def(&c.RetryMax, time.Minute)
	def(&c.RecheckMin, 5*time.Minute)
	def(&c.RecheckMax, time.Hour)
	def(&c.EvidenceTTL, 3*time.Hour)
	def(&c.ProbeTimeout, 30*time.Second)
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Prober runs probes for the Manager.
type Prober interface {
	// Servers lists the peers that can be asked now (connected, speaking
	// the AutoNAT protocol).
	Servers() []peer.ID
	// Probe asks server to dial addr back. Errors count as Inconclusive,
	// or Busy when the outcome returned with them is Busy.
	Probe(ctx context.Context, server peer.ID, addr ma.Multiaddr) (Outcome, error)
}

// entry is the state of one address.
type entry struct {
	addr     ma.Multiaddr
	verdict  Verdict
	since    time.Time
	evidence []Result // one per server, oldest first
	next     time.Time
	backoff  time.Duration // the wait that was last scheduled
	urgent   bool          // probe like an undecided address (a dissent, a recheck)
	inflight map[peer.ID]bool
	asked    map[peer.ID]time.Time
	// failed holds the servers whose last probe of this address taught
	// nothing: they are not asked about it again before the cool-down
	// (RetryMin, doubling up to RetryMax), or a server that refuses the
	// address would be asked once per round trip while others probe it.
	failed  map[peer.ID]cooldown
	changed bool // evidence since the last schedule
	// epoch counts Rechecks; heard is the epoch of each server's latest
	// conclusive answer. An answer from an earlier epoch may be out of
	// date (the network changed), so its server is asked again.
	epoch int
	heard map[peer.ID]int
}

// job is one probe to run.
type job struct {
	addr   ma.Multiaddr
	key    string
	server peer.ID
}

// state is the decision logic without goroutines or clocks: the Manager
// feeds it the time.
type state struct {
	cfg      Config
	addrs    map[string]*entry
	inflight int
	// perServer counts the probes in flight at each server.
	perServer map[peer.ID]int
	// busy holds the servers that answered Busy: they are not asked
	// anything until the cool-down ends.
	busy map[peer.ID]cooldown
}

// cooldown is a wait after an answer that taught nothing.
type cooldown struct {
	until time.Time
	wait  time.Duration // the wait last set, doubled by the next one
}

func (c cooldown) next(now time.Time, lo, hi time.Duration) cooldown {
	w := grow(c.wait, lo, hi)
	return cooldown{until: now.Add(w), wait: w}
}

func newState(cfg Config) *state {
	return &state{cfg: cfg, addrs: map[string]*entry{}, perServer: map[peer.ID]int{}, busy: map[peer.ID]cooldown{}}
}

// setAddrs makes addrs the candidates: new ones start unknown and due,
// missing ones are forgotten.
func (s *state) setAddrs(now time.Time, addrs []ma.Multiaddr) {
	keep := make(map[string]bool, len(addrs))
	for _, a := range addrs {
		k := string(a.Bytes())
		keep[k] = true
		if s.addrs[k] == nil {
			s.addrs[k] = &entry{addr: a, since: now, next: now, inflight: map[peer.ID]bool{}, asked: map[peer.ID]time.Time{},
				failed: map[peer.ID]cooldown{}, heard: map[peer.ID]int{}}
		}
	}
	for k := range s.addrs {
		if !keep[k] {
			// Its probes in flight stay counted until they end: the
			// servers still run them, and a new probe in their slot
			// would be rejected as one too many.
			delete(s.addrs, k)
		}
	}
}

// release ends the accounting of one probe at srv.
func (s *state) release(srv peer.ID) {
	s.inflight--
	if s.perServer[srv]--; s.perServer[srv] <= 0 {
		delete(s.perServer, srv)
	}
}

// recheck makes every address due now, probed as if undecided.
func (s *state) recheck(now time.Time) {
	for _, e := range s.addrs {
		e.urgent = true
		e.backoff = 0
		e.epoch++
		if len(e.inflight) == 0 {
			e.next = now
		}
	}
}

// serversChanged makes due the addresses that wait for a retry: a new
// server may answer where the others could not.
func (s *state) serversChanged(now time.Time) {
	for _, e := range s.addrs {
		if s.undecided(e) && len(e.inflight) == 0 && e.next.After(now) {
			e.next = now
		}
	}
}

func (s *state) undecided(e *entry) bool { return e.verdict == Unknown || e.urgent }

// due returns the probes to start now and when to look again (zero: only
// when something happens).
func (s *state) due(now time.Time, servers []peer.ID) (jobs []job, wake time.Time) {
	for p, c := range s.busy {
		// Forgotten once it could have doubled no further anyway.
		if now.Sub(c.until) > s.cfg.BusyMax {
			delete(s.busy, p)
		}
	}
	keys := make([]string, 0, len(s.addrs))
	for k := range s.addrs {
		keys = append(keys, k)
	}
	// Undecided addresses first, those with the fewest answers first,
	// then by address.
	sort.Slice(keys, func(i, j int) bool {
		ei, ej := s.addrs[keys[i]], s.addrs[keys[j]]
		if ui, uj := s.undecided(ei), s.undecided(ej); ui != uj {
			return ui
		}
		if ni, nj := len(ei.evidence), len(ej.evidence); ni != nj {
			return ni < nj
		}
		return keys[i] < keys[j]
	})
	type cand struct {
		k         string
		e         *entry
		freshOnly bool
		started   int
		full      bool
		free      time.Time
	}
	var ds []*cand
	for _, k := range keys {
		e := s.addrs[k]
		s.expire(now, e)
		if !e.next.IsZero() && e.next.After(now) {
			if wake.IsZero() || e.next.Before(wake) {
				wake = e.next
			}
			continue
		}
		// An undecided address is asked only of servers whose answer is
		// not counted (since the last Recheck): asking one again would
		// repeat what it said, spend its rate limit and delay the servers
		// that can still tell something. Decided ones are re-checked on
		// the timer by whichever server was asked longest ago.
		ds = append(ds, &cand{k: k, e: e, freshOnly: len(e.inflight) > 0 || s.undecided(e)})
	}
	// Two passes: first every undecided address gets the Confirmations
	// probes a verdict needs, then the rest up to Parallel. With servers
	// capped at PerServer, one address's third probe would otherwise hold
	// the slot another address needs for its first.
	for pass := range 2 {
		for _, d := range ds {
			e := d.e
			want := 1
			if s.undecided(e) {
				want = s.cfg.Parallel
				if pass == 0 {
					want = min(want, s.cfg.Confirmations)
				}
			}
			picked, full, free := s.pick(now, e, servers, want-len(e.inflight), d.freshOnly)
			d.full = d.full || full
			if !free.IsZero() && (d.free.IsZero() || free.Before(d.free)) {
				d.free = free
			}
			for _, srv := range picked {
				if s.inflight >= s.cfg.MaxInflight {
					d.full = true
					break
				}
				e.inflight[srv] = true
				e.asked[srv] = now
				s.inflight++
				s.perServer[srv]++
				d.started++
				jobs = append(jobs, job{addr: e.addr, key: d.k, server: srv})
			}
		}
	}
	for _, d := range ds {
		e := d.e
		switch {
		case len(e.inflight) > 0:
			e.next = time.Time{} // results reschedule
		case d.started == 0 && len(servers) == 0:
			e.next = time.Time{} // serversChanged reschedules
		case d.started == 0 && d.full:
			// A server that could answer is busy with our other probes:
			// the next result frees it.
			e.next = time.Time{}
		case d.started == 0 && !d.free.IsZero():
			// A server that could answer is cooling down: ask it then.
			e.next = d.free
			if wake.IsZero() || e.next.Before(wake) {
				wake = e.next
			}
		case d.started == 0:
			// Every server is busy with it, has answered already, or the
			// probe budget is spent: wait for a new server
			// (ServersChanged), evidence to expire or the budget.
			e.backoff = grow(e.backoff, s.cfg.RetryMin, s.cfg.RetryMax)
			e.next = now.Add(e.backoff)
			if wake.IsZero() || e.next.Before(wake) {
				wake = e.next
			}
		}
	}
	return jobs, wake
}

// pick chooses up to n servers for e: not already probing it, not cooling
// down (busy, or failed on e), those whose answer is not counted first,
// then the least loaded, then the least recently asked; with freshOnly,
// only those not counted.
// full says a server was left out only because it runs PerServer probes
// already; free is the earliest end of a cool-down that left one out.
func (s *state) pick(now time.Time, e *entry, servers []peer.ID, n int, freshOnly bool) (picked []peer.ID, full bool, free time.Time) {
	if n <= 0 {
		return nil, false, time.Time{}
	}
	counted := map[peer.ID]bool{}
	for _, r := range e.evidence {
		counted[r.Server] = e.heard[r.Server] == e.epoch
	}
	coolUntil := func(p peer.ID) time.Time {
		u := s.busy[p].until
		if f := e.failed[p].until; f.After(u) {
			u = f
		}
		return u
	}
	var cands []peer.ID
	for _, p := range servers {
		if e.inflight[p] || slices.Contains(cands, p) || (freshOnly && counted[p]) {
			continue
		}
		if u := coolUntil(p); u.After(now) {
			if free.IsZero() || u.Before(free) {
				free = u
			}
			continue
		}
		if s.perServer[p] >= s.cfg.PerServer {
			full = true
			continue
		}
		cands = append(cands, p)
	}
	sort.SliceStable(cands, func(i, j int) bool {
		ci, cj := counted[cands[i]], counted[cands[j]]
		if ci != cj {
			return !ci
		}
		// The least loaded server, so that every address finds one.
		if li, lj := s.perServer[cands[i]], s.perServer[cands[j]]; li != lj {
			return li < lj
		}
		return e.asked[cands[i]].Before(e.asked[cands[j]])
	})
	if len(cands) > n {
		cands = cands[:n]
	}
	return cands, full, free
}

// expire forgets evidence older than EvidenceTTL.
func (s *state) expire(now time.Time, e *entry) {
	e.evidence = slices.DeleteFunc(e.evidence, func(r Result) bool { return now.Sub(r.At) > s.cfg.EvidenceTTL })
}

// result records a probe's outcome and returns the verdict change, if any.
func (s *state) result(now time.Time, key string, server peer.ID, o Outcome) *Change {
	e := s.addrs[key]
	if e == nil || !e.inflight[server] {
		s.release(server) // forgotten meanwhile
		return nil
	}
	delete(e.inflight, server)
	s.release(server)
	s.expire(now, e)
	switch o {
	case Busy:
		s.busy[server] = s.busy[server].next(now, s.cfg.BusyMin, s.cfg.BusyMax)
	case Inconclusive:
		e.failed[server] = e.failed[server].next(now, s.cfg.RetryMin, s.cfg.RetryMax)
	default:
		delete(s.busy, server)
		delete(e.failed, server)
	}
	if o == Inconclusive || o == Busy {
		if len(e.inflight) == 0 {
			s.schedule(now, e, false)
		}
		return nil
	}
	// News: a server not counted yet (or not since the last Recheck), or
	// one that changed its mind.
	news := e.heard[server] != e.epoch ||
		!slices.ContainsFunc(e.evidence, func(r Result) bool { return r.Server == server && r.Outcome == o })
	e.heard[server] = e.epoch
	e.evidence = slices.DeleteFunc(e.evidence, func(r Result) bool { return r.Server == server })
	e.evidence = append(e.evidence, Result{Server: server, Outcome: o, At: now})
	e.changed = e.changed || news

	var ch *Change
	if v := s.decide(e); v != e.verdict {
		ch = &Change{Addr: e.addr, From: e.verdict, To: v, Evidence: slices.Clone(e.evidence)}
		e.verdict, e.since, e.backoff = v, now, 0
	}
	agree := (o == Reached && e.verdict == Public) || (o == Unreached && e.verdict == Private)
	settled := e.verdict != Unknown && s.margin(e) >= s.cfg.Confirmations
	switch {
	case agree && settled:
		e.urgent = false
	case e.verdict != Unknown && news:
		// A new dissent, or not enough margin yet: ask others at once.
		// A dissent heard before is outvoted already.
		e.urgent = true
	}
	if len(e.inflight) == 0 {
		s.schedule(now, e, e.changed)
	}
	return ch
}

// margin is how far the counted answers back the current verdict.
func (s *state) margin(e *entry) int {
	pub, priv := s.counts(e)
	switch e.verdict {
	case Public:
		return pub - priv
	case Private:
		return priv - pub
	}
	return 0
}

func (s *state) counts(e *entry) (pub, priv int) {
	for _, r := range e.evidence {
		switch r.Outcome {
		case Reached:
			pub++
		case Unreached:
			priv++
		}
	}
	return pub, priv
}

// decide applies the verdict rules.
func (s *state) decide(e *entry) Verdict {
	c := s.cfg.Confirmations
	pub, priv := s.counts(e)
	switch {
	case pub >= c && pub-priv >= c:
		return Public
	case priv >= c && priv-pub >= c:
		return Private
	}
	return e.verdict
}

// schedule sets when e is probed next, once its probes are done. learned
// says whether the round brought news (a server not counted yet, or one
// that changed its mind).
func (s *state) schedule(now time.Time, e *entry, learned bool) {
	switch {
	case s.undecided(e) && learned:
		// Other servers may settle it: go on at once.
		e.next, e.backoff = now, 0
	case e.verdict == Unknown:
		e.backoff = grow(e.backoff, s.cfg.RetryMin, s.cfg.RetryMax)
		e.next = now.Add(e.backoff)
	default:
		// Decided, and the last round brought no news: a dissent that
		// stays is outvoted, not re-argued every round trip. Check less
		// and less often.
		if e.urgent {
			e.urgent, e.backoff = false, 0
		}
		e.backoff = grow(e.backoff, s.cfg.RecheckMin, s.cfg.RecheckMax)
		e.next = now.Add(e.backoff)
	}
	e.changed = false
}

func grow(d, lo, hi time.Duration) time.Duration {
	if d < lo {
		return lo
	}
	return min(2*d, hi)
}

// verdicts is the number of candidates of each verdict.
func (s *state) verdicts() (public, private, unknown int) {
	for _, e := range s.addrs {
		switch e.verdict {
		case Public:
			public++
		case Private:
			private++
		default:
			unknown++
		}
	}
	return public, private, unknown
}

func (s *state) table() []AddrState {
	out := make([]AddrState, 0, len(s.addrs))
	for _, e := range s.addrs {
		out = append(out, AddrState{
			Addr: e.addr, Verdict: e.verdict, Since: e.since, Evidence: slices.Clone(e.evidence),
			NextCheck: e.next, Probing: len(e.inflight),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr.String() < out[j].Addr.String() })
	return out
}

// Manager runs the schedule: Run starts the probes as they fall due.
type Manager struct {
	cfg    Config
	prober Prober

	mu    sync.Mutex
	st    *state
	poke  chan struct{}
	wg    sync.WaitGroup
	doneC chan probeDone
}

type probeDone struct {
	j   job
	o   Outcome
	err error
}

// New returns a Manager that probes through p once Run runs.
func New(p Prober, cfg Config) *Manager {
	cfg = cfg.withDefaults()
	return &Manager{cfg: cfg, prober: p, st: newState(cfg), poke: make(chan struct{}, 1), doneC: make(chan probeDone)}
}

func (m *Manager) wake() {
	select {
	case m.poke <- struct{}{}:
	default:
	}
}

// SetAddrs replaces the candidate addresses: new ones are probed at once,
// missing ones forgotten.
func (m *Manager) SetAddrs(addrs []ma.Multiaddr) {
	m.mu.Lock()
	m.st.setAddrs(m.cfg.Now(), addrs)
	pub, priv, unk := m.st.verdicts()
	m.mu.Unlock()
	if t := m.cfg.Tracer; t != nil {
		t.Addrs(pub, priv, unk)
	}
	m.wake()
}

// Recheck probes every address again at once (the network changed).
func (m *Manager) Recheck() {
	m.mu.Lock()
	m.st.recheck(m.cfg.Now())
	m.mu.Unlock()
	m.wake()
}

// ServersChanged says the Prober's server list changed.
func (m *Manager) ServersChanged() {
	m.mu.Lock()
	m.st.serversChanged(m.cfg.Now())
	m.mu.Unlock()
	m.wake()
}

// Table returns every address's state, sorted by address.
func (m *Manager) Table() []AddrState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.table()
}

// Addrs returns the addresses with verdict v.
func (m *Manager) Addrs(v Verdict) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, r := range m.Table() {
		if r.Verdict == v {
			out = append(out, r.Addr)
		}
	}
	return out
}

// Run probes until ctx ends, then waits for the probes in flight. Call
// it once.
func (m *Manager) Run(ctx context.Context) {
	pctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		// Drain the probes still running so none blocks on doneC.
		go func() {
			m.wg.Wait()
			close(m.doneC)
		}()
		for range m.doneC {
		}
	}()
	for {
		// Servers is asked outside the lock: the host answers from state
		// whose own locks may be held by someone calling into us.
		servers := m.prober.Servers()
		m.mu.Lock()
		jobs, wake := m.st.due(m.cfg.Now(), servers)
		m.mu.Unlock()
		for _, j := range jobs {
			m.wg.Add(1)
			go m.probe(pctx, j)
		}
		var timer *time.Timer
		var timerC <-chan time.Time
		if !wake.IsZero() {
			timer = time.NewTimer(max(wake.Sub(m.cfg.Now()), 0))
			timerC = timer.C
		}
		select {
		case <-ctx.Done():
		case <-m.poke:
		case <-timerC:
		case d := <-m.doneC:
			if d.err != nil && m.cfg.Log != nil {
				m.cfg.Log.Debug("reachability probe taught nothing", "err", d.err)
			}
			m.mu.Lock()
			ch := m.st.result(m.cfg.Now(), d.j.key, d.j.server, d.o)
			var pub, priv, unk int
			if ch != nil {
				pub, priv, unk = m.st.verdicts()
			}
			m.mu.Unlock()
			if t := m.cfg.Tracer; t != nil && ch != nil {
				t.Changed(ch.From, ch.To)
				t.Addrs(pub, priv, unk)
			}
			if ch != nil && m.cfg.OnChange != nil {
				m.cfg.OnChange(*ch)
			}
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

func (m *Manager) probe(ctx context.Context, j job) {
	defer m.wg.Done()
	pctx, cancel := context.WithTimeout(ctx, m.cfg.ProbeTimeout)
	o, err := m.prober.Probe(pctx, j.server, j.addr)
	cancel()
	if err != nil {
		if o != Busy {
			o = Inconclusive
		}
		err = fmt.Errorf("reachability: probing %s with %s: %w", j.addr, j.server, err)
	}
	select {
	case m.doneC <- probeDone{j: j, o: o, err: err}:
	case <-ctx.Done():
	}
}
