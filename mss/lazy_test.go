package mss

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// recConn is a net.Conn whose writes are recorded.
type recConn struct {
	net.Conn
	rec *recorder
}

func (c recConn) Write(p []byte) (int, error) { return c.rec.Write(p) }

func newRecConn(c net.Conn) recConn { return recConn{Conn: c, rec: &recorder{ReadWriter: c}} }

// tcpPair returns the two ends of a loopback TCP connection, which, unlike
// net.Pipe, can half-close.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-acc
	if b == nil {
		t.Fatal("accept failed")
	}
	dl := time.Now().Add(5 * time.Second)
	a.SetDeadline(dl)
	b.SetDeadline(dl)
	t.Cleanup(func() { a.Close(); b.Close() })
	return a.(*net.TCPConn), b.(*net.TCPConn)
}

func TestLazyWriteFirst(t *testing.T) {
	for _, tc := range []struct {
		name      string
		supported protocol.ID
		is        error
	}{
		{"accepted", "/echo", nil},
		{"refused", "/other", ErrNotSupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			// Over TCP, not net.Pipe: a lazy dialer relies on the transport
			// buffering its data while the listener answers.
			dc, lc := tcpPair(t)
			rc := newRecConn(dc)
			c := NewLazy(rc, "/echo")
			lerr := goErr(func() error {
				_, _, err := mux(t, tc.supported).Negotiate(lc)
				if err != nil {
					return err
				}
				buf := make([]byte, 5)
				if _, err := io.ReadFull(lc, buf); err != nil {
					return err
				}
				_, err = lc.Write(bytes.ToUpper(buf))
				return err
			})
			if n, err := c.Write([]byte("hello")); n != 5 || err != nil {
				t.Fatalf("Write = %d, %v", n, err)
			}
			w := rc.rec.chunks()
			if want := cat(headerMsg, tok("/echo"), []byte("hello")); len(w) != 1 || !bytes.Equal(w[0], want) {
				t.Fatalf("first write(s) %x, want one write %x", w, want)
			}
			buf := make([]byte, 5)
			_, err := io.ReadFull(c, buf)
			if tc.is != nil {
				if !errors.Is(err, tc.is) {
					t.Fatalf("Read = %v, want %v", err, tc.is)
				}
				if _, err := c.Write([]byte("more")); !errors.Is(err, tc.is) {
					t.Errorf("Write after refusal = %v, want %v", err, tc.is)
				}
				if err := c.Close(); err != nil {
					t.Errorf("Close = %v; the refusal was already reported", err)
				}
				// The listener reads "hello" as a token and then hits EOF.
				if err := <-lerr; err == nil {
					t.Error("listener succeeded after refusing")
				}
				return
			}
			if err != nil || string(buf) != "HELLO" {
				t.Fatalf("Read = %q, %v", buf, err)
			}
			if c.Protocol() != "/echo" {
				t.Errorf("Protocol = %q", c.Protocol())
			}
			if err := <-lerr; err != nil {
				t.Fatal(err)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if n := len(rc.rec.chunks()); n != 1 {
				t.Errorf("%d writes, want 1", n)
			}
		})
	}
}

// TestLazyReadFirst: a protocol where the listener speaks first. Read must
// send the proposal, or both sides wait forever.
func TestLazyReadFirst(t *testing.T) {
	leakcheck.Check(t)
	dc, lc := pipe(t)
	c := NewLazy(dc, "/srv")
	lerr := goErr(func() error {
		if _, _, err := mux(t, "/srv").Negotiate(lc); err != nil {
			return err
		}
		_, err := lc.Write([]byte("welcome"))
		return err
	})
	buf := make([]byte, 7)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "welcome" {
		t.Fatalf("Read = %q, %v", buf, err)
	}
	if err := <-lerr; err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLazyCloseBeforeWrite: closing without writing still negotiates, and
// Close reports the listener's answer only after reading it.
func TestLazyCloseBeforeWrite(t *testing.T) {
	for _, tc := range []struct {
		name      string
		supported protocol.ID
		is        error
	}{
		{"accepted", "/p", nil},
		{"refused", "/q", ErrNotSupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			dc, lc := pipe(t)
			c := NewLazy(dc, "/p")
			type res struct {
				id   protocol.ID
				err  error
				rest error
			}
			lres := make(chan res, 1)
			go func() {
				id, _, err := mux(t, tc.supported).Negotiate(lc)
				var rest error
				if err == nil {
					_, rest = lc.Read(make([]byte, 1))
				}
				lres <- res{id, err, rest}
			}()
			err := c.Close()
			if tc.is == nil && err != nil || tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("Close = %v, want %v", err, tc.is)
			}
			r := <-lres
			if tc.is == nil {
				if r.err != nil || r.id != "/p" || r.rest != io.EOF {
					t.Fatalf("listener: %q, %v, then %v; want /p, then EOF", r.id, r.err, r.rest)
				}
			} else if !errors.Is(r.err, io.EOF) {
				t.Fatalf("listener: %v, want EOF after na", r.err)
			}
		})
	}
}

// TestLazyCloseWrite half-closes before writing anything: the proposal must
// still go out, and the answer must still be readable.
func TestLazyCloseWrite(t *testing.T) {
	leakcheck.Check(t)
	dc, lc := tcpPair(t)
	c := NewLazy(dc, "/p")
	lerr := goErr(func() error {
		if _, _, err := mux(t, "/p").Negotiate(lc); err != nil {
			return err
		}
		if rest, err := io.ReadAll(lc); err != nil || len(rest) != 0 {
			t.Errorf("listener read %q, %v after the proposal; want EOF", rest, err)
		}
		if _, err := lc.Write([]byte("bye")); err != nil {
			return err
		}
		return lc.Close()
	})
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(c); err != nil || string(got) != "bye" {
		t.Fatalf("ReadAll = %q, %v", got, err)
	}
	if err := <-lerr; err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLazyCloseRead reads the answer before giving up on reading, so that a
// refusal is reported.
func TestLazyCloseRead(t *testing.T) {
	leakcheck.Check(t)
	dc, lc := tcpPair(t)
	c := NewLazy(dc, "/p")
	lerr := goErr(func() error {
		_, _, err := mux(t, "/q").Negotiate(lc)
		return err
	})
	if err := c.CloseRead(); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("CloseRead = %v, want ErrNotSupported", err)
	}
	c.Close()
	if err := <-lerr; !errors.Is(err, io.EOF) {
		t.Fatalf("listener: %v", err)
	}
}

// TestLazyCloseInterruptsRead: Close must not wait behind a Read that is
// blocked on the handshake; it closes at once and the Read fails.
func TestLazyCloseInterruptsRead(t *testing.T) {
	leakcheck.Check(t)
	dc, lc := pipe(t)
	c := NewLazy(dc, "/p")
	// A listener that takes the proposal and never answers.
	go io.ReadFull(lc, make([]byte, len(headerMsg)+len(tok("/p"))))
	rerr := goErr(func() error {
		_, err := c.Read(make([]byte, 1))
		return err
	})
	// Wait until the Read holds the handshake, signalled by the proposal
	// having been written (the listener goroutine consumed it).
	for !c.sent.Load() {
		time.Sleep(time.Millisecond)
	}
	for c.rmu.TryLock() {
		c.rmu.Unlock()
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	c.Close()
	if err := <-rerr; err == nil || errors.Is(err, ErrNotSupported) {
		t.Fatalf("blocked Read = %v, want a closed-connection error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v", d)
	}
}

func TestLazyPassThrough(t *testing.T) {
	leakcheck.Check(t)
	dc, lc := net.Pipe() // has no CloseWrite or CloseRead
	t.Cleanup(func() { dc.Close(); lc.Close() })
	c := NewLazy(dc, "/p")
	for name, f := range map[string]func() error{
		"CloseWrite": c.CloseWrite,
		"CloseRead":  c.CloseRead,
		"Reset":      c.Reset,
	} {
		if err := f(); !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("%s over net.Pipe = %v, want ErrUnsupported", name, err)
		}
	}
	past := time.Now().Add(-time.Second)
	for name, f := range map[string]func(time.Time) error{
		"SetDeadline":      c.SetDeadline,
		"SetReadDeadline":  c.SetReadDeadline,
		"SetWriteDeadline": c.SetWriteDeadline,
	} {
		if err := f(past); err != nil {
			t.Errorf("%s = %v", name, err)
		}
	}
	// The deadline reached the pipe: the handshake write times out.
	var ne net.Error
	if _, err := c.Write([]byte("x")); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Write past the deadline = %v, want a timeout", err)
	}
	if err := NewLazy(nopCloser{&script{}}, "/p").SetDeadline(past); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("SetDeadline on a plain ReadWriteCloser = %v", err)
	}
}

func TestLazyReset(t *testing.T) {
	leakcheck.Check(t)
	dc, _ := pipe(t)
	r := &resetter{Conn: dc}
	if err := NewLazy(r, "/p").Reset(); err != nil || !r.reset {
		t.Fatalf("Reset = %v, passed through: %v", err, r.reset)
	}
}

type resetter struct {
	net.Conn
	reset bool
}

func (r *resetter) Reset() error {
	r.reset = true
	return r.Close()
}

// TestLazyCloseBounded: a listener that never answers cannot hold Close
// beyond closeAnswerTimeout, unless the caller set a read deadline itself.
func TestLazyCloseBounded(t *testing.T) {
	leakcheck.Check(t)
	old := closeAnswerTimeout
	closeAnswerTimeout = 200 * time.Millisecond
	defer func() { closeAnswerTimeout = old }()
	dc, lc := pipe(t)
	dc.SetDeadline(time.Time{})
	lc.SetDeadline(time.Time{})
	c := NewLazy(dc, "/p")
	start := time.Now()
	err := c.Close()
	if err == nil {
		t.Fatal("Close without an answer reported no error")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Close took %v against a silent listener", d)
	}
}

// finalRec records a stream's writes, marking the ones that half-closed
// (network.FinalWriter), as a yamux stream would send them in one frame.
type finalRec struct {
	io.Reader
	writes []string
	closed int // CloseWrite calls
}

func (f *finalRec) Write(p []byte) (int, error) {
	f.writes = append(f.writes, string(p))
	return len(p), nil
}

func (f *finalRec) WriteFinal(p []byte) (int, error) {
	f.writes = append(f.writes, string(p)+"|FIN")
	return len(p), nil
}

func (f *finalRec) CloseWrite() error { f.closed++; return nil }
func (f *finalRec) Close() error      { return nil }

// TestLazyFinal checks that a half-close before anything was written sends
// the header, proposal and FIN in one final write, as does WriteFinal with
// the data, and that after a first write they go as usual.
func TestLazyFinal(t *testing.T) {
	hs := string(cat(headerMsg, tok("/p")))
	for _, tc := range []struct {
		name   string
		do     func(c *LazyConn) error
		writes []string
		closed int
	}{
		{"CloseWrite first", func(c *LazyConn) error { return c.CloseWrite() }, []string{hs + "|FIN"}, 0},
		{"WriteFinal first", func(c *LazyConn) error { _, err := c.WriteFinal([]byte("req")); return err },
			[]string{hs + "req|FIN"}, 0},
		{"Write then WriteFinal", func(c *LazyConn) error {
			if _, err := c.Write([]byte("a")); err != nil {
				return err
			}
			_, err := c.WriteFinal([]byte("b"))
			return err
		}, []string{hs + "a", "b|FIN"}, 0},
		{"Write then CloseWrite", func(c *LazyConn) error {
			if _, err := c.Write([]byte("a")); err != nil {
				return err
			}
			return c.CloseWrite()
		}, []string{hs + "a"}, 1},
		{"large WriteFinal first", func(c *LazyConn) error {
			_, err := c.WriteFinal(make([]byte, firstChunk+1))
			return err
		}, []string{hs + string(make([]byte, firstChunk)), "\x00"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &finalRec{Reader: bytes.NewReader(nil)}
			c := NewLazy(rec, "/p")
			if err := tc.do(c); err != nil {
				t.Fatal(err)
			}
			if len(rec.writes) != len(tc.writes) {
				t.Fatalf("%d writes %.80q, want %d %.80q", len(rec.writes), rec.writes, len(tc.writes), tc.writes)
			}
			for i := range rec.writes {
				if rec.writes[i] != tc.writes[i] {
					t.Fatalf("write %d = %.80q, want %.80q", i, rec.writes[i], tc.writes[i])
				}
			}
			if rec.closed != tc.closed {
				t.Fatalf("%d CloseWrite calls, want %d", rec.closed, tc.closed)
			}
		})
	}
}
