package tls

import (
	"sync"

	"github.com/tachyon-p2p/tachyon/internal/netbuf"
)

// readAheadSize is the most one read from the raw connection brings in
// while data is flowing: 16 records. crypto/tls reads into what its own
// record buffer has free, one or two records per read. It costs no memory
// the kernel was not holding already: only bytes the kernel says it holds
// are read ahead. Measured on loopback, 64 KiB took 2% off the receiver's
// CPU per byte, 256 KiB 8%, 512 KiB no more.
const readAheadSize = 256 << 10

var readAheadPool = sync.Pool{New: func() any { b := make([]byte, readAheadSize); return &b }}

// readAhead is the read half of batchConn: once the handshake is done, a
// read that the kernel says will not wait (SIOCINQ, through netbuf) and
// that is larger than crypto/tls's buffer goes to a pooled buffer of
// readAheadSize, and crypto/tls's next reads are served from it. The
// buffer is held only while it has unread bytes, and never across a read
// that could wait, so an idle connection keeps none. A read that could
// wait goes straight to the raw connection into crypto/tls's buffer, as
// without read-ahead: deadlines, Close and errors reach it as before.
//
// crypto/tls reads under its input lock, so there is one reader at a time.
type readAhead struct {
	on     bool    // set after the handshake
	buf    *[]byte // read, not yet returned; pooled, nil when empty
	lo, hi int     // the unread bytes are (*buf)[lo:hi]
	err    error   // returned once buf is drained
	queued int     // bytes the kernel holds that are not read yet, at least
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
	if !r.on || r.queued <= len(p) || len(p) >= readAheadSize {
		n, err := b.Conn.Read(p)
		b.readDone(n, len(p), err)
		return n, err
	}
	buf := readAheadPool.Get().(*[]byte)
	n, err := b.Conn.Read(*buf)
	b.readDone(n, len(*buf), err)
	k := copy(p, (*buf)[:n])
	if k == n {
		readAheadPool.Put(buf)
		return n, err
	}
	r.buf, r.lo, r.hi, r.err = buf, k, n, err
	return k, nil
}

// readDone accounts for a read of n bytes into a buffer of size. A read
// that filled its buffer suggests more is waiting: the kernel is asked how
// much, once per burst rather than once per read.
func (b *batchConn) readDone(n, size int, err error) {
	r := &b.rd
	if !r.on {
		return
	}
	r.queued = max(r.queued-n, 0)
	if r.queued == 0 && n == size && err == nil {
		r.queued = netbuf.Buffered(b.Conn)
	}
}
