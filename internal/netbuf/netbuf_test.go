package netbuf

import (
	"net"
	"runtime"
	"testing"
	"time"
)

type counted int

func (c counted) Buffered() int { return int(c) }

func TestBuffered(t *testing.T) {
	if got := Buffered(counted(7)); got != 7 {
		t.Fatalf("Buffered of a Bufferer = %d", got)
	}
	if got := Buffered(struct{}{}); got != 0 {
		t.Fatalf("Buffered of something that cannot tell = %d", got)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := Buffered(b); got != 0 {
		t.Fatalf("Buffered of an idle socket = %d", got)
	}
	if _, err := a.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	want := 5
	if runtime.GOOS != "linux" {
		want = 0
	}
	deadline := time.Now().Add(5 * time.Second)
	for Buffered(b) != want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := Buffered(b); got != want {
		t.Fatalf("Buffered after 5 bytes arrived = %d, want %d", got, want)
	}
}

type inexact struct{ counted }

func (inexact) BufferedExact() bool { return false }

// wrapped adds to another connection's count, forwarding its exactness.
type wrapped struct{ inner any }

func (w wrapped) Buffered() int       { return 1 + Buffered(w.inner) }
func (w wrapped) BufferedExact() bool { return Exact(w.inner) }

func TestExact(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	for _, c := range []struct {
		name string
		c    any
		want bool
	}{
		{"own count", counted(3), true},
		{"own count, says inexact", inexact{3}, false},
		{"wrapper of an inexact one", wrapped{inexact{3}}, false},
		{"wrapper of an exact one", wrapped{counted(3)}, true},
		{"pipe: cannot tell", a, false},
	} {
		if got := Exact(c.c); got != c.want {
			t.Errorf("%s: Exact = %v, want %v", c.name, got, c.want)
		}
	}
}
