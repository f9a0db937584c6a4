package mss

import (
	"bytes"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// windowed is a stream whose large writes block until the test opens the
// "window", as a muxer's flow control does when the peer echoes and nobody
// reads the replies.
type windowed struct {
	mu      sync.Mutex
	written bytes.Buffer
	big     chan struct{} // a write over bigWrite bytes entered
	open    chan struct{} // closed to let big writes through
	answer  io.Reader
}

const bigWrite = 128 << 10

func (w *windowed) Write(p []byte) (int, error) {
	if len(p) > bigWrite {
		close(w.big)
		<-w.open
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.written.Write(p)
}

func (w *windowed) Read(p []byte) (int, error) { return w.answer.Read(p) }
func (w *windowed) Close() error               { return nil }

// A first Read must not wait for the rest of a large first Write: only for
// the handshake to be on its way.
func TestLazyReadDuringLargeFirstWrite(t *testing.T) {
	leakcheck.Check(t)
	proto := "/echo/1"
	answer := appendToken(append([]byte(nil), headerMsg...), proto)
	w := &windowed{big: make(chan struct{}), open: make(chan struct{}), answer: io.MultiReader(bytes.NewReader(answer), bytes.NewReader([]byte("reply")))}
	lc := NewLazy(w, "/echo/1")
	data := bytes.Repeat([]byte{7}, 1<<20)
	done := make(chan error, 1)
	go func() {
		_, err := lc.Write(data)
		done <- err
	}()
	<-w.big
	got := make(chan string, 1)
	go func() {
		b := make([]byte, 5)
		n, _ := io.ReadFull(lc, b)
		got <- string(b[:n])
	}()
	select {
	case s := <-got:
		if s != "reply" {
			t.Fatalf("read %q", s)
		}
	case <-time.After(5 * time.Second):
		close(w.open)
		<-done
		<-got
		t.Fatal("first Read waited for the whole first Write")
	}
	close(w.open)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The handshake went first, then every data byte in order.
	want := append(appendToken(append([]byte(nil), headerMsg...), proto), data...)
	if !bytes.Equal(w.written.Bytes(), want) {
		t.Fatalf("wrote %d bytes, want %d (equal %v)", w.written.Len(), len(want), bytes.Equal(w.written.Bytes(), want))
	}
}
