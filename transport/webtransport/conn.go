package webtransport

import (
	"context"
	"errors"
	"fmt"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/quic-go/quic-go"
	wt "github.com/quic-go/webtransport-go"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/security/noise"
	tquic "github.com/tachyon-p2p/tachyon/transport/quic"
)

// Conn is a WebTransport session with an authenticated peer. It owns the
// QUIC connection under it.
type Conn struct {
	sess       *wt.Session
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

func newConn(sess *wt.Session, qc *quic.Conn, local, remote peer.ID, key crypto.PubKey, dir network.Direction) *Conn {
	wtAddr := func(a quicAddr) ma.Multiaddr {
		return append(tquic.FormatAddr(a), *must(ma.NewComponent("webtransport", "")))
	}
	return &Conn{
		sess: sess, qc: qc, localPeer: local, remotePeer: remote, remoteKey: key, dir: dir,
		laddr: wtAddr(addrPortOf(qc.LocalAddr())),
		raddr: wtAddr(addrPortOf(qc.RemoteAddr())),
	}
}

// OpenStream opens a WebTransport stream.
func (c *Conn) OpenStream(ctx context.Context) (network.MuxedStream, error) {
	s, err := c.sess.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("webtransport: opening a stream to %s: %w", c.remotePeer, err)
	}
	return &Stream{s: s}, nil
}

// AcceptStream waits for the peer to open a stream.
func (c *Conn) AcceptStream() (network.MuxedStream, error) {
	s, err := c.sess.AcceptStream(context.Background())
	if err != nil {
		return nil, fmt.Errorf("webtransport: accepting a stream from %s: %w", c.remotePeer, err)
	}
	return &Stream{s: s}, nil
}

// Close closes the session and the QUIC connection.
func (c *Conn) Close() error {
	c.sess.CloseWithError(0, "")
	err := c.qc.CloseWithError(0, "")
	if c.scope != nil {
		c.scope.Close()
	}
	return err
}

// IsClosed reports whether the session is closed.
func (c *Conn) IsClosed() bool { return c.sess.Context().Err() != nil }

// LocalPeer returns our peer ID.
func (c *Conn) LocalPeer() peer.ID { return c.localPeer }

// RemotePeer returns the peer ID proven in the Noise handshake.
func (c *Conn) RemotePeer() peer.ID { return c.remotePeer }

// RemotePublicKey returns the peer's host key.
func (c *Conn) RemotePublicKey() crypto.PubKey { return c.remoteKey }

// ConnState reports Transport "webtransport" and Security "/noise" (the
// peer was authenticated by Noise; go-libp2p leaves Security empty). Muxer
// is empty: streams are native.
func (c *Conn) ConnState() network.ConnState {
	return network.ConnState{Transport: "webtransport", Security: noise.ID}
}

// LocalMultiaddr is our /…/udp/N/quic-v1/webtransport address.
func (c *Conn) LocalMultiaddr() ma.Multiaddr { return c.laddr }

// RemoteMultiaddr is the peer's /…/udp/N/quic-v1/webtransport address.
func (c *Conn) RemoteMultiaddr() ma.Multiaddr { return c.raddr }

// Direction tells who dialed.
func (c *Conn) Direction() network.Direction { return c.dir }

// HandshakeDuration (swarm.HandshakeTimer) is, for an inbound
// connection, everything the server waited for: from the client's first
// QUIC Initial packet (udpmux.HandshakeStart) through the QUIC handshake,
// HTTP/3 SETTINGS and the CONNECT request, to the end of the Noise
// handshake on the session's first stream. It is 0 for an outbound
// connection, whose dial attempt times it.
func (c *Conn) HandshakeDuration() time.Duration { return c.handshake }

// Stream is one WebTransport bidirectional stream.
type Stream struct {
	s *wt.Stream
}

var _ network.MuxedStream = (*Stream)(nil)

// Read reads stream data; a reset yields network.ErrReset.
func (s *Stream) Read(p []byte) (int, error) {
	n, err := s.s.Read(p)
	return n, mapStreamErr(err)
}

// Write writes stream data; a reset or STOP_SENDING yields network.ErrReset.
func (s *Stream) Write(p []byte) (int, error) {
	n, err := s.s.Write(p)
	return n, mapStreamErr(err)
}

// Close sends FIN and stops reading.
func (s *Stream) Close() error {
	s.cancelRead()
	return s.s.Close()
}

// cancelRead stops reading, also waking a Read that webtransport-go holds
// after the peer said its session is gone (WT_SESSION_GONE): that Read
// waits for the session to close or for the read deadline, and CancelRead
// alone does neither, so an identify stream reset on Host.Close stayed
// blocked for ever when the session's close never came.
func (s *Stream) cancelRead() {
	s.s.CancelRead(0)
	s.s.SetReadDeadline(time.Unix(1, 0))
}

// CloseWrite sends FIN.
func (s *Stream) CloseWrite() error { return s.s.Close() }

// CloseRead stops reading (STOP_SENDING).
func (s *Stream) CloseRead() error {
	s.cancelRead()
	return nil
}

// Reset aborts both directions with code 0.
func (s *Stream) Reset() error {
	s.s.CancelWrite(0)
	s.cancelRead()
	return nil
}

// SetDeadline sets both deadlines.
func (s *Stream) SetDeadline(t time.Time) error { return s.s.SetDeadline(t) }

// SetReadDeadline sets the read deadline.
func (s *Stream) SetReadDeadline(t time.Time) error { return s.s.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline.
func (s *Stream) SetWriteDeadline(t time.Time) error { return s.s.SetWriteDeadline(t) }

func mapStreamErr(err error) error {
	if err == nil {
		return nil
	}
	if se, ok := errors.AsType[*wt.StreamError](err); ok {
		return &resetError{se}
	}
	return err
}

type resetError struct{ err *wt.StreamError }

func (e *resetError) Error() string   { return "stream reset: " + e.err.Error() }
func (e *resetError) Unwrap() []error { return []error{network.ErrReset, e.err} }
