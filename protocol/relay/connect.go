package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tachyon-p2p/tachyon/core/circuit"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
)

var errClosed = errors.New("relay: service closed")

// connect serves CONNECT: admit the circuit, open STOP to the target,
// answer the dialer, then relay until the circuit ends.
func (s *Service) connect(hop network.Stream, msg *circuit.HopMessage) {
	src := hop.RemotePeer()
	if isRelayed(remoteAddr(hop)) {
		s.refuse(hop, ReqConnect, circuit.StatusPermissionDenied, "CONNECT over a relayed connection")
		return
	}
	if msg.Peer == nil || msg.Peer.ID == "" {
		s.refuse(hop, ReqConnect, circuit.StatusMalformedMessage, "CONNECT without a target peer")
		return
	}
	dst := msg.Peer.ID

	status, why := s.admit(src, dst)
	if status != circuit.StatusOK {
		s.refuse(hop, ReqConnect, status, why, "target", dst)
		return
	}
	defer s.release(src, dst)

	stop, err := s.openStop(src, dst)
	if err != nil {
		s.refuse(hop, ReqConnect, circuit.StatusConnectionFailed, "STOP exchange failed", "target", dst, "err", err)
		return
	}
	s.traceRequest(ReqConnect, circuit.StatusOK)
	ok := &circuit.HopMessage{Type: circuit.HopStatus, Status: circuit.StatusOK, Limit: s.limitMsg()}
	if err := s.write(hop, ok); err != nil {
		s.log.Debug("relay: answering CONNECT", "src", src, "dst", dst, "err", err)
		_ = hop.Reset()
		_ = stop.Reset()
		s.untrack(stop)
		return
	}
	s.splice(hop, stop, src, dst)
}

// admit reserves a circuit slot for src -> dst, or says why not.
func (s *Service) admit(src, dst peer.ID) (circuit.Status, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(time.Now())
	switch {
	case s.closed:
		return circuit.StatusConnectionFailed, "relay closed"
	case !s.hasReservationLocked(dst):
		return circuit.StatusNoReservation, "target holds no reservation"
	case s.perPeer[src] >= s.cfg.MaxCircuitsPerPeer:
		return circuit.StatusResourceLimitExceeded, "too many circuits for the dialer"
	case s.perPeer[dst] >= s.cfg.MaxCircuitsPerPeer:
		return circuit.StatusResourceLimitExceeded, "too many circuits for the target"
	case s.live >= s.cfg.MaxCircuits:
		return circuit.StatusResourceLimitExceeded, "too many circuits"
	}
	s.perPeer[src]++
	s.perPeer[dst]++
	s.live++
	return circuit.StatusOK, ""
}

func (s *Service) hasReservationLocked(p peer.ID) bool {
	_, ok := s.rsvp[p]
	return ok
}

// release frees the slot admit took.
func (s *Service) release(src, dst peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range [2]peer.ID{src, dst} {
		if s.perPeer[p]--; s.perPeer[p] <= 0 {
			delete(s.perPeer, p)
		}
	}
	s.live--
}

// openStop opens STOP to dst over an existing connection and runs the
// exchange, all within one stream timeout. The returned stream is tracked
// as pending; on error nothing is left open.
func (s *Service) openStop(src, dst peer.ID) (_ network.Stream, err error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.StreamTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()

	stop, err := s.host.NewStream(network.WithNoDial(ctx, "relay: STOP to a reserved peer"), dst, circuit.StopID)
	if err != nil {
		return nil, fmt.Errorf("relay: opening STOP to %s: %w", dst, err)
	}
	if !s.track(stop) {
		return nil, errClosed
	}
	defer func() {
		if err != nil {
			_ = stop.Reset()
			s.untrack(stop)
		}
	}()
	_ = stop.SetDeadline(deadline)

	req := &circuit.StopMessage{Type: circuit.StopConnect, Peer: &circuit.Peer{ID: src}, Limit: s.limitMsg()}
	if err := circuit.WriteStop(stop, req); err != nil {
		return nil, fmt.Errorf("relay: writing STOP CONNECT to %s: %w", dst, err)
	}
	resp, err := circuit.ReadStop(stop)
	if err != nil {
		return nil, fmt.Errorf("relay: reading STOP answer from %s: %w", dst, err)
	}
	if resp.Type != circuit.StopStatus {
		return nil, fmt.Errorf("relay: %s answered STOP with %s, not STATUS", dst, resp.Type)
	}
	if resp.Status != circuit.StatusOK {
		return nil, fmt.Errorf("relay: STOP to %s: %w", dst, &circuit.StatusError{Status: resp.Status, From: "target"})
	}
	_ = stop.SetDeadline(time.Time{})
	return stop, nil
}

// endReason says why a circuit ended.
type endReason int

const (
	endDone          endReason = iota + 1 // both directions closed
	endError                              // a stream failed or was reset
	endDataLimit                          // a direction passed Limit.Data
	endDurationLimit                      // Limit.Duration passed
	endClosed                             // the service closed
)

// relayedConn is one spliced circuit.
type relayedConn struct {
	hop, stop network.Stream
	src, dst  peer.ID
	start     time.Time

	once   sync.Once
	reason endReason // set once; read after once.Do
	// bytes relayed: [0] src -> dst, [1] dst -> src.
	n [2]atomic.Int64
}

// abort resets both streams, recording why, unless the circuit already
// ended.
func (c *relayedConn) abort(r endReason) {
	c.once.Do(func() {
		c.reason = r
		_ = c.hop.Reset()
		_ = c.stop.Reset()
	})
}

// splice relays between hop (the dialer's) and stop (the target's) until
// both directions end or a limit resets them; it runs on the handler's
// goroutine and owns the two copy goroutines.
func (s *Service) splice(hop, stop network.Stream, src, dst peer.ID) {
	c := &relayedConn{hop: hop, stop: stop, src: src, dst: dst, start: time.Now()}
	done := make(chan struct{}, 2)

	s.mu.Lock()
	delete(s.pending, hop)
	delete(s.pending, stop)
	if s.closed {
		// Close came between the answer to the dialer and here: the
		// circuit ends as those Close found running do, and says so.
		s.mu.Unlock()
		c.abort(endClosed)
		s.logEnd(c)
		return
	}
	s.circuits[c] = struct{}{}
	s.opened++
	if t := s.cfg.Tracer; t != nil {
		t.Circuits(len(s.circuits))
	}
	s.wg.Add(2)
	s.mu.Unlock()
	s.log.Debug("relay: circuit open", "src", src, "dst", dst)

	go func() {
		defer s.wg.Done()
		s.pipe(c, hop, stop, 0)
		done <- struct{}{}
	}()
	go func() {
		defer s.wg.Done()
		s.pipe(c, stop, hop, 1)
		done <- struct{}{}
	}()

	var expired <-chan time.Time
	if d := s.cfg.Limit.Duration; d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		expired = t.C
	}
	for running := 2; running > 0; {
		select {
		case <-done:
			running--
		case <-expired:
			expired = nil
			c.abort(endDurationLimit)
		}
	}
	c.once.Do(func() { c.reason = endDone })
	if c.reason == endDone {
		_ = hop.Close()
		_ = stop.Close()
	}

	s.mu.Lock()
	delete(s.circuits, c)
	if t := s.cfg.Tracer; t != nil {
		// The duration first: a gauge at 0 then says every circuit is
		// fully accounted for.
		t.CircuitClosed(time.Since(c.start))
		t.Circuits(len(s.circuits))
	}
	switch c.reason {
	case endDataLimit:
		s.dataResets++
	case endDurationLimit:
		s.durationResets++
	}
	s.mu.Unlock()
	s.logEnd(c)
}

// pipe copies one direction of c: d is 0 for src -> dst, 1 for dst -> src.
// A clean EOF half-closes the other stream; anything else, or passing the
// data limit, resets the circuit.
func (s *Service) pipe(c *relayedConn, from, to network.Stream, d int) {
	limit := s.cfg.Limit.Data
	buf := make([]byte, s.cfg.BufferSize)
	var n int64
	for {
		nr, rerr := from.Read(buf)
		if nr > 0 {
			chunk := buf[:nr]
			over := limit > 0 && n+int64(nr) > limit
			if over {
				// Deliver up to the limit: the limit is what may cross.
				chunk = chunk[:limit-n]
			}
			if len(chunk) > 0 {
				nw, werr := to.Write(chunk)
				n += int64(nw)
				c.n[d].Add(int64(nw))
				s.bytes.Add(uint64(nw))
				if t := s.cfg.Tracer; t != nil {
					t.BytesRelayed(nw)
				}
				if werr != nil {
					c.abort(endError)
					return
				}
			}
			if over {
				c.abort(endDataLimit)
				return
			}
		}
		if rerr == io.EOF {
			if err := to.CloseWrite(); err != nil {
				c.abort(endError)
			}
			return
		}
		if rerr != nil {
			c.abort(endError)
			return
		}
	}
}

// logEnd logs how c ended: Info for a limit, which the peers may want to
// know about, Debug otherwise.
func (s *Service) logEnd(c *relayedConn) {
	attrs := []any{
		"src", c.src, "dst", c.dst,
		"bytes_src_dst", c.n[0].Load(), "bytes_dst_src", c.n[1].Load(),
		"duration", time.Since(c.start).Round(time.Millisecond),
	}
	switch c.reason {
	case endDataLimit:
		s.log.Info(fmt.Sprintf("relay: circuit reset: data limit %d bytes reached", s.cfg.Limit.Data), attrs...)
	case endDurationLimit:
		s.log.Info(fmt.Sprintf("relay: circuit reset: duration limit %s reached", s.cfg.Limit.Duration), attrs...)
	case endClosed:
		s.log.Debug("relay: circuit reset: relay closed", attrs...)
	case endError:
		s.log.Debug("relay: circuit reset: stream failed", attrs...)
	default:
		s.log.Debug("relay: circuit closed", attrs...)
	}
}
