package quic

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/security/tls"
)

// resetCode is the application error code of RESET_STREAM and
// STOP_SENDING: 0 is a plain libp2p reset. Peers may send any code; every
// code reads as network.ErrReset.
const resetCode quic.StreamErrorCode = 0

// Conn is a QUIC connection to an authenticated peer. Each bidirectional
// QUIC stream is one libp2p stream.
type Conn struct {
	qc         *quic.Conn
	localPeer  peer.ID
	remotePeer peer.ID
	remoteKey  crypto.PubKey
	laddr      ma.Multiaddr
	raddr      ma.Multiaddr
	dir        network.Direction
	scope      network.ConnScope // nil without a ResourceManager
	handshake  time.Duration     // inbound: see HandshakeDuration
}

var _ network.TransportConn = (*Conn)(nil)

// OpenStream opens a bidirectional stream. It waits only when the peer's
// stream limit is reached.
func (c *Conn) OpenStream(ctx context.Context) (network.MuxedStream, error) {
	var done func()
	if c.scope != nil {
		var err error
		if done, err = c.scope.OpenStream(network.DirOutbound); err != nil {
			return nil, fmt.Errorf("quic: opening a stream to %s: %w", c.remotePeer, err)
		}
	}
	s, err := c.qc.OpenStreamSync(ctx)
	if err != nil {
		if done != nil {
			done()
		}
		return nil, fmt.Errorf("quic: opening a stream to %s: %w", c.remotePeer, err)
	}
	return &Stream{s: s, done: done}, nil
}

// AcceptStream waits for the peer to open a stream. Streams the scope
// refuses are reset (RESOURCE_LIMIT_EXCEEDED) and skipped.
func (c *Conn) AcceptStream() (network.MuxedStream, error) {
	for {
		s, err := c.qc.AcceptStream(context.Background())
		if err != nil {
			return nil, fmt.Errorf("quic: accepting a stream from %s: %w", c.remotePeer, err)
		}
		if c.scope == nil {
			return &Stream{s: s}, nil
		}
		done, err := c.scope.OpenStream(network.DirInbound)
		if err != nil {
			s.CancelRead(CodeResourceLimitExceeded)
			s.CancelWrite(CodeResourceLimitExceeded)
			continue
		}
		return &Stream{s: s, done: done}, nil
	}
}

// Close closes the connection with application error code 0 and releases
// its scope.
func (c *Conn) Close() error {
	err := c.qc.CloseWithError(0, "")
	if c.scope != nil {
		c.scope.Close()
	}
	return err
}

// IsClosed reports whether the connection is closed.
func (c *Conn) IsClosed() bool { return c.qc.Context().Err() != nil }

// LocalPeer returns our peer ID.
func (c *Conn) LocalPeer() peer.ID { return c.localPeer }

// RemotePeer returns the peer ID proven in the TLS handshake.
func (c *Conn) RemotePeer() peer.ID { return c.remotePeer }

// RemotePublicKey returns the peer's host key.
func (c *Conn) RemotePublicKey() crypto.PubKey { return c.remoteKey }

// ConnState reports Transport "quic-v1" and Security "/tls/1.0.0" (the
// QUIC handshake is the libp2p TLS 1.3 handshake; go-libp2p leaves Security
// empty). Muxer is empty: QUIC multiplexes natively and nothing is
// negotiated.
func (c *Conn) ConnState() network.ConnState {
	return network.ConnState{Transport: "quic-v1", Security: tls.ID}
}

// LocalMultiaddr is our /…/udp/N/quic-v1 address.
func (c *Conn) LocalMultiaddr() ma.Multiaddr { return c.laddr }

// RemoteMultiaddr is the peer's /…/udp/N/quic-v1 address.
func (c *Conn) RemoteMultiaddr() ma.Multiaddr { return c.raddr }

// Direction tells who dialed.
func (c *Conn) Direction() network.Direction { return c.dir }

// HandshakeDuration (swarm.HandshakeTimer) is, for an inbound
// connection, how long its QUIC handshake took: from the client's first
// Initial packet until the handshake completed with the client's
// certificate verified (udpmux.HandshakeDuration). It is 0 for an
// outbound connection, dialed or hole punched, whose dial attempt times
// it.
func (c *Conn) HandshakeDuration() time.Duration { return c.handshake }

// QUIC returns the underlying quic-go connection.
func (c *Conn) QUIC() *quic.Conn { return c.qc }

// Stream is one bidirectional QUIC stream.
type Stream struct {
	s    *quic.Stream
	done func() // ends the stream's admission by the scope; nil without one

	mu                  sync.Mutex
	readEnded, wroteEnd bool
	released            bool
}

// ended records that one direction is over and, once both are (or on
// Close and Reset, when all is set), ends the stream's admission.
func (s *Stream) ended(read, write, all bool) {
	if s.done == nil {
		return
	}
	s.mu.Lock()
	s.readEnded = s.readEnded || read
	s.wroteEnd = s.wroteEnd || write
	release := !s.released && (all || s.readEnded && s.wroteEnd)
	if release {
		s.released = true
	}
	s.mu.Unlock()
	if release {
		s.done()
	}
}

var _ network.MuxedStream = (*Stream)(nil)

// NewStream wraps a quic-go stream (WebTransport reuses the mapping).
func NewStream(s *quic.Stream) *Stream { return &Stream{s: s} }

// Read reads stream data; a reset by either side yields network.ErrReset.
func (s *Stream) Read(p []byte) (int, error) {
	n, err := s.s.Read(p)
	if err != nil && !isTimeout(err) {
		s.ended(true, false, false)
	}
	return n, mapStreamErr(err)
}

// Write writes stream data; a reset or STOP_SENDING yields network.ErrReset.
func (s *Stream) Write(p []byte) (int, error) {
	n, err := s.s.Write(p)
	if err != nil && !isTimeout(err) {
		s.ended(false, true, false)
	}
	return n, mapStreamErr(err)
}

// Close sends FIN and stops reading (STOP_SENDING).
func (s *Stream) Close() error {
	s.s.CancelRead(resetCode)
	err := s.s.Close()
	s.ended(true, true, true)
	return err
}

// CloseWrite sends FIN: the peer reads EOF after the data written.
func (s *Stream) CloseWrite() error {
	err := s.s.Close()
	s.ended(false, true, false)
	return err
}

// CloseRead sends STOP_SENDING and discards incoming data.
func (s *Stream) CloseRead() error {
	s.s.CancelRead(resetCode)
	s.ended(true, false, false)
	return nil
}

// Reset aborts both directions (RESET_STREAM and STOP_SENDING, code 0).
func (s *Stream) Reset() error {
	s.s.CancelWrite(resetCode)
	s.s.CancelRead(resetCode)
	s.ended(true, true, true)
	return nil
}

// SetDeadline sets both deadlines.
func (s *Stream) SetDeadline(t time.Time) error { return s.s.SetDeadline(t) }

// SetReadDeadline sets the read deadline.
func (s *Stream) SetReadDeadline(t time.Time) error { return s.s.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline.
func (s *Stream) SetWriteDeadline(t time.Time) error { return s.s.SetWriteDeadline(t) }

// isTimeout tells a deadline, after which the stream goes on, from an end.
func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// mapStreamErr turns stream resets into network.ErrReset, keeping the
// QUIC error (and its code) in the chain.
func mapStreamErr(err error) error {
	if err == nil {
		return nil
	}
	if se, ok := errors.AsType[*quic.StreamError](err); ok {
		return &resetError{se}
	}
	return err
}

type resetError struct{ err *quic.StreamError }

func (e *resetError) Error() string   { return "stream reset: " + e.err.Error() }
func (e *resetError) Unwrap() []error { return []error{network.ErrReset, e.err} }
