package swarm

import (
	"context"
	"fmt"
	"strings"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
)

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
// addresses in the peerstore. Concurrent calls for one peer share one dial.
func (s *Swarm) DialPeer(ctx context.Context, p peer.ID) (*Conn, error) {
	if p == s.local {
		return nil, ErrDialSelf
	}
	if c := s.bestConn(p); c != nil {
		return c, nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	d := s.dials[p]
	if d == nil {
		d = &dial{done: make(chan struct{})}
		s.dials[p] = d
		s.wg.Add(1)
		go s.runDial(p, d)
	}
	s.mu.Unlock()
	select {
	case <-d.done:
		return d.conn, d.err
	case <-ctx.Done():
		return nil, fmt.Errorf("swarm: dialing %s: %w", p, ctx.Err())
	}
}

// runDial dials p on its own context, so a caller giving up does not abort a
// dial others wait for; the swarm's Close does.
func (s *Swarm) runDial(p peer.ID, d *dial) {
	defer s.wg.Done()
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.DialTimeout)
	defer cancel()
	d.conn, d.err = s.dialAddrs(ctx, p)
	s.mu.Lock()
	delete(s.dials, p)
	s.mu.Unlock()
	close(d.done)
}

// dialAddrs races the peer's addresses: the first starts at once, each next
// one DialStagger later or as soon as the previous failed. The first
// connection wins; later ones are closed.
func (s *Swarm) dialAddrs(ctx context.Context, p peer.ID) (*Conn, error) {
	var addrs []ma.Multiaddr
	for _, a := range s.ps.Addrs(p) {
		if s.transportFor(a) != nil {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return nil, &DialError{Peer: p, Cause: ErrNoAddresses}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan result, len(addrs))
	derr := &DialError{Peer: p}
	next, pending := 0, 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
			if next < len(addrs) {
				a := addrs[next]
				next++
				pending++
				go func() {
					tc, err := s.transportFor(a).Dial(ctx, a, p)
					results <- result{a, tc, err}
				}()
				timer.Reset(s.cfg.DialStagger)
			}
		case r := <-results:
			pending--
			if r.err == nil && r.tc.RemotePeer() != p {
				r.tc.Close()
				r.err = fmt.Errorf("connected to %s instead", r.tc.RemotePeer())
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
			derr.Errors = append(derr.Errors, AddrError{r.addr, r.err})
			if next < len(addrs) {
				timer.Reset(0)
			} else if pending == 0 {
				return nil, derr
			}
		case <-ctx.Done():
			derr.Cause = ctx.Err()
			s.drain(results, pending)
			return nil, derr
		}
	}
}

// drain waits for the dials still running and closes what they return.
func (s *Swarm) drain(results chan result, n int) {
	for ; n > 0; n-- {
		if r := <-results; r.err == nil {
			r.tc.Close()
		}
	}
}
