package yamux

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// chunkReader returns at most n bytes per Read, like a socket or a secure
// conn handing out one record at a time.
type chunkReader struct {
	data []byte
	n    int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), c.n, len(c.data))
	copy(p, c.data[:k])
	c.data = c.data[k:]
	return k, nil
}

// TestFrameReader reads one stream through Peek, Discard and Read in a
// fixed pattern for several read sizes and checks every byte, that the
// reader holds no buffer whenever nothing is buffered, and that the end of
// the stream comes out as io.EOF.
func TestFrameReader(t *testing.T) {
	src := make([]byte, 40000)
	for i := range src {
		src[i] = byte(i * 7)
	}
	// Each step: peek and discard k bytes (k > 0), or read -k bytes.
	steps := []int{12, 12, 100, -5000, 12, 4096, -1, 12, -20000, 3, 64, 65, -3000}
	for _, chunk := range []int{1, 7, 12, 64, 1000, 5000, 1 << 20} {
		f := frameReader{conn: &chunkReader{data: src, n: chunk}}
		off := 0
		for _, k := range steps {
			if k > 0 {
				b, err := f.Peek(k)
				if err != nil {
					t.Fatalf("chunk %d: Peek(%d) at %d: %v", chunk, k, off, err)
				}
				if !bytes.Equal(b, src[off:off+k]) {
					t.Fatalf("chunk %d: Peek(%d) at %d: wrong bytes", chunk, k, off)
				}
				if n, err := f.Discard(k); n != k || err != nil {
					t.Fatalf("chunk %d: Discard(%d) = %d, %v", chunk, k, n, err)
				}
				off += k
			} else {
				b := make([]byte, -k)
				if _, err := io.ReadFull(&f, b); err != nil {
					t.Fatalf("chunk %d: ReadFull(%d) at %d: %v", chunk, -k, off, err)
				}
				if !bytes.Equal(b, src[off:off-k]) {
					t.Fatalf("chunk %d: ReadFull(%d) at %d: wrong bytes", chunk, -k, off)
				}
				off -= k
			}
			if f.r == f.w && f.buf != nil {
				t.Fatalf("chunk %d: nothing buffered at %d but a %d-byte buffer kept", chunk, off, len(f.buf))
			}
		}
		rest := len(src) - off
		if n, err := f.Discard(rest); n != rest || err != nil {
			t.Fatalf("chunk %d: Discard(rest %d) = %d, %v", chunk, rest, n, err)
		}
		if _, err := f.Peek(headerSize); !errors.Is(err, io.EOF) {
			t.Fatalf("chunk %d: Peek at the end: %v, want io.EOF", chunk, err)
		}
		if f.buf != nil {
			t.Fatalf("chunk %d: buffer kept after the end", chunk)
		}
	}
}

// TestFrameReaderShortEnd checks that a stream ending inside a frame
// header reports io.EOF, not a short header.
func TestFrameReaderShortEnd(t *testing.T) {
	for _, n := range []int{0, 1, headerSize - 1} {
		f := frameReader{conn: &chunkReader{data: make([]byte, n), n: 3}}
		if b, err := f.Peek(headerSize); !errors.Is(err, io.EOF) {
			t.Errorf("%d bytes: Peek = %d bytes, %v; want io.EOF", n, len(b), err)
		}
	}
}

// TestIdleSessionHoldsNothing checks that a session whose streams and
// pings have all finished keeps no stream or ping map, which thousands of
// idle inbound connections would otherwise each hold (the read buffer is
// TestFrameReader's).
func TestIdleSessionHoldsNothing(t *testing.T) {
	leakcheck.Check(t)
	c, s := sessionPair(t, false, nil, nil)
	for range 3 {
		st, err := c.Open(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Write(make([]byte, 10000)); err != nil {
			t.Fatal(err)
		}
		st.CloseWrite()
		rs, err := s.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rs); err != nil {
			t.Fatal(err)
		}
		rs.CloseWrite()
		if _, err := io.Copy(io.Discard, st); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return c.NumStreams() == 0 && s.NumStreams() == 0 })
	for _, sess := range []*Session{c, s} {
		waitFor(t, func() bool {
			sess.mu.Lock()
			defer sess.mu.Unlock()
			return sess.streams == nil && sess.pings == nil
		})
	}
}
