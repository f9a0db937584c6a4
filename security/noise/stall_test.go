package noise

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"
)

// queued is a raw connection that says how much it holds, like a TCP
// socket does through SIOCINQ.
type queued struct {
	net.Conn
	r *bytes.Reader
}

func (q queued) Read(p []byte) (int, error) { return q.r.Read(p) }
func (q queued) Buffered() int              { return q.r.Len() }

// TestStalledFrameBuffer: a large frame that has not fully arrived waits in
// a one-frame buffer (issue #12: a peer announcing 65 000 bytes and sending
// 100 pinned a 256 KiB burst buffer per connection); a frame that is all
// there is read into the burst buffer, with whatever follows it.
func TestStalledFrameBuffer(t *testing.T) {
	frame := func(n int) []byte {
		b := make([]byte, frameHdr+n)
		binary.BigEndian.PutUint16(b, uint16(n))
		return b
	}
	for _, tc := range []struct {
		name    string
		wire    []byte
		wantLen int
		wantErr bool
	}{
		{"stalled", frame(65000)[:frameHdr+100], frameHdr + maxFrame, true},
		{"whole", append(frame(65000), frame(65000)...), readBufLen, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Conn{raw: queued{r: bytes.NewReader(tc.wire)}}
			_, err := c.readFrame()
			if (err != nil) != tc.wantErr {
				t.Fatalf("readFrame: %v", err)
			}
			if tc.wantErr && err != io.ErrUnexpectedEOF {
				t.Fatalf("readFrame: %v, want unexpected EOF", err)
			}
			if len(c.rbuf) != tc.wantLen {
				t.Fatalf("read buffer of %d bytes, want %d", len(c.rbuf), tc.wantLen)
			}
			c.dropReadBuf()
			if c.pooled != nil || c.rbuf != nil {
				t.Fatal("buffer kept after drop")
			}
		})
	}
}
