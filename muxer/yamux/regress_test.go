package yamux

import (
	"bytes"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// TestLazyEchoWriterFirst is the interop test's stall made deterministic:
// over a lazy mss dialer, a goroutine writes 1 MiB and half-closes while
// another reads the echo, and the writer gets in first. The echo side never
// grows its window (MaxStreamWindow 256 KiB), as a go-yamux peer that has
// not auto-tuned yet: its replies fill our receive window, and the 1 MiB
// write can only finish if the first Read drains them meanwhile. The first
// Read used to wait for the whole first Write (mss.LazyConn held its write
// lock for it), so both sides stopped with the peer having sent exactly its
// initial window.
func TestLazyEchoWriterFirst(t *testing.T) {
	leakcheck.Check(t)
	cfg := &Config{MaxStreamWindow: initialWindow}
	c, s := sessionPair(t, false, cfg, cfg)
	var progress atomic.Int64
	serveEcho(t, s, true, &progress)
	for i := range 3 {
		if err := echoRoundTrip(c, s, &progress, 1<<20, true, true, 5*time.Second); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
}

// TestSessionOnClosedConn starts sessions on connections that are already
// closed, so the reader shuts the session down while NewSession is still
// setting it up. The keepalive timer used to be assigned after the reader
// started and read by shutdown without a lock: a data race under -race.
func TestSessionOnClosedConn(t *testing.T) {
	leakcheck.Check(t)
	for range 100 {
		a, b := net.Pipe()
		b.Close()
		s := NewSession(a, true, &Config{KeepAliveInterval: time.Millisecond})
		<-s.Done()
		s.Close()
	}
}

// TestCloseReadGivesWindowBack: a peer that keeps writing to a stream we
// stopped reading must not stall. Here the request is four windows long;
// the acceptor reads a little, closes reading and answers; the opener must
// be able to finish writing and read the answer.
func TestCloseReadGivesWindowBack(t *testing.T) {
	for _, tt := range []struct {
		name string
		pipe bool
	}{{"tcp", false}, {"pipe", true}} {
		t.Run(tt.name, func(t *testing.T) {
			leakcheck.Check(t)
			c, s := sessionPair(t, tt.pipe, nil, nil)
			st, err := c.Open(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() {
				rs, err := s.Accept()
				if err != nil {
					errc <- err
					return
				}
				if _, err := io.ReadFull(rs, make([]byte, 1000)); err != nil {
					errc <- err
					return
				}
				rs.CloseRead()
				if _, err := rs.Write([]byte("enough")); err != nil {
					errc <- err
					return
				}
				errc <- rs.CloseWrite()
			}()
			st.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := st.Write(make([]byte, 4*initialWindow)); err != nil {
				t.Fatalf("write to a stream the peer stopped reading: %v", err)
			}
			st.CloseWrite()
			st.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, err := io.ReadAll(st)
			if err != nil || string(got) != "enough" {
				t.Fatalf("answer %q, %v", got, err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool { return c.NumStreams() == 0 && s.NumStreams() == 0 })
		})
	}
}

// TestCloseReadWire checks the window updates on the wire: data buffered
// when CloseRead is called is credited at once, data arriving afterwards is
// credited as it is dropped, in updates of at least half a window, and no
// RST is sent (go-yamux's CloseRead does not tell the peer either).
func TestCloseReadWire(t *testing.T) {
	leakcheck.Check(t)
	a, b := net.Pipe()
	raw := newRawPeer(t, b)
	s := NewSession(a, false, nil)
	defer s.Close()
	full := bytes.Repeat([]byte{'x'}, initialWindow)
	raw.write(header{typ: typeData, flags: flagSYN, stream: 1, length: initialWindow}, full)
	st, err := s.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if h, _, _ := raw.next(); h != (header{typ: typeWindowUpdate, flags: flagACK, stream: 1}) {
		t.Fatalf("ACK = %v", h)
	}
	waitFor(t, func() bool {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.buffered == initialWindow
	})
	st.CloseRead()
	if h, _, _ := raw.next(); h != (header{typ: typeWindowUpdate, stream: 1, length: initialWindow}) {
		t.Fatalf("after CloseRead with a full window buffered: %v, want an update of %d", h, initialWindow)
	}
	// Four more windows, in 16 KiB frames, sent as the window allows: each
	// half window dropped comes back.
	chunk := full[:16<<10]
	avail := uint32(initialWindow)
	for sent := 0; sent < 4*initialWindow; {
		if avail >= uint32(len(chunk)) {
			raw.write(header{typ: typeData, stream: 1, length: uint32(len(chunk))}, chunk)
			avail -= uint32(len(chunk))
			sent += len(chunk)
			continue
		}
		h, _, _ := raw.next()
		if h.typ != typeWindowUpdate || h.stream != 1 || h.flags != 0 || h.length < initialWindow/2 {
			t.Fatalf("frame %v, want a window update of at least half a window", h)
		}
		avail += h.length
	}
	if s.IsClosed() {
		t.Fatalf("session closed: %v", s.Err())
	}
	if _, err := st.Read(make([]byte, 1)); err == nil {
		t.Fatal("read after CloseRead succeeded")
	}
}
