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

// DialError collects why each address of a peer failed.
type DialError struct {
	Peer   peer.ID
	Cause  error       // set when the dial failed as a whole (timeout, no address)
	Errors []AddrError // one per address tried
}

// AddrError is the failure of one address.
type AddrError struct {
	Addr ma.Multiaddr
	Err  error
}

func (e *DialError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "swarm: dialing %s", e.Peer)
	if e.Cause != nil {
		fmt.Fprintf(&b, ": %v", e.Cause)
	}
	for i, ae := range e.Errors {
		if i == 8 {
			fmt.Fprintf(&b, "; and %d more", len(e.Errors)-i)
			break
		}
		fmt.Fprintf(&b, "; %s: %v", ae.Addr, ae.Err)
	}
	return b.String()
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
	tc   network.TransportConn
	err  error
}

// dial is one in-flight dial to a peer; concurrent DialPeer calls share it.
type dial struct {
	done chan struct{}
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
		d = &dial{done: make(chan struct{})}
		s.dials[key] = d
		s.wg.Add(1)
		go s.runDial(key, d)
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
	d.conn, d.err = s.dialAddrs(ctx, key.p, key.direct)
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

// dialAddrs races the peer's addresses: the first starts at once, each next
// one DialStagger later or as soon as the previous failed. The first
// connection wins; later ones are closed. Relay addresses go last, and
// start only RelayDialDelay after the first dial or once no direct dial is
// left; direct leaves them out.
//
// Addresses with DNS names are resolved meanwhile, all at once and within
// ctx; what they resolve to joins the queue as it arrives, after the
// addresses known so far, skipping addresses already queued.
func (s *Swarm) dialAddrs(ctx context.Context, p peer.ID, direct bool) (*Conn, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var addrs, names, relays []ma.Multiaddr
	queued := make(map[string]bool)
	for _, a := range s.ps.Addrs(p) {
		switch {
		case IsRelayAddr(a):
			if !direct && s.canDial(p, a) && !queued[string(a.Bytes())] {
				queued[string(a.Bytes())] = true
				relays = append(relays, a)
			}
		case resolve.NeedsResolve(a):
			names = append(names, a)
		case s.canDial(p, a) && !queued[string(a.Bytes())]:
			queued[string(a.Bytes())] = true
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 && len(names) == 0 && len(relays) == 0 {
		return nil, &DialError{Peer: p, Cause: ErrNoAddresses}
	}
	// Relays wait until relayAt, or until no direct dial is left.
	relayAt := time.Now().Add(s.cfg.RelayDialDelay)
	if len(addrs) == 0 && len(names) == 0 {
		relayAt = time.Time{}
	}
	// The resolutions are the swarm's goroutines (Close waits for them) but
	// not this dial's: a winning dial does not wait for them, it cancels
	// them, and they leave their result in the buffer.
	resolved := make(chan resolution, len(names))
	s.wg.Add(len(names))
	for _, a := range names {
		go func() {
			defer s.wg.Done()
			rs, err := s.resolveAddr(ctx, a, p)
			resolved <- resolution{a, rs, err}
		}()
	}
	resolving := len(names)
	results := make(chan result, len(addrs)+len(names))
	derr := &DialError{Peer: p}
	next, pending := 0, 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	armed := true // the timer will start the next dial
	for {
		if next == len(addrs) && pending == 0 && resolving == 0 {
			if len(relays) > 0 {
				// Only relays are left: append them, now.
				addrs = append(addrs, relays...)
				relays = nil
				relayAt = time.Time{}
				if !armed {
					timer.Reset(0)
					armed = true
				}
			} else {
				if next == 0 {
					derr.Cause = ErrNoAddresses
				}
				return nil, derr
			}
		}
		select {
		case <-timer.C:
			armed = false
			if next == len(addrs) && len(relays) > 0 {
				if wait := time.Until(relayAt); wait > 0 {
					timer.Reset(wait)
					armed = true
					continue
				}
				addrs = append(addrs, relays...)
				relays = nil
			}
			if next < len(addrs) {
				a := addrs[next]
				next++
				pending++
				go func() {
					tc, err := s.transportFor(a).Dial(ctx, a, p)
					results <- result{a, tc, err}
				}()
				timer.Reset(s.cfg.DialStagger)
				armed = true
			}
		case r := <-resolved:
			resolving--
			if r.err != nil {
				s.cfg.Log.Debug("resolving failed", "peer", p, "addr", r.addr, "err", r.err)
				derr.Errors = append(derr.Errors, AddrError{r.addr, r.err})
				continue
			}
			n := len(addrs)
			for _, a := range r.addrs {
				if k := string(a.Bytes()); !queued[k] && s.canDial(p, a) {
					queued[k] = true
					addrs = append(addrs, a)
				}
			}
			if len(addrs) == n {
				if !slices.ContainsFunc(r.addrs, func(a ma.Multiaddr) bool { return s.canDial(p, a) }) {
					derr.Errors = append(derr.Errors, AddrError{r.addr, errNoDialable})
				}
			} else if !armed {
				timer.Reset(0)
				armed = true
			}
		case r := <-results:
			pending--
			if r.err == nil && r.tc.RemotePeer() != p {
				r.tc.Close()
				r.err = &network.PeerIDMismatchError{Expected: p, Actual: r.tc.RemotePeer()}
			}
			if r.err == nil {
				c, err := s.addConn(r.tc)
				if err != nil {
					r.tc.Close()
					derr.Cause = err
					s.drain(results, pending)
					return nil, derr
				}
				cancel()
				s.drain(results, pending)
				return c, nil
			}
			s.cfg.Log.Debug("dial failed", "peer", p, "addr", r.addr, "err", r.err)
			derr.Errors = append(derr.Errors, AddrError{r.addr, r.err})
			if next < len(addrs) {
				timer.Reset(0)
				armed = true
			}
		case <-ctx.Done():
			derr.Cause = ctx.Err()
			s.drain(results, pending)
			return nil, derr
		}
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
func (s *Swarm) dialNow(ctx context.Context, p peer.ID, addrs []ma.Multiaddr, relayOK bool) (*Conn, error) {
	if err := s.gatePeerDial(p); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	derr := &DialError{Peer: p}
	results := make(chan result, len(addrs))
	pending := 0
	for _, a := range addrs {
		if IsRelayAddr(a) && !relayOK || !s.canDial(p, a) {
			continue
		}
		pending++
		t := s.transportFor(a)
		hp, punch := t.(network.HolePuncher)
		if isClient, sim := network.SimultaneousConnect(ctx); !sim || isClient {
			punch = false
		}
		go func() {
			var tc network.TransportConn
			var err error
			if punch {
				tc, err = hp.HolePunch(ctx, a, p)
			} else {
				tc, err = t.Dial(ctx, a, p)
			}
			results <- result{a, tc, err}
		}()
	}
	if pending == 0 {
		derr.Cause = ErrNoAddresses
		return nil, derr
	}
	for pending > 0 {
		r := <-results
		pending--
		if r.err == nil && r.tc.RemotePeer() != p {
			r.tc.Close()
			r.err = &network.PeerIDMismatchError{Expected: p, Actual: r.tc.RemotePeer()}
		}
		if r.err != nil {
			derr.Errors = append(derr.Errors, AddrError{r.addr, r.err})
			continue
		}
		c, err := s.addConn(r.tc)
		cancel()
		s.drain(results, pending)
		if err != nil {
			r.tc.Close()
			derr.Cause = err
			return nil, derr
		}
		return c, nil
	}
	if ctx.Err() != nil {
		derr.Cause = ctx.Err()
	}
	return nil, derr
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
