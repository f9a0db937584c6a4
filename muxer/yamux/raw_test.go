package yamux

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// rawPeer speaks yamux by hand, to check exactly what goes on the wire and
// to send what a well-behaved session never would. A goroutine reads
// frames all the time (net.Pipe writes block until read) and answers pings.
type rawPeer struct {
	t      testing.TB
	c      net.Conn
	frames chan rawFrame
	wmu    sync.Mutex
}

type rawFrame struct {
	h       header
	hb      []byte
	payload []byte
}

func newRawPeer(t testing.TB, c net.Conn) *rawPeer {
	p := &rawPeer{t: t, c: c, frames: make(chan rawFrame, 1024)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := bufio.NewReader(c)
		for {
			hb := make([]byte, headerSize)
			if _, err := io.ReadFull(r, hb); err != nil {
				return
			}
			h, err := parseHeader(hb)
			if err != nil {
				return
			}
			var payload []byte
			if h.typ == typeData {
				payload = make([]byte, h.length)
				if _, err := io.ReadFull(r, payload); err != nil {
					return
				}
			}
			if h.typ == typePing {
				if h.flags&flagSYN != 0 {
					// Answer on the side: the session may be busy
					// writing to us and not reading.
					go p.writeRaw(appendHeader(nil, header{typ: typePing, flags: flagACK, length: h.length}))
				}
				continue
			}
			select {
			case p.frames <- rawFrame{h, hb, payload}:
			default: // nobody is looking at frames this far
			}
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	return p
}

func (p *rawPeer) writeRaw(b []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := p.c.Write(b)
	return err
}

func (p *rawPeer) write(h header, payload []byte) {
	p.t.Helper()
	if err := p.writeRaw(append(appendHeader(nil, h), payload...)); err != nil {
		p.t.Fatalf("raw peer write %v: %v", h, err)
	}
}

// next returns the next frame that is not a ping.
func (p *rawPeer) next() (header, []byte, []byte) {
	p.t.Helper()
	select {
	case f := <-p.frames:
		return f.h, f.hb, f.payload
	case <-time.After(5 * time.Second):
		p.t.Fatal("raw peer: no frame within 5s")
		return header{}, nil, nil
	}
}

func TestWireSYN(t *testing.T) {
	for _, tt := range []struct {
		name   string
		window uint32
		want   []byte
	}{
		{"default window", 0, []byte{0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0}},
		{"1 MiB window", 1 << 20, []byte{0, 1, 0, 1, 0, 0, 0, 1, 0, 0x0c, 0, 0}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			leakcheck.Check(t)
			a, b := net.Pipe()
			raw := newRawPeer(t, b)
			c := NewSession(a, true, &Config{InitialStreamWindow: tt.window})
			defer c.Close()
			st, err := c.Open(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			// The SYN (and the session's first ping) wait for the
			// stream's first frame.
			select {
			case f := <-raw.frames:
				t.Fatalf("frame %+v before the first write", f.h)
			case <-time.After(50 * time.Millisecond):
			}
			go st.Write([]byte("hi"))
			_, hb, _ := raw.next()
			if !bytes.Equal(hb, tt.want) {
				t.Fatalf("SYN = % x, want % x", hb, tt.want)
			}
			h, _, payload := raw.next()
			if h != (header{typ: typeData, stream: 1, length: 2}) || string(payload) != "hi" {
				t.Fatalf("data frame %v %q", h, payload)
			}
		})
	}
}

// TestAcceptWire checks how an inbound stream is acknowledged and read,
// including frames from other implementations: WindowUpdate|RST carrying an
// error code, and zero-length Data|FIN.
func TestAcceptWire(t *testing.T) {
	leakcheck.Check(t)
	a, b := net.Pipe()
	raw := newRawPeer(t, b)
	s := NewSession(a, false, nil)
	defer s.Close()
	raw.write(header{typ: typeData, flags: flagSYN, stream: 1, length: 3}, []byte("abc"))
	st, err := s.Accept()
	if err != nil {
		t.Fatal(err)
	}
	h, _, _ := raw.next()
	if h != (header{typ: typeWindowUpdate, flags: flagACK, stream: 1}) {
		t.Fatalf("ACK = %v", h)
	}
	raw.write(header{typ: typeData, flags: flagFIN, stream: 1}, nil)
	got, err := io.ReadAll(st)
	if err != nil || string(got) != "abc" {
		t.Fatalf("read %q, %v", got, err)
	}
	// Stream 3 is reset with go-yamux v5's error code in the length.
	raw.write(header{typ: typeWindowUpdate, flags: flagSYN, stream: 3}, nil)
	st3, err := s.Accept()
	if err != nil {
		t.Fatal(err)
	}
	raw.next() // ACK
	raw.write(header{typ: typeWindowUpdate, flags: flagRST, stream: 3, length: 42}, nil)
	if _, err := st3.Read(make([]byte, 1)); !errors.Is(err, network.ErrReset) {
		t.Fatalf("read after RST: %v", err)
	}
	st3.mu.Lock()
	w := st3.sendWindow
	st3.mu.Unlock()
	if w != initialWindow {
		t.Fatalf("RST code was added to the window: %d", w)
	}
	if s.IsClosed() {
		t.Fatalf("session closed: %v", s.Err())
	}
}

func TestMaxIncomingStreams(t *testing.T) {
	leakcheck.Check(t)
	a, b := net.Pipe()
	raw := newRawPeer(t, b)
	s := NewSession(a, false, &Config{MaxIncomingStreams: 1})
	defer s.Close()
	raw.write(header{typ: typeWindowUpdate, flags: flagSYN, stream: 1}, nil)
	raw.write(header{typ: typeData, flags: flagSYN, stream: 3, length: 4}, []byte("data"))
	h, _, _ := raw.next()
	if h != (header{typ: typeWindowUpdate, flags: flagRST, stream: 3}) {
		t.Fatalf("got %v, want RST for stream 3", h)
	}
	if st, err := s.Accept(); err != nil || st.StreamID() != 1 {
		t.Fatalf("Accept = %v, %v", st, err)
	}
}

func TestProtocolErrors(t *testing.T) {
	big := make([]byte, initialWindow+1)
	tests := []struct {
		name    string
		frames  [][]byte
		wantErr error
	}{
		{"window exceeded", [][]byte{
			append(appendHeader(nil, header{typ: typeData, flags: flagSYN, stream: 1, length: uint32(len(big))}), big...),
		}, ErrProtocol},
		{"window exceeded over two frames", [][]byte{
			append(appendHeader(nil, header{typ: typeData, flags: flagSYN, stream: 1, length: initialWindow}), big[:initialWindow]...),
			append(appendHeader(nil, header{typ: typeData, stream: 1, length: 1}), 0),
		}, ErrProtocol},
		{"bad version", [][]byte{{1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}}, ErrProtocol},
		{"unknown type", [][]byte{{0, 9, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}}, ErrProtocol},
		{"data on stream 0", [][]byte{appendHeader(nil, header{typ: typeData, flags: flagSYN})}, ErrProtocol},
		{"server parity", [][]byte{appendHeader(nil, header{typ: typeWindowUpdate, flags: flagSYN, stream: 2})}, ErrProtocol},
		{"duplicate SYN", [][]byte{
			appendHeader(nil, header{typ: typeWindowUpdate, flags: flagSYN, stream: 1}),
			appendHeader(nil, header{typ: typeWindowUpdate, flags: flagSYN, stream: 1}),
		}, ErrProtocol},
		{"window overflow", [][]byte{
			appendHeader(nil, header{typ: typeWindowUpdate, flags: flagSYN, stream: 1, length: 1<<32 - 1}),
		}, ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leakcheck.Check(t)
			a, b := net.Pipe()
			raw := newRawPeer(t, b)
			s := NewSession(a, false, nil)
			defer s.Close()
			go func() {
				for _, f := range tt.frames {
					if raw.writeRaw(f) != nil {
						return
					}
				}
			}()
			for {
				h, _, _ := raw.next()
				if h.typ == typeGoAway {
					if h.length != GoAwayProtocolError {
						t.Fatalf("GoAway code %d, want protocol error", h.length)
					}
					break
				}
			}
			select {
			case <-s.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("session still open")
			}
			if !errors.Is(s.Err(), tt.wantErr) {
				t.Fatalf("Err = %v, want %v", s.Err(), tt.wantErr)
			}
		})
	}
}

func TestGoAwayWithError(t *testing.T) {
	leakcheck.Check(t)
	a, b := net.Pipe()
	raw := newRawPeer(t, b)
	s := NewSession(a, false, nil)
	defer s.Close()
	raw.write(header{typ: typeGoAway, length: GoAwayInternalError}, nil)
	<-s.Done()
	var ge *GoAwayError
	if !errors.As(s.Err(), &ge) || ge.Code != GoAwayInternalError {
		t.Fatalf("Err = %v, want GoAwayError{2}", s.Err())
	}
}

func FuzzSession(f *testing.F) {
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	f.Add(cat(appendHeader(nil, header{typ: typeData, flags: flagSYN, stream: 1, length: 3}), []byte("abc")))
	f.Add(cat(
		appendHeader(nil, header{typ: typeWindowUpdate, flags: flagSYN, stream: 1, length: 1000}),
		appendHeader(nil, header{typ: typeData, stream: 1, length: 2}), []byte("hi"),
		appendHeader(nil, header{typ: typeData, flags: flagFIN, stream: 1}),
		appendHeader(nil, header{typ: typeWindowUpdate, flags: flagRST, stream: 1, length: 3}),
	))
	f.Add(cat(
		appendHeader(nil, header{typ: typePing, flags: flagSYN, length: 7}),
		appendHeader(nil, header{typ: typePing, flags: flagACK, length: 1}),
		appendHeader(nil, header{typ: typeGoAway}),
	))
	f.Add(appendHeader(nil, header{typ: typeGoAway, length: 1}))
	f.Fuzz(func(t *testing.T, in []byte) {
		leakcheck.Check(t)
		a, b := net.Pipe()
		// A small memory budget, so that streams get reset too.
		scope := &fakeScope{limit: 8 << 10}
		s := NewSessionScope(a, false, &Config{MaxIncomingStreams: 4}, scope)
		go io.Copy(io.Discard, b)
		// Accept and read whatever streams appear, as an application would.
		go func() {
			for {
				st, err := s.Accept()
				if err != nil {
					return
				}
				go io.Copy(io.Discard, st)
			}
		}()
		b.SetWriteDeadline(time.Now().Add(5 * time.Second))
		b.Write(in)
		b.Close()
		select {
		case <-s.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("session did not end after its input ended")
		}
		if s.Err() == nil {
			t.Fatal("session ended without an error")
		}
		s.Close()
		scope.mu.Lock()
		defer scope.mu.Unlock()
		if scope.closes != 1 || scope.opens != scope.dones || scope.negative || len(scope.late) > 0 {
			t.Fatalf("scope: closes %d, opens %d, dones %d, released more than reserved %v, calls after Close %v",
				scope.closes, scope.opens, scope.dones, scope.negative, scope.late)
		}
	})
}

// TestResetBeforeAccept is the open+RST flood: streams the peer opens and
// resets before they are accepted are neither queued nor acknowledged, so
// the next live stream is the first Accept returns.
func TestResetBeforeAccept(t *testing.T) {
	leakcheck.Check(t)
	a, b := net.Pipe()
	raw := newRawPeer(t, b)
	s := NewSession(a, false, &Config{MaxIncomingStreams: 10})
	defer s.Close()
	var burst []byte
	for id := uint32(1); id < 4000; id += 2 {
		burst = appendHeader(burst, header{typ: typeData, flags: flagSYN, stream: id, length: 5})
		burst = append(burst, "hello"...)
		burst = appendHeader(burst, header{typ: typeWindowUpdate, flags: flagRST, stream: id})
	}
	if err := raw.writeRaw(burst); err != nil {
		t.Fatal(err)
	}
	raw.write(header{typ: typeData, flags: flagSYN, stream: 4001, length: 2}, []byte("hi"))
	st, err := s.Accept()
	if err != nil || st.StreamID() != 4001 {
		t.Fatalf("Accept = %v, %v; want stream 4001", st, err)
	}
	if h, _, _ := raw.next(); h != (header{typ: typeWindowUpdate, flags: flagACK, stream: 4001}) {
		t.Fatalf("first frame sent %v, want the ACK of stream 4001", h)
	}
	s.mu.Lock()
	queued, open := len(s.acceptQ), len(s.streams)
	s.mu.Unlock()
	if queued != 0 || open != 1 || s.IsClosed() {
		t.Fatalf("%d streams queued, %d open, session closed %v (%v); want 0, 1, open", queued, open, s.IsClosed(), s.Err())
	}
}

// frameLog is a connection that records the frames of each Write.
type frameLog struct {
	net.Conn
	mu     sync.Mutex
	writes [][]header
}

func (w *frameLog) Write(p []byte) (int, error) {
	var hs []header
	for b := p; len(b) >= headerSize; {
		h, err := parseHeader(b)
		if err != nil {
			break
		}
		b = b[headerSize:]
		if h.typ == typeData {
			b = b[min(int(h.length), len(b)):]
		}
		hs = append(hs, h)
	}
	w.mu.Lock()
	w.writes = append(w.writes, hs)
	w.mu.Unlock()
	return w.Conn.Write(p)
}

func (w *frameLog) last() []header {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writes[len(w.writes)-1]
}

// TestWriteFinal checks that WriteFinal sends the FIN as a WindowUpdate in
// the same write as the last data frame (never as a flag on it: see
// writeData), that the stream takes no more writes, and that a stream the
// peer had closed ends once the FIN is out.
func TestWriteFinal(t *testing.T) {
	for _, tt := range []struct {
		name     string
		size     int
		frames   int
		peerDone bool // the peer half-closed first
	}{
		{"one frame", 300, 1, false},
		{"three frames", 2*4096 + 10, 3, false},
		{"vectored", 5000, 1, false},
		{"peer closed first", 5, 1, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			leakcheck.Check(t)
			a, b := net.Pipe()
			raw := newRawPeer(t, b)
			wl := &frameLog{Conn: a}
			var conn net.Conn = wl
			if tt.name == "vectored" {
				conn = &vecFrameLog{wl}
			}
			c := NewSession(conn, true, &Config{MaxFrameSize: 8192})
			if tt.frames > 1 {
				c.cfg.MaxFrameSize = 4096
			}
			defer c.Close()
			st, err := c.Open(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			if tt.peerDone {
				st.Write([]byte("x"))
				if h, _, _ := raw.next(); h.flags != flagSYN {
					t.Fatalf("first frame %v, want the SYN", h)
				}
				raw.next()
				raw.write(header{typ: typeWindowUpdate, flags: flagACK | flagFIN, stream: 1}, nil)
				waitFor(t, func() bool { _, err := st.Read(make([]byte, 1)); return err == io.EOF })
			}
			msg := bytes.Repeat([]byte{7}, tt.size)
			done := make(chan error, 1)
			go func() {
				n, err := st.WriteFinal(msg)
				if err == nil && n != len(msg) {
					err = fmt.Errorf("wrote %d of %d", n, len(msg))
				}
				done <- err
			}()
			var got []byte
			for i := 0; i < tt.frames; {
				h, _, payload := raw.next()
				if h.flags&flagSYN != 0 && h.typ == typeWindowUpdate {
					continue
				}
				if h.typ != typeData || h.stream != 1 || h.flags != 0 {
					t.Fatalf("frame %d of %d: %+v", i+1, tt.frames, h)
				}
				got = append(got, payload...)
				i++
			}
			if h, _, _ := raw.next(); h != (header{typ: typeWindowUpdate, flags: flagFIN, stream: 1}) {
				t.Fatalf("after the data: %+v, want the FIN", h)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if w := wl.last(); len(w) < 2 || w[len(w)-2].typ != typeData || w[len(w)-1].flags != flagFIN {
				t.Fatalf("last write carried %+v, want the last data frame and the FIN", w)
			}
			if !bytes.Equal(got, msg) {
				t.Fatalf("got %d bytes, want %d", len(got), len(msg))
			}
			if _, err := st.Write([]byte("x")); !errors.Is(err, ErrStreamClosed) {
				t.Fatalf("write after WriteFinal: %v", err)
			}
			if err := st.CloseWrite(); err != nil {
				t.Fatalf("CloseWrite after WriteFinal: %v", err)
			}
			if tt.peerDone {
				waitFor(t, func() bool { return c.NumStreams() == 0 })
			} else if c.NumStreams() != 1 {
				t.Fatalf("%d streams, want the half-open one", c.NumStreams())
			}
			select {
			case f := <-raw.frames:
				t.Fatalf("unexpected frame after the FIN: %+v", f.h)
			case <-time.After(50 * time.Millisecond):
			}
		})
	}
}

// vecFrameLog is a frameLog that takes several buffers in one write, as
// security/tls.Conn does.
type vecFrameLog struct{ *frameLog }

func (v *vecFrameLog) WriteBuffers(bufs [][]byte) (int, error) {
	var b []byte
	for _, p := range bufs {
		b = append(b, p...)
	}
	return v.Write(b)
}

// TestWriteFinalFailed: a WriteFinal whose data could not leave (its write
// deadline passed while another writer held the connection) still
// half-closes the stream, as documented.
func TestWriteFinalFailed(t *testing.T) {
	leakcheck.Check(t)
	a, b := net.Pipe()
	raw := newRawPeer(t, b)
	c := NewSession(a, true, nil)
	defer c.Close()
	st, err := c.Open(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	c.wsem <- struct{}{} // another writer holds the connection
	st.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := st.WriteFinal([]byte("lost")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("WriteFinal = %v, want the deadline", err)
	}
	c.release()
	if h, _, _ := raw.next(); h.flags != flagSYN {
		t.Fatalf("first frame %+v, want the SYN", h)
	}
	if h, _, _ := raw.next(); h != (header{typ: typeWindowUpdate, flags: flagFIN, stream: 1}) {
		t.Fatalf("then %+v, want the FIN", h)
	}
	if _, err := st.Write([]byte("x")); !errors.Is(err, ErrStreamClosed) {
		t.Fatalf("write after a failed WriteFinal: %v", err)
	}
}
