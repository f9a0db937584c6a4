package noise

import (
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/internal/memcheck"
)

// idleHeapPerConn opens pairs secured connections with newPair, moves a few
// frames' worth of data each way (so the large-frame read path has been
// used), then leaves a goroutine blocked in Read on every end and returns the
// live heap per connection end, connection state and socket included.
func idleHeapPerConn(t *testing.T, pairs int, newPair func() (net.Conn, net.Conn)) float64 {
	t.Helper()
	const burst = 3*maxPlain + 1000
	data := make([]byte, burst)
	before := liveHeap()

	conns := make([]net.Conn, 0, 2*pairs)
	var drained, done sync.WaitGroup
	for range pairs {
		a, b := newPair()
		conns = append(conns, a, b)
		for _, c := range []net.Conn{a, b} {
			drained.Add(1)
			done.Add(1)
			go func() {
				defer done.Done()
				buf := make([]byte, 512)
				got := 0
				for got < burst {
					n, err := c.Read(buf)
					got += n
					if err != nil {
						t.Errorf("read: %v", err)
						drained.Done()
						return
					}
				}
				drained.Done()
				c.Read(buf) // blocks until the connection is closed
			}()
			go func() {
				if _, err := c.Write(data); err != nil {
					t.Errorf("write: %v", err)
				}
			}()
		}
	}
	drained.Wait()
	time.Sleep(200 * time.Millisecond) // let every reader block in Read
	after := liveHeap()
	for _, c := range conns {
		c.Close()
	}
	done.Wait()
	return float64(after-before) / float64(len(conns))
}

// liveHeap returns the heap in use after collecting garbage and emptying the
// sync.Pools (which survive one collection in their victim cache).
func liveHeap() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestIdleConnMemory guards against an idle connection holding a frame
// buffer while its reader waits: that once cost 256 KiB per end.
func TestIdleConnMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 400 connections")
	}
	ini, res := newTransport(t, nil, nil), newTransport(t, nil, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	newPair := func() (net.Conn, net.Conn) {
		accepted := make(chan net.Conn, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				t.Error(err)
			}
			accepted <- c
		}()
		a, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		b := <-accepted
		if b == nil {
			t.FailNow()
		}
		ir, rr := handshakePair(t, ini, res, a, b, res.LocalPeer())
		if ir.err != nil || rr.err != nil {
			t.Fatalf("handshake: %v / %v", ir.err, rr.err)
		}
		return ir.conn, rr.conn
	}
	const pairs = 200
	per := idleHeapPerConn(t, pairs, newPair)
	t.Logf("idle Noise connection over loopback TCP: %.0f bytes of heap per end (%d pairs)", per, pairs)
	if per > 16<<10 {
		t.Fatalf("an idle Noise connection holds %.0f bytes of heap per end, want < %d", per, 16<<10)
	}
}

type countingConn struct {
	net.Conn
	reads int
}

func (c *countingConn) Read(p []byte) (int, error) {
	c.reads++
	return c.Conn.Read(p)
}

// TestFramesPerRead checks that a burst of frames arriving together is read
// in a couple of raw reads (the small first read, then one into the pooled
// buffer) and returned by one Read, and that the buffer goes back after.
func TestFramesPerRead(t *testing.T) {
	leakcheck.Check(t)
	a, b := net.Pipe()
	cb := &countingConn{Conn: b}
	ic, rc := securedPair(t, func(testing.TB) (net.Conn, net.Conn) { return a, cb })
	defer ic.Close()
	defer rc.Close()
	const size = writeBatch * maxPlain
	go ic.Write(make([]byte, size)) // one raw write of writeBatch frames
	cb.reads = 0
	buf := make([]byte, size)
	n, err := rc.Read(buf)
	if err != nil || n != size {
		t.Fatalf("Read = %d, %v; want %d", n, err, size)
	}
	if cb.reads > 2 {
		t.Fatalf("%d frames took %d raw reads, want <= 2", writeBatch, cb.reads)
	}
	if rc.rbuf != nil || rc.pooled != nil || rc.plain != nil {
		t.Fatal("read buffer kept after everything was read")
	}
}

// TestSmallWriteBuffer: a write that fits one small frame takes a small
// pooled buffer, so that after a collection emptied the pools it does not
// allocate a 256 KiB batch buffer; writes at and past the limit arrive
// intact.
func TestSmallWriteBuffer(t *testing.T) {
	leakcheck.Check(t)
	a, b := securedPair(t, tcpPair)
	defer a.Close()
	defer b.Close()
	limit := smallWriteLen - frameHdr - tagLen
	for _, n := range []int{1, limit, limit + 1, maxPlain, 4*maxPlain + 1} {
		exchange(t, a, b, n)
	}
	// Bytes allocated by a write made right after the pools were emptied.
	allocated := func(n int) uint64 {
		p, got := make([]byte, n), make([]byte, n)
		return memcheck.AllocatedAfterGC(5, func() {
			if _, err := a.Write(p); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(b, got); err != nil {
				t.Fatal(err)
			}
		})
	}
	if big := allocated(limit + 1); big < writeBufLen {
		t.Fatalf("a write past the limit allocated %d bytes after a collection, want the %d-byte batch buffer (the measure is broken)", big, writeBufLen)
	}
	if small := allocated(12); small > 2*smallWriteLen {
		t.Errorf("a 12-byte write allocated %d bytes after a collection, want at most %d", small, 2*smallWriteLen)
	}
}
