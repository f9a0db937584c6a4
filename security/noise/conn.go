package noise

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/netbuf"
)

// Framing (noise/README.md, "Wire Format"): every Noise message, handshake or
// transport, travels as a 2-byte big-endian length followed by the message.
// A transport message is ciphertext plus a 16-byte tag, so a frame carries at
// most 65535-16 plaintext bytes.
//
// The data path is built for throughput:
//   - Write seals straight from the caller's slice into one pooled buffer,
//     header and ciphertext side by side, packing up to writeBatch full frames
//     into a single Write call on the raw connection.
//   - Read starts each burst with a read into a small array inside the Conn,
//     so a connection blocked waiting for data holds no large buffer. Small
//     frames (keepalives, window updates) are served from there. When a frame
//     does not fit, Read moves the bytes into one pooled buffer and fills it
//     with as much as the socket has, then opens frames directly into the
//     caller's slice when they fit (no extra copy), or in place in the buffer
//     otherwise, and keeps going while more whole frames are buffered and fit.
//   - Buffers go back to their pools as soon as nothing is buffered, so quiet
//     connections hold no frame buffers.
const (
	frameHdr    = 2
	maxFrame    = 65535
	maxPlain    = maxFrame - tagLen
	writeBatch  = 4
	writeBufLen = writeBatch * (frameHdr + maxFrame)
	readBufLen  = 4 * (frameHdr + maxFrame)
	// smallBufLen is the per-conn array the first read of a burst goes to.
	// It holds a frame of up to smallBufLen-frameHdr-tagLen plaintext bytes,
	// enough for muxer control frames.
	smallBufLen = 256
	// smallWriteLen is the buffer of a write that fits one small frame
	// (control frames, handshake-sized messages, requests).
	smallWriteLen = 2048
)

var (
	writePool = sync.Pool{New: func() any { b := make([]byte, writeBufLen); return &b }}
	readPool  = sync.Pool{New: func() any { b := make([]byte, readBufLen); return &b }}
	// framePool holds one frame: a large frame that has not fully arrived
	// waits there, so a peer that announces 64 KiB and sends 100 bytes
	// pins a quarter of what a burst buffer would cost.
	framePool = sync.Pool{New: func() any { b := make([]byte, frameHdr+maxFrame); return &b }}
	// smallWritePool serves small writes: the collector empties pools, and
	// refilling writePool for a 12-byte write would allocate 256 KiB.
	smallWritePool = sync.Pool{New: func() any { b := make([]byte, smallWriteLen); return &b }}
)

// Conn is a Noise-secured connection. It implements network.SecureConn.
// Read and Write may be called concurrently with each other and with Close.
type Conn struct {
	raw net.Conn

	localPeer        peer.ID
	remotePeer       peer.ID
	remoteKey        crypto.PubKey
	state            network.ConnState
	remoteCertHashes [][]byte

	rmu    sync.Mutex
	recv   cipherState
	rbuf   []byte     // small[:] or *pooled; nil while idle
	pooled *[]byte    // from readPool or framePool while a large frame is buffered
	pool   *sync.Pool // where pooled goes back
	rpos   int        // start of unread raw bytes in rbuf
	rend   int        // end of unread raw bytes in rbuf
	plain  []byte     // opened bytes not yet returned; aliases rbuf
	rerr   error      // sticky read error
	small  [smallBufLen]byte

	wmu  sync.Mutex
	send cipherState
	werr error // sticky write error
}

var _ network.SecureConn = (*Conn)(nil)

// LocalPeer returns our peer ID.
func (c *Conn) LocalPeer() peer.ID { return c.localPeer }

// RemotePeer returns the authenticated peer ID of the other side.
func (c *Conn) RemotePeer() peer.ID { return c.remotePeer }

// RemotePublicKey returns the other side's host key.
func (c *Conn) RemotePublicKey() crypto.PubKey { return c.remoteKey }

// ConnState reports the security protocol and the early-negotiated muxer
// (empty when multistream-select must negotiate one).
func (c *Conn) ConnState() network.ConnState { return c.state }

// RemoteCertHashes returns the webtransport_certhashes the responder sent in
// message 2 (seen by the initiator; nil on the responder side).
func (c *Conn) RemoteCertHashes() [][]byte { return c.remoteCertHashes }

// Buffered reports how many bytes have arrived and wait to be read:
// decrypted ones, and raw ones of frames not yet opened (counted as they
// are on the wire, which is all a caller asking "did more come with what I
// read?" needs).
func (c *Conn) Buffered() int {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	return len(c.plain) + c.rend - c.rpos
}

// Read reads decrypted application data.
func (c *Conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if len(c.plain) > 0 {
		n := copy(p, c.plain)
		c.plain = c.plain[n:]
		c.releaseReadBuf()
		return n, nil
	}
	if c.rerr != nil {
		c.dropReadBuf()
		return 0, c.rerr
	}
	if len(p) == 0 {
		return 0, nil
	}
	n := 0
	for n == 0 {
		frame, err := c.readFrame()
		if err != nil {
			return 0, c.readFailed(err)
		}
		if n, err = c.open(p, frame); err != nil {
			c.dropReadBuf()
			return 0, err
		}
	}
	// Serve further frames that are already buffered whole and fit entirely.
	for len(c.plain) == 0 && c.rend-c.rpos >= frameHdr {
		buf := c.rbuf
		l := int(binary.BigEndian.Uint16(buf[c.rpos:]))
		if c.rend-c.rpos < frameHdr+l || l < tagLen || l-tagLen > len(p)-n {
			break
		}
		frame := buf[c.rpos+frameHdr : c.rpos+frameHdr+l]
		c.rpos += frameHdr + l
		m, err := c.open(p[n:], frame)
		if err != nil {
			return n, nil // the sticky error surfaces on the next Read
		}
		n += m
	}
	c.releaseReadBuf()
	return n, nil
}

// open decrypts one transport frame into p when it fits, otherwise in place,
// keeping what does not fit in c.plain.
func (c *Conn) open(p, frame []byte) (int, error) {
	if len(frame) < tagLen {
		c.rerr = fmt.Errorf("noise: frame of %d bytes from %s is shorter than its tag", len(frame), c.remotePeer)
		return 0, c.rerr
	}
	if len(frame)-tagLen <= len(p) {
		out, err := c.recv.decrypt(p[:0], nil, frame)
		if err != nil {
			c.rerr = fmt.Errorf("noise: reading from %s: %w", c.remotePeer, err)
			return 0, c.rerr
		}
		return len(out), nil
	}
	out, err := c.recv.decrypt(frame[:0], nil, frame)
	if err != nil {
		c.rerr = fmt.Errorf("noise: reading from %s: %w", c.remotePeer, err)
		return 0, c.rerr
	}
	n := copy(p, out)
	c.plain = out[n:]
	return n, nil
}

// readFailed records err as sticky unless it is a timeout: after a deadline
// the partial frame stays buffered and a later Read can continue.
func (c *Conn) readFailed(err error) error {
	if isTimeout(err) {
		return err
	}
	c.rerr = err
	c.dropReadBuf()
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// readFrame returns the body of the next frame, aliasing the read buffer; it
// stays valid until the next fill.
func (c *Conn) readFrame() ([]byte, error) {
	if err := c.fill(frameHdr); err != nil {
		return nil, err
	}
	l := int(binary.BigEndian.Uint16(c.rbuf[c.rpos:]))
	if err := c.fill(frameHdr + l); err != nil {
		return nil, err
	}
	start := c.rpos + frameHdr
	c.rpos = start + l
	return c.rbuf[start : start+l : start+l], nil
}

// fill makes at least need unread bytes available, reading as much as the
// raw connection offers per call. An idle connection reads into c.small; a
// pooled buffer is taken only once a frame too large for it is arriving.
func (c *Conn) fill(need int) error {
	if c.rbuf == nil {
		c.rbuf = c.small[:]
		c.rpos, c.rend = 0, 0
	}
	if c.rend-c.rpos >= need {
		return nil
	}
	if len(c.rbuf)-c.rpos < need {
		if need > len(c.rbuf) {
			// A burst buffer unless the frame is known not to be all
			// there (the kernel or the transport says so): bulk data is
			// read in large gulps, a stalled frame holds one frame's worth.
			pool := &readPool
			if q, ok := netbuf.Queued(c.raw); ok && c.rend-c.rpos+q < need {
				pool = &framePool
			}
			bp := pool.Get().(*[]byte)
			c.rend = copy(*bp, c.rbuf[c.rpos:c.rend])
			c.rbuf, c.pooled, c.pool = *bp, bp, pool
		} else {
			c.rend = copy(c.rbuf, c.rbuf[c.rpos:c.rend])
		}
		c.rpos = 0
	}
	buf := c.rbuf
	for c.rend-c.rpos < need {
		n, err := c.raw.Read(buf[c.rend:])
		c.rend += n
		if err != nil {
			if c.rend-c.rpos >= need {
				return nil
			}
			if err == io.EOF && c.rend > c.rpos {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// releaseReadBuf drops the read buffer once nothing is buffered, returning a
// pooled one to its pool.
func (c *Conn) releaseReadBuf() {
	if c.rbuf != nil && len(c.plain) == 0 && c.rpos == c.rend {
		if c.pooled != nil {
			c.pool.Put(c.pooled)
			c.pooled, c.pool = nil, nil
		}
		c.rbuf, c.plain = nil, nil // an empty plain still pins the buffer
	}
}

// dropReadBuf discards whatever is buffered once the stream is broken.
func (c *Conn) dropReadBuf() {
	c.rpos, c.rend, c.plain = 0, 0, nil
	c.releaseReadBuf()
}

// Write encrypts p into frames of at most 65519 plaintext bytes.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return 0, c.werr
	}
	pool := &writePool
	if frameHdr+len(p)+tagLen <= smallWriteLen {
		pool = &smallWritePool
	}
	bp := pool.Get().(*[]byte)
	defer pool.Put(bp)
	buf := *bp
	written := 0
	for len(p) > 0 {
		off, batch := 0, 0
		// Each frame is sealed where it goes: as many as the buffer holds
		// (the small buffer holds all of a small write).
		for len(p) > batch {
			chunk := min(len(p)-batch, maxPlain)
			if off+frameHdr+chunk+tagLen > len(buf) {
				break
			}
			sealed, err := c.send.encrypt(buf[off+frameHdr:off+frameHdr], nil, p[batch:batch+chunk])
			if err != nil {
				c.werr = fmt.Errorf("noise: writing to %s: %w", c.remotePeer, err)
				return written, c.werr
			}
			binary.BigEndian.PutUint16(buf[off:], uint16(len(sealed)))
			off += frameHdr + len(sealed)
			batch += chunk
		}
		if _, err := c.raw.Write(buf[:off]); err != nil {
			// A frame may be half written: the stream cannot continue.
			c.werr = err
			return written, err
		}
		written += batch
		p = p[batch:]
	}
	return written, nil
}

// writeRaw frames a handshake message and writes it.
func (c *Conn) writeRaw(msg []byte) error {
	if len(msg) > maxFrame {
		return fmt.Errorf("handshake message of %d bytes exceeds %d", len(msg), maxFrame)
	}
	_, err := c.raw.Write(msg)
	return err
}

// Close closes the underlying connection.
func (c *Conn) Close() error { return c.raw.Close() }

// CloseWrite half-closes the underlying connection when it supports it
// (TCP does): the peer reads EOF after the data already written.
func (c *Conn) CloseWrite() error {
	cw, ok := c.raw.(interface{ CloseWrite() error })
	if !ok {
		return errors.New("noise: underlying connection does not support CloseWrite")
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return cw.CloseWrite()
}

func (c *Conn) LocalAddr() net.Addr                { return c.raw.LocalAddr() }
func (c *Conn) RemoteAddr() net.Addr               { return c.raw.RemoteAddr() }
func (c *Conn) SetDeadline(t time.Time) error      { return c.raw.SetDeadline(t) }
func (c *Conn) SetReadDeadline(t time.Time) error  { return c.raw.SetReadDeadline(t) }
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.raw.SetWriteDeadline(t) }
