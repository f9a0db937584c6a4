package yamux

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/mss"
)

// The tests in this file run the pattern of the interop echo test: one
// goroutine writes 1 MiB and half-closes while another reads everything the
// peer echoes back, optionally through a lazy multistream-select dialer.
// YAMUX_STRESS=n repeats each case n times and adds slow cases.

const echoProto protocol.ID = "/test/echo/1.0.0"

// throttledConn makes writes slow and fragmented: each Write is cut into
// small pieces with pauses between them, so the session's writer holds the
// connection for a long time while frames arrive and control frames queue.
type throttledConn struct {
	net.Conn
}

func (c throttledConn) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k := min(len(p)-n, 1+mrand.IntN(4096))
		m, err := c.Conn.Write(p[n : n+k])
		n += m
		if err != nil {
			return n, err
		}
		switch mrand.IntN(64) {
		case 0:
			time.Sleep(time.Duration(mrand.IntN(200)) * time.Microsecond)
		case 1, 2, 3, 4, 5, 6, 7:
			runtime.Gosched()
		}
	}
	return n, nil
}

// smallBufTCPPair is a loopback TCP pair with small socket buffers, so that
// writes block on a peer that is not reading right now.
func smallBufTCPPair(t testing.TB) (net.Conn, net.Conn) {
	a, b := tcpPair(t)
	for _, c := range []net.Conn{a, b} {
		tc := c.(*net.TCPConn)
		tc.SetReadBuffer(16 << 10)
		tc.SetWriteBuffer(16 << 10)
	}
	return a, b
}

// serveEcho accepts streams on s until it closes and echoes each one: an
// optional multistream-select negotiation, io.Copy back, then Close, like
// the go-libp2p echo handler of the interop test.
func serveEcho(t testing.TB, s *Session, negotiate bool, progress *atomic.Int64) {
	var wg sync.WaitGroup
	t.Cleanup(func() {
		s.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			st, err := s.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				if negotiate {
					var m mss.Mux[struct{}]
					m.AddHandler(echoProto, struct{}{})
					if _, _, err := m.Negotiate(st); err != nil {
						st.Reset()
						return
					}
				}
				if _, err := io.Copy(st, countingReader{st, progress}); err != nil {
					st.Reset()
					return
				}
				st.Close()
			})
		}
	})
}

// countingReader adds what it reads to n, so a watchdog can tell a slow
// transfer from a stalled one.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// echoRoundTrip opens a stream on c and runs the interop pattern over it.
// With writerFirst, the writer is inside its first Write (holding the lazy
// dialer's handshake) before the first Read starts. It gives up once
// progress (bytes read on either side) stands still for stall, and then
// describes both sessions' flow-control state.
func echoRoundTrip(c, peer *Session, progress *atomic.Int64, size int, lazy, writerFirst bool, stall time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), stall)
	defer cancel()
	st, err := c.Open(ctx)
	if err != nil {
		return err
	}
	var rw io.ReadWriter = st
	closeWrite := st.CloseWrite
	if lazy {
		lc := mss.NewLazy(st, echoProto)
		rw, closeWrite = lc, lc.CloseWrite
	}
	data := make([]byte, size)
	rand.Read(data)
	werr := make(chan error, 1)
	go func() {
		_, err := rw.Write(data)
		if err == nil {
			err = closeWrite()
		}
		werr <- err
	}()
	if writerFirst {
		// Once a frame is out, the writer is inside its first Write.
		for deadline := time.Now().Add(stall); time.Now().Before(deadline); {
			st.mu.Lock()
			w := st.sendWindow
			st.mu.Unlock()
			if w < initialWindow {
				break
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	type result struct {
		got []byte
		err error
	}
	rc := make(chan result, 1)
	go func() {
		got, err := io.ReadAll(countingReader{rw, progress})
		rc <- result{got, err}
	}()
	tick := time.NewTicker(stall)
	defer tick.Stop()
	for last := int64(-1); ; {
		select {
		case r := <-rc:
			if r.err != nil {
				return fmt.Errorf("read after %d bytes: %w", len(r.got), r.err)
			}
			if !bytes.Equal(r.got, data) {
				return fmt.Errorf("echo differs: %d bytes back, want %d", len(r.got), size)
			}
			if err := <-werr; err != nil {
				return fmt.Errorf("write: %w", err)
			}
			return nil
		case <-tick.C:
		}
		if p := progress.Load(); p != last {
			last = p
			continue
		}
		st.mu.Lock()
		state := fmt.Sprintf("buffered=%d recvAvail=%d recvWindow=%d sendWindow=%d remoteFin=%v localFin=%v",
			st.buffered, st.recvAvail, st.recvWindow, st.sendWindow, st.remoteFin, st.localFin)
		st.mu.Unlock()
		state += "\nclient: " + c.debugState() + "\nserver: " + peer.debugState()
		// Unblock the reader and the writer before returning.
		st.Reset()
		<-rc
		<-werr
		return fmt.Errorf("no progress for %v: %s", stall, state)
	}
}

// burnCPU keeps n goroutines spinning until the test ends.
func burnCPU(t testing.TB, n int) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			x := 0
			for {
				select {
				case <-stop:
					return
				default:
				}
				for i := range 10000 {
					x += i * x
				}
			}
		})
	}
	t.Cleanup(func() {
		close(stop)
		wg.Wait()
	})
}

// stressRounds is how often each stress case runs: YAMUX_STRESS, or once.
// Without YAMUX_STRESS the slow throttled cases are skipped.
func stressRounds() (n int, full bool) {
	if n, err := strconv.Atoi(os.Getenv("YAMUX_STRESS")); err == nil && n > 0 {
		return n, true
	}
	return 1, false
}

// TestStressEchoPattern runs the interop pattern many times over loopback
// TCP and over throttled connections with small socket buffers, with and
// without window auto-tuning, plain and through a lazy mss dialer, while
// other goroutines keep the CPUs busy.
func TestStressEchoPattern(t *testing.T) {
	if testing.Short() {
		t.Skip("stress")
	}
	conns := []struct {
		name string
		pair func(testing.TB) (net.Conn, net.Conn)
	}{
		{"tcp", func(t testing.TB) (net.Conn, net.Conn) { return tcpPair(t) }},
		{"throttled", func(t testing.TB) (net.Conn, net.Conn) {
			a, b := smallBufTCPPair(t)
			return throttledConn{a}, throttledConn{b}
		}},
	}
	for _, cn := range conns {
		for _, window := range []uint32{0, initialWindow} {
			for _, lazy := range []bool{false, true} {
				for _, writerFirst := range []bool{false, true} {
					name := fmt.Sprintf("%s/maxwin=%d/lazy=%v/writerFirst=%v", cn.name, window, lazy, writerFirst)
					t.Run(name, func(t *testing.T) {
						rounds, full := stressRounds()
						if cn.name != "tcp" && !full {
							t.Skip("slow; set YAMUX_STRESS=n to run n rounds")
						}
						leakcheck.Check(t)
						burnCPU(t, runtime.GOMAXPROCS(0))
						a, b := cn.pair(t)
						cfg := &Config{MaxStreamWindow: window}
						c := NewSession(a, true, cfg)
						s := NewSession(b, false, cfg)
						var progress atomic.Int64
						serveEcho(t, s, lazy, &progress)
						t.Cleanup(func() {
							c.Close()
							s.Close()
						})
						for i := range rounds {
							if err := echoRoundTrip(c, s, &progress, 1<<20, lazy, writerFirst, 5*time.Second); err != nil {
								t.Fatalf("round %d: %v", i, err)
							}
						}
					})
				}
			}
		}
	}
}

// debugState describes the session's write path and its streams.
func (s *Session) debugState() string {
	s.ctrlMu.Lock()
	ctrl := len(s.ctrl)
	s.ctrlMu.Unlock()
	out := fmt.Sprintf("ctrlPending=%v ctrl=%dB wsemHeld=%v closed=%v", s.ctrlPending.Load(), ctrl, len(s.wsem) == 1, s.IsClosed())
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, st := range s.streams {
		st.mu.Lock()
		out += fmt.Sprintf("\n  stream %d: buffered=%d incoming=%d recvAvail=%d recvWindow=%d sendWindow=%d remoteFin=%v localFin=%v readClosed=%v",
			id, st.buffered, st.incoming, st.recvAvail, st.recvWindow, st.sendWindow, st.remoteFin, st.localFin, st.readClosed)
		st.mu.Unlock()
	}
	return out
}
