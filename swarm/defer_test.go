package swarm

import (
	"bytes"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tachyon-p2p/tachyon/core/network"
)

// opStream records the writes and closes a Stream makes on its muxer
// stream, as "w:<bytes>", "fin:<bytes>" (WriteFinal), "cw", "close",
// "reset"; it holds in bytes to read.
type opStream struct {
	network.MuxedStream
	mu  sync.Mutex
	ops []string
	in  *bytes.Reader
	// fail makes the next write fail after writing part bytes ("w!").
	fail, part int
}

func (o *opStream) rec(op string) {
	o.mu.Lock()
	o.ops = append(o.ops, op)
	o.mu.Unlock()
}

func (o *opStream) failed() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fail == 0 {
		return false
	}
	o.fail--
	o.ops = append(o.ops, "w!")
	return true
}

func (o *opStream) Write(p []byte) (int, error) {
	if o.failed() {
		return o.part, os.ErrDeadlineExceeded
	}
	o.rec("w:" + string(p))
	return len(p), nil
}

func (o *opStream) WriteFinal(p []byte) (int, error) {
	if o.failed() {
		return o.part, os.ErrDeadlineExceeded
	}
	o.rec("fin:" + string(p))
	return len(p), nil
}

func (o *opStream) CloseWrite() error { o.rec("cw"); return nil }
func (o *opStream) Close() error      { o.rec("close"); return nil }
func (o *opStream) Reset() error      { o.rec("reset"); return nil }
func (o *opStream) Buffered() int     { return o.in.Len() }
func (o *opStream) Read(p []byte) (int, error) {
	o.rec("read")
	return o.in.Read(p)
}

// TestDeferWrite checks where deferred bytes (a multistream echo) go: in
// front of the first write in the same write, with the half-close when the
// stream is closed first, alone before a Read that would wait, nowhere after
// a Reset; and a write too large to copy goes after them, in its own write.
func TestDeferWrite(t *testing.T) {
	big := strings.Repeat("x", maxJoined+1)
	for _, tc := range []struct {
		name       string
		in         string
		do         func(s *Stream)
		ops        []string
		fail, part int
	}{
		{"write failed before it began: still held", "", func(s *Stream) {
			s.Write([]byte("a"))
			s.Write([]byte("b"))
		}, []string{"w!", "w:ECHOb"}, 1, 0},
		{"part of it written: reset", "", func(s *Stream) {
			s.Write([]byte("a"))
			s.Write([]byte("b"))
		}, []string{"w!", "reset", "w:b"}, 1, 2},
		{"failed flush before a read: the read goes on", "", func(s *Stream) {
			if _, err := s.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
				t.Errorf("Read = %v, want the stream's EOF", err)
			}
		}, []string{"w!", "read"}, 1, 0},
		{"failed close write: half-closed all the same", "", func(s *Stream) { s.CloseWrite() },
			[]string{"w!", "cw"}, 1, 0},
		{"joined with the answer", "", func(s *Stream) { s.Write([]byte("answer")); s.Write([]byte("more")) },
			[]string{"w:ECHOanswer", "w:more"}, 0, 0},
		{"with the final answer", "", func(s *Stream) { s.WriteFinal([]byte("answer")) },
			[]string{"fin:ECHOanswer"}, 0, 0},
		{"read of held data first", "request", func(s *Stream) {
			s.Read(make([]byte, 7))
			s.Write([]byte("reply"))
		}, []string{"read", "w:ECHOreply"}, 0, 0},
		{"read that would wait", "", func(s *Stream) { s.Read(make([]byte, 1)) },
			[]string{"w:ECHO", "read"}, 0, 0},
		{"closed without writing", "", func(s *Stream) { s.Close() },
			[]string{"fin:ECHO", "close"}, 0, 0},
		{"half-closed without writing", "", func(s *Stream) { s.CloseWrite() },
			[]string{"fin:ECHO"}, 0, 0},
		{"reset", "", func(s *Stream) { s.Reset(); s.Close() },
			[]string{"reset", "close"}, 0, 0},
		{"large write", "", func(s *Stream) { s.Write([]byte(big)) },
			[]string{"w:ECHO", "w:" + big}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &opStream{in: bytes.NewReader([]byte(tc.in)), fail: tc.fail, part: tc.part}
			s := testConn(Config{}).wrap(o, network.DirInbound)
			s.DeferWrite([]byte("ECHO"))
			tc.do(s)
			if strings.Join(o.ops, " ") != strings.Join(tc.ops, " ") {
				t.Fatalf("ops %.100q, want %.100q", o.ops, tc.ops)
			}
		})
	}
}

// TestDeferWriteConcurrent: a Read that flushes the deferred bytes and a
// Write, or a half-close, on another goroutine never put the written data
// first, nor send the deferred bytes twice (run with -race).
func TestDeferWriteConcurrent(t *testing.T) {
	for _, tc := range []struct {
		name  string
		other func(s *Stream)
		want  []string // the writes either order may give
	}{
		{"write", func(s *Stream) { s.Write([]byte("data")); s.Close() }, []string{"w:ECHOdata close", "w:ECHO w:data close"}},
		{"close write", func(s *Stream) { s.CloseWrite() }, []string{"fin:ECHO", "w:ECHO cw"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 200 {
				o := &opStream{in: bytes.NewReader(nil)}
				s := testConn(Config{}).wrap(o, network.DirInbound)
				s.DeferWrite([]byte("ECHO"))
				var wg sync.WaitGroup
				wg.Add(2)
				go func() { defer wg.Done(); s.Read(make([]byte, 1)) }()
				go func() { defer wg.Done(); tc.other(s) }()
				wg.Wait()
				var w []string
				for _, op := range o.ops {
					if op != "read" {
						w = append(w, op)
					}
				}
				if got := strings.Join(w, " "); !slices.Contains(tc.want, got) {
					t.Fatalf("writes %q, want one of %q", w, tc.want)
				}
			}
		})
	}
}
