package tls

import (
	"sync"

	"github.com/tachyon-p2p/tachyon/internal/netbuf"
)

// readAheadSize is the most one read from the raw connection brings in
// while data is flowing: 16 records. crypto/tls reads into what its own
// record buffer has free, one or two records per read. What is read ahead
// sat in the socket's kernel buffer already: it moves rather than grows
// (the pooled buffer's unused tail aside). Measured on loopback, 64 KiB
// took 2% off the receiver's CPU per byte, 256 KiB 3 to 8%, 512 KiB no
// more than 256 KiB.
const readAheadSize = 256 << 10

var readAheadPool = sync.Pool{New: func() any { b := make([]byte, readAheadSize); return &b }}

// readAhead is the read half of batchConn: once the handshake is done,
// when a read filled its buffer (so more may be waiting) and the kernel says
// (SIOCINQ, through netbuf) it holds more than crypto/tls's buffer has room
// for, the next read goes to a pooled buffer of readAheadSize, and
// crypto/tls's reads after it are served from that. The buffer is held only
// while it has unread bytes, and only for reads that find bytes waiting, so
// an idle connection keeps none. Any other read goes straight to the raw
// connection into crypto/tls's buffer, as without read-ahead: deadlines,
// Close and errors reach it as before.
//
// The kernel is asked before each such read rather than trusted for a
// burst. Read-ahead is on only over a connection that counts exactly
// (netbuf.Exact): a WebSocket counts frame headers and control frames, so
// a read ahead could wait there holding the buffer.
//
// crypto/tls reads under its input lock, so there is one reader at a time.
type readAhead struct {
	on   bool    // set after the handshake
	full bool    // the last read filled its buffer
	buf  *[]byte // read, not yet returned; pooled, nil when empty
	lo   int     // the unread bytes are (*buf)[lo:hi]
	hi   int
	err  error // returned once buf is drained
}

// Read is called by crypto/tls.
func (b *batchConn) Read(p []byte) (int, error) {
	r := &b.rd
	if r.buf != nil {
		n := copy(p, (*r.buf)[r.lo:r.hi])
		r.lo += n
		if r.lo < r.hi {
			return n, nil
		}
		readAheadPool.Put(r.buf)
		r.buf = nil
		err := r.err
		r.err = nil
		return n, err
	}
	if !r.on || !r.full || len(p) >= readAheadSize || netbuf.Buffered(b.Conn) <= len(p) {
		n, err := b.Conn.Read(p)
		r.full = n == len(p) && err == nil
		return n, err
	}
	buf := readAheadPool.Get().(*[]byte)
	n, err := b.Conn.Read(*buf)
	r.full = n == len(*buf) && err == nil
	k := copy(p, (*buf)[:n])
	if k == n {
		readAheadPool.Put(buf)
		return n, err
	}
	r.buf, r.lo, r.hi, r.err = buf, k, n, err
	return k, nil
}
