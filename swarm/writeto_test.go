package swarm

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/tachyon-p2p/tachyon/core/network"
)

// errStream reads in, then fails with err instead of io.EOF.
type errStream struct {
	network.MuxedStream
	in  *bytes.Reader
	err error
}

func (e *errStream) Read(p []byte) (int, error) {
	n, err := e.in.Read(p)
	if err == io.EOF && e.err != nil {
		err = e.err
	}
	return n, err
}

// shortWriter takes at most limit bytes in all, then fails with err, or
// reports a short write without an error when err is nil.
type shortWriter struct {
	buf   bytes.Buffer
	limit int
	err   error
}

func (w *shortWriter) Write(p []byte) (int, error) {
	if room := w.limit - w.buf.Len(); len(p) > room {
		w.buf.Write(p[:room])
		return room, w.err
	}
	return w.buf.Write(p)
}

// TestWriteTo: io.Copy from a stream copies everything up to EOF through
// WriteTo, and reports the first failure of either side with what was
// copied until then.
func TestWriteTo(t *testing.T) {
	data := strings.Repeat("0123456789abcdef", 5000) // 80 000 bytes: several buffers
	errRead := errors.New("read failed")
	errWrite := errors.New("write failed")
	for _, tc := range []struct {
		name    string
		readErr error
		limit   int
		werr    error
		n       int64
		err     error
	}{
		{"all to EOF", nil, len(data), nil, int64(len(data)), nil},
		{"read fails", errRead, len(data), nil, int64(len(data)), errRead},
		{"write fails", nil, 40000, errWrite, 40000, errWrite},
		{"short write", nil, 40000, nil, 40000, io.ErrShortWrite},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testConn(Config{}).wrap(&errStream{in: bytes.NewReader([]byte(data)), err: tc.readErr}, network.DirInbound)
			w := &shortWriter{limit: tc.limit, err: tc.werr}
			n, err := io.Copy(w, s)
			if n != tc.n || !errors.Is(err, tc.err) {
				t.Fatalf("io.Copy = %d, %v; want %d, %v", n, err, tc.n, tc.err)
			}
			if w.buf.String() != data[:tc.n] {
				t.Fatalf("copied bytes differ from the stream's")
			}
		})
	}
}

// TestWriteToAllocs: io.Copy from a stream does not allocate a 32 KiB
// buffer per call.
func TestWriteToAllocs(t *testing.T) {
	data := []byte(strings.Repeat("x", 1000))
	in := bytes.NewReader(nil)
	s := testConn(Config{}).wrap(&errStream{in: in}, network.DirInbound)
	io.Copy(io.Discard, s) // fills the pool
	var w bytes.Buffer
	w.Grow(len(data))
	// A plain Writer: a bytes.Buffer would read for itself (ReadFrom).
	dst := io.Writer(struct{ io.Writer }{&w})
	allocs := testing.AllocsPerRun(100, func() {
		in.Reset(data)
		w.Reset()
		if _, err := io.Copy(dst, s); err != nil {
			t.Fatal(err)
		}
	})
	if allocs >= 1 {
		t.Fatalf("io.Copy from a stream made %.1f allocations, want none", allocs)
	}
}
