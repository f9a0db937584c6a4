package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/quic-go/quic-go"
)

// QUIC v1 as quic/README.md specifies it: ALPN exactly "libp2p", the TLS
// certificate and checks of tls.go (client certificates included), no mss
// for security or muxer, and every bidirectional stream a libp2p stream.

const quicALPN = "libp2p"

// quicConfig follows the spirit of common libp2p settings. Unidirectional
// streams are not part of libp2p: a limit below zero forbids the peer to
// open any, so opening one is a QUIC stream-limit error.
func quicConfig() *quic.Config {
	return &quic.Config{
		Versions:              []quic.Version{quic.Version1},
		HandshakeIdleTimeout:  DefaultTimeout,
		MaxIncomingStreams:    256,
		MaxIncomingUniStreams: -1,
		KeepAlivePeriod:       15 * time.Second,
	}
}

// secBounded returns ctx, or ctx limited to DefaultTimeout when it has no
// deadline of its own.
func secBounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

// DialQUIC connects to addr ("127.0.0.1:port") over QUIC v1. A non-empty
// expectRemote fails the handshake unless the server has that peer ID.
func DialQUIC(ctx context.Context, addr string, id *Identity, expectRemote string) (Session, error) {
	conf, err := TLSConfig(id, false, []string{quicALPN}, expectRemote)
	if err != nil {
		return nil, err
	}
	ctx, cancel := secBounded(ctx)
	defer cancel()
	conn, err := quic.DialAddr(ctx, addr, conf, quicConfig())
	if err != nil {
		return nil, fmt.Errorf("quic: dialing %s: %w", addr, err)
	}
	return newQUICSession(conn)
}

func newQUICSession(conn *quic.Conn) (*quicSession, error) {
	cs := conn.ConnectionState().TLS
	if cs.NegotiatedProtocol != quicALPN {
		_ = conn.CloseWithError(0, "")
		return nil, fmt.Errorf("quic: negotiated ALPN %q, want %q", cs.NegotiatedProtocol, quicALPN)
	}
	remote, err := TLSRemoteID(cs)
	if err != nil {
		_ = conn.CloseWithError(0, "")
		return nil, fmt.Errorf("quic: %w", err)
	}
	return &quicSession{conn: conn, remote: remote}, nil
}

// QUICListener accepts QUIC v1 connections on one UDP socket.
type QUICListener struct {
	ln *quic.Listener
}

// ListenQUIC listens on addr ("127.0.0.1:0") with a fresh certificate for id.
func ListenQUIC(addr string, id *Identity) (*QUICListener, error) {
	conf, err := TLSConfig(id, true, []string{quicALPN}, "")
	if err != nil {
		return nil, err
	}
	ln, err := quic.ListenAddr(addr, conf, quicConfig())
	if err != nil {
		return nil, fmt.Errorf("quic: listening on %s: %w", addr, err)
	}
	return &QUICListener{ln: ln}, nil
}

// Accept returns the next connection whose handshake completed, waiting at
// most until ctx ends (DefaultTimeout without a deadline).
func (l *QUICListener) Accept(ctx context.Context) (Session, error) {
	ctx, cancel := secBounded(ctx)
	defer cancel()
	conn, err := l.ln.Accept(ctx)
	if err != nil {
		return nil, fmt.Errorf("quic: accepting: %w", err)
	}
	return newQUICSession(conn)
}

func (l *QUICListener) Addr() net.Addr { return l.ln.Addr() }

// Close stops listening. Accepted sessions stay up, and keep the UDP socket
// open, until they are closed themselves.
func (l *QUICListener) Close() error { return l.ln.Close() }

// quicSession is a Session over one QUIC connection.
type quicSession struct {
	conn   *quic.Conn
	remote string
}

func (s *quicSession) OpenStream(ctx context.Context) (Stream, error) {
	ctx, cancel := secBounded(ctx)
	defer cancel()
	st, err := s.conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("quic: opening stream: %w", err)
	}
	return quicStream{st}, nil
}

// AcceptStream returns the next bidirectional stream; unidirectional ones
// cannot arrive (see quicConfig).
func (s *quicSession) AcceptStream(ctx context.Context) (Stream, error) {
	ctx, cancel := secBounded(ctx)
	defer cancel()
	st, err := s.conn.AcceptStream(ctx)
	if err != nil {
		return nil, fmt.Errorf("quic: accepting stream: %w", err)
	}
	return quicStream{st}, nil
}

func (s *quicSession) RemoteID() string { return s.remote }

// Close closes the connection with application error code 0.
func (s *quicSession) Close() error {
	err := s.conn.CloseWithError(0, "")
	var appErr *quic.ApplicationError
	if errors.As(err, &appErr) && appErr.ErrorCode == 0 {
		return nil // already closed the same way
	}
	return err
}

// quicStream maps the Stream interface onto a QUIC stream. Error code 0 is
// the plain reset that libp2p implementations use.
type quicStream struct{ s *quic.Stream }

func (q quicStream) Read(p []byte) (int, error)  { return q.s.Read(p) }
func (q quicStream) Write(p []byte) (int, error) { return q.s.Write(p) }

// CloseWrite sends FIN; reading goes on.
func (q quicStream) CloseWrite() error { return q.s.Close() }

// Close sends FIN and stops reading (STOP_SENDING with code 0).
func (q quicStream) Close() error {
	err := q.s.Close()
	q.s.CancelRead(0)
	return err
}

// Reset aborts both directions: RESET_STREAM and STOP_SENDING, code 0.
func (q quicStream) Reset() error {
	q.s.CancelWrite(0)
	q.s.CancelRead(0)
	return nil
}

func (q quicStream) SetDeadline(t time.Time) error      { return q.s.SetDeadline(t) }
func (q quicStream) SetReadDeadline(t time.Time) error  { return q.s.SetReadDeadline(t) }
func (q quicStream) SetWriteDeadline(t time.Time) error { return q.s.SetWriteDeadline(t) }
