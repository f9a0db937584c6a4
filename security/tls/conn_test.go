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

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/internal/memcheck"
)

// countingConn counts the writes that reach the raw connection.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestWriteGathersRecords checks that a Conn.Write reaches the raw
// connection in as few writes as maxBatch allows, not one per record, and
// that the data arrives intact.
func TestWriteGathersRecords(t *testing.T) {
	for _, p := range pipes {
		t.Run(p.name, func(t *testing.T) {
			cli := newTransport(t, newKey(t, crypto.Ed25519), nil)
			srv := newTransport(t, newKey(t, crypto.Ed25519), nil)
			a, b := p.pair(t)
			ca := &countingConn{Conn: a}
			cr, sr := handshakePair(t, cli, srv, ca, b, srv.LocalPeer())
			if cr.err != nil || sr.err != nil {
				t.Fatalf("handshake: %v / %v", cr.err, sr.err)
			}
			defer closeBoth(cr.conn, sr.conn)
			for _, tc := range []struct{ size, maxWrites, split int }{
				{1, 1, 0},
				{smallPlain, 1, 0},     // the small batch buffer
				{smallPlain + 1, 1, 0}, // the large one
				{1000, 1, 12},
				{64 << 10, 1, 0}, // four full records and a small one
				{300000, 5, 0},   // 19 records
				{12 + 64<<10, 1, 12},
			} {
				data := make([]byte, tc.size)
				rand.Read(data)
				before := ca.writes.Load()
				errc := make(chan error, 1)
				go func() {
					var err error
					if tc.split > 0 {
						_, err = cr.conn.(*Conn).WriteBuffers([][]byte{data[:tc.split], data[tc.split:]})
					} else {
						_, err = cr.conn.Write(data)
					}
					errc <- err
				}()
				got := make([]byte, len(data))
				if _, err := io.ReadFull(sr.conn, got); err != nil || !bytes.Equal(got, data) {
					t.Fatalf("%d bytes: read: %v", tc.size, err)
				}
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
				if n := ca.writes.Load() - before; n > int64(tc.maxWrites) {
					t.Errorf("a %d-byte write took %d raw writes, want at most %d", tc.size, n, tc.maxWrites)
				}
			}
		})
	}
}

// TestWriteErrorSticks checks that a failed gathered write fails the Write
// that made it, and every later one.
func TestWriteErrorSticks(t *testing.T) {
	cli := newTransport(t, newKey(t, crypto.Ed25519), nil)
	srv := newTransport(t, newKey(t, crypto.Ed25519), nil)
	a, b := tcpPair(t)
	cr, sr := handshakePair(t, cli, srv, a, b, srv.LocalPeer())
	if cr.err != nil || sr.err != nil {
		t.Fatalf("handshake: %v / %v", cr.err, sr.err)
	}
	defer sr.conn.Close()
	a.Close() // under crypto/tls, which does not know
	if _, err := cr.conn.Write(make([]byte, 1000)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write on a closed connection: %v, want net.ErrClosed", err)
	}
	if _, err := cr.conn.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second write: %v, want net.ErrClosed", err)
	}
}

// TestCloseDuringStuckWrite checks that Close ends a Write whose gathered
// records wait for a peer that does not read, as crypto/tls does for its
// own writes, instead of queueing its close_notify behind them.
func TestCloseDuringStuckWrite(t *testing.T) {
	cli := newTransport(t, newKey(t, crypto.Ed25519), nil)
	srv := newTransport(t, newKey(t, crypto.Ed25519), nil)
	a, b := tcpPair(t)
	cr, sr := handshakePair(t, cli, srv, a, b, srv.LocalPeer())
	if cr.err != nil || sr.err != nil {
		t.Fatalf("handshake: %v / %v", cr.err, sr.err)
	}
	defer sr.conn.Close() // never read: the socket buffers fill up
	conn := cr.conn.(*Conn)
	errc := make(chan error, 1)
	go func() {
		// Small enough to be flushed after crypto/tls's Write returned.
		buf := make([]byte, 60<<10)
		for {
			if _, err := conn.Write(buf); err != nil {
				errc <- err
				return
			}
		}
	}()
	// Wait until a Write is stuck in its flush, holding mu.
	for held := 0; held < 20; {
		if conn.batch.mu.TryLock() {
			conn.batch.mu.Unlock()
			held = 0
		} else {
			held++
		}
		time.Sleep(time.Millisecond)
	}
	closed := make(chan struct{})
	go func() {
		conn.Close()
		close(closed)
	}()
	// crypto/tls gives its close_notify 5 s to be written: a Close that
	// queued it behind the stuck write would take that long.
	select {
	case <-closed:
	case <-time.After(4 * time.Second):
		t.Fatal("Close waited behind the stuck write")
	}
	if err := <-errc; err == nil {
		t.Fatal("the stuck Write returned no error")
	}
}

// TestSmallWriteBuffer: a write of at most smallPlain bytes gathers its
// records in a small pooled buffer, so that after a collection emptied the
// pools it does not allocate a 66 KiB batch buffer.
func TestSmallWriteBuffer(t *testing.T) {
	cli := newTransport(t, newKey(t, crypto.Ed25519), nil)
	srv := newTransport(t, newKey(t, crypto.Ed25519), nil)
	a, b := tcpPair(t)
	cr, sr := handshakePair(t, cli, srv, a, b, srv.LocalPeer())
	if cr.err != nil || sr.err != nil {
		t.Fatalf("handshake: %v / %v", cr.err, sr.err)
	}
	defer closeBoth(cr.conn, sr.conn)
	// Bytes allocated by a write made right after the pools were emptied.
	allocated := func(n int) uint64 {
		p, got := make([]byte, n), make([]byte, n)
		return memcheck.AllocatedAfterGC(5, func() {
			if _, err := cr.conn.Write(p); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(sr.conn, got); err != nil {
				t.Fatal(err)
			}
		})
	}
	if big := allocated(smallPlain + 1); big < maxBatch {
		t.Fatalf("a write past the limit allocated %d bytes after a collection, want the %d-byte batch buffer (the measure is broken)", big, maxBatch)
	}
	if small := allocated(12); small > 2*smallBatch {
		t.Errorf("a 12-byte write allocated %d bytes after a collection, want at most %d", small, 2*smallBatch)
	}
}
