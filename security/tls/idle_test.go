package tls

import (
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

// idleHeapPerConn opens pairs secured connections with newPair, moves a few
// records' worth of data each way (so the record buffers have been used), then leaves a goroutine blocked in Read on every end and returns the
// live heap per connection end, connection state and socket included.
func idleHeapPerConn(t *testing.T, pairs int, newPair func() (net.Conn, net.Conn)) float64 {
	t.Helper()
	const burst = 3*16384 + 1000 // a few TLS records
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

// TestIdleConnMemory reports the heap an idle TLS connection holds while its
// reader waits. crypto/tls keeps its own record buffers, so this is a report,
// with only a loose bound against gross regressions.
func TestIdleConnMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 400 connections")
	}
	cli, srv := newTransport(t, nil, nil), newTransport(t, nil, nil)
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
		cr, sr := handshakePair(t, cli, srv, a, b, srv.LocalPeer())
		if cr.err != nil || sr.err != nil {
			t.Fatalf("handshake: %v / %v", cr.err, sr.err)
		}
		return cr.conn, sr.conn
	}
	const pairs = 200
	per := idleHeapPerConn(t, pairs, newPair)
	t.Logf("idle TLS connection over loopback TCP: %.0f bytes of heap per end (%d pairs)", per, pairs)
	if per > 256<<10 {
		t.Fatalf("an idle TLS connection holds %.0f bytes of heap per end", per)
	}
}
