package yamux

import (
	"bytes"
	"crypto/rand"
	"net"
	"sync"
	"testing"
)

// vecConn is a connection that writes buffers given together one by one
// and remembers how they came.
type vecConn struct {
	net.Conn
	mu    sync.Mutex
	calls [][]int // the buffer sizes of each WriteBuffers call
}

func (c *vecConn) WriteBuffers(bufs [][]byte) (int, error) {
	sizes := make([]int, len(bufs))
	for i, b := range bufs {
		sizes[i] = len(b)
	}
	c.mu.Lock()
	c.calls = append(c.calls, sizes)
	c.mu.Unlock()
	n := 0
	for _, b := range bufs {
		k, err := c.Conn.Write(b)
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// TestWriteBuffers checks that large data frames go to a buffersWriter
// as header and payload, small ones joined in one write, and that the
// peer reads both kinds as the frames they are.
func TestWriteBuffers(t *testing.T) {
	a, b := tcpPair(t)
	vc := &vecConn{Conn: a}
	sess := NewSession(vc, true, nil)
	t.Cleanup(func() { sess.Close() })
	peer := newRawPeer(t, b)

	st, err := sess.Open(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	small := []byte("hello")
	big := make([]byte, 100<<10)
	rand.Read(big)
	if _, err := st.Write(small); err != nil {
		t.Fatal(err)
	}
	// The SYN leaves with the stream's first frame (after the session's
	// first ping, which the raw peer answers and does not list).
	h, _, _ := peer.next()
	if h.typ != typeWindowUpdate || h.flags != flagSYN {
		t.Fatalf("first frame %v, want the SYN", h)
	}
	if _, err := st.Write(big); err != nil {
		t.Fatal(err)
	}
	var got []byte
	large := 0 // frames that should have gone through WriteBuffers
	for len(got) < len(small)+len(big) {
		h, _, payload := peer.next()
		if h.typ != typeData || h.stream != st.id || int(h.length) != len(payload) {
			t.Fatalf("frame %v with %d bytes", h, len(payload))
		}
		if len(payload) >= minVectorPayload {
			large++
		}
		got = append(got, payload...)
	}
	if !bytes.Equal(got, append(small, big...)) {
		t.Fatal("the peer read other data than was written")
	}
	vc.mu.Lock()
	defer vc.mu.Unlock()
	// Each large frame in one call: a header (and any control frames)
	// and the payload.
	if large == 0 || len(vc.calls) != large {
		t.Fatalf("WriteBuffers calls %v for %d large frames", vc.calls, large)
	}
	for _, c := range vc.calls {
		if len(c) != 2 || c[0]%headerSize != 0 || c[1] < minVectorPayload {
			t.Errorf("WriteBuffers call with sizes %v, want a header and a large payload", c)
		}
	}
}
