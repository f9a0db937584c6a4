package yamux

import (
	"errors"
	"time"

	"github.com/tachyon-p2p/tachyon/core/network"
)

// Handing inbound streams over (network.InboundStreams): the reader passes
// each new stream to a function as it reads the SYN, so the session's owner
// needs no goroutine waiting in Accept. Stream.queued then means "inbound,
// not handed over yet": while the reader finishes the SYN's frame, or
// while the stream waits in acceptQ because maxOut streams are out.

var _ network.InboundStreams = (*Session)(nil)

// maxOut bounds the streams handed over and not yet released by the owner
// (network.InboundStreams.ReleaseInbound: in the swarm, those still
// negotiating their protocol). Beyond it, new streams wait in acceptQ as
// they would for Accept, and one the peer resets meanwhile costs nothing
// more: a peer opening and resetting streams in a loop gets at most this
// many handlers at once, not one per SYN. Like go-yamux's accept backlog.
const maxOut = 256

var errHandedOver = errors.New("yamux: inbound streams go to the HandleInbound function, not to Accept")

// HandleInbound makes the session pass each stream the peer opens to
// accept, on the reader goroutine; streams that waited for Accept are
// passed at once, on the caller's goroutine. ended runs on the reader
// goroutine once it is done (see network.InboundStreams); it may Close the
// session. HandleInbound reports false if the reader is done already or a
// function was set before.
//
// A stream's ACK is queued when it is handed over and leaves with its
// first frame, or before its first Read that waits: a handler that answers
// at once sends ACK and answer in one write.
func (s *Session) HandleInbound(accept func(network.MuxedStream), ended func(error)) bool {
	s.handMu.Lock()
	defer s.handMu.Unlock()
	s.mu.Lock()
	if s.readerDone || s.onAccept != nil {
		s.mu.Unlock()
		return false
	}
	s.onAccept, s.onEnded = accept, ended
	var now []*Stream
	for len(s.acceptQ) > 0 && s.out < maxOut {
		now = append(now, s.popLocked())
	}
	signal(s.acceptCh) // an Accept waiting now returns errHandedOver
	s.mu.Unlock()
	for _, st := range now {
		s.queueACK(st)
		accept(st)
	}
	return true
}

// ReleaseInbound tells the session that the owner is done with the first
// part of a stream it was handed (see network.InboundStreams): if a stream
// waits, it is handed over now, on the caller's goroutine, in its place.
// Streams of other sessions, and second calls, are ignored.
func (s *Session) ReleaseInbound(ms network.MuxedStream) {
	st, ok := ms.(*Stream)
	if !ok || st.sess != s {
		return
	}
	s.handMu.Lock()
	defer s.handMu.Unlock()
	s.mu.Lock()
	if !st.out {
		s.mu.Unlock()
		return
	}
	st.out = false
	s.out--
	accept := s.onAccept
	var next *Stream
	if accept != nil && len(s.acceptQ) > 0 {
		next = s.popLocked() // takes st's place
	}
	s.mu.Unlock()
	if next != nil {
		s.queueACK(next)
		accept(next)
	}
}

// popLocked takes the oldest stream out of acceptQ and marks it out. s.mu
// is held, and acceptQ is not empty.
func (s *Session) popLocked() *Stream {
	st := s.acceptQ[0]
	s.acceptQ[0] = nil
	s.acceptQ = s.acceptQ[1:]
	if len(s.acceptQ) == 0 {
		s.acceptQ = nil // do not keep a burst's worth of backing array
	}
	st.queued = false
	st.out = true
	s.out++
	return st
}

// handOverFresh passes the new inbound streams to onAccept, except those
// that ended meanwhile. The reader calls it when it has parsed all it
// read, before it waits for more: a stream opened and reset in one burst
// (a flood's SYN and RST) costs no handler. Reader only.
func (s *Session) handOverFresh() {
	s.handMu.Lock()
	defer s.handMu.Unlock()
	for i, st := range s.fresh {
		s.fresh[i] = nil
		s.mu.Lock()
		live := st.queued
		st.queued = false
		accept := s.onAccept
		if !live {
			st.out = false // reset before it was handed over
			s.out--
		}
		s.mu.Unlock()
		if live && accept != nil {
			s.queueACK(st)
			accept(st)
		}
	}
	if cap(s.fresh) > 16 {
		s.fresh = nil // a burst's array is not kept
	} else {
		s.fresh = s.fresh[:0]
	}
}

// queueACK is Stream.sendACK without the write, which the reader must not
// make: it grants the stream's window beyond the initial one and queues
// the ACK for the next writer (the stream's own first frame, or a Read
// about to wait). It must stay in step with sendACK.
func (s *Session) queueACK(st *Stream) {
	st.mu.Lock()
	delta := st.recvWindow - initialWindow
	st.recvAvail += delta
	st.epoch = time.Now()
	st.mu.Unlock()
	s.queueControl(header{typ: typeWindowUpdate, flags: flagACK, stream: st.id, length: delta})
}

// stopHandOver ends deliveries, once the reader is done: it returns the
// ended function, if any, and the reason the session ended.
func (s *Session) stopHandOver() (func(error), error) {
	s.handMu.Lock()
	defer s.handMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readerDone = true
	ended := s.onEnded
	s.onAccept, s.onEnded = nil, nil
	return ended, s.closeErr
}
