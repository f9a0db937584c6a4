package swarm

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/core/network"
)

// chunkStream is a MuxedStream that returns its chunks one Read at a time
// and cannot tell what it holds, like a QUIC stream.
type chunkStream struct {
	network.MuxedStream
	chunks [][]byte
}

func (c *chunkStream) Read(p []byte) (int, error) {
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	if len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

func (c *chunkStream) SetReadDeadline(time.Time) error { return nil }

// bufStream is a MuxedStream that reports what it holds, like yamux's.
type bufStream struct {
	chunkStream
}

func (b *bufStream) Buffered() int {
	if len(b.chunks) == 0 {
		return 0
	}
	return len(b.chunks[0])
}

func TestReadAhead(t *testing.T) {
	t.Run("keeps what arrived together", func(t *testing.T) {
		s := &Stream{MuxedStream: &chunkStream{chunks: [][]byte{[]byte("headerproposal"), []byte("later")}}}
		if err := s.ReadAhead(); err != nil {
			t.Fatal(err)
		}
		if got := s.Buffered(); got != len("headerproposal") {
			t.Fatalf("Buffered = %d after reading ahead", got)
		}
		head := make([]byte, 6)
		if _, err := io.ReadFull(s, head); err != nil || string(head) != "header" {
			t.Fatalf("read %q, %v", head, err)
		}
		if got := s.Buffered(); got != len("proposal") {
			t.Fatalf("Buffered = %d, want what is left of the first read", got)
		}
		rest, err := io.ReadAll(s)
		if err != nil || string(rest) != "proposallater" {
			t.Fatalf("rest %q, %v", rest, err)
		}
	})
	t.Run("a stream that tells needs none", func(t *testing.T) {
		b := &bufStream{chunkStream{chunks: [][]byte{[]byte("abc")}}}
		s := &Stream{MuxedStream: b}
		if err := s.ReadAhead(); err != nil {
			t.Fatal(err)
		}
		if len(s.ahead) != 0 || s.Buffered() != 3 {
			t.Fatalf("read ahead %q, Buffered %d", s.ahead, s.Buffered())
		}
		all, _ := io.ReadAll(s)
		if !bytes.Equal(all, []byte("abc")) {
			t.Fatalf("read %q", all)
		}
	})
	t.Run("end of stream", func(t *testing.T) {
		s := &Stream{MuxedStream: &chunkStream{}}
		if err := s.ReadAhead(); err != io.EOF {
			t.Fatalf("ReadAhead = %v, want EOF", err)
		}
	})
}
