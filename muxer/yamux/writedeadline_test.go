package yamux

import (
	"errors"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// deadlineConn records the write deadlines a session sets on its
// connection.
type deadlineConn struct {
	net.Conn
	mu  sync.Mutex
	set []time.Time
}

func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.set = append(c.set, t)
	c.mu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

func (c *deadlineConn) calls() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.set...)
}

// A session that writes rarely must not leave a write deadline armed after
// its write: it would expire unobserved and wake the runtime for nothing,
// once per write of every idle connection (a pong every 30 s). A session
// that writes often still changes the deadline only every half
// WriteTimeout.
func TestWriteDeadlineLoneAndBurst(t *testing.T) {
	leakcheck.Check(t)
	const timeout = 200 * time.Millisecond
	a, b := tcpPair(t)
	dc := &deadlineConn{Conn: b}
	cfg := &Config{WriteTimeout: timeout, KeepAliveInterval: -1}
	c := NewSession(a, true, &Config{KeepAliveInterval: -1})
	s := NewSession(dc, false, cfg)
	defer c.Close()
	defer s.Close()

	st, err := c.Open(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	ss, err := s.Accept()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	for i := 0; i < 3; i++ {
		// Longer than the timeout since the session's last write: a busy
		// machine only stretches the gap.
		time.Sleep(timeout + timeout/2)
		before := len(dc.calls())
		if _, err := ss.Write([]byte("y")); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Read(buf); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return len(dc.calls()) >= before+2 })
		got := dc.calls()[before:]
		if len(got) != 2 || got[0].IsZero() || !got[1].IsZero() {
			t.Fatalf("lone write %d set write deadlines %v, want one armed then disarmed", i, got)
		}
	}

	// A burst: the first write arms the deadline, the rest leave it alone
	// until half the timeout has passed.
	time.Sleep(timeout + timeout/2)
	before := len(dc.calls())
	start := time.Now()
	const writes = 200
	done := make(chan error, 1)
	go func() {
		b := make([]byte, writes)
		_, err := readFull(st, b)
		done <- err
	}()
	// The burst's first write is lone (armed and disarmed), the second
	// arms it again, then one push per half timeout; a busy machine that
	// stalls the writer past a timeout makes the next write lone again.
	allowed := 3
	last := time.Now()
	for i := 0; i < writes; i++ {
		if _, err := ss.Write([]byte("z")); err != nil {
			t.Fatal(err)
		}
		if time.Since(last) > timeout {
			allowed += 3
		}
		last = time.Now()
	}
	elapsed := time.Since(start)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := dc.calls()[before:]
	if allowed += int(elapsed / (timeout / 2)); len(got) > allowed {
		t.Fatalf("%d writes in %v set the write deadline %d times, want at most %d", writes, elapsed, len(got), allowed)
	}
}

func readFull(st *Stream, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := st.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// A peer that stops reading gets the session closed after WriteTimeout,
// whether the stuck write is a session's first (lone) write or one in a
// burst.
func TestWriteTimeoutClosesSession(t *testing.T) {
	for _, burst := range []bool{false, true} {
		name := "lone"
		if burst {
			name = "burst"
		}
		t.Run(name, func(t *testing.T) {
			leakcheck.Check(t)
			a, b := net.Pipe() // writes block until b reads
			defer b.Close()
			s := NewSession(a, true, &Config{WriteTimeout: 100 * time.Millisecond, KeepAliveInterval: -1})
			defer s.Close()
			if burst {
				// b reads the first writes, then stops.
				go func() {
					buf := make([]byte, 1<<10)
					for i := 0; i < 3; i++ {
						if _, err := b.Read(buf); err != nil {
							return
						}
					}
				}()
			}
			st, err := s.Open(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			// The session's first write (its opening ping rides on it);
			// with burst, writes until one blocks.
			go func() {
				for {
					if _, err := st.Write(make([]byte, 100)); err != nil || !burst {
						return
					}
				}
			}()
			select {
			case <-s.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("session survived a peer that stopped reading")
			}
			if !errors.Is(s.Err(), os.ErrDeadlineExceeded) {
				t.Fatalf("Err = %v, want a write deadline error", s.Err())
			}
		})
	}
}

// Close sends GoAway under its own short deadline: a peer that does not
// read holds Close up for goAwayTimeout, not for WriteTimeout.
func TestGoAwayDeadlineNotWriteTimeout(t *testing.T) {
	leakcheck.Check(t)
	a, b := net.Pipe() // b never reads
	defer b.Close()
	s := NewSession(a, true, &Config{WriteTimeout: 30 * time.Second, KeepAliveInterval: -1})
	start := time.Now()
	s.Close()
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("Close took %v against a peer that does not read (GoAway's deadline is %v)", took, goAwayTimeout)
	}
}
