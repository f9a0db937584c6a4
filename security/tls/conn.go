package tls

import (
	"net"
	"sync"
	"sync/atomic"
)

// maxBatch bounds the records gathered for one write to the raw
// connection: four full records and a bit, so that a 64 KiB write leaves
// in one piece, and a larger one in 64 KiB pieces.
const maxBatch = 4*(16<<10+tlsRecordOverhead) + 1<<10

// tlsRecordOverhead is a TLS 1.3 record's size beyond its plaintext: the
// 5-byte header, the content-type byte and the 16-byte AEAD tag.
const tlsRecordOverhead = 5 + 1 + 16

// batchConn sits between crypto/tls and the raw connection (its reads:
// see readAhead). crypto/tls
// writes each record (at most 16 KiB of plaintext) with a write call of its
// own: on TCP with Nagle off, a system call and a segment per 16 KiB,
// which both ends pay for (and, on loopback, a wake-up of the reader). While
// a Conn.Write runs, the records are gathered and leave in one write
// instead. Outside of Conn.Write (the handshake,
// alerts, close_notify) writes go straight through.
type batchConn struct {
	net.Conn

	// active counts the Conn.Writes in progress, gathered writes
	// included; Close reads it without mu, which a stuck write holds.
	active   atomic.Int32
	mu       sync.Mutex
	batchers int     // Conn.Writes in progress; guarded by mu
	planned  int     // their plaintext bytes; guarded by mu
	buf      *[]byte // records not written yet; pooled, nil when empty
	err      error   // the first failed write: the stream is cut from there on

	rd readAhead // the read side; crypto/tls's reader only
}

var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, maxBatch); return &b }}

// smallBatch is the buffer of writes of at most smallPlain bytes, room
// for dozens of records' overhead: the collector empties pools, and
// refilling batchPool for a 12-byte write would allocate 66 KiB.
const (
	smallBatch = 2 << 10
	smallPlain = 1 << 10
)

var smallBatchPool = sync.Pool{New: func() any { b := make([]byte, 0, smallBatch); return &b }}

// begin starts gathering the records of a write of n plaintext bytes.
func (b *batchConn) begin(n int) {
	b.active.Add(1)
	b.mu.Lock()
	b.batchers++
	b.planned += n
	b.mu.Unlock()
}

// end writes what was gathered and stops gathering once no Conn.Write is
// left in progress. It returns the error of any gathered write, which the
// writer of the records may not have seen.
func (b *batchConn) end(n int) error {
	defer b.active.Add(-1)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batchers--
	b.planned -= n
	b.flushLocked()
	return b.err
}

// Write is called by crypto/tls, one record (or handshake flight) at a
// time, under its write lock.
func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	if b.batchers == 0 {
		return b.writeLocked(p)
	}
	if b.buf != nil && len(*b.buf)+len(p) > cap(*b.buf) {
		if b.flushLocked(); b.err != nil {
			return 0, b.err
		}
	}
	if len(p) > maxBatch {
		return b.writeLocked(p)
	}
	if b.buf == nil {
		if b.planned <= smallPlain && len(p) <= smallBatch {
			b.buf = smallBatchPool.Get().(*[]byte)
		} else {
			b.buf = batchPool.Get().(*[]byte)
		}
	}
	*b.buf = append(*b.buf, p...)
	return len(p), nil
}

// flushLocked writes the gathered records, if any, and returns the buffer
// to the pool.
func (b *batchConn) flushLocked() {
	if b.buf == nil {
		return
	}
	if b.err == nil {
		_, _ = b.writeLocked(*b.buf)
	}
	*b.buf = (*b.buf)[:0]
	if cap(*b.buf) == smallBatch {
		smallBatchPool.Put(b.buf)
	} else {
		batchPool.Put(b.buf)
	}
	b.buf = nil
}

func (b *batchConn) writeLocked(p []byte) (int, error) {
	n, err := b.Conn.Write(p)
	if err != nil && b.err == nil {
		b.err = err
	}
	return n, err
}

// Write encrypts p and writes it to the connection in as few writes as the
// record sizes allow (see batchConn).
func (c *Conn) Write(p []byte) (int, error) {
	if c.batch == nil {
		return c.Conn.Write(p)
	}
	c.batch.begin(len(p))
	n, err := c.Conn.Write(p)
	if ferr := c.batch.end(len(p)); ferr != nil && err == nil {
		// Records crypto/tls counts as written did not all leave.
		return 0, ferr
	}
	return n, err
}

// WriteBuffers writes the buffers in order, each in records of its own,
// with one write to the raw connection (for up to maxBatch bytes): a
// yamux frame header and its payload leave together without being joined
// by a copy first.
func (c *Conn) WriteBuffers(bufs [][]byte) (int, error) {
	total := 0
	for _, p := range bufs {
		total += len(p)
	}
	if c.batch != nil {
		c.batch.begin(total)
	}
	n := 0
	var err error
	for _, p := range bufs {
		var k int
		k, err = c.Conn.Write(p)
		n += k
		if err != nil {
			break
		}
	}
	if c.batch != nil {
		if ferr := c.batch.end(total); ferr != nil && err == nil {
			// Records crypto/tls counts as written did not all leave.
			return 0, ferr
		}
	}
	return n, err
}

// Close closes the connection. crypto/tls skips its close_notify when a
// Write is in progress, since that alert could wait behind the write for
// a peer that does not read; gathered records leave after crypto/tls's
// Write returned, so a write in progress is told here, by closing the raw
// connection first (the alert then fails at once).
func (c *Conn) Close() error {
	if c.batch != nil && c.batch.active.Load() > 0 {
		_ = c.batch.Conn.Close()
	}
	return c.Conn.Close()
}
