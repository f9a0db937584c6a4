package websocket

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/tachyon-p2p/tachyon/internal/netbuf"
)

// Close status codes, RFC 6455 §7.4.1.
const (
	closeNormal        uint16 = 1000
	closeProtocolError uint16 = 1002
	closeTooBig        uint16 = 1009
)

// closeTimeout bounds the write of the close frame in Close.
const closeTimeout = time.Second

// Conn carries a byte stream over a WebSocket: each Write is sent as one
// binary frame, and Read returns the payloads of incoming data frames (binary
// or text, fragmented or not) in order, without buffering whole frames.
// Pings are answered from Read. It implements net.Conn; it is safe for one
// reader and any number of writers at a time.
type Conn struct {
	raw    net.Conn
	client bool // the client masks what it sends; the server masks nothing

	rmu     sync.Mutex
	br      *bufio.Reader
	remain  uint64 // payload bytes left in the current data frame
	masked  bool
	mask    [4]byte
	maskPos int
	inMsg   bool  // a fragmented message has started
	rerr    error // sticky: a close frame or a protocol error was read

	wmu       sync.Mutex
	wbuf      []byte
	closeSent bool

	closeOnce sync.Once
	closeErr  error
}

func newConn(raw net.Conn, br *bufio.Reader, client bool) *Conn {
	return &Conn{raw: raw, br: br, client: client}
}

// Buffered reports received bytes not yet read, frame headers included
// (enough to tell whether more arrived), and what the socket holds.
func (c *Conn) Buffered() int {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	return c.br.Buffered() + netbuf.Buffered(c.raw)
}

// BufferedExact is false: Buffered counts frame headers and control
// frames, which Read never returns (see netbuf.Exacter).
func (c *Conn) BufferedExact() bool { return false }

// Read reads payload bytes of data frames.
func (c *Conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.rerr != nil {
		return 0, c.rerr
	}
	if len(p) == 0 {
		return 0, nil
	}
	for c.remain == 0 {
		if err := c.nextFrame(); err != nil {
			return 0, err
		}
	}
	if uint64(len(p)) > c.remain {
		p = p[:c.remain]
	}
	n, err := c.br.Read(p)
	if c.masked {
		c.maskPos = maskBytes(c.mask, c.maskPos, p[:n])
	}
	c.remain -= uint64(n)
	if err == io.EOF {
		c.rerr = fmt.Errorf("websocket: connection closed inside a frame: %w", io.ErrUnexpectedEOF)
		err = c.rerr
	}
	return n, err
}

// nextFrame reads frame headers, and handles control frames, until a data
// frame starts or an error occurs. Peek and Discard make a timeout inside a
// header harmless: nothing is consumed until the whole header is there.
func (c *Conn) nextFrame() error {
	b, err := c.br.Peek(2)
	if err != nil {
		if err == io.EOF && len(b) > 0 {
			err = io.ErrUnexpectedEOF
		}
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
			c.rerr = err
		}
		return err
	}
	b, err = c.br.Peek(headerLen(b[1]))
	if err != nil {
		if err == io.EOF {
			c.rerr = io.ErrUnexpectedEOF
			return c.rerr
		}
		return err
	}
	h, n, err := parseHeader(b)
	if err != nil {
		code := closeProtocolError
		if errors.Is(err, errFrameTooBig) {
			code = closeTooBig
		}
		return c.fail(code, err)
	}
	c.br.Discard(n)
	if h.masked == c.client {
		if c.client {
			return c.fail(closeProtocolError, errors.New("websocket: server sent a masked frame"))
		}
		return c.fail(closeProtocolError, errors.New("websocket: client sent an unmasked frame"))
	}

	if h.op.isControl() {
		return c.control(h)
	}
	switch {
	case h.op == opContinuation && !c.inMsg:
		return c.fail(closeProtocolError, errors.New("websocket: continuation frame outside a message"))
	case h.op != opContinuation && c.inMsg:
		return c.fail(closeProtocolError, errors.New("websocket: new message inside a fragmented one"))
	}
	c.inMsg = !h.fin
	c.remain = h.length
	c.masked, c.mask, c.maskPos = h.masked, h.mask, 0
	return nil
}

// control handles a ping, pong or close frame whose header was read.
func (c *Conn) control(h header) error {
	var buf [maxControlPayload]byte
	p := buf[:h.length]
	if _, err := io.ReadFull(c.br, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		// A timeout here would desynchronise the stream: give up on it.
		c.rerr = fmt.Errorf("websocket: reading control frame: %w", err)
		c.raw.Close()
		return c.rerr
	}
	if h.masked {
		maskBytes(h.mask, 0, p)
	}
	switch h.op {
	case opPing:
		// A failed pong shows up on the next write; reading goes on.
		c.writeFrame(opPong, p)
		return nil
	case opPong:
		return nil
	}
	// Close: echo the status code, then report EOF (RFC 6455 §5.5.1).
	var reply []byte
	if len(p) >= 2 {
		reply = p[:2]
	}
	c.writeClose(reply)
	c.rerr = io.EOF
	return io.EOF
}

// fail records a protocol error, sends a close frame with code if no write
// is in progress, and closes the connection.
func (c *Conn) fail(code uint16, err error) error {
	c.rerr = err
	if c.wmu.TryLock() {
		if !c.closeSent {
			c.closeSent = true
			c.raw.SetWriteDeadline(time.Now().Add(closeTimeout))
			c.writeLocked(opClose, binary.BigEndian.AppendUint16(nil, code))
		}
		c.wmu.Unlock()
	}
	c.raw.Close()
	return err
}

// writeClose sends a close frame with payload p, once.
func (c *Conn) writeClose(p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return nil
	}
	c.closeSent = true
	return c.writeLocked(opClose, p)
}

func (c *Conn) writeFrame(op opcode, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return net.ErrClosed
	}
	return c.writeLocked(op, p)
}

// writeLocked writes one frame, header and payload in one write. The
// caller holds wmu.
func (c *Conn) writeLocked(op opcode, p []byte) error {
	h := header{fin: true, op: op, masked: c.client, length: uint64(len(p))}
	if c.client {
		rand.Read(h.mask[:])
	}
	b := appendHeader(c.wbuf[:0], h)
	hl := len(b)
	b = append(b, p...)
	if c.client {
		maskBytes(h.mask, 0, b[hl:])
	}
	_, err := c.raw.Write(b)
	if cap(b) <= 1<<20 {
		c.wbuf = b[:0]
	} else {
		c.wbuf = nil
	}
	if err != nil {
		return fmt.Errorf("websocket: write: %w", err)
	}
	return nil
}

// Write sends p as one binary frame.
func (c *Conn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := c.writeFrame(opBinary, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close sends a close frame (status 1000), waiting at most a second for
// the write, and closes the connection without waiting for the peer's
// reply.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		// Unblocks a Write stuck on a peer that does not read.
		c.raw.SetWriteDeadline(time.Now().Add(closeTimeout))
		c.writeClose(binary.BigEndian.AppendUint16(nil, closeNormal))
		c.closeErr = c.raw.Close()
	})
	return c.closeErr
}

func (c *Conn) LocalAddr() net.Addr                { return c.raw.LocalAddr() }
func (c *Conn) RemoteAddr() net.Addr               { return c.raw.RemoteAddr() }
func (c *Conn) SetDeadline(t time.Time) error      { return c.raw.SetDeadline(t) }
func (c *Conn) SetReadDeadline(t time.Time) error  { return c.raw.SetReadDeadline(t) }
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.raw.SetWriteDeadline(t) }
