package tls

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/internal/netbuf"
)

// readCountingConn counts the reads and the bytes that reach the raw
// connection, passing on what the kernel holds for it.
type readCountingConn struct {
	net.Conn
	reads atomic.Int64
}

func (c *readCountingConn) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.Conn.Read(p)
}

func (c *readCountingConn) Buffered() int { return netbuf.Buffered(c.Conn) }

// TestReadAheadFewerReads checks that records the kernel holds already are
// brought in a few at a time, not one per read, and arrive intact.
func TestReadAheadFewerReads(t *testing.T) {
	cli, srv := newTransport(t, nil, nil), newTransport(t, nil, nil)
	a, b := tcpPair(t)
	// Room for what the test lets queue up, whatever the system default.
	if err := b.(*net.TCPConn).SetReadBuffer(2 << 20); err != nil {
		t.Fatal(err)
	}
	rb := &readCountingConn{Conn: b}
	cr, sr := handshakePair(t, cli, srv, a, rb, srv.LocalPeer())
	if cr.err != nil || sr.err != nil {
		t.Fatalf("handshake: %v / %v", cr.err, sr.err)
	}
	defer closeBoth(cr.conn, sr.conn)

	const size = 2 << 20
	data := make([]byte, size)
	rand.Read(data)
	errc := make(chan error, 1)
	go func() {
		_, err := cr.conn.Write(data)
		errc <- err
	}()
	// Let the kernel queue a good part of it before reading: the read
	// counts then do not depend on how the two goroutines interleave. The
	// system may cap the socket buffer below what the test asks for: it
	// reads what the kernel holds once that stops growing.
	queued, same := 0, 0
	for queued < 3*readAheadSize && same < 50 {
		time.Sleep(time.Millisecond)
		n := netbuf.Buffered(b)
		if n == queued {
			same++
		} else {
			queued, same = n, 0
		}
	}
	if queued < 2*readAheadSize {
		t.Skipf("the kernel holds only %d bytes for the socket", queued)
	}
	queued = min(queued, 3*readAheadSize)
	before := rb.reads.Load()
	got := make([]byte, queued)
	if _, err := io.ReadFull(sr.conn, got); err != nil {
		t.Fatal(err)
	}
	reads := rb.reads.Load() - before
	// One read per readAheadSize, one or two that find out a burst is on.
	if max := int64(queued/readAheadSize + 3); reads > max {
		t.Errorf("%d KiB the kernel held took %d raw reads, want at most %d", queued>>10, reads, max)
	}
	t.Logf("%d KiB the kernel held took %d raw reads", queued>>10, reads)
	rest := make([]byte, size-queued)
	if _, err := io.ReadFull(sr.conn, rest); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data[:queued]) || !bytes.Equal(rest, data[queued:]) {
		t.Fatal("data corrupted")
	}
	if bc := sr.conn.(*Conn).batch; bc.rd.buf != nil {
		t.Error("read-ahead buffer held after everything was read")
	}
}

// scriptedConn returns its reads from a script and claims everything left
// in it is buffered.
type scriptedConn struct {
	net.Conn
	data []byte
	err  error // after data
}

func (c *scriptedConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, c.err
	}
	n := copy(p, c.data)
	c.data = c.data[n:]
	if len(c.data) == 0 {
		return n, c.err
	}
	return n, nil
}

func (c *scriptedConn) Buffered() int { return len(c.data) }

// TestReadAheadError checks that an error coming with bytes that did not
// fit is returned right after them, and that the buffer is given back.
func TestReadAheadError(t *testing.T) {
	boom := errors.New("boom")
	data := make([]byte, 3000)
	rand.Read(data)
	sc := &scriptedConn{data: data, err: boom}
	b := &batchConn{Conn: sc}
	b.rd.on = true
	p := make([]byte, 1000)
	// The first read fills p: the kernel is asked, and the next read,
	// larger than p, goes through the read-ahead buffer.
	var got []byte
	var err error
	for err == nil {
		var n int
		n, err = b.Read(p)
		got = append(got, p[:n]...)
	}
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want %v", err, boom)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, not the %d written", len(got), len(data))
	}
	if b.rd.buf != nil {
		t.Error("read-ahead buffer held after the error")
	}
	if n, err := b.Read(p); n != 0 || !errors.Is(err, boom) {
		t.Fatalf("read after the error: %d, %v", n, err)
	}
}

// TestReadAheadDeadlineAndClose checks that after reads ahead a blocked
// Read still ends at its deadline and leaves no buffer held, and that the
// peer's close_notify after a burst reads as io.EOF after all of the data.
func TestReadAheadDeadlineAndClose(t *testing.T) {
	cli, srv := newTransport(t, nil, nil), newTransport(t, nil, nil)
	a, b := tcpPair(t)
	if err := b.(*net.TCPConn).SetReadBuffer(2 << 20); err != nil {
		t.Fatal(err)
	}
	cr, sr := handshakePair(t, cli, srv, a, b, srv.LocalPeer())
	if cr.err != nil || sr.err != nil {
		t.Fatalf("handshake: %v / %v", cr.err, sr.err)
	}
	defer sr.conn.Close()

	data := make([]byte, 1<<20)
	rand.Read(data)
	errc := make(chan error, 1)
	go func() {
		_, err := cr.conn.Write(data)
		errc <- err
	}()
	got := make([]byte, len(data))
	if _, err := io.ReadFull(sr.conn, got); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("data corrupted")
	}
	if err := sr.conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	var ne net.Error
	if _, err := sr.conn.Read(got); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
	if sr.conn.(*Conn).batch.rd.buf != nil {
		t.Error("read-ahead buffer held by a read that waited")
	}
	// crypto/tls fails every read after a timeout: the close_notify is
	// read on a second pair.
	cr.conn.Close()

	a, b = tcpPair(t)
	cr, sr = handshakePair(t, cli, srv, a, b, srv.LocalPeer())
	if cr.err != nil || sr.err != nil {
		t.Fatalf("handshake: %v / %v", cr.err, sr.err)
	}
	defer sr.conn.Close()
	go func() {
		cr.conn.Write(data)
		cr.conn.Close()
	}()
	all, err := io.ReadAll(sr.conn)
	if err != nil {
		t.Fatalf("reading to close_notify: %v", err)
	}
	if !bytes.Equal(all, data) {
		t.Fatalf("read %d bytes before close_notify, not the %d written", len(all), len(data))
	}
}

// inexactConn counts more than its Read may return, like a WebSocket.
type inexactConn struct{ readCountingConn }

func (c *inexactConn) BufferedExact() bool { return false }

// TestReadAheadOnlyOverExactCounts: over a connection whose count may
// include bytes Read never returns, there is no read-ahead (it could wait
// holding its buffer); over TCP there is.
func TestReadAheadOnlyOverExactCounts(t *testing.T) {
	for _, exact := range []bool{true, false} {
		cli, srv := newTransport(t, nil, nil), newTransport(t, nil, nil)
		a, b := tcpPair(t)
		var rb net.Conn = &readCountingConn{Conn: b}
		if !exact {
			rb = &inexactConn{readCountingConn{Conn: b}}
		}
		cr, sr := handshakePair(t, cli, srv, a, rb, srv.LocalPeer())
		if cr.err != nil || sr.err != nil {
			t.Fatalf("handshake: %v / %v", cr.err, sr.err)
		}
		if on := sr.conn.(*Conn).batch.rd.on; on != exact {
			t.Errorf("exact count %v: read-ahead on = %v", exact, on)
		}
		closeBoth(cr.conn, sr.conn)
	}
}
