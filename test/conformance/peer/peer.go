// Package peer is a libp2p peer written from the specs alone, for testing
// tachyon's conformance. It shares no code with tachyon: a bug tachyon has in
// its reading of a spec must not be mirrored here.
//
// It can behave in three ways (Mode). Strict sends each message alone and
// waits for whatever the spec says comes next before it sends anything else;
// it is the peer that a listener must not deadlock and that a dialer must not
// out-wait. Pipelined sends everything it is allowed to as early as it may, in
// one write (header, proposal, handshake bytes and data). Split writes every
// message one byte at a time.
//
// Every check of the other side's behaviour that the spec makes a MUST is an
// error here: a peer that follows the spec to the letter would fail on it too.
package peer

import (
	"context"
	"io"
	"time"
)

// Mode says how the peer paces its writes.
type Mode int

const (
	// Strict sends each message alone and waits for the spec's next step.
	Strict Mode = iota
	// Pipelined sends as much as it may in one write, without waiting.
	Pipelined
	// Split writes every message one byte at a time.
	Split
)

func (m Mode) String() string {
	switch m {
	case Strict:
		return "strict"
	case Pipelined:
		return "pipelined"
	case Split:
		return "split"
	}
	return "unknown"
}

// Stream is one bidirectional libp2p stream (a yamux stream or a QUIC
// stream) before protocol negotiation.
type Stream interface {
	io.ReadWriter
	// CloseWrite half-closes: the other side reads EOF, this side can still read.
	CloseWrite() error
	// Close closes both directions.
	Close() error
	// Reset aborts both directions.
	Reset() error
	SetDeadline(time.Time) error
}

// Session is a secured, multiplexed connection to one remote peer.
type Session interface {
	OpenStream(ctx context.Context) (Stream, error)
	AcceptStream(ctx context.Context) (Stream, error)
	// RemoteID is the remote peer ID in its base58btc text form.
	RemoteID() string
	Close() error
}

// DefaultTimeout bounds every step the peer waits on when the caller's
// context has no deadline of its own.
const DefaultTimeout = 10 * time.Second

// Paced wraps w so that each Write follows m: Split writes one byte per
// underlying Write; the other modes pass writes through unchanged (Strict
// pacing is a matter of what is written when, not of how).
func Paced(w io.Writer, m Mode) io.Writer {
	if m != Split {
		return w
	}
	return splitWriter{w}
}

type splitWriter struct{ w io.Writer }

func (s splitWriter) Write(p []byte) (int, error) {
	for i := range p {
		if _, err := s.w.Write(p[i : i+1]); err != nil {
			return i, err
		}
	}
	return len(p), nil
}
