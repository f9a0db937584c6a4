package websocket

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	for _, c := range []net.Conn{a, b} {
		c.SetDeadline(time.Now().Add(10 * time.Second))
	}
	return a, b
}

// frame builds one frame; a non-nil mask masks it.
func frame(fin bool, op opcode, mask []byte, payload []byte) []byte {
	h := header{fin: fin, op: op, length: uint64(len(payload))}
	if mask != nil {
		h.masked = true
		copy(h.mask[:], mask)
	}
	b := appendHeader(nil, h)
	p := bytes.Clone(payload)
	if mask != nil {
		maskBytes(h.mask, 0, p)
	}
	return append(b, p...)
}

// readFrame reads one frame from br, unmasking it.
func readFrame(t *testing.T, br *bufio.Reader) (header, []byte) {
	t.Helper()
	b, err := br.Peek(2)
	if err != nil {
		t.Fatal(err)
	}
	b, err = br.Peek(headerLen(b[1]))
	if err != nil {
		t.Fatal(err)
	}
	h, n, err := parseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	br.Discard(n)
	p := make([]byte, h.length)
	if _, err := io.ReadFull(br, p); err != nil {
		t.Fatal(err)
	}
	if h.masked {
		maskBytes(h.mask, 0, p)
	}
	return h, p
}

var mask = []byte{0xa1, 0xb2, 0xc3, 0xd4}

// A client Conn masks every frame with a fresh key, a server Conn masks
// none, and each Write is one binary frame.
func TestConnWritesFrames(t *testing.T) {
	leakcheck.Check(t)
	for _, client := range []bool{true, false} {
		a, b := tcpPair(t)
		c := newConn(a, bufio.NewReader(a), client)
		br := bufio.NewReader(b)
		var keys [][4]byte
		for _, size := range []int{1, 125, 126, 70000} {
			data := bytes.Repeat([]byte{byte(size)}, size)
			if n, err := c.Write(data); err != nil || n != size {
				t.Fatal(n, err)
			}
			h, p := readFrame(t, br)
			if h.masked != client || !h.fin || h.op != opBinary || !bytes.Equal(p, data) {
				t.Fatalf("client=%v size %d: %+v", client, size, h)
			}
			keys = append(keys, h.mask)
		}
		if client && keys[0] == keys[1] {
			t.Fatal("masking key reused")
		}
		c.Close()
		h, p := readFrame(t, br)
		if h.op != opClose || binary.BigEndian.Uint16(p) != closeNormal {
			t.Fatalf("close frame %+v % x", h, p)
		}
	}
}

// Fragmented messages, text frames, empty frames and interleaved pings all
// read as one byte stream; pings get pongs; a close frame is echoed and
// reads EOF.
func TestConnReadsStream(t *testing.T) {
	leakcheck.Check(t)
	a, b := tcpPair(t)
	c := newConn(a, bufio.NewReader(a), false)
	var in []byte
	in = append(in, frame(true, opBinary, mask, []byte("hello "))...)
	in = append(in, frame(false, opBinary, mask, []byte("frag"))...)
	in = append(in, frame(true, opPing, mask, []byte("p1"))...)
	in = append(in, frame(false, opContinuation, mask, nil)...)
	in = append(in, frame(true, opContinuation, mask, []byte("mented "))...)
	in = append(in, frame(true, opPong, mask, nil)...)
	in = append(in, frame(true, opText, mask, []byte("text"))...)
	in = append(in, frame(true, opClose, mask, []byte{0x03, 0xe9, 'b', 'y', 'e'})...)
	go b.Write(in)
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "hello fragmented text" {
		t.Fatalf("%q %v", got, err)
	}
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read after close: %v", err)
	}
	br := bufio.NewReader(b)
	if h, p := readFrame(t, br); h.op != opPong || string(p) != "p1" || h.masked {
		t.Fatalf("pong %+v %q", h, p)
	}
	if h, p := readFrame(t, br); h.op != opClose || !bytes.Equal(p, []byte{0x03, 0xe9}) {
		t.Fatalf("close reply %+v % x", h, p)
	}
	c.Close()
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after Close: %v", err)
	}
}

// Protocol violations fail the read, send a close frame with the status
// code, and close the connection.
func TestConnProtocolErrors(t *testing.T) {
	leakcheck.Check(t)
	for name, tc := range map[string]struct {
		client bool
		in     []byte
		code   uint16
	}{
		"unmasked from client": {false, frame(true, opBinary, nil, []byte("x")), closeProtocolError},
		"masked from server":   {true, frame(true, opBinary, mask, []byte("x")), closeProtocolError},
		"stray continuation":   {false, frame(true, opContinuation, mask, []byte("x")), closeProtocolError},
		"message in message":   {false, append(frame(false, opBinary, mask, []byte("x")), frame(true, opBinary, mask, []byte("y"))...), closeProtocolError},
		"reserved bits":        {false, []byte{0xc2, 0x80, 1, 2, 3, 4}, closeProtocolError},
		"oversized frame":      {false, []byte{0x82, 0xff, 0, 0, 0, 0, 0x40, 0, 0, 0, 1, 2, 3, 4}, closeTooBig},
	} {
		t.Run(name, func(t *testing.T) {
			a, b := tcpPair(t)
			c := newConn(a, bufio.NewReader(a), tc.client)
			go b.Write(tc.in)
			_, err := io.ReadAll(c)
			if err == nil || errors.Is(err, io.EOF) {
				t.Fatalf("read: %v", err)
			}
			br := bufio.NewReader(b)
			h, p := readFrame(t, br)
			if h.op != opClose || len(p) < 2 || binary.BigEndian.Uint16(p) != tc.code {
				t.Fatalf("close frame %+v % x", h, p)
			}
			if _, err := br.ReadByte(); err != io.EOF {
				t.Fatalf("conn not closed: %v", err)
			}
			if _, err := c.Write([]byte("x")); err == nil {
				t.Fatal("write after failure succeeded")
			}
		})
	}
}

// A peer that hangs up mid-frame gives ErrUnexpectedEOF, at a frame
// boundary EOF; a read deadline inside a header loses no bytes.
func TestConnTruncation(t *testing.T) {
	leakcheck.Check(t)
	a, b := tcpPair(t)
	c := newConn(a, bufio.NewReader(a), false)
	f := frame(true, opBinary, mask, []byte("abcdef"))
	b.Write(f[:3])
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	var ne net.Error
	if _, err := c.Read(make([]byte, 10)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read with half a header: %v", err)
	}
	c.SetReadDeadline(time.Time{})
	b.Write(f[3:9])
	b.Close()
	buf := make([]byte, 10)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "abc" {
		t.Fatalf("%q %v", buf[:n], err)
	}
	if _, err := io.ReadAll(c); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated payload: %v", err)
	}

	a, b = tcpPair(t)
	c = newConn(a, bufio.NewReader(a), false)
	b.Write(f)
	b.Close()
	if got, err := io.ReadAll(c); err != nil || string(got) != "abcdef" {
		t.Fatalf("clean hang-up: %q %v", got, err)
	}
}

// fakeConn reads from r and discards writes.
type fakeConn struct {
	net.Conn
	r io.Reader
}

func (f *fakeConn) Read(p []byte) (int, error)         { return f.r.Read(p) }
func (f *fakeConn) Write(p []byte) (int, error)        { return len(p), nil }
func (f *fakeConn) Close() error                       { return nil }
func (f *fakeConn) SetWriteDeadline(t time.Time) error { return nil }

func FuzzConnRead(f *testing.F) {
	var stream []byte
	stream = append(stream, frame(false, opBinary, mask, []byte("frag"))...)
	stream = append(stream, frame(true, opPing, mask, []byte("p"))...)
	stream = append(stream, frame(true, opContinuation, mask, []byte("ment"))...)
	stream = append(stream, frame(true, opClose, mask, []byte{3, 232})...)
	f.Add(stream, false)
	f.Add(frame(true, opBinary, nil, bytes.Repeat([]byte("z"), 300)), true)
	f.Add([]byte{0x82, 0xff, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4, 5}, false)
	f.Fuzz(func(t *testing.T, in []byte, client bool) {
		fc := &fakeConn{r: bytes.NewReader(in)}
		c := newConn(fc, bufio.NewReader(fc), client)
		n, _ := io.Copy(io.Discard, c)
		if n > int64(len(in)) {
			t.Fatalf("read %d payload bytes from %d input bytes", n, len(in))
		}
	})
}
