package mss

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/varint"
)

// LazyConn negotiates one protocol optimistically, without a round trip:
// the first Write sends the header, the proposal and the data in one write,
// and the first Read consumes the listener's header and echo before
// returning data. If the listener answers "na", Read (and every later Write)
// returns a *NotSupportedError.
//
// Use it only when the listener is known to speak the protocol (identify
// listed it, or the address names it): after a "na" the listener reads the
// data that followed the proposal as multistream tokens.
//
// Closing never loses the handshake. Close sends the header and proposal if
// nothing was written yet, and reads the answer if nothing read it, so the
// listener is not cut off mid-negotiation and a refusal is reported; only
// when another goroutine is in the middle of the first Write or Read does
// Close skip this and close at once, to interrupt it. CloseWrite and
// CloseRead likewise send the proposal first, and CloseRead reads the answer
// first.
//
// LazyConn wraps an io.ReadWriteCloser rather than a network.MuxedStream so
// that it also serves raw connections (security negotiation on a TCP
// connection). CloseWrite, CloseRead, Reset and the deadline setters pass
// through when the wrapped value has them and otherwise return an error
// matching errors.ErrUnsupported; over a MuxedStream, *LazyConn is a
// MuxedStream.
type LazyConn struct {
	rwc   io.ReadWriteCloser
	proto protocol.ID

	wmu   sync.Mutex  // held during the first write, the one that carries the handshake
	sent  atomic.Bool // the header and proposal are being (or were) written
	wrote atomic.Bool // the first write is over: later writes need not take wmu

	rmu      sync.Mutex  // held while reading the listener's header and answer
	answered atomic.Bool // the answer was read; rerr is set before this
	rerr     error       // why negotiation failed, if it did

	readDL atomic.Bool // the caller set a read deadline
}

// closeAnswerTimeout bounds how long Close and CloseRead wait for the
// listener's answer when the caller set no read deadline: a peer that went
// silent must not hold a close until the connection's keepalive gives up.
var closeAnswerTimeout = 10 * time.Second

// NewLazy returns rwc wrapped to negotiate proto lazily. Nothing is written
// until the first Write, Read or Close. The LazyConn takes over rwc.
func NewLazy(rwc io.ReadWriteCloser, proto protocol.ID) *LazyConn {
	c := &LazyConn{rwc: rwc, proto: proto}
	if err := checkID(proto); err != nil {
		// Report it on first use, and never send anything.
		c.rerr = err
		c.answered.Store(true)
		c.sent.Store(true)
	}
	return c
}

// Protocol returns the protocol being negotiated.
func (c *LazyConn) Protocol() protocol.ID { return c.proto }

// failed returns the negotiation error, once the answer has been read.
func (c *LazyConn) failed() error {
	if c.answered.Load() {
		return c.rerr
	}
	return nil
}

// Write writes p, preceded on the first call by the header and proposal in
// the same write.
func (c *LazyConn) Write(p []byte) (int, error) {
	if err := c.failed(); err != nil {
		return 0, err
	}
	if !c.wrote.Load() {
		c.wmu.Lock()
		if !c.sent.Load() {
			// Only the handshake and the first chunk are written under wmu:
			// a first Read waits for them (flush), and must not wait for the
			// rest, which may need that Read to make progress (see
			// writeHandshake).
			head := p[:min(len(p), firstChunk)]
			n, err := c.writeHandshake(head, false)
			c.wrote.Store(true)
			c.wmu.Unlock()
			if err != nil || len(head) == len(p) {
				return n, err
			}
			m, err := c.rwc.Write(p[len(head):])
			return n + m, err
		}
		c.wmu.Unlock()
	}
	return c.rwc.Write(p)
}

// WriteFinal writes p and half-closes (see network.FinalWriter); on the
// first write the header and proposal ride in the same frame as p and the
// half-close.
func (c *LazyConn) WriteFinal(p []byte) (int, error) {
	if err := c.failed(); err != nil {
		return 0, err
	}
	if !c.wrote.Load() {
		if len(p) > firstChunk {
			n, err := c.Write(p)
			if err != nil {
				return n, err
			}
			return n, c.CloseWrite()
		}
		c.wmu.Lock()
		if !c.sent.Load() {
			n, err := c.writeHandshake(p, true)
			c.wrote.Store(true)
			c.wmu.Unlock()
			return n, err
		}
		c.wmu.Unlock()
	}
	return network.WriteFinal(c.rwc, p)
}

// firstChunk bounds the data that rides in the handshake's write, so a
// large first Write is not copied whole into a new buffer.
const firstChunk = 64 << 10

// writeHandshake writes header, proposal and p in one write, and with final
// half-closes in the same step (network.WriteFinal). c.wmu is held.
//
// sent is set before writing: from then on the proposal is on its way ahead
// of any data, so a concurrent first Read may go and wait for the answer.
// Waiting for a large write instead deadlocks when it exceeds the
// flow-control window and the listener echoes: its replies fill our receive
// window while nobody reads them.
func (c *LazyConn) writeHandshake(p []byte, final bool) (int, error) {
	buf := make([]byte, 0, len(headerMsg)+varint.MaxLen+len(c.proto)+1+len(p))
	buf = append(buf, headerMsg...)
	buf = appendToken(buf, c.proto)
	hs := len(buf)
	buf = append(buf, p...)
	c.sent.Store(true) // even if the write fails: never send the handshake twice
	var n int
	var err error
	if final {
		n, err = network.WriteFinal(c.rwc, buf)
	} else {
		n, err = c.rwc.Write(buf)
	}
	if err != nil {
		return max(0, n-hs), fmt.Errorf("mss: sending the header and proposal %q: %w", c.proto, err)
	}
	return len(p), nil
}

// flush sends the header and proposal if nothing was written yet.
func (c *LazyConn) flush() error {
	if c.sent.Load() {
		return nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.sent.Load() {
		return nil
	}
	_, err := c.writeHandshake(nil, false)
	return err
}

// Read reads data, first consuming the listener's header and answer.
func (c *LazyConn) Read(p []byte) (int, error) {
	if !c.answered.Load() {
		c.rmu.Lock()
		c.readAnswerLocked()
		c.rmu.Unlock()
	}
	if err := c.failed(); err != nil {
		return 0, err
	}
	return c.rwc.Read(p)
}

// readAnswerLocked makes sure the proposal is out and reads the listener's
// header and answer, once. c.rmu is held.
func (c *LazyConn) readAnswerLocked() {
	if c.answered.Load() {
		return
	}
	// A failed write does not stop us: the listener may have answered and
	// closed before our write landed, and its answer is still readable.
	_ = c.flush()
	c.rerr = readFinalAnswer(c.rwc, true, []protocol.ID{c.proto})
	c.answered.Store(true)
}

// finish completes the handshake before a close: it sends the proposal and
// reads the answer unless that already happened, and returns a negotiation
// error found now. If another goroutine is in the middle of either step it
// returns at once, so that the close interrupts that goroutine rather than
// wait for it.
func (c *LazyConn) finish(readAnswer bool) error {
	if !c.sent.Load() {
		if !c.wmu.TryLock() {
			return nil // a first Write is under way; do not wait behind it
		}
		var err error
		if !c.sent.Load() {
			_, err = c.writeHandshake(nil, false)
		}
		c.wmu.Unlock()
		if err != nil && !readAnswer {
			return err
		}
	}
	if !readAnswer || c.answered.Load() || !c.rmu.TryLock() {
		return nil
	}
	defer c.rmu.Unlock()
	if c.answered.Load() {
		return nil
	}
	c.readAnswerLocked()
	return c.rerr
}

// Close completes the handshake (see LazyConn) and closes the wrapped value.
// It reports a negotiation failure that it discovered itself.
func (c *LazyConn) Close() error {
	c.boundAnswer()
	herr := c.finish(true)
	if err := c.rwc.Close(); err != nil {
		return errors.Join(herr, fmt.Errorf("mss: closing: %w", err))
	}
	return herr
}

// CloseWrite sends the proposal if nothing was written yet, then half-closes.
func (c *LazyConn) CloseWrite() error {
	cw, ok := c.rwc.(interface{ CloseWrite() error })
	if !ok {
		return c.unsupported("CloseWrite")
	}
	// Like finish(false), but the proposal and the half-close go in one
	// frame where the stream can. wmu held by a first Write means the
	// proposal is on its way (every holder sets sent), as after a failed
	// TryLock in finish.
	if !c.sent.Load() && c.wmu.TryLock() {
		if !c.sent.Load() {
			_, err := c.writeHandshake(nil, true)
			c.wmu.Unlock()
			return err
		}
		c.wmu.Unlock()
	}
	return cw.CloseWrite()
}

// CloseRead completes the handshake, reading the listener's answer, then
// stops reading. It reports a negotiation failure.
func (c *LazyConn) CloseRead() error {
	cr, ok := c.rwc.(interface{ CloseRead() error })
	if !ok {
		return c.unsupported("CloseRead")
	}
	c.boundAnswer()
	herr := c.finish(true)
	if err := cr.CloseRead(); err != nil {
		return errors.Join(herr, err)
	}
	return herr
}

// boundAnswer sets a read deadline of closeAnswerTimeout before a close
// reads the answer, unless the caller set one or the answer is in.
func (c *LazyConn) boundAnswer() {
	if c.answered.Load() || c.readDL.Load() {
		return
	}
	if d, ok := c.rwc.(interface{ SetReadDeadline(time.Time) error }); ok {
		d.SetReadDeadline(time.Now().Add(closeAnswerTimeout))
	}
}

// Reset aborts the wrapped stream, handshake or not.
func (c *LazyConn) Reset() error {
	r, ok := c.rwc.(interface{ Reset() error })
	if !ok {
		return c.unsupported("Reset")
	}
	return r.Reset()
}

// SetDeadline sets the wrapped value's read and write deadlines.
func (c *LazyConn) SetDeadline(t time.Time) error {
	d, ok := c.rwc.(interface{ SetDeadline(time.Time) error })
	if !ok {
		return c.unsupported("SetDeadline")
	}
	c.readDL.Store(!t.IsZero())
	return d.SetDeadline(t)
}

// SetReadDeadline sets the wrapped value's read deadline.
func (c *LazyConn) SetReadDeadline(t time.Time) error {
	d, ok := c.rwc.(interface{ SetReadDeadline(time.Time) error })
	if !ok {
		return c.unsupported("SetReadDeadline")
	}
	c.readDL.Store(!t.IsZero())
	return d.SetReadDeadline(t)
}

// SetWriteDeadline sets the wrapped value's write deadline.
func (c *LazyConn) SetWriteDeadline(t time.Time) error {
	d, ok := c.rwc.(interface{ SetWriteDeadline(time.Time) error })
	if !ok {
		return c.unsupported("SetWriteDeadline")
	}
	return d.SetWriteDeadline(t)
}

func (c *LazyConn) unsupported(method string) error {
	return fmt.Errorf("mss: %T has no %s: %w", c.rwc, method, errors.ErrUnsupported)
}
