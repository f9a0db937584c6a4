package swarm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/dialrank"
	"github.com/tachyon-p2p/tachyon/resolve"
)

// Resolver expands the DNS names of an address (/dns, /dns4, /dns6,
// /dnsaddr) into addresses without any; *resolve.Resolver implements it.
// The swarm asks with /p2p/<peer> appended, so that dnsaddr records of other
// peers are left out, and expects results ending in that /p2p/<peer> (or in
// no /p2p at all); results ending in another peer's are dropped.
type Resolver interface {
	Resolve(ctx context.Context, a ma.Multiaddr) ([]ma.Multiaddr, error)
}

// defaultResolver uses the system's DNS settings.
var defaultResolver = &resolve.Resolver{}

// errNoDialable is recorded for a name that resolved only to addresses no
// transport dials.
var errNoDialable = errors.New("resolved to no dialable address")

// maxResolutions bounds the names one dial resolves; errTooManyNames is
// recorded for the others.
const maxResolutions = 32

var errTooManyNames = errors.New("not resolved: too many names for one dial")

// DialError says why a dial to a peer failed: as a whole (Cause), and for
// every address, tried or not (Report, most useful first: a peer ID
// mismatch or a refusal before a handshake error before silence before an
// address never dialed).
type DialError struct {
	Peer   peer.ID
	Cause  error           // set when the dial failed as a whole (timeout, no address, gater)
	Errors []AddrError     // one per address tried, or resolved in vain, with its error
	Report dialrank.Report // every address: tried, not reached in time, or skipped and why
	Trace  *dialrank.Trace // the whole dial, when it got as far as ranking
}

// AddrError is the failure of one address.
type AddrError struct {
	Addr ma.Multiaddr
	Err  error
}

// maxReportLines bounds the addresses Error lists.
const maxReportLines = 12

// Error is one line when one address was tried, else a line per address.
func (e *DialError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "swarm: dialing %s", e.Peer)
	if e.Cause != nil {
		fmt.Fprintf(&b, ": %v", e.Cause)
	}
	lines := len(e.Report)
	for _, ae := range e.Errors {
		if !e.reported(ae.Addr) {
			lines++
		}
	}
	if lines == 1 && len(e.Errors) == 1 {
		fmt.Fprintf(&b, ": %s: %v", e.Errors[0].Addr, e.Errors[0].Err)
		return b.String()
	}
	if lines == 0 {
		return b.String()
	}
	tried := 0
	for _, f := range e.Report {
		if f.Outcome != dialrank.NotStarted {
			tried++
		}
	}
	fmt.Fprintf(&b, " (%d addresses, %d tried):", lines, tried)
	n := 0
	line := func(s string) bool {
		if n == maxReportLines {
			fmt.Fprintf(&b, "\n  and %d more", lines-n)
			return false
		}
		n++
		b.WriteString("\n  ")
		b.WriteString(s)
		return true
	}
	for _, f := range e.Report {
		if !line(f.String()) {
			return b.String()
		}
	}
	for _, ae := range e.Errors {
		if !e.reported(ae.Addr) && !line(fmt.Sprintf("%s: %v", ae.Addr, ae.Err)) {
			break
		}
	}
	return b.String()
}

// reported says whether the report has a line for a.
func (e *DialError) reported(a ma.Multiaddr) bool {
	for _, f := range e.Report {
		if f.Dial.Addr.Equal(a) {
			return true
		}
	}
	return false
}

// Unwrap exposes the cause and every address error to errors.Is and As.
func (e *DialError) Unwrap() []error {
	errs := make([]error, 0, len(e.Errors)+1)
	if e.Cause != nil {
		errs = append(errs, e.Cause)
	}
	for _, ae := range e.Errors {
		errs = append(errs, ae.Err)
	}
	return errs
}

// result is the outcome of dialing one address.
type result struct {
	addr ma.Multiaddr
	idx  int // the attempt's index in the dial's trace
	tc   network.TransportConn
	err  error
}

// dial is one in-flight dial to a peer; concurrent DialPeer calls share it.
type dial struct {
	done chan struct{}
	// more tells the running dial that another caller joined it: the
	// peerstore may hold addresses it has not seen (Connect adds the
	// caller's before dialing).
	more chan struct{}
	conn *Conn
	err  error
}

// DialPeer returns a connection to p, reusing an open one or dialing the
// addresses in the peerstore, those with DNS names (/dns, /dns4, /dns6,
// /dnsaddr) once Config.Resolver has resolved them. Concurrent calls for one
// peer share one dial.
//
// Limited (relayed) connections are returned only when ctx allows them
// (network.WithAllowLimitedConn). Without that, a peer reachable only over
// a limited connection gets a dial of its direct addresses, and the error,
// if that fails, matches network.ErrLimitedConn. network.WithForceDirectDial
// dials direct addresses even when allowed a limited connection, and
// network.WithNoDial only returns an existing connection.
func (s *Swarm) DialPeer(ctx context.Context, p peer.ID) (*Conn, error) {
	if p == s.local {
		return nil, ErrDialSelf
	}
	allow := network.AllowLimitedConn(ctx)
	direct := network.ForceDirectDial(ctx)
	c, hasLimited := s.bestConn(p, allow && !direct)
	if c != nil {
		return c, nil
	}
	if network.NoDial(ctx) {
		return nil, fmt.Errorf("swarm: %s: %w", p, ErrNoConn)
	}
	if hasLimited {
		direct = true // another relayed connection would not help
	}
	if err := s.gatePeerDial(p); err != nil {
		return nil, err
	}
	key := dialKey{p, direct}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	d := s.dials[key]
	if d == nil {
		d = &dial{done: make(chan struct{}), more: make(chan struct{}, 1)}
		s.dials[key] = d
		s.wg.Add(1)
		go s.runDial(key, d)
	} else {
		select {
		case d.more <- struct{}{}:
		default: // a signal is pending already
		}
	}
	s.mu.Unlock()
	select {
	case <-d.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("swarm: dialing %s: %w", p, ctx.Err())
	}
	if d.err != nil {
		if hasLimited && !allow {
			return nil, fmt.Errorf("%w: %w", network.ErrLimitedConn, d.err)
		}
		return nil, d.err
	}
	if d.conn.Limited() && !allow {
		return nil, fmt.Errorf("swarm: dialing %s: %w", p, network.ErrLimitedConn)
	}
	return d.conn, nil
}

// runDial dials p on its own context, so a caller giving up does not abort a
// dial others wait for; the swarm's Close does.
func (s *Swarm) runDial(key dialKey, d *dial) {
	defer s.wg.Done()
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.DialTimeout)
	defer cancel()
	d.conn, d.err = s.dialAddrs(ctx, key.p, key.direct, d.more)
	s.mu.Lock()
	delete(s.dials, key)
	s.mu.Unlock()
	close(d.done)
}

// IsRelayAddr reports whether a is a relayed address (has /p2p-circuit).
func IsRelayAddr(a ma.Multiaddr) bool {
	for _, c := range a {
		if c.Code() == ma.P_CIRCUIT {
			return true
		}
	}
	return false
}

// resolution is the outcome of resolving one address of a peer.
type resolution struct {
	addr  ma.Multiaddr
	addrs []ma.Multiaddr
	err   error
}

// dialAddrs dials the peer's addresses as dialrank plans it: ranked, in
// waves paced by the RTTs the node measured, black-holed classes skipped
// but for probes, addresses in back-off last, relays last and not at all
// when direct. When every attempt started so far has failed, the next one
// starts at once and the rest of the schedule moves up by the time saved.
// The first connection wins; later ones are closed.
//
// Addresses with DNS names are resolved meanwhile, all at once and within
// ctx; what they resolve to is ranked with the addresses not dialed yet,
// and the new schedule starts when the next dial would have. So are
// addresses that reach the peerstore while the dial runs (a signal on
// more: another caller joined, with addresses of its own).
func (s *Swarm) dialAddrs(ctx context.Context, p peer.ID, direct bool, more <-chan struct{}) (*Conn, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// seen are the peerstore's addresses taken so far, names included.
	seen := make(map[string]bool)
	split := func() (addrs, names []ma.Multiaddr) {
		for _, a := range s.ps.Addrs(p) {
			k := string(a.Bytes())
			if seen[k] {
				continue
			}
			seen[k] = true
			switch {
			case IsRelayAddr(a):
				if !direct {
					addrs = append(addrs, a)
				}
			case resolve.NeedsResolve(a):
				names = append(names, a)
			default:
				addrs = append(addrs, a)
			}
		}
		return addrs, names
	}
	addrs, names := split()
	if len(addrs) == 0 && len(names) == 0 {
		err := &DialError{Peer: p, Cause: ErrNoAddresses}
		if t := s.cfg.Tracer; t != nil {
			t.DialEnded(DialEnd{Peer: p, Start: time.Now(), Err: err})
		}
		return nil, err
	}
	run := &dialRun{s: s, p: p, known: make(map[string]bool)}
	run.plan(time.Now(), addrs, 0)
	derr := &DialError{Peer: p}

	// The resolutions are the swarm's goroutines (Close waits for them) but
	// not this dial's: a winning dial does not wait for them, it cancels
	// them, and they leave their result in the buffer, which holds one
	// per name the dial may ever resolve. It is made with the first name:
	// most dials have none, and until then a nil channel never fires.
	var resolved chan resolution
	resolving, resolutions := 0, 0
	resolveAll := func(names []ma.Multiaddr) {
		if len(names) > 0 && resolved == nil {
			resolved = make(chan resolution, maxResolutions)
		}
		for _, a := range names {
			if resolutions == maxResolutions {
				s.cfg.Log.Debug("too many names to resolve", "peer", p, "addr", a)
				derr.Errors = append(derr.Errors, AddrError{a, errTooManyNames})
				continue
			}
			resolving++
			resolutions++
			s.wg.Add(1)
			ch := resolved
			go func() {
				defer s.wg.Done()
				rs, err := s.resolveAddr(ctx, a, p)
				ch <- resolution{a, rs, err}
			}()
		}
	}
	resolveAll(names)
	results := make(chan result, len(addrs)+8)
	fail := func(cause error) (*Conn, error) {
		derr.Cause = cause
		run.finish(cause)
		s.drain(results, run.pending)
		derr.Report = dialrank.DialErrorReport(run.tr)
		derr.Trace = run.tr
		return nil, derr
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if len(run.queue) == 0 && run.pending == 0 && resolving == 0 {
			var cause error
			if len(run.tr.Attempts) == 0 {
				cause = ErrNoAddresses
			}
			return fail(cause)
		}
		var due <-chan time.Time
		if len(run.queue) > 0 {
			timer.Reset(time.Until(run.queue[0].at))
			due = timer.C
		}
		select {
		case <-due:
			now := time.Now()
			for len(run.queue) > 0 && !run.queue[0].at.After(now) {
				d := run.queue[0].d
				run.queue = run.queue[1:]
				run.start(ctx, d, now, results)
			}
		case <-more:
			addrs, names := split()
			resolveAll(names)
			if len(addrs) > 0 {
				run.replan(time.Now(), addrs)
			}
		case r := <-resolved:
			resolving--
			if r.err != nil {
				s.cfg.Log.Debug("resolving failed", "peer", p, "addr", r.addr, "err", r.err)
				derr.Errors = append(derr.Errors, AddrError{r.addr, r.err})
				continue
			}
			if !slices.ContainsFunc(r.addrs, func(a ma.Multiaddr) bool { return s.canDial(p, a) }) {
				derr.Errors = append(derr.Errors, AddrError{r.addr, errNoDialable})
				continue
			}
			run.replan(time.Now(), r.addrs)
		case r := <-results:
			run.pending--
			now := time.Now()
			if r.err == nil && r.tc.RemotePeer() != p {
				r.tc.Close()
				r.err = &network.PeerIDMismatchError{Expected: p, Actual: r.tc.RemotePeer()}
			}
			if r.err == nil {
				c, err := s.addConn(r.tc)
				if err != nil {
					r.tc.Close()
					run.tr.Finished(r.idx, now, err)
					derr.Errors = append(derr.Errors, AddrError{r.addr, err})
					cancel()
					return fail(err)
				}
				run.tr.Finished(r.idx, now, nil)
				cancel()
				run.finish(nil)
				s.drain(results, run.pending)
				return c, nil
			}
			run.tr.Finished(r.idx, now, r.err)
			s.cfg.Log.Debug("dial failed", "peer", p, "addr", r.addr, "err", r.err)
			derr.Errors = append(derr.Errors, AddrError{r.addr, r.err})
			if run.pending == 0 {
				run.moveUp(now)
			}
		case <-ctx.Done():
			return fail(ctx.Err())
		}
	}
}

// dialRun is the state of one dialAddrs: its trace, and the planned dials
// not started yet.
type dialRun struct {
	s       *Swarm
	p       peer.ID
	tr      *dialrank.Trace
	queue   []queuedDial    // by at
	started []dialrank.Dial // in the order started
	known   map[string]bool // addresses ranked or skipped already
	pending int             // attempts running
}

type queuedDial struct {
	d  dialrank.Dial
	at time.Time
}

// knowledge is what the swarm knows for ranking addrs of p now.
func (s *Swarm) knowledge(p peer.ID, now time.Time, addrs []ma.Multiaddr) dialrank.Knowledge {
	return dialrank.Knowledge{
		Peer:           p,
		Now:            now,
		RTT:            s.cfg.RTTs,
		BlackHoles:     s.cfg.BlackHoles.Admit(addrs),
		Backoff:        func(a ma.Multiaddr) time.Time { return s.backoffs.until(p, a) },
		DirectConn:     s.DirectConn(p) != nil,
		LocalPrefixes:  s.prefixes.get(now),
		CanDial:        func(a ma.Multiaddr) bool { return s.canDial(p, a) },
		NoDelay:        s.cfg.NoDialDelay,
		ListenFamilies: s.listenFamilies(),
	}
}

// listenFamilies says which IP families we listen in.
func (s *Swarm) listenFamilies() (f [7]bool) {
	for _, a := range s.ListenAddrs() {
		if len(a) > 0 {
			switch a[0].Code() {
			case ma.P_IP4:
				f[4] = true
			case ma.P_IP6:
				f[6] = true
			}
		}
	}
	return f
}

// plan ranks addrs and queues their dials from base (now when zero).
func (r *dialRun) plan(now time.Time, addrs []ma.Multiaddr, base time.Duration) {
	k := r.s.knowledge(r.p, now, addrs)
	rk := dialrank.Plan(addrs, k)
	if len(rk.Dials) == 0 && slices.ContainsFunc(rk.Skipped, func(sk dialrank.Skip) bool { return sk.Reason == dialrank.BlackHoled }) {
		// Only black holes are left: dialing them costs nothing but
		// time, and failing without a try would be worse.
		k.Unfiltered = true
		rk = dialrank.Plan(addrs, k)
	}
	for _, a := range addrs {
		r.known[string(a.Bytes())] = true
	}
	if r.tr == nil {
		r.tr = dialrank.NewTrace(r.p, rk, now)
	} else {
		r.tr.Ranking.Dials = append(slices.Clone(r.started), rk.Dials...)
		r.tr.Ranking.Skipped = append(r.tr.Ranking.Skipped, rk.Skipped...)
		r.tr.Ranking.Unfiltered = r.tr.Ranking.Unfiltered || rk.Unfiltered
	}
	at := now.Add(base)
	r.queue = r.queue[:0]
	for _, d := range rk.Dials {
		r.queue = append(r.queue, queuedDial{d, at.Add(d.Delay)})
	}
}

// replan ranks newly resolved addresses with those not dialed yet; the
// new schedule starts when the next queued dial would have (at once when
// nothing runs).
func (r *dialRun) replan(now time.Time, resolved []ma.Multiaddr) {
	var fresh []ma.Multiaddr
	for _, a := range resolved {
		if !r.known[string(a.Bytes())] {
			fresh = append(fresh, a)
		}
	}
	if len(fresh) == 0 {
		return
	}
	addrs := make([]ma.Multiaddr, 0, len(r.queue)+len(fresh))
	for _, q := range r.queue {
		addrs = append(addrs, q.d.Addr)
	}
	addrs = append(addrs, fresh...)
	var base time.Duration
	switch {
	case len(r.queue) > 0:
		base = max(0, r.queue[0].at.Sub(now))
	case r.pending > 0:
		base = dialrank.FallbackGap
	}
	r.plan(now, addrs, base)
}

// start starts the dial d.
func (r *dialRun) start(ctx context.Context, d dialrank.Dial, now time.Time, results chan<- result) {
	idx := r.tr.Started(d, now)
	r.started = append(r.started, d)
	r.pending++
	t := r.s.transportFor(d.Addr)
	go func() {
		tc, err := t.Dial(ctx, d.Addr, r.p)
		results <- result{d.Addr, idx, tc, err}
	}()
}

// moveUp starts the schedule's next dial now, and the ones after it as
// much earlier: nothing runs, so waiting for the pace is waiting for
// nothing.
func (r *dialRun) moveUp(now time.Time) {
	if len(r.queue) == 0 {
		return
	}
	early := r.queue[0].at.Sub(now)
	if early <= 0 {
		return
	}
	for i := range r.queue {
		r.queue[i].at = r.queue[i].at.Add(-early)
	}
}

// finish ends the trace and lets the stores learn from it.
func (r *dialRun) finish(err error) {
	r.s.learn(r.tr, time.Now(), err)
}

// learn ends tr and feeds what it shows to the RTT and black-hole stores,
// the back-off table and the trace hook.
func (s *Swarm) learn(tr *dialrank.Trace, now time.Time, err error) {
	tr.Done(now, err)
	s.cfg.RTTs.Learn(tr)
	t := s.cfg.Tracer
	var before dialrank.BlackHoleView
	if t != nil {
		before = s.cfg.BlackHoles.View()
	}
	s.cfg.BlackHoles.Learn(tr)
	if t != nil {
		s.traceDial(t, tr, before)
	}
	s.backoffs.learn(tr)
	if s.cfg.DialTrace != nil {
		s.cfg.DialTrace(tr)
	}
}

// resolveAddr resolves a, a DNS address of p, into addresses as the
// transports take them: /p2p/<p> is appended for the lookup (for the dnsaddr
// filter) and taken off the results.
func (s *Swarm) resolveAddr(ctx context.Context, a ma.Multiaddr, p peer.ID) ([]ma.Multiaddr, error) {
	var r Resolver = defaultResolver
	if s.cfg.Resolver != nil {
		r = s.cfg.Resolver
	}
	q := a
	if pc, err := p.Component(); err == nil {
		q = append(a[:len(a):len(a)], *pc)
	}
	rs, err := r.Resolve(ctx, q)
	if err != nil {
		return nil, err
	}
	out := make([]ma.Multiaddr, 0, len(rs))
	for _, ra := range rs {
		if tpt, id := peer.SplitAddr(ra); id == "" || id == p {
			if len(tpt) > 0 {
				out = append(out, tpt)
			}
		}
	}
	return out, nil
}

// drain waits for the dials still running and closes what they return.
func (s *Swarm) drain(results chan result, n int) {
	for ; n > 0; n-- {
		if r := <-results; r.err == nil {
			r.tc.Close()
		}
	}
}

// DialDirect dials p at addrs, all at once, on the caller's ctx (whose
// values reach the transports, such as network.WithSimultaneousConnect),
// and registers the first connection that comes up; the others are closed.
// It is not shared with other dials and ignores existing connections: hole
// punching calls it at a moment both peers agreed on. In the server role of
// a simultaneous connect, a transport that punches holes
// (network.HolePuncher: QUIC) waits for the peer's dial instead of
// dialing.
func (s *Swarm) DialDirect(ctx context.Context, p peer.ID, addrs []ma.Multiaddr) (*Conn, error) {
	return s.dialNow(ctx, p, addrs, false)
}

// DialVia dials p at exactly addr, which may be a relayed address (ctx
// must then allow limited connections), and registers the connection. Like
// DialDirect it is not shared with other dials and ignores existing
// connections: a transport that needs a connection to p through a given
// relay (WebRTC's signalling) asks for that one.
func (s *Swarm) DialVia(ctx context.Context, p peer.ID, addr ma.Multiaddr) (*Conn, error) {
	return s.dialNow(ctx, p, []ma.Multiaddr{addr}, true)
}

// dialNow dials p at addrs at once and registers the first connection.
// Nothing is filtered (hole punches and the dials a transport asks for
// must go where they are told), but duplicates and second forms of one TCP
// socket are left out, and the stores learn from the outcome.
func (s *Swarm) dialNow(ctx context.Context, p peer.ID, addrs []ma.Multiaddr, relayOK bool) (*Conn, error) {
	if err := s.gatePeerDial(p); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	now := time.Now()
	k := dialrank.Knowledge{
		Peer: p, Now: now, RTT: s.cfg.RTTs, Unfiltered: true, NoDelay: true, SameNetwork: true, AllowLoopback: true,
		CanDial: func(a ma.Multiaddr) bool { return (relayOK || !IsRelayAddr(a)) && s.canDial(p, a) },
	}
	plan := dialrank.Plan(addrs, k)
	tr := dialrank.NewTrace(p, plan, now)
	derr := &DialError{Peer: p}
	fail := func(cause error) (*Conn, error) {
		derr.Cause = cause
		s.learn(tr, time.Now(), cause)
		derr.Report = dialrank.DialErrorReport(tr)
		derr.Trace = tr
		return nil, derr
	}
	if len(plan.Dials) == 0 {
		return fail(ErrNoAddresses)
	}
	results := make(chan result, len(plan.Dials))
	isClient, sim := network.SimultaneousConnect(ctx)
	for _, d := range plan.Dials {
		t := s.transportFor(d.Addr)
		hp, punch := t.(network.HolePuncher)
		if !sim || isClient {
			punch = false
		}
		idx := tr.Started(d, now)
		go func() {
			var tc network.TransportConn
			var err error
			if punch {
				tc, err = hp.HolePunch(ctx, d.Addr, p)
			} else {
				tc, err = t.Dial(ctx, d.Addr, p)
			}
			results <- result{d.Addr, idx, tc, err}
		}()
	}
	for pending := len(plan.Dials); pending > 0; {
		r := <-results
		pending--
		if r.err == nil && r.tc.RemotePeer() != p {
			r.tc.Close()
			r.err = &network.PeerIDMismatchError{Expected: p, Actual: r.tc.RemotePeer()}
		}
		if r.err != nil {
			tr.Finished(r.idx, time.Now(), r.err)
			derr.Errors = append(derr.Errors, AddrError{r.addr, r.err})
			continue
		}
		c, err := s.addConn(r.tc)
		cancel()
		if err != nil {
			r.tc.Close()
			tr.Finished(r.idx, time.Now(), err)
			derr.Errors = append(derr.Errors, AddrError{r.addr, err})
			s.drain(results, pending)
			return fail(err)
		}
		tr.Finished(r.idx, time.Now(), nil)
		s.learn(tr, time.Now(), nil)
		s.drain(results, pending)
		return c, nil
	}
	var cause error
	if ctx.Err() != nil {
		cause = ctx.Err()
	}
	return fail(cause)
}

// DirectConn returns the newest open connection to p that is not limited,
// or nil.
func (s *Swarm) DirectConn(p peer.ID) *Conn {
	c, _ := s.bestConn(p, false)
	return c
}

// HolePunch waits for p to connect to us from raddr while the transport
// for raddr sends packets there to open our NAT (network.HolePuncher; QUIC),
// and registers the connection that comes.
func (s *Swarm) HolePunch(ctx context.Context, p peer.ID, raddr ma.Multiaddr) (*Conn, error) {
	t := s.transportFor(raddr)
	hp, ok := t.(network.HolePuncher)
	if !ok {
		return nil, fmt.Errorf("swarm: hole punch to %s at %s: no transport punches holes for this address", p, raddr)
	}
	tc, err := hp.HolePunch(ctx, raddr, p)
	if err != nil {
		return nil, err
	}
	c, err := s.addConn(tc)
	if err != nil {
		tc.Close()
		return nil, fmt.Errorf("swarm: hole punch to %s: %w", p, err)
	}
	return c, nil
}
