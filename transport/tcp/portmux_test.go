package tcp

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

func TestClassify(t *testing.T) {
	for in, want := range map[string]struct {
		k    Kind
		more bool
	}{
		"":                       {kindUnknown, true},
		"\x13/multistream/1.0.0": {KindMultistream, false},
		"\x13":                   {KindMultistream, false},
		"G":                      {kindUnknown, true},
		"GE":                     {kindUnknown, true},
		"GET":                    {kindUnknown, true},
		"GET ":                   {KindHTTP, false},
		"GETX":                   {kindUnknown, false},
		"GX":                     {kindUnknown, false},
		"\x16":                   {kindUnknown, true},
		"\x16\x03":               {KindTLS, false},
		"\x16\x02":               {kindUnknown, false},
		"\x00\x20":               {kindUnknown, false},
		"POST":                   {kindUnknown, false},
	} {
		k, more := classify([]byte(in))
		if k != want.k || more != want.more {
			t.Errorf("classify(%q) = %v, %v", in, k, more)
		}
	}
}

// Each kind reaches its listener with the peeked bytes intact; unknown
// kinds fall back to the multistream listener; a silent peer is dropped
// after SniffTimeout without blocking others.
func TestPortMuxRoutes(t *testing.T) {
	leakcheck.Check(t)
	m := NewPortMux(&PortMuxConfig{SniffTimeout: 200 * time.Millisecond})
	lm, err := m.Listen("tcp4", "127.0.0.1:0", KindMultistream)
	if err != nil {
		t.Fatal(err)
	}
	defer lm.Close()
	lh, err := m.Listen("tcp4", "127.0.0.1:0", KindHTTP)
	if err != nil {
		t.Fatal(err)
	}
	defer lh.Close()
	if lh.Addr().String() != lm.Addr().String() {
		t.Fatalf("port 0 did not join: %s vs %s", lh.Addr(), lm.Addr())
	}
	if _, err := m.Listen("tcp4", lm.Addr().String(), KindHTTP); !errors.Is(err, ErrKindInUse) {
		t.Fatalf("duplicate kind: %v", err)
	}

	silent, err := net.Dial("tcp", lm.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	for _, tc := range []struct {
		msg string
		l   *Listener
	}{
		{"GET / HTTP/1.1\r\n", lh},
		{"\x13/multistream/1.0.0\n", lm},
		{"\x16\x03\x01hello", lm}, // no KindTLS listener: libp2p gets it
		{"\x00\x20noise", lm},
		{"G", lm}, // then EOF: dropped, the next one still arrives
		{"GET x", lh},
	} {
		c, err := net.Dial("tcp", lm.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(tc.msg))
		if tc.msg == "G" {
			c.Close()
			continue
		}
		defer c.Close()
		sc, err := tc.l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(tc.msg))
		sc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(sc, got); err != nil || string(got) != tc.msg {
			t.Fatalf("%q arrived as %q, %v", tc.msg, got, err)
		}
		sc.Close()
	}

	silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("silent peer: %v", err)
	}

	// The socket outlives one listener and closes with the last.
	addr := lm.Addr().String()
	lh.Close()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	lm.Close()
	if _, err := lm.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("accept after close: %v", err)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("socket still open after its last listener closed")
	}
}
