package yamux

import (
	"errors"
	"time"

	"github.com/tachyon-p2p/tachyon/core/network"
)

// Handing inbound streams over (network.InboundStreams): the reader passes
// each new stream to a function as it reads the SYN, so the session's owner
// needs no goroutine waiting in Accept. Stream.queued then means "inbound,
// not handed over yet" while the reader finishes the SYN's frame.

var _ network.InboundStreams = (*Session)(nil)

var errHandedOver = errors.New("yamux: inbound streams go to the HandleInbound function, not to Accept")

// HandleInbound makes the session pass each stream the peer opens to
// accept, on the reader goroutine, acknowledged already; streams that
// waited for Accept are passed at once, on the caller's goroutine. ended
// runs on the reader goroutine once it is done (see
// network.InboundStreams); it may Close the session. HandleInbound reports
// false if the reader is done already or a function was set before.
func (s *Session) HandleInbound(accept func(network.MuxedStream), ended func(error)) bool {
	s.handMu.Lock()
	defer s.handMu.Unlock()
	s.mu.Lock()
	if s.readerDone || s.onAccept != nil {
		s.mu.Unlock()
		return false
	}
	s.onAccept, s.onEnded = accept, ended
	waiting := s.acceptQ
	s.acceptQ = nil
	for _, st := range waiting {
		st.queued = false
	}
	signal(s.acceptCh) // an Accept waiting now returns errHandedOver
	s.mu.Unlock()
	for _, st := range waiting {
		s.queueACK(st)
		accept(st)
	}
	s.spawnFlush()
	return true
}

// handOver passes a new inbound stream to onAccept unless it ended while
// the reader finished its SYN's frame (a SYN with RST). Reader only.
func (s *Session) handOver(st *Stream) {
	s.handMu.Lock()
	s.mu.Lock()
	live := st.queued
	st.queued = false
	accept := s.onAccept
	s.mu.Unlock()
	if live {
		s.queueACK(st)
		accept(st)
	}
	s.handMu.Unlock()
	s.spawnFlush()
}

// queueACK is Stream.sendACK without the write, which the reader must not
// make: it grants the stream's window beyond the initial one and queues
// the ACK for the next writer (the stream's own first frame, or a flusher).
// It must stay in step with sendACK.
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
