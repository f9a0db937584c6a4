package mss

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/internal/lp"
)

// recorder records every Write as a separate chunk.
type recorder struct {
	io.ReadWriter
	mu     sync.Mutex
	writes [][]byte
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.writes = append(r.writes, bytes.Clone(p))
	r.mu.Unlock()
	return r.ReadWriter.Write(p)
}

func (r *recorder) chunks() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.writes
}

// pipe returns both ends of a net.Pipe, closed and with a deadline so that a
// broken test fails instead of hanging.
// pipe returns the two ends of a loopback TCP connection. Every real
// transport buffers what a peer writes before it is read; net.Pipe does not,
// and over it a dialer that pipelines its header and proposal in one write
// and a listener that answers the header at once would block each other.
func pipe(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
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
		a.Close()
		t.Fatal("accept failed")
	}
	dl := time.Now().Add(5 * time.Second)
	a.SetDeadline(dl)
	b.SetDeadline(dl)
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// goErr runs f on its own goroutine and returns its result channel.
func goErr(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

func tok(s string) []byte { return appendToken(nil, s) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func mux(t testing.TB, ids ...protocol.ID) *Mux[string] {
	var m Mux[string]
	for _, id := range ids {
		if err := m.AddHandler(id, "h"+string(id)); err != nil {
			t.Fatal(err)
		}
	}
	return &m
}

// script is a ReadWriter that reads from a fixed input and records output.
type script struct {
	in  io.Reader
	out bytes.Buffer
}

func (s *script) Read(p []byte) (int, error)  { return s.in.Read(p) }
func (s *script) Write(p []byte) (int, error) { return s.out.Write(p) }

// Buffered reports what the input holds when it can tell (a bytes.Reader),
// as a yamux stream reports what it has received.
func (s *script) Buffered() int {
	if l, ok := s.in.(interface{ Len() int }); ok {
		return l.Len()
	}
	return 0
}

// plainReader hides io.ByteReader so that reads go through Read.
type plainReader struct{ r io.Reader }

func (p plainReader) Read(b []byte) (int, error) { return p.r.Read(b) }

func TestWireBytes(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  []byte
		want string
	}{
		{"header", headerMsg, "132f6d756c746973747265616d2f312e302e300a"},
		{"na", naMsg, "036e610a"},
		{"ls", tok(ls), "036c730a"},
		{"ls reply", mux(t, "/a", "/bc").appendList(nil), "0a" + "032f610a" + "042f62630a" + "0a"},
		{"empty ls reply", mux(t).appendList(nil), "010a"},
	} {
		if h := hex.EncodeToString(tc.got); h != tc.want {
			t.Errorf("%s = %s, want %s", tc.name, h, tc.want)
		}
	}
}

func TestListReplyFitsOneToken(t *testing.T) {
	m := mux(t)
	for i := range 100 {
		m.AddHandler(protocol.ID("/some/rather/long/protocol/name/"+strings.Repeat("x", i)), "")
	}
	msg, err := lp.ReadMsg(bytes.NewReader(m.appendList(nil)), MaxTokenLen)
	if err != nil {
		t.Fatal(err)
	}
	r := bytes.NewReader(msg)
	var n int
	for r.Len() > 1 {
		tk, err := readToken(r)
		if err != nil {
			t.Fatalf("entry %d: %v", n, err)
		}
		if want := m.Protocols()[n]; string(tk) != string(want) {
			t.Fatalf("entry %d = %q, want %q", n, tk, want)
		}
		n++
	}
	if n == 0 || n == 100 || r.Len() != 1 {
		t.Fatalf("listed %d of 100 ids, %d bytes left; want a truncated list and a final newline", n, r.Len())
	}
}

// TestDialerWrites checks the exact bytes and write boundaries of a dialer
// negotiating against a scripted listener.
func TestDialerWrites(t *testing.T) {
	for _, tc := range []struct {
		name   string
		protos []protocol.ID
		reply  []byte
		want   protocol.ID
		writes [][]byte
	}{
		{"accept first", []protocol.ID{"/a"}, cat(headerMsg, tok("/a")), "/a",
			[][]byte{cat(headerMsg, tok("/a"))}},
		{"accept second", []protocol.ID{"/a", "/b"}, cat(headerMsg, naMsg, tok("/b")), "/b",
			[][]byte{cat(headerMsg, tok("/a")), tok("/b")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &script{in: bytes.NewReader(append(tc.reply, "rest"...))}
			rec := &recorder{ReadWriter: s}
			got, err := SelectOneOf(rec, tc.protos...)
			if err != nil || got != tc.want {
				t.Fatalf("SelectOneOf = %q, %v; want %q", got, err, tc.want)
			}
			if w := rec.chunks(); len(w) != len(tc.writes) {
				t.Fatalf("%d writes %x, want %d %x", len(w), w, len(tc.writes), tc.writes)
			} else {
				for i := range w {
					if !bytes.Equal(w[i], tc.writes[i]) {
						t.Errorf("write %d = %x, want %x", i, w[i], tc.writes[i])
					}
				}
			}
			if rest, _ := io.ReadAll(s.in); string(rest) != "rest" {
				t.Errorf("dialer consumed bytes past the echo: left %q", rest)
			}
		})
	}
}

// TestSelectOptimistic: the last proposal is handed back unsent, with what
// must precede the caller's first bytes; ReadAnswer reads the listener's
// header and answer to it and nothing behind them.
func TestSelectOptimistic(t *testing.T) {
	ab := []protocol.ID{"/a", "/b"}
	for _, tc := range []struct {
		name    string
		protos  []protocol.ID
		reply   []byte // the listener's bytes; "rest" follows them
		want    protocol.ID
		writes  [][]byte // made before SelectOptimistic returns
		pending []byte   // nil: an earlier proposal was accepted
		is      error    // ReadAnswer's error
	}{
		{"only, accepted", ab[:1], cat(headerMsg, tok("/a")), "/a", nil, cat(headerMsg, tok("/a")), nil},
		{"only, refused", ab[:1], cat(headerMsg, naMsg), "/a", nil, cat(headerMsg, tok("/a")), ErrNotSupported},
		{"only, wrong header", ab[:1], cat(tok("/multistream/2.0.0"), tok("/a")), "/a", nil, cat(headerMsg, tok("/a")), ErrMalformed},
		{"only, wrong echo", ab[:1], cat(headerMsg, tok("/b")), "/a", nil, cat(headerMsg, tok("/a")), ErrMalformed},
		{"first accepted", ab, cat(headerMsg, tok("/a")), "/a", [][]byte{cat(headerMsg, tok("/a"))}, nil, nil},
		{"last accepted", ab, cat(headerMsg, naMsg, tok("/b")), "/b", [][]byte{cat(headerMsg, tok("/a"))}, tok("/b"), nil},
		{"last refused", ab, cat(headerMsg, naMsg, naMsg), "/b", [][]byte{cat(headerMsg, tok("/a"))}, tok("/b"), ErrNotSupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &script{in: bytes.NewReader(append(tc.reply, "rest"...))}
			rec := &recorder{ReadWriter: s}
			got, pending, err := SelectOptimistic(rec, tc.protos...)
			if err != nil || got != tc.want {
				t.Fatalf("SelectOptimistic = %q, %v; want %q", got, err, tc.want)
			}
			if w := rec.chunks(); !slices.EqualFunc(w, tc.writes, bytes.Equal) {
				t.Fatalf("writes %q, want %q", w, tc.writes)
			}
			if (pending == nil) != (tc.pending == nil) {
				t.Fatalf("pending %v, want %q", pending, tc.pending)
			}
			if pending != nil {
				if !bytes.Equal(pending.Bytes(), tc.pending) || pending.Protocol() != tc.want {
					t.Fatalf("pending %q for %q, want %q for %q", pending.Bytes(), pending.Protocol(), tc.pending, tc.want)
				}
				err := pending.ReadAnswer(s)
				if !errors.Is(err, tc.is) {
					t.Fatalf("ReadAnswer = %v, want %v", err, tc.is)
				}
				var ns *NotSupportedError
				if errors.As(err, &ns) && !slices.Equal(ns.Protocols, tc.protos) {
					t.Errorf("refusal lists %q, want every proposal %q", ns.Protocols, tc.protos)
				}
				if err != nil {
					return
				}
			}
			if rest, _ := io.ReadAll(s.in); string(rest) != "rest" {
				t.Errorf("dialer consumed bytes past the answer: left %q", rest)
			}
		})
	}
}

func TestDialerBadListener(t *testing.T) {
	long := strings.Repeat("x", MaxTokenLen)
	for _, tc := range []struct {
		name  string
		reply []byte
		is    error
	}{
		{"no reply", nil, io.EOF},
		{"wrong header", cat(tok("/multistream/2.0.0"), tok("/a")), ErrMalformed},
		{"answer before header", cat(tok("/a"), headerMsg), ErrMalformed},
		{"garbage answer", cat(headerMsg, tok("/b")), ErrMalformed},
		{"header then eof", headerMsg, io.EOF},
		{"truncated answer", cat(headerMsg, tok("/a")[:2]), io.ErrUnexpectedEOF},
		{"no newline", cat(headerMsg, []byte{2, '/', 'a'}), ErrMalformed},
		{"oversized answer", cat(headerMsg, tok(long)), ErrMalformed},
		{"na", cat(headerMsg, naMsg), ErrNotSupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := SelectOneOf(&script{in: bytes.NewReader(tc.reply)}, "/a")
			if !errors.Is(err, tc.is) {
				t.Fatalf("SelectOneOf = %v, want %v", err, tc.is)
			}
			if !strings.HasPrefix(err.Error(), "mss: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestBadIDs(t *testing.T) {
	for _, id := range []protocol.ID{"", "na", "ls", "/a\nb", protocol.ID("/" + strings.Repeat("x", MaxTokenLen-1))} {
		if _, err := SelectOneOf(&script{in: bytes.NewReader(nil)}, "/ok", id); err == nil {
			t.Errorf("SelectOneOf accepted id %.20q", id)
		}
		if err := new(Mux[int]).AddHandler(id, 1); err == nil {
			t.Errorf("AddHandler accepted id %.20q", id)
		}
		c := NewLazy(nopCloser{&script{in: bytes.NewReader(nil)}}, id)
		if _, err := c.Write([]byte("x")); err == nil {
			t.Errorf("LazyConn accepted id %.20q", id)
		}
	}
	if _, err := SelectOneOf(&script{}); err == nil {
		t.Error("SelectOneOf with no protocols succeeded")
	}
	// The longest legal id fits exactly in a token.
	max := protocol.ID("/" + strings.Repeat("x", MaxTokenLen-2))
	s := &script{in: bytes.NewReader(cat(headerMsg, tok(string(max))))}
	if _, err := SelectOneOf(s, max); err != nil {
		t.Errorf("longest id: %v", err)
	}
}

type nopCloser struct{ io.ReadWriter }

func (nopCloser) Close() error { return nil }

// TestNegotiateInput feeds the listener fixed dialer input and checks the
// result, the exact output, and that nothing past the proposal was read.
func TestNegotiateInput(t *testing.T) {
	const next = "NEXTBYTES"
	manyNA := [][]byte{headerMsg}
	for range MaxRounds + 1 {
		manyNA = append(manyNA, tok("/x"))
	}
	wantNA := [][]byte{headerMsg}
	for range MaxRounds {
		wantNA = append(wantNA, naMsg)
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want protocol.ID
		is   error // nil: success
		out  []byte
		left string
	}{
		{"accept", cat(headerMsg, tok("/b"), []byte(next)), "/b", nil, cat(headerMsg, tok("/b")), next},
		{"na then accept", cat(headerMsg, tok("/z"), tok("/a"), []byte(next)), "/a", nil,
			cat(headerMsg, naMsg, tok("/a")), next},
		{"ls then accept", cat(headerMsg, tok(ls), tok("/a")), "/a", nil,
			cat(headerMsg, mux(t, "/a", "/b").appendList(nil), tok("/a")), ""},
		{"header proposed again", cat(headerMsg, headerMsg, tok("/a")), "/a", nil,
			cat(headerMsg, naMsg, tok("/a")), ""},
		{"empty input", nil, "", io.EOF, nil, ""},
		{"eof after header", headerMsg, "", io.EOF, headerMsg, ""},
		{"eof after na", cat(headerMsg, tok("/z")), "", io.EOF, cat(headerMsg, naMsg), ""},
		{"not the header", cat(tok("/a"), tok("/a")), "", ErrMalformed, nil, string(tok("/a"))},
		{"wrong version", cat(tok("/multistream/1.0.1"), tok("/a")), "", ErrMalformed, nil, string(tok("/a"))},
		{"no newline", cat(headerMsg, []byte{2, '/', 'a'}), "", ErrMalformed, nil, ""},
		{"empty message", cat(headerMsg, []byte{0}), "", ErrMalformed, nil, ""},
		{"empty token", cat(headerMsg, []byte{1, '\n'}), "", ErrMalformed, nil, ""},
		{"oversized token", cat(headerMsg, tok("/"+strings.Repeat("x", MaxTokenLen-1))), "", ErrMalformed, nil, ""},
		{"non-minimal varint", cat(headerMsg, []byte{0x83, 0x00, '/', 'a', '\n'}), "", ErrMalformed, nil, ""},
		{"huge length", cat(headerMsg, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}), "", ErrMalformed, nil, ""},
		{"truncated", cat(headerMsg, tok("/a")[:2]), "", io.ErrUnexpectedEOF, nil, ""},
		{"too many rounds", cat(manyNA...), "", ErrNotSupported, cat(wantNA...), string(tok("/x"))},
	} {
		for _, wrap := range []struct {
			name string
			f    func([]byte) io.Reader
		}{
			{"bytereader", func(b []byte) io.Reader { return bytes.NewReader(b) }},
			{"reader", func(b []byte) io.Reader { return plainReader{bytes.NewReader(b)} }},
		} {
			t.Run(tc.name+"/"+wrap.name, func(t *testing.T) {
				in := wrap.f(tc.in)
				s := &script{in: in}
				got, h, err := mux(t, "/a", "/b").Negotiate(s)
				if tc.is == nil {
					if err != nil || got != tc.want || h != "h"+string(tc.want) {
						t.Fatalf("Negotiate = %q, %q, %v; want %q", got, h, err, tc.want)
					}
				} else if !errors.Is(err, tc.is) {
					t.Fatalf("Negotiate = %q, %v; want error %v", got, err, tc.is)
				}
				want := tc.out
				if wrap.name == "reader" && bytes.HasPrefix(tc.in, headerMsg) && !bytes.HasPrefix(want, headerMsg) {
					// Nothing tells the listener that a proposal is
					// buffered, so its header went out on its own.
					want = headerMsg
				}
				if !bytes.Equal(s.out.Bytes(), want) {
					t.Errorf("wrote %x, want %x", s.out.Bytes(), want)
				}
				if rest, _ := io.ReadAll(in); tc.left != "" && string(rest) != tc.left {
					t.Errorf("left %q unread, want %q", rest, tc.left)
				}
			})
		}
	}
}

// TestNegotiateOverPipe runs SelectOneOf against Negotiate over a socket and
// checks write counts: one write by the dialer when the first proposal wins,
// and one by the listener for its header (a socket cannot tell it that the
// proposal is already in) and one per answer.
func TestNegotiateOverPipe(t *testing.T) {
	for _, tc := range []struct {
		name      string
		supported []protocol.ID
		propose   []protocol.ID
		want      protocol.ID
		is        error
		dialW     int // dialer writes
		listW     int // listener writes
	}{
		{"first", []protocol.ID{"/a", "/b"}, []protocol.ID{"/b", "/a"}, "/b", nil, 1, 2},
		{"third", []protocol.ID{"/c"}, []protocol.ID{"/a", "/b", "/c"}, "/c", nil, 3, 4},
		{"none", []protocol.ID{"/c"}, []protocol.ID{"/a", "/b"}, "", ErrNotSupported, 2, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			dc, lc := pipe(t)
			d, l := &recorder{ReadWriter: dc}, &recorder{ReadWriter: lc}
			m := mux(t, tc.supported...)
			lerr := goErr(func() error {
				got, _, err := m.Negotiate(l)
				if err != nil {
					return err
				}
				if got != tc.want {
					t.Errorf("listener got %q, want %q", got, tc.want)
				}
				_, err = l.Write([]byte("pong"))
				return err
			})
			got, err := SelectOneOf(d, tc.propose...)
			if tc.is != nil {
				if !errors.Is(err, tc.is) {
					t.Fatalf("SelectOneOf = %v, want %v", err, tc.is)
				}
				var nse *NotSupportedError
				if !errors.As(err, &nse) || len(nse.Protocols) != len(tc.propose) {
					t.Errorf("error %v does not list the proposals", err)
				}
				dc.Close()
				if err := <-lerr; !errors.Is(err, io.EOF) {
					t.Errorf("listener: %v, want EOF", err)
				}
			} else {
				if err != nil || got != tc.want {
					t.Fatalf("SelectOneOf = %q, %v; want %q", got, err, tc.want)
				}
				buf := make([]byte, 4)
				if _, err := io.ReadFull(d, buf); err != nil || string(buf) != "pong" {
					t.Fatalf("read after negotiation: %q, %v", buf, err)
				}
				if err := <-lerr; err != nil {
					t.Fatalf("listener: %v", err)
				}
			}
			if n := len(d.chunks()); n != tc.dialW {
				t.Errorf("dialer made %d writes, want %d", n, tc.dialW)
			}
			if n := len(l.chunks()) - btoi(tc.is == nil); n != tc.listW {
				t.Errorf("listener made %d writes, want %d", n, tc.listW)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestPipelinedDataStaysOverPipe(t *testing.T) {
	leakcheck.Check(t)
	dc, lc := pipe(t)
	derr := goErr(func() error {
		_, err := dc.Write(cat(headerMsg, tok("/a"), []byte("NEXTBYTES")))
		return err
	})
	// net.Pipe does not buffer: the dialer's write is still in progress
	// when the listener answers, so the answer is read concurrently.
	aerr := goErr(func() error {
		b := make([]byte, len(headerMsg)+len(tok("/a")))
		_, err := io.ReadFull(dc, b)
		if err == nil && !bytes.Equal(b, cat(headerMsg, tok("/a"))) {
			t.Errorf("answer %x", b)
		}
		return err
	})
	got, _, err := mux(t, "/a").Negotiate(lc)
	if err != nil || got != "/a" {
		t.Fatalf("Negotiate = %q, %v", got, err)
	}
	buf := make([]byte, 9)
	if _, err := io.ReadFull(lc, buf); err != nil || string(buf) != "NEXTBYTES" {
		t.Fatalf("next reader got %q, %v", buf, err)
	}
	if err := <-derr; err != nil {
		t.Fatal(err)
	}
	if err := <-aerr; err != nil {
		t.Fatal(err)
	}
}

type failWriter struct{ *bytes.Reader }

func (failWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }
func (f failWriter) Buffered() int           { return f.Len() }

// TestNegotiateWriteFailure: a failed echo still hands the stream to the
// handler (the dialer may have sent data and closed); a failed "na" ends
// negotiation.
func TestNegotiateWriteFailure(t *testing.T) {
	in := bytes.NewReader(cat(headerMsg, tok("/a"), []byte("data")))
	if id, _, err := mux(t, "/a").Negotiate(failWriter{in}); err != nil || id != "/a" {
		t.Fatalf("Negotiate with a failing echo = %q, %v; want /a", id, err)
	}
	in = bytes.NewReader(cat(headerMsg, tok("/z"), tok("/a")))
	if _, _, err := mux(t, "/a").Negotiate(failWriter{in}); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("Negotiate with a failing na = %v", err)
	}
}

// TestNegotiateStrictDialer: a dialer that sends its header alone and waits
// for the listener's before proposing (the spec's diagram, py-libp2p) must
// get the header without proposing first, and then agree.
func TestNegotiateStrictDialer(t *testing.T) {
	leakcheck.Check(t)
	dc, lc := pipe(t)
	lerr := goErr(func() error {
		_, _, err := mux(t, "/a").Negotiate(lc)
		return err
	})
	if _, err := dc.Write(headerMsg); err != nil {
		t.Fatal(err)
	}
	if err := readHeader(dc); err != nil {
		t.Fatalf("waiting for the listener's header before proposing: %v", err)
	}
	if _, err := dc.Write(tok("/a")); err != nil {
		t.Fatal(err)
	}
	if ok, err := readAnswer(dc, "/a"); !ok || err != nil {
		t.Fatalf("answer: %v, %v", ok, err)
	}
	if err := <-lerr; err != nil {
		t.Fatalf("listener: %v", err)
	}
}

// TestNegotiateBatchesWhenBuffered: with the proposal already received, the
// header and the echo leave in one write.
func TestNegotiateBatchesWhenBuffered(t *testing.T) {
	s := &script{in: bytes.NewReader(cat(headerMsg, tok("/a")))}
	r := &recorder{ReadWriter: s}
	if _, _, err := mux(t, "/a").Negotiate(bufferedRecorder{r, s}); err != nil {
		t.Fatal(err)
	}
	if w := r.chunks(); len(w) != 1 || !bytes.Equal(w[0], cat(headerMsg, tok("/a"))) {
		t.Fatalf("writes %x, want one with the header and the echo", w)
	}
}

type bufferedRecorder struct {
	*recorder
	s *script
}

func (b bufferedRecorder) Buffered() int { return b.s.Buffered() }

func TestMuxHandlers(t *testing.T) {
	var m Mux[int]
	for i, id := range []protocol.ID{"/a", "/b", "/c", "/b"} {
		if err := m.AddHandler(id, i); err != nil {
			t.Fatal(err)
		}
	}
	m.RemoveHandler("/a")
	m.RemoveHandler("/nope")
	if got := m.Protocols(); len(got) != 2 || got[0] != "/b" || got[1] != "/c" {
		t.Fatalf("Protocols = %q", got)
	}
	s := &script{in: bytes.NewReader(cat(headerMsg, tok("/a"), tok("/b")))}
	id, h, err := m.Negotiate(s)
	if err != nil || id != "/b" || h != 3 {
		t.Fatalf("Negotiate = %q, %d, %v; want the replaced handler 3 for /b", id, h, err)
	}
}

// TestMuxConcurrent changes handlers while negotiations run (for -race).
func TestMuxConcurrent(t *testing.T) {
	leakcheck.Check(t)
	m := mux(t, "/keep")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			id := protocol.ID("/tmp/" + string(rune('a'+i)))
			for range 50 {
				m.AddHandler(id, "")
				m.Protocols()
				m.RemoveHandler(id)
			}
		})
		wg.Go(func() {
			for range 50 {
				s := &script{in: bytes.NewReader(cat(headerMsg, tok(ls), tok("/keep")))}
				if id, _, err := m.Negotiate(s); err != nil || id != "/keep" {
					t.Errorf("Negotiate = %q, %v", id, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func FuzzReadToken(f *testing.F) {
	f.Add(headerMsg)
	f.Add(naMsg)
	f.Add(tok(ls))
	f.Add(mux(f, "/a", "/b").appendList(nil))
	f.Add([]byte{0})
	f.Add([]byte{0x80, 0x08})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		tk, err := readToken(r)
		if err != nil {
			return
		}
		if len(tk) == 0 || len(tk)+1 > MaxTokenLen {
			t.Fatalf("accepted a token of %d bytes", len(tk))
		}
		used := len(b) - r.Len()
		if !bytes.Equal(appendToken(nil, tk), b[:used]) {
			t.Fatalf("token %q does not re-encode to the %d bytes read", tk, used)
		}
	})
}

func FuzzNegotiate(f *testing.F) {
	f.Add(cat(headerMsg, tok("/a")))
	f.Add(cat(headerMsg, tok("/z"), tok(ls), tok("/b"), []byte("data")))
	f.Add(cat(headerMsg, naMsg))
	f.Add(headerMsg[:5])
	m := mux(f, "/a", "/b")
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		s := &script{in: r}
		id, h, err := m.Negotiate(s)
		if err == nil && (h != "h"+string(id) || (id != "/a" && id != "/b")) {
			t.Fatalf("Negotiate accepted %q with handler %q", id, h)
		}
		// Whatever happened, the output is a sequence of valid tokens,
		// starting with the header.
		out := bytes.NewReader(s.out.Bytes())
		for i := 0; out.Len() > 0; i++ {
			msg, err := lp.ReadMsg(out, MaxTokenLen)
			if err != nil {
				t.Fatalf("listener wrote an invalid message: %v", err)
			}
			if i == 0 && !bytes.Equal(appendToken(nil, msg[:len(msg)-1]), headerMsg) {
				t.Fatalf("listener started with %q", msg)
			}
		}
	})
}

func FuzzSelect(f *testing.F) {
	f.Add(cat(headerMsg, tok("/a")))
	f.Add(cat(headerMsg, naMsg, tok("/b")))
	f.Add(cat(headerMsg, naMsg, naMsg))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := SelectOneOf(&script{in: bytes.NewReader(b)}, "/a", "/b")
		if err == nil && got != "/a" && got != "/b" {
			t.Fatalf("SelectOneOf = %q", got)
		}
	})
}

func BenchmarkSelect(b *testing.B) {
	reply := cat(headerMsg, tok("/noise"))
	r := bytes.NewReader(reply)
	s := &script{in: r}
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(reply)
		s.out.Reset()
		if _, err := SelectOneOf(s, "/noise"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNegotiate(b *testing.B) {
	in := cat(headerMsg, tok("/noise"))
	r := bytes.NewReader(in)
	s := &script{in: r}
	m := mux(b, "/tls/1.0.0", "/noise")
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(in)
		s.out.Reset()
		if _, _, err := m.Negotiate(s); err != nil {
			b.Fatal(err)
		}
	}
}

// TestNegotiateDeferred checks that the final answer is returned, not
// written, while the answers before it ("na", the header when the dialer
// waited for it) are written as usual.
func TestNegotiateDeferred(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      []byte
		written []byte
		echo    []byte
	}{
		{"pipelined", cat(headerMsg, tok("/b"), []byte("data")), nil, cat(headerMsg, tok("/b"))},
		{"na first", cat(headerMsg, tok("/z"), tok("/a")), cat(headerMsg, naMsg), tok("/a")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &script{in: bytes.NewReader(tc.in)}
			id, _, echo, err := mux(t, "/a", "/b").NegotiateDeferred(s, nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := protocol.ID(bytes.TrimSuffix(tc.echo[len(tc.echo)-3:], []byte("\n"))); id != want {
				t.Fatalf("id %q, want %q", id, want)
			}
			if !bytes.Equal(s.out.Bytes(), tc.written) || !bytes.Equal(echo, tc.echo) {
				t.Fatalf("wrote %q and deferred %q; want %q and %q", s.out.Bytes(), echo, tc.written, tc.echo)
			}
		})
	}
}
