package webrtc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/datachannel"
	pion "github.com/pion/webrtc/v4"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/internal/varint"
)

// Flow control and buffering. SCTP has no per-stream flow control: the
// association's receive window is shared, so a stream's reader bounds what it
// queues and then stops reading, and a writer keeps at most sendHighWater
// bytes in pion's send queue (bufferedAmount, in flight included), resuming
// when it drains to sendLowWater.
//
// sendHighWater thereby bounds what one stream has in flight. pion's ICE
// agent drops packets once 1 MB waits for DTLS and SCTP on the receiving
// side, and every loss halves SCTP's congestion window; kept under that
// (packets add ~10% to the data), a receiver that lags on a busy machine
// loses nothing. pion's buffers there are constants and drop rather than
// push back, so nothing larger is safe (TestSendBudgetStaysUnderPionBuffer).
// It caps a stream at 768 KiB per round trip (12 MiB/s at 63 ms); the
// writer resumes at sendLowWater, close to it, so that a stream keeps
// 640-768 KiB in flight rather than an average near 512 (a low mark of
// 256 KiB cost a third of the rate on a 63 ms path).
const (
	sendHighWater = 768 << 10
	sendLowWater  = 640 << 10
	recvQueueMax  = 1 << 20
	// finAckTimeout bounds the wait for FIN_ACK after our FIN; rust-libp2p
	// never sends one.
	finAckTimeout = 5 * time.Second
)

var (
	errWriteClosed = errors.New("webrtc: stream closed for writing")
	errReadClosed  = errors.New("webrtc: stream closed for reading")
	// errStopSending is returned by writes after the peer's STOP_SENDING.
	errStopSending = fmt.Errorf("webrtc: peer stopped reading: %w", network.ErrReset)
)

type recvState int

const (
	recvOpen    recvState = iota
	recvFIN               // peer sent FIN: EOF once the queue is empty
	recvStopped           // we sent STOP_SENDING
	recvReset
)

type sendState int

const (
	sendOpen    sendState = iota
	sendFINSent           // waiting for FIN_ACK
	sendDone              // FIN_ACK received or its wait timed out
	sendStopped           // peer sent STOP_SENDING
	sendReset
)

// stream is one data channel used as a libp2p stream. Its reader goroutine,
// started by start, owns the channel: it parses incoming messages, answers
// FIN with FIN_ACK, and closes the channel once both directions are done.
type stream struct {
	dc  *pion.DataChannel
	rwc datachannel.ReadWriteCloser
	// done runs once, when the reader goroutine has returned.
	done func()
	// connDone is closed when the connection closes.
	connDone <-chan struct{}

	writeMu sync.Mutex // orders data and FIN
	wbuf    []byte     // frame being written; guarded by writeMu
	// frameMu keeps the two halves of a split frame together, and the
	// channel's close out of a write (see closeChannelLocked): control
	// messages are written from other goroutines.
	frameMu sync.Mutex
	bufLow  chan struct{}
	budget  *sendBudget
	drains  *drainGuard
	// mem accounts the queue's bytes in the connection's scope; nil for
	// streams outside it (the handshake channel, refused streams).
	mem *connScope

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every state change
	queue    bytes.Buffer  // reused across messages: no allocation per message
	rstate   recvState
	sstate   sendState
	closed   bool // the data channel is closed
	protoErr error
	rdl, wdl time.Time
	finTimer *time.Timer
}

var _ network.MuxedStream = (*stream)(nil)

// connDone is closed when the connection closes: every wait of the stream
// ends then, so Conn.Close, which waits for the readers, never hangs on a
// reader waiting for queue room or a writer waiting for send room.
// budget is the connection's send budget, shared by its streams.
func newStream(dc *pion.DataChannel, rwc datachannel.ReadWriteCloser, done func(), connDone <-chan struct{}, budget *sendBudget, drains *drainGuard, mem *connScope) *stream {
	s := &stream{dc: dc, rwc: rwc, done: done, connDone: connDone, budget: budget, drains: drains, mem: mem, changed: make(chan struct{}), bufLow: make(chan struct{}, 1)}
	dc.SetBufferedAmountLowThreshold(sendLowWater)
	dc.OnBufferedAmountLow(func() {
		select {
		case s.bufLow <- struct{}{}:
		default:
		}
		budget.signal()
	})
	go s.readLoop()
	return s
}

// broadcastLocked wakes everyone waiting on a state change.
func (s *stream) broadcastLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *stream) readLoop() {
	defer s.done()
	buf := make([]byte, maxMessageSize)
	if s.readMessages(buf) {
		s.drain(buf)
	}
}

// readMessages parses and applies the peer's messages until the stream is
// finished. It reports whether the channel may still deliver data, that is
// whether this side closed it rather than pion ending it.
func (s *stream) readMessages(buf []byte) bool {
	var pending []byte
	for {
		n, err := s.rwc.Read(buf)
		if err != nil {
			if errors.Is(err, io.ErrShortBuffer) {
				s.fail(errOversized)
				return true
			}
			s.channelGone()
			return false
		}
		data := buf[:n]
		if len(pending) > 0 {
			pending = append(pending, data...)
			data = pending
		}
		for len(data) > 0 {
			m, used, err := parseFrame(data)
			if errors.Is(err, io.ErrUnexpectedEOF) {
				break
			}
			if err != nil {
				s.fail(err)
				return true
			}
			data = data[used:]
			if s.handle(m) {
				return true
			}
		}
		pending = append(pending[:0], data...)
		if !s.waitQueueRoom() {
			return true
		}
	}
}

// drain discards what still arrives on a channel this side closed, until
// pion ends it: when the peer resets its half too, or the connection
// closes. Until then pion keeps that data, and it counts against the
// receive window all streams share: left unread, a stream reset in the
// middle of a transfer would stall the whole connection.
//
// A peer must close its half once ours is closed (RFC 8831 6.7), so one
// that keeps a channel open for drainTimeout, that has more than
// maxDraining such channels at once, or that sends a message over the
// 16 KiB maximum by more than maxDrainMessage allows breaks the protocol:
// the connection is closed, which ends every drain.
func (s *stream) drain(buf []byte) {
	if s.drains == nil {
		return
	}
	if s.drains.n.Add(1) > maxDraining {
		s.drains.n.Add(-1)
		s.drains.fail()
		return
	}
	defer s.drains.n.Add(-1)
	if d, ok := s.rwc.(interface{ SetReadDeadline(time.Time) error }); ok {
		_ = d.SetReadDeadline(time.Now().Add(drainWait()))
	}
	for {
		_, err := s.rwc.Read(buf)
		switch {
		case err == nil:
		case errors.Is(err, io.ErrShortBuffer) && len(buf) < maxDrainMessage:
			// The oversized message that reset the stream: read it once.
			buf = make([]byte, maxDrainMessage)
		case errors.Is(err, io.ErrShortBuffer), errors.Is(err, os.ErrDeadlineExceeded):
			s.drains.fail()
			return
		default:
			return
		}
	}
}

// drainGuard counts a connection's draining streams and closes the
// connection when its peer breaks the closing procedure.
type drainGuard struct {
	n    atomic.Int32
	fail func()
}

// drainTimeout is how long a peer may take to close its half of a channel
// after this side closed or reset it.
const drainTimeout = 30 * time.Second

// testDrainTimeout, when set, replaces drainTimeout. It is atomic because a
// test restores it while drains of its connections may still read it.
var testDrainTimeout atomic.Int64

func drainWait() time.Duration {
	if d := testDrainTimeout.Load(); d > 0 {
		return time.Duration(d)
	}
	return drainTimeout
}

const (
	// maxDraining bounds the channels a peer keeps open after this side
	// closed them.
	maxDraining = 64
	// maxDrainMessage is the largest message a draining stream discards
	// (pion keeps a message until it is read whole); a larger one closes
	// the connection instead of costing a buffer that large per stream.
	maxDrainMessage = 4 * maxMessageSize
)

// handle applies one message and reports whether the reader is finished.
func (s *stream) handle(m message) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(m.payload) > 0 && s.rstate == recvOpen {
		if s.mem != nil {
			if err := s.mem.reserve(len(m.payload)); err != nil {
				s.protoErr = fmt.Errorf("buffering %d bytes of unread data: %w", len(m.payload), err)
				s.resetLocked()
				return true
			}
		}
		s.queue.Write(m.payload)
	}
	var reply flag = noFlag
	switch m.flag {
	case flagFIN:
		if s.rstate == recvOpen {
			s.rstate = recvFIN
		}
		reply = flagFINACK
	case flagStopSending:
		if s.sstate == sendOpen || s.sstate == sendFINSent {
			s.sstate = sendStopped
		}
	case flagReset:
		// RESET_STREAM ends the peer's sending part only (webrtc/README.md,
		// after QUIC's RESET_STREAM): our writes go on until we finish or
		// the peer sends STOP_SENDING or closes the channel. A peer's
		// Reset, which closes its channel, still fails them via
		// channelGone.
		s.rstate = recvReset
		s.dropQueueLocked()
	case flagFINACK:
		if s.sstate == sendFINSent {
			s.sstate = sendDone
		}
	}
	s.broadcastLocked()
	if reply != noFlag {
		s.sendControl(reply)
	}
	return s.maybeCloseLocked()
}

// sendControl writes a flag-only message. pion queues writes without
// blocking, so it is safe under s.mu.
func (s *stream) sendControl(f flag) {
	s.frameMu.Lock()
	defer s.frameMu.Unlock()
	_, _ = s.rwc.Write(appendMessage(nil, f, nil))
}

// dropQueueLocked discards the unread data and returns its memory.
func (s *stream) dropQueueLocked() {
	if s.mem != nil {
		s.mem.release(s.queue.Len())
	}
	s.queue = bytes.Buffer{}
}

// waitQueueRoom blocks the reader while the receive queue is full. It
// reports false when the stream is finished.
func (s *stream) waitQueueRoom() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.queue.Len() >= recvQueueMax && s.rstate == recvOpen && !s.closed {
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-s.connDone:
			s.mu.Lock()
			return false
		}
		s.mu.Lock()
	}
	return !s.closed
}

// maybeCloseLocked closes the channel once neither direction has anything
// left to do, and reports whether it is closed.
func (s *stream) maybeCloseLocked() bool {
	if s.closed {
		return true
	}
	recvDone := s.rstate != recvOpen
	sendFinished := s.sstate == sendDone || s.sstate == sendStopped || s.sstate == sendReset
	if !recvDone || !sendFinished {
		return false
	}
	s.closeChannelLocked()
	return true
}

func (s *stream) closeChannelLocked() {
	s.closed = true
	if s.finTimer != nil {
		s.finTimer.Stop()
	}
	s.broadcastLocked()
	// Not while a write is in flight: pion's WriteSCTP checks that the
	// stream is open and queues the data later, unlocked, so a write that
	// races the close queues data behind the stream's reset. The peer has
	// forgotten the stream by then, takes that data for a new stream, and
	// pion's accept loop waits for its DCEP open message for ever: no
	// further stream of the peer is ever accepted. Writes are
	// non-blocking, so the wait is short; once s.closed is set, Write
	// stops before the next frame.
	s.frameMu.Lock()
	defer s.frameMu.Unlock()
	// The reader goes on draining the channel (see drain).
	_ = s.dc.Close()
}

// channelGone handles the end of the channel: our own close, the peer's
// close, or the connection going away.
func (s *stream) channelGone() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rstate == recvOpen {
		s.rstate = recvReset
		s.dropQueueLocked()
	}
	if s.sstate == sendOpen || s.sstate == sendFINSent {
		s.sstate = sendReset
	}
	if !s.closed {
		s.closeChannelLocked()
	}
	s.broadcastLocked()
}

// fail resets the stream after a protocol violation by the peer.
func (s *stream) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.protoErr = err
	s.resetLocked()
}

func (s *stream) resetLocked() {
	if s.closed {
		return
	}
	// Abort both halves: STOP_SENDING tells the peer to stop writing at once
	// (a RESET_STREAM alone ends only our sending part, and the peer could
	// keep filling the association until the channel close reaches it).
	s.sendControl(flagStopSending)
	s.sendControl(flagReset)
	s.rstate, s.sstate = recvReset, sendReset
	s.dropQueueLocked()
	s.closeChannelLocked()
}

// Read reads payload bytes; io.EOF after the peer's FIN.
func (s *stream) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		switch {
		case s.queue.Len() > 0 && s.rstate != recvReset && s.rstate != recvStopped:
			n, _ := s.queue.Read(p)
			if s.mem != nil {
				s.mem.release(n)
			}
			if s.queue.Len() == 0 && s.rstate != recvOpen {
				s.queue = bytes.Buffer{} // nothing more will come: free it
			}
			s.broadcastLocked() // room for the reader
			return n, nil
		case s.rstate == recvFIN:
			return 0, io.EOF
		case s.rstate == recvStopped:
			return 0, errReadClosed
		case s.rstate == recvReset:
			if s.protoErr != nil {
				return 0, fmt.Errorf("%w: %w", network.ErrReset, s.protoErr)
			}
			return 0, network.ErrReset
		}
		if err := s.waitLocked(s.rdl, nil, nil); err != nil {
			return 0, err
		}
	}
}

// waitLocked waits for a state change, the deadline dl, extra or extraTime.
func (s *stream) waitLocked(dl time.Time, extra <-chan struct{}, extraTime <-chan time.Time) error {
	var timeout <-chan time.Time
	if !dl.IsZero() {
		d := time.Until(dl)
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	ch := s.changed
	s.mu.Unlock()
	defer s.mu.Lock()
	select {
	case <-ch:
	case <-extra:
	case <-extraTime:
	case <-timeout:
	case <-s.connDone:
		return ErrConnClosed
	}
	return nil
}

func (s *stream) writeErrLocked() error {
	switch s.sstate {
	case sendOpen:
		if s.closed {
			return network.ErrReset
		}
		return nil
	case sendStopped:
		return errStopSending
	case sendReset:
		return network.ErrReset
	default:
		return errWriteClosed
	}
}

// Write sends p as messages of at most maxPayload bytes, waiting while
// pion's send queue is above sendHighWater.
func (s *stream) Write(p []byte) (int, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.wbuf == nil {
		s.wbuf = make([]byte, 0, maxMessageSize)
	}
	n := 0
	for len(p) > 0 {
		s.mu.Lock()
		for {
			if err := s.writeErrLocked(); err != nil {
				s.mu.Unlock()
				return n, err
			}
			if !s.wdl.IsZero() && !time.Now().Before(s.wdl) {
				s.mu.Unlock()
				return n, os.ErrDeadlineExceeded
			}
			if s.dc.BufferedAmount() > sendHighWater {
				if err := s.waitLocked(s.wdl, s.bufLow, nil); err != nil {
					s.mu.Unlock()
					return n, err
				}
				continue
			}
			room := s.budget.roomSignal()
			if !s.budget.full() {
				break
			}
			poll := time.NewTimer(budgetPoll)
			err := s.waitLocked(s.wdl, room, poll.C)
			poll.Stop()
			if err != nil {
				s.mu.Unlock()
				return n, err
			}
		}
		s.mu.Unlock()
		chunk := p[:min(len(p), maxPayload)]
		s.wbuf = appendMessage(s.wbuf[:0], noFlag, chunk)
		if err := s.writeFrame(s.wbuf); err != nil {
			s.mu.Lock()
			serr := s.writeErrLocked()
			s.mu.Unlock()
			if serr != nil {
				return n, serr
			}
			return n, fmt.Errorf("webrtc: writing to data channel: %w", err)
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

// goReadBuffer is the bufio size go-libp2p reads data channels through: a
// data channel message larger than that can only be read directly into the
// message body buffer, so it must not start with the length prefix.
const goReadBuffer = 4096

// writeFrame sends one framed message. A frame above goReadBuffer goes as
// two data channel messages, length prefix then body, which is how
// go-libp2p writes and the only large layout it can read; everyone else
// reads the channel as a byte stream.
func (s *stream) writeFrame(frame []byte) error {
	s.frameMu.Lock()
	defer s.frameMu.Unlock()
	if len(frame) <= goReadBuffer {
		_, err := s.rwc.Write(frame)
		return err
	}
	_, n, err := varint.Decode(frame)
	if err != nil {
		return err
	}
	if _, err := s.rwc.Write(frame[:n]); err != nil {
		return err
	}
	_, err = s.rwc.Write(frame[n:])
	return err
}

// CloseWrite sends FIN. The channel stays open until the peer's FIN_ACK, or
// for at most finAckTimeout.
func (s *stream) CloseWrite() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sstate != sendOpen || s.closed {
		if s.sstate == sendReset || (s.closed && s.sstate == sendOpen) {
			return network.ErrReset
		}
		return nil
	}
	s.sstate = sendFINSent
	s.sendControl(flagFIN)
	s.finTimer = time.AfterFunc(finAckTimeout, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.sstate == sendFINSent {
			s.sstate = sendDone
			s.broadcastLocked()
			s.maybeCloseLocked()
		}
	})
	s.broadcastLocked()
	s.maybeCloseLocked()
	return nil
}

// CloseRead sends STOP_SENDING and discards queued and further data.
func (s *stream) CloseRead() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rstate != recvOpen && s.rstate != recvFIN {
		return nil
	}
	if s.rstate == recvOpen && !s.closed {
		s.sendControl(flagStopSending)
	}
	s.rstate = recvStopped
	s.dropQueueLocked()
	s.broadcastLocked()
	s.maybeCloseLocked()
	return nil
}

// Close half-closes writing and stops reading.
func (s *stream) Close() error {
	err := s.CloseWrite()
	_ = s.CloseRead()
	if errors.Is(err, network.ErrReset) {
		return nil
	}
	return err
}

// Reset sends RESET_STREAM and closes the channel.
func (s *stream) Reset() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetLocked()
	return nil
}

func (s *stream) SetDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rdl, s.wdl = t, t
	s.broadcastLocked()
	return nil
}

func (s *stream) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rdl = t
	s.broadcastLocked()
	return nil
}

func (s *stream) SetWriteDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wdl = t
	s.broadcastLocked()
	return nil
}
