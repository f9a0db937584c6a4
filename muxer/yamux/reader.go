package yamux

import (
	"io"
)

// smallReadSize is the array inside each session that the first read of a
// burst goes to: a few headers and window updates, or a ping.
const smallReadSize = 64

// frameReader is the session's read buffer, used by its reader goroutine
// only. An idle session blocks reading into a small array inside it; a
// pooled readBufSize buffer is taken only when a burst needs more and goes
// back as soon as everything buffered is consumed. Over TLS and Noise,
// which buffer whole records themselves, a per-session buffer that lived
// as long as the session was a second copy of the same bytes, and the
// largest allocation an idle inbound connection kept.
type frameReader struct {
	conn   io.Reader
	buf    []byte // nil, small[:] or a pooled buffer; unread bytes are buf[r:w]
	r, w   int
	pooled bool
	err    error // sticky read error, returned once the buffer is drained
	small  [smallReadSize]byte
}

// Peek returns the next n bytes (n <= readBufSize) without consuming them;
// the slice is valid until the next call.
func (f *frameReader) Peek(n int) ([]byte, error) {
	for f.w-f.r < n {
		if err := f.fill(n); err != nil {
			return nil, err
		}
	}
	return f.buf[f.r : f.r+n], nil
}

// buffered is how many bytes are read and not consumed yet.
func (f *frameReader) buffered() int { return f.w - f.r }

// Discard consumes the next n bytes.
func (f *frameReader) Discard(n int) (int, error) {
	d := 0
	for d < n {
		if f.r == f.w {
			if err := f.fill(1); err != nil {
				return d, err
			}
		}
		k := min(n-d, f.w-f.r)
		f.consume(k)
		d += k
	}
	return d, nil
}

// Read serves buffered bytes first, then reads straight into p, so a large
// payload is not copied through the buffer.
func (f *frameReader) Read(p []byte) (int, error) {
	if f.r < f.w {
		n := copy(p, f.buf[f.r:f.w])
		f.consume(n)
		return n, nil
	}
	if f.err != nil {
		return 0, f.err
	}
	return f.conn.Read(p)
}

func (f *frameReader) consume(n int) {
	f.r += n
	if f.r == f.w {
		f.release()
	}
}

// release drops the (empty or abandoned) buffer; a pooled one goes back.
func (f *frameReader) release() {
	if f.pooled {
		putBuf(f.buf[:0])
	}
	f.buf, f.pooled, f.r, f.w = nil, false, 0, 0
}

// fill reads at least one more byte, with room for need bytes in all.
func (f *frameReader) fill(need int) error {
	if f.err != nil {
		return f.err
	}
	if f.buf == nil {
		f.buf = f.small[:]
	}
	if f.r > 0 {
		f.w = copy(f.buf, f.buf[f.r:f.w])
		f.r = 0
	}
	// A burst: more than the small array holds, or more than its first
	// read brought.
	if need > len(f.buf) || f.w > 0 && !f.pooled {
		p := getBuf(readBufSize)[:readBufSize]
		f.w = copy(p, f.buf[:f.w])
		f.buf, f.pooled = p, true
	}
	for range 100 {
		n, err := f.conn.Read(f.buf[f.w:])
		f.w += n
		if err != nil {
			f.err = err
		}
		if n > 0 {
			return nil
		}
		if err != nil {
			if f.w == f.r {
				f.release()
			}
			return err
		}
	}
	f.err = io.ErrNoProgress
	return f.err
}
