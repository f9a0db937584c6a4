package yamux

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/tachyon-p2p/tachyon/core/network"
)

// errDeadline is returned when a stream deadline passes; it is a net.Error
// whose Timeout() is true.
var errDeadline = os.ErrDeadlineExceeded

var _ network.MuxedStream = (*Stream)(nil)

// Stream is one yamux stream. Read and Write may be called concurrently
// with each other; each is for one goroutine at a time.
type Stream struct {
	id      uint32
	sess    *Session
	inbound bool
	unacked bool // outbound and not yet acknowledged; guarded by sess.mu
	queued  bool // inbound and in the session's acceptQ; guarded by sess.mu
	out     bool // handed over and not released yet (see ReleaseInbound); guarded by sess.mu
	// scopeDone releases the stream from the session's scope; guarded by
	// sess.mu, called by whoever removes the stream from the session.
	scopeDone func()

	mu         sync.Mutex
	recv       [][]byte // received data; recv[0][recvOff:] is next
	recvOff    int
	buffered   uint32    // bytes in recv
	incoming   uint32    // bytes of a frame being read off the wire, not yet in recv
	recvWindow uint32    // current receive window size
	recvAvail  uint32    // bytes the peer may still send
	epoch      time.Time // when the window was last replenished
	sendWindow uint32
	remoteFin  bool
	localFin   bool
	readClosed bool
	reset      bool
	resetErr   error // why we reset the stream, when it was for lack of resources
	// With a scope: held is the capacity of the buffers in recv (and of
	// one being filled off the wire); reserved what the scope granted,
	// never less than held, and the whole window once it grew past
	// initialWindow, while the stream can receive.
	held, reserved int64

	readCh  chan struct{} // signalled on data, FIN, RST
	writeCh chan struct{} // signalled on window updates, RST
	readDL  deadline
	writeDL deadline
}

func newStream(s *Session, id uint32, inbound bool) *Stream {
	st := &Stream{
		id:         id,
		sess:       s,
		inbound:    inbound,
		recvWindow: s.cfg.InitialStreamWindow,
		recvAvail:  s.cfg.InitialStreamWindow,
		sendWindow: initialWindow,
		readCh:     make(chan struct{}, 1),
		writeCh:    make(chan struct{}, 1),
	}
	if s.scope != nil && st.recvWindow > initialWindow {
		// A configured window above the spec's is a promise like a grown
		// one: reserve it, or fall back to the spec window.
		if s.reserve(int64(st.recvWindow)) == nil {
			st.reserved = int64(st.recvWindow)
		} else {
			st.recvWindow, st.recvAvail = initialWindow, initialWindow
		}
	}
	if inbound {
		// The peer may only use the spec window until our ACK grants more.
		st.recvAvail = initialWindow
	}
	return st
}

// StreamID is the yamux stream ID.
func (st *Stream) StreamID() uint32 { return st.id }

// sendACK acknowledges an inbound stream, granting the configured window.
func (st *Stream) sendACK() {
	st.sess.queueACK(st)
	st.sess.tryFlush()
}

// Read reads data the peer sent. It returns io.EOF after the peer's FIN and
// network.ErrReset after a reset.
func (st *Stream) Read(p []byte) (int, error) {
	for {
		st.mu.Lock()
		switch {
		case st.readClosed:
			st.mu.Unlock()
			return 0, fmt.Errorf("yamux: read: %w", ErrStreamClosed)
		case st.reset:
			err := st.resetErrLocked()
			st.mu.Unlock()
			return 0, err
		case isClosed(st.readDL.wait()):
			st.mu.Unlock()
			return 0, errDeadline
		case st.buffered > 0:
			n := st.copyOutLocked(p)
			delta := st.creditLocked(true)
			st.mu.Unlock()
			if delta > 0 {
				st.sess.queueControl(header{typ: typeWindowUpdate, stream: st.id, length: delta})
				st.sess.tryFlush()
			}
			return n, nil
		case st.remoteFin:
			st.mu.Unlock()
			return 0, io.EOF
		case st.sess.IsClosed():
			st.mu.Unlock()
			return 0, st.sess.Err()
		case len(p) == 0:
			st.mu.Unlock()
			return 0, nil
		}
		st.mu.Unlock()
		// A handed-over stream's ACK waits for its first frame (see
		// handOverFresh); a reader about to wait sends it, so the peer hears
		// of the stream even from a handler that only reads.
		if st.sess.ctrlPending.Load() {
			st.sess.tryFlush()
		}
		select {
		case <-st.readCh:
		case <-st.readDL.wait():
		case <-st.sess.done:
		}
	}
}

// Buffered returns how many received bytes a Read would return at once.
// Multistream-select uses it to tell a pipelined proposal from a dialer that
// waits for the listener's header.
func (st *Stream) Buffered() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return int(st.buffered)
}

// copyOutLocked moves buffered data into p.
func (st *Stream) copyOutLocked(p []byte) int {
	n, freed, done := 0, 0, 0
	for n < len(p) && done < len(st.recv) {
		b := st.recv[done]
		c := copy(p[n:], b[st.recvOff:])
		n += c
		st.recvOff += c
		if st.recvOff == len(b) {
			freed += cap(b)
			putBuf(b)
			done++
			st.recvOff = 0
		}
	}
	if done > 0 {
		// Shift the rest down rather than reslicing, so that a stream
		// read as fast as it receives reuses one small array instead
		// of allocating one per frame.
		k := copy(st.recv, st.recv[done:])
		clear(st.recv[k:])
		st.recv = st.recv[:k]
		if k == 0 && cap(st.recv) > 8 {
			st.recv = nil // do not keep a burst's worth of array
		}
	}
	st.buffered -= uint32(n)
	if freed > 0 {
		st.unchargeLocked(int64(freed))
	}
	return n
}

// creditLocked decides whether to hand consumed window back to the peer,
// growing the window (if grow is set) when the last one was used up within
// four round trips, and returns the delta to send (0 for none). Sending an
// update only once half the window is consumed keeps updates rare.
//
// Consumed means neither available to the peer, nor buffered, nor being
// read off the wire: data the application read, and data dropped after
// CloseRead, which is credited the same way so the peer never stalls.
func (st *Stream) creditLocked(grow bool) uint32 {
	consumed := st.recvWindow - st.recvAvail - st.buffered - st.incoming
	if consumed < st.recvWindow/2 {
		return 0
	}
	now := time.Now()
	if rtt := time.Duration(st.sess.rtt.Load()); grow && rtt > 0 && now.Sub(st.epoch) < 4*rtt {
		if w := st.grownLocked(); w > st.recvWindow && st.reserveGrowthLocked(w) {
			st.recvWindow = w
		}
	}
	st.epoch = now
	delta := st.recvWindow - st.recvAvail - st.buffered - st.incoming
	st.recvAvail += delta
	return delta
}

// grownLocked is the window growth would give: twice the current one, up
// to MaxStreamWindow.
func (st *Stream) grownLocked() uint32 {
	return uint32(min(2*uint64(st.recvWindow), uint64(st.sess.cfg.MaxStreamWindow)))
}

// receive reads a data frame's payload from the session into the stream.
// It runs on the session's reader goroutine.
func (st *Stream) receive(n uint32) error {
	if n == 0 {
		return nil
	}
	s := st.sess
	st.mu.Lock()
	if avail := st.recvAvail; n > avail {
		st.mu.Unlock()
		return fmt.Errorf("%w: stream %d sent %d bytes with %d bytes of window left", ErrProtocol, st.id, n, avail)
	}
	st.recvAvail -= n
	discard := st.readClosed || st.reset || st.remoteFin
	if !discard {
		st.incoming = n
	}
	st.mu.Unlock()
	if discard {
		if _, err := s.br.Discard(int(n)); err != nil {
			return fmt.Errorf("yamux: reading frame payload: %w", err)
		}
		st.creditDropped()
		return nil
	}
	if n <= readBufSize {
		// Small frame: copy from the read buffer into the tail buffer, so
		// many small frames share one allocation.
		b, err := s.br.Peek(int(n))
		if err != nil {
			return fmt.Errorf("yamux: reading frame payload: %w", err)
		}
		st.mu.Lock()
		st.incoming = 0
		dropped := st.readClosed || st.reset
		var refused error
		if !dropped {
			refused = st.appendLocked(b)
		}
		st.mu.Unlock()
		_, _ = s.br.Discard(int(n))
		if refused != nil {
			st.resetForLimit(refused)
			return nil
		}
		if dropped {
			st.creditDropped()
			return nil
		}
	} else {
		// Large frame: read past the read buffer straight into its own
		// buffer, reserved before it is filled.
		b := getBuf(int(n))[:n]
		st.mu.Lock()
		refused := st.chargeLocked(int64(cap(b)))
		if refused != nil {
			st.incoming = 0
		}
		st.mu.Unlock()
		if refused != nil {
			putBuf(b)
			if _, err := s.br.Discard(int(n)); err != nil {
				return fmt.Errorf("yamux: reading frame payload: %w", err)
			}
			st.resetForLimit(refused)
			return nil
		}
		if _, err := io.ReadFull(&s.br, b); err != nil {
			putBuf(b)
			return fmt.Errorf("yamux: reading frame payload: %w", err)
		}
		st.mu.Lock()
		st.incoming = 0
		dropped := st.readClosed || st.reset
		if dropped {
			st.unchargeLocked(int64(cap(b)))
			putBuf(b)
		} else {
			st.recv = append(st.recv, b)
			st.buffered += n
		}
		st.mu.Unlock()
		if dropped {
			st.creditDropped()
			return nil
		}
	}
	signal(st.readCh)
	return nil
}

// chargeLocked accounts a new receive buffer of capacity c, reserving
// against the scope what the reservation does not cover yet.
func (st *Stream) chargeLocked(c int64) error {
	if st.sess.scope == nil {
		return nil
	}
	st.held += c
	if need := st.held - st.reserved; need > 0 {
		if err := st.sess.reserve(need); err != nil {
			st.held -= c
			return err
		}
		st.reserved += need
	}
	return nil
}

// unchargeLocked accounts buffers of total capacity c freed, and returns
// to the scope what is no longer needed.
func (st *Stream) unchargeLocked(c int64) {
	if st.sess.scope == nil {
		return
	}
	st.held -= c
	st.trimLocked()
}

// trimLocked releases the reservation down to what the stream still
// needs: what it holds, and its grown window while it can receive.
func (st *Stream) trimLocked() {
	if st.sess.scope == nil {
		return
	}
	keep := st.held
	if st.recvWindow > initialWindow && !st.remoteFin && !st.reset && !st.readClosed {
		keep = max(keep, int64(st.recvWindow))
	}
	if extra := st.reserved - keep; extra > 0 {
		st.sess.unreserve(extra)
		st.reserved = keep
	}
}

// baseHold is the most a stream that has not grown its window can come to
// hold in buffers: its 256 KiB of data in pool buffers up to twice the size
// of each frame.
const baseHold = 2 * initialWindow

// reserveGrowthLocked reserves a window grown to w before it is offered,
// and reports whether it may be. A grown window is reserved whole, and
// only if the scope could also still hold the base window of every other
// stream of the session: those streams are promised 256 KiB without a
// reservation and charge it as their data arrives, so a window grown into
// their room would get them reset for data the peer was allowed to send.
// The scope checks that room without holding it, so the check cannot make
// it refuse a buffer the reader charges meanwhile.
func (st *Stream) reserveGrowthLocked(w uint32) bool {
	if st.sess.scope == nil {
		return true
	}
	need := int64(w) - st.reserved
	if need <= 0 {
		return true
	}
	room := int64(max(st.sess.NumStreams()-1, 0)) * baseHold
	if st.sess.reserveLeaving(need, room) != nil {
		return false // the scope logged the refusal; the window stays
	}
	st.reserved += need
	return true
}

// resetForLimit resets the stream, and tells the peer, because its data
// cannot be reserved; the session lives on. It runs on the reader
// goroutine, so the RST is flushed without blocking.
func (st *Stream) resetForLimit(err error) {
	st.mu.Lock()
	if st.reset {
		st.mu.Unlock()
		return
	}
	st.reset = true
	st.resetErr = fmt.Errorf("%w: buffering received data: %w", network.ErrReset, err)
	st.dropLocked()
	st.mu.Unlock()
	st.wake()
	st.sess.logRefusal("yamux: reset a stream whose data exceeds a memory limit", st.id, err)
	st.sess.queueControl(header{typ: typeWindowUpdate, flags: flagRST, stream: st.id})
	st.sess.spawnFlush()
	st.finish()
}

func (st *Stream) resetErrLocked() error {
	if st.resetErr != nil {
		return st.resetErr
	}
	return network.ErrReset
}

// creditDropped gives the peer back the window of data dropped because the
// application closed the stream for reading, as if it had been read: a peer
// that keeps writing to a stream we stopped reading must not stall (it may
// be writing a request and wait to read our answer). It runs on the reader
// goroutine, so the update is flushed without blocking.
func (st *Stream) creditDropped() {
	st.mu.Lock()
	var delta uint32
	if st.readClosed && !st.reset && !st.remoteFin {
		delta = st.creditLocked(false)
	}
	st.mu.Unlock()
	if delta > 0 {
		st.sess.queueControl(header{typ: typeWindowUpdate, stream: st.id, length: delta})
		st.sess.spawnFlush()
	}
}

// appendLocked buffers p, in the tail buffer if it has room, else in a
// new one that the scope must grant.
func (st *Stream) appendLocked(p []byte) error {
	if k := len(st.recv); k > 0 {
		tail := st.recv[k-1]
		if cap(tail)-len(tail) >= len(p) {
			st.recv[k-1] = append(tail, p...)
			st.buffered += uint32(len(p))
			return nil
		}
	}
	b := getBuf(len(p))
	if err := st.chargeLocked(int64(cap(b))); err != nil {
		putBuf(b)
		return err
	}
	st.recv = append(st.recv, append(b, p...))
	st.buffered += uint32(len(p))
	return nil
}

func (st *Stream) addSendWindow(delta uint32) error {
	st.mu.Lock()
	w := uint64(st.sendWindow) + uint64(delta)
	if w > 1<<32-1 {
		st.mu.Unlock()
		return fmt.Errorf("%w: stream %d send window overflow", ErrProtocol, st.id)
	}
	st.sendWindow = uint32(w)
	st.mu.Unlock()
	if delta > 0 {
		signal(st.writeCh)
	}
	return nil
}

// Write sends p, split into frames of at most MaxFrameSize and waiting for
// window as needed.
func (st *Stream) Write(p []byte) (int, error) {
	return st.write(p, false)
}

// WriteFinal writes p and half-closes the stream, the FIN in the same write
// as the last data frame (see network.FinalWriter and writeData). The
// stream is half-closed even when the write fails.
func (st *Stream) WriteFinal(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, st.CloseWrite()
	}
	return st.write(p, true)
}

// write is Write; with fin, the last frame also half-closes the stream.
func (st *Stream) write(p []byte, fin bool) (int, error) {
	s := st.sess
	written := 0
	for written < len(p) {
		st.mu.Lock()
		for {
			if st.reset {
				err := st.resetErrLocked()
				st.mu.Unlock()
				return written, err
			}
			if st.localFin {
				st.mu.Unlock()
				return written, fmt.Errorf("yamux: write: %w", ErrStreamClosed)
			}
			if isClosed(st.writeDL.wait()) {
				st.mu.Unlock()
				return written, errDeadline
			}
			if s.IsClosed() {
				st.mu.Unlock()
				return written, s.Err()
			}
			if st.sendWindow > 0 {
				break
			}
			st.mu.Unlock()
			select {
			case <-st.writeCh:
			case <-st.writeDL.wait():
			case <-s.done:
			}
			st.mu.Lock()
		}
		n := uint32(min(len(p)-written, int(st.sendWindow), int(s.cfg.MaxFrameSize)))
		st.sendWindow -= n
		last := fin && written+int(n) == len(p)
		if last {
			// Set before the frame leaves, as CloseWrite does, so that no
			// other Write slips in behind the FIN.
			st.localFin = true
		}
		st.mu.Unlock()
		err := s.writeData(st.id, p[written:written+int(n)], last, st.writeDL.wait())
		if err != nil {
			st.mu.Lock()
			st.sendWindow += n
			st.mu.Unlock()
		} else {
			written += int(n)
		}
		if last {
			if err != nil {
				// The stream is half-closed all the same, as CloseWrite
				// would leave it; taking localFin back could let a FIN
				// that arrived meanwhile end the stream under a writer.
				s.queueControl(header{typ: typeWindowUpdate, flags: flagFIN, stream: st.id})
				s.tryFlush()
			}
			st.mu.Lock()
			done := st.remoteFin
			st.mu.Unlock()
			signal(st.writeCh)
			if done {
				st.finish()
			}
		}
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// CloseWrite half-closes the stream: the peer reads EOF after the data
// already written, and may keep writing.
func (st *Stream) CloseWrite() error {
	st.mu.Lock()
	if st.reset {
		st.mu.Unlock()
		return network.ErrReset
	}
	if st.localFin {
		st.mu.Unlock()
		return nil
	}
	st.localFin = true
	done := st.remoteFin
	st.mu.Unlock()
	signal(st.writeCh)
	st.sess.queueControl(header{typ: typeWindowUpdate, flags: flagFIN, stream: st.id})
	st.sess.tryFlush()
	if done {
		st.finish()
	}
	return nil
}

// CloseRead discards buffered and future data; reads fail from now on. The
// peer is not told (go-yamux does not tell it either), but the window of
// the data dropped, now and later, is given back as if it had been read, so
// a peer that keeps writing never stalls on a stream we stopped reading.
func (st *Stream) CloseRead() error {
	st.mu.Lock()
	if st.readClosed {
		st.mu.Unlock()
		return nil
	}
	st.readClosed = true
	st.dropLocked()
	var delta uint32
	if !st.reset && !st.remoteFin {
		delta = st.creditLocked(false)
	}
	st.mu.Unlock()
	signal(st.readCh)
	if delta > 0 {
		st.sess.queueControl(header{typ: typeWindowUpdate, stream: st.id, length: delta})
		st.sess.tryFlush()
	}
	return nil
}

// Close half-closes writing (FIN) and stops reading.
func (st *Stream) Close() error {
	err := st.CloseWrite()
	_ = st.CloseRead()
	if errors.Is(err, network.ErrReset) {
		return nil // closing a reset stream is not an error worth reporting
	}
	return err
}

// Reset aborts the stream in both directions and tells the peer (RST).
func (st *Stream) Reset() error {
	st.mu.Lock()
	if st.reset || (st.localFin && st.remoteFin) {
		st.mu.Unlock()
		return nil
	}
	st.reset = true
	st.dropLocked()
	st.mu.Unlock()
	st.wake()
	st.sess.queueControl(header{typ: typeWindowUpdate, flags: flagRST, stream: st.id})
	st.sess.tryFlush()
	st.finish()
	return nil
}

func (st *Stream) remoteReset() {
	st.mu.Lock()
	st.reset = true
	st.dropLocked()
	st.mu.Unlock()
	st.wake()
	st.finish()
}

func (st *Stream) remoteFIN() {
	st.mu.Lock()
	st.remoteFin = true
	st.trimLocked() // no more data can come: the window needs no reserve
	done := st.localFin
	st.mu.Unlock()
	signal(st.readCh)
	if done {
		st.finish()
	}
}

// finish removes the stream from the session once both directions are done.
func (st *Stream) finish() {
	st.sess.removeStream(st)
	st.readDL.stop()
	st.writeDL.stop()
}

// release stops the deadline timers when the session shuts down.
func (st *Stream) release() {
	st.readDL.stop()
	st.writeDL.stop()
}

// dropLocked frees the buffered data, and the reservation the stream no
// longer needs.
func (st *Stream) dropLocked() {
	freed := 0
	for _, b := range st.recv {
		freed += cap(b)
		putBuf(b)
	}
	st.recv, st.recvOff, st.buffered = nil, 0, 0
	st.unchargeLocked(int64(freed))
}

func (st *Stream) wake() {
	signal(st.readCh)
	signal(st.writeCh)
}

// SetDeadline sets both the read and the write deadline.
func (st *Stream) SetDeadline(t time.Time) error {
	st.readDL.set(t)
	st.writeDL.set(t)
	st.wake()
	return nil
}

// SetReadDeadline makes pending and future reads fail with a timeout once t
// passes; the zero time clears it.
func (st *Stream) SetReadDeadline(t time.Time) error {
	st.readDL.set(t)
	signal(st.readCh)
	return nil
}

// SetWriteDeadline makes pending and future writes fail with a timeout once
// t passes; the zero time clears it. A frame already being written to the
// connection completes.
func (st *Stream) SetWriteDeadline(t time.Time) error {
	st.writeDL.set(t)
	signal(st.writeCh)
	return nil
}
