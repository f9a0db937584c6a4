package peer

import (
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"
	"unicode/utf8"
)

// multistream-select 1.0 (specs connections/README.md, "multistream-select";
// multiformats/multistream-select): every message is a token, the UTF-8 text
// followed by "\n", prefixed by its length (newline included) as an
// unsigned varint. Both sides first send the header; then the dialer
// proposes and the listener echoes a proposal it accepts or answers "na".

const (
	// MSSHeader is the first token each side sends.
	MSSHeader = "/multistream/1.0.0"
	na        = "na"
	ls        = "ls"
	// maxToken bounds a token, newline included: implementations read
	// tokens of at most 1024 bytes, so a longer one cannot be relied on.
	maxToken = 1024
	// maxProposals bounds how many tokens a listener answers before it
	// gives up on a dialer that never agrees.
	maxProposals = 32
)

// ErrNotAvailable means the listener answered "na" to every proposal.
var ErrNotAvailable = errors.New("mss: no proposal accepted")

// Violation is a breach of a spec's MUST by the remote. The peer records
// every one it sees (Peer.Violations); a conformance test asserts there
// were none.
type Violation struct {
	Spec string // the spec section broken
	What string
}

func (v *Violation) Error() string { return "conformance violation (" + v.Spec + "): " + v.What }

func violation(spec, format string, args ...any) error {
	return &Violation{Spec: spec, What: fmt.Sprintf(format, args...)}
}

const mssSpec = "connections/README.md#multistream-select"

// appendToken appends s as one multistream token.
func appendToken(b []byte, s string) []byte {
	b = appendUvarint(b, uint64(len(s)+1))
	b = append(b, s...)
	return append(b, '\n')
}

func appendUvarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// readUvarint reads an unsigned varint one byte at a time, so that it never
// consumes what follows, and rejects encodings that are not minimal (the
// multiformats unsigned-varint spec requires the shortest form) or longer
// than 9 bytes.
func readUvarint(r io.Reader, spec string) (uint64, error) {
	var v uint64
	var b [1]byte
	for i := 0; i < 9; i++ {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			if i > 0 && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		v |= uint64(b[0]&0x7f) << (7 * i)
		if b[0]&0x80 == 0 {
			if b[0] == 0 && i > 0 {
				return 0, violation(spec, "varint not minimally encoded")
			}
			return v, nil
		}
	}
	return 0, violation(spec, "varint longer than 9 bytes")
}

// readToken reads one token and checks its framing.
func readToken(r io.Reader) (string, error) {
	n, err := readUvarint(r, mssSpec)
	if err != nil {
		return "", err
	}
	if n == 0 {
		return "", violation(mssSpec, "empty token (no newline)")
	}
	if n > maxToken {
		return "", violation(mssSpec, "token of %d bytes, more than %d", n, maxToken)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	if buf[n-1] != '\n' {
		return "", violation(mssSpec, "token %.64q does not end with a newline", buf)
	}
	if !utf8.Valid(buf) {
		return "", violation(mssSpec, "token %.64q is not UTF-8", buf)
	}
	return string(buf[:n-1]), nil
}

// readHeader reads the remote's first token, which must be the header.
func readHeader(r io.Reader) error {
	tok, err := readToken(r)
	if err != nil {
		return fmt.Errorf("mss: reading the header: %w", err)
	}
	if tok != MSSHeader {
		return violation(mssSpec, "first message %.64q is not the header %s", tok, MSSHeader)
	}
	return nil
}

// readAnswer reads the listener's answer to proposal: true when it echoed
// it, false on "na"; anything else is a violation.
func readAnswer(r io.Reader, proposal string) (bool, error) {
	tok, err := readToken(r)
	if err != nil {
		return false, fmt.Errorf("mss: reading the answer to %s: %w", proposal, err)
	}
	switch tok {
	case proposal:
		return true, nil
	case na:
		return false, nil
	}
	return false, violation(mssSpec, "answer %.64q to proposal %s is neither its echo nor na", tok, proposal)
}

// SelectDialer negotiates one of protos, in order, as the dialer on rw and
// returns the accepted one; ErrNotAvailable (wrapped) if none is.
//
// Strict and Split send the header alone and wait for the listener's
// before the first proposal, then each proposal alone, waiting for its
// answer: the spec's diagram. Pipelined sends the header and first
// proposal in one write. Split writes byte by byte (rw is paced by the
// caller or here).
func SelectDialer(rw io.ReadWriter, protos []string, mode Mode) (string, error) {
	if len(protos) == 0 {
		return "", errors.New("mss: nothing to propose")
	}
	w := Paced(rw, mode)
	if mode == Pipelined {
		if _, err := w.Write(appendToken(appendToken(nil, MSSHeader), protos[0])); err != nil {
			return "", fmt.Errorf("mss: sending header and proposal %s: %w", protos[0], err)
		}
		if err := readHeader(rw); err != nil {
			return "", err
		}
	} else {
		if _, err := w.Write(appendToken(nil, MSSHeader)); err != nil {
			return "", fmt.Errorf("mss: sending the header: %w", err)
		}
		if err := readHeader(rw); err != nil {
			return "", err
		}
		if _, err := w.Write(appendToken(nil, protos[0])); err != nil {
			return "", fmt.Errorf("mss: proposing %s: %w", protos[0], err)
		}
	}
	for i, p := range protos {
		if i > 0 {
			if _, err := w.Write(appendToken(nil, p)); err != nil {
				return "", fmt.Errorf("mss: proposing %s: %w", p, err)
			}
		}
		ok, err := readAnswer(rw, p)
		if err != nil {
			return "", err
		}
		if ok {
			return p, nil
		}
	}
	return "", fmt.Errorf("mss: proposed %v: %w", protos, ErrNotAvailable)
}

// SelectListener answers proposals as the listener on rw until it accepts
// one that supported admits, and returns it. It reads nothing past the
// accepted proposal. "ls" is answered with list (the spec makes it
// optional; the answer is one length-prefixed message of tokens and a final
// newline, as multistream-select describes it).
//
// Strict and Split read the dialer's header before sending theirs (the
// header goes out alone, then each answer alone); Pipelined sends its
// header before reading anything.
func SelectListener(rw io.ReadWriter, list []string, mode Mode) (string, error) {
	w := Paced(rw, mode)
	header := appendToken(nil, MSSHeader)
	if mode == Pipelined {
		if _, err := w.Write(header); err != nil {
			return "", fmt.Errorf("mss: sending the header: %w", err)
		}
	}
	if err := readHeader(rw); err != nil {
		return "", err
	}
	if mode != Pipelined {
		if _, err := w.Write(header); err != nil {
			return "", fmt.Errorf("mss: sending the header: %w", err)
		}
	}
	for range maxProposals {
		tok, err := readToken(rw)
		if err != nil {
			return "", fmt.Errorf("mss: reading a proposal: %w", err)
		}
		var answer []byte
		switch {
		case tok == MSSHeader:
			return "", violation(mssSpec, "header sent twice")
		case tok == ls:
			var body []byte
			for _, p := range list {
				body = appendToken(body, p)
			}
			body = append(body, '\n')
			answer = append(appendUvarint(nil, uint64(len(body))), body...)
		case slices.Contains(list, tok):
			answer = appendToken(nil, tok)
		default:
			answer = appendToken(nil, na)
		}
		if _, err := w.Write(answer); err != nil {
			return "", fmt.Errorf("mss: answering %.64q: %w", tok, err)
		}
		if tok != ls && slices.Contains(list, tok) {
			return tok, nil
		}
	}
	return "", fmt.Errorf("mss: %d proposals without agreement: %w", maxProposals, ErrNotAvailable)
}

// lazyStream negotiates a single protocol without a round trip (the
// Pipelined dialer on streams): its first Write sends the header, the
// proposal and the data together; its first Read takes the listener's
// header and echo before returning data.
type lazyStream struct {
	Stream
	proto string

	wmu     sync.Mutex
	written bool

	rmu     sync.Mutex
	read    bool
	readErr error
}

func newLazyStream(s Stream, proto string) *lazyStream {
	return &lazyStream{Stream: s, proto: proto}
}

func (l *lazyStream) Write(p []byte) (int, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.written {
		if len(p) == 0 {
			return 0, nil // flush after the negotiation went out
		}
		return l.Stream.Write(p)
	}
	l.written = true
	buf := appendToken(appendToken(nil, MSSHeader), l.proto)
	k := len(buf)
	n, err := l.Stream.Write(append(buf, p...))
	n -= k
	if n < 0 {
		n = 0
	}
	return n, err
}

// flush sends the negotiation if no Write has: a stream that is closed or
// only read from must still say which protocol it is.
func (l *lazyStream) flush() error {
	_, err := l.Write(nil)
	return err
}

func (l *lazyStream) Read(p []byte) (int, error) {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	if !l.read {
		l.read = true
		if err := l.flush(); err != nil {
			l.readErr = fmt.Errorf("mss: sending the proposal %s: %w", l.proto, err)
		} else if err := readHeader(l.Stream); err != nil {
			l.readErr = err
		} else if ok, err := readAnswer(l.Stream, l.proto); err != nil {
			l.readErr = err
		} else if !ok {
			l.readErr = fmt.Errorf("mss: proposed %s: %w", l.proto, ErrNotAvailable)
		}
	}
	if l.readErr != nil {
		return 0, l.readErr
	}
	return l.Stream.Read(p)
}

func (l *lazyStream) CloseWrite() error {
	if err := l.flush(); err != nil {
		return err
	}
	return l.Stream.CloseWrite()
}

func (l *lazyStream) Close() error {
	l.flush()
	return l.Stream.Close()
}

// lazyConn is lazyStream for a raw connection during the upgrade: the
// header and the security proposal go with the first handshake message,
// and the listener's header and echo are read before its first handshake
// message. The multistream tokens written here are paced like the rest by
// the conn underneath.
type lazyConn struct {
	net.Conn
	proto string

	wmu     sync.Mutex
	written bool

	rmu     sync.Mutex
	read    bool
	readErr error
}

func (l *lazyConn) Write(p []byte) (int, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.written {
		if len(p) == 0 {
			return 0, nil // flush after the negotiation went out
		}
		return l.Conn.Write(p)
	}
	l.written = true
	buf := appendToken(appendToken(nil, MSSHeader), l.proto)
	k := len(buf)
	n, err := l.Conn.Write(append(buf, p...))
	n -= k
	if n < 0 {
		n = 0
	}
	return n, err
}

func (l *lazyConn) flush() error {
	_, err := l.Write(nil)
	return err
}

func (l *lazyConn) Read(p []byte) (int, error) {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	if !l.read {
		l.read = true
		if err := l.flush(); err != nil {
			l.readErr = fmt.Errorf("mss: sending the proposal %s: %w", l.proto, err)
		} else if err := readHeader(l.Conn); err != nil {
			l.readErr = err
		} else if ok, err := readAnswer(l.Conn, l.proto); err != nil {
			l.readErr = err
		} else if !ok {
			l.readErr = fmt.Errorf("mss: proposed %s: %w", l.proto, ErrNotAvailable)
		}
	}
	if l.readErr != nil {
		return 0, l.readErr
	}
	return l.Conn.Read(p)
}

// CloseWrite passes a half-close through when the wrapped conn has one.
func (l *lazyConn) CloseWrite() error {
	if cw, ok := l.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return l.Conn.Close()
}

// SetDeadline is here so that lazyConn satisfies net.Conn unambiguously.
func (l *lazyConn) SetDeadline(t time.Time) error { return l.Conn.SetDeadline(t) }

// isViolation reports whether err is, or wraps, a Violation.
func isViolation(err error) bool {
	var v *Violation
	return errors.As(err, &v)
}
