// Package network declares the seams between the layers of the stack: the
// secured connection a security protocol returns, the muxed connection a
// stream multiplexer returns, and the streams the host hands to protocols.
//
// Everything here is an interface on purpose: the concrete types live in
// security/*, muxer/* and swarm, and they never import each other.
package network

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
)

// ErrReset is returned by reads and writes on a stream that was reset, by
// either side.
var ErrReset = errors.New("stream reset")

// Direction tells who opened a connection or a stream.
type Direction int

const (
	DirUnknown Direction = iota
	DirInbound
	DirOutbound
)

func (d Direction) String() string {
	switch d {
	case DirInbound:
		return "inbound"
	case DirOutbound:
		return "outbound"
	default:
		return "unknown"
	}
}

// ConnState describes what a connection negotiated.
type ConnState struct {
	// Transport is a short name such as "tcp".
	Transport string
	// Security is the security protocol id, such as "/noise".
	Security protocol.ID
	// Muxer is the stream multiplexer id. A security transport sets it when
	// the muxer was agreed inside the handshake (TLS ALPN or the Noise
	// stream_muxers extension); it is empty when multistream-select must
	// still negotiate it.
	Muxer protocol.ID
	// EarlyMuxer is set when the muxer was agreed inside the security
	// handshake (package upgrader sets it), saving multistream-select's
	// round trip.
	EarlyMuxer bool
	// Limited is set on a relayed connection, which the relay may cut after
	// little data or time: only protocols that allow limited connections
	// run on it (ping, identify, hole punching, WebRTC signalling).
	Limited bool
}

// SecureConn is an authenticated and encrypted byte stream to a known peer.
type SecureConn interface {
	net.Conn
	LocalPeer() peer.ID
	RemotePeer() peer.ID
	RemotePublicKey() crypto.PubKey
	ConnState() ConnState
}

// SecureTransport runs a security handshake over a raw connection.
type SecureTransport interface {
	// ID is the multistream-select protocol id of the handshake.
	ID() protocol.ID
	// SecureInbound runs the handshake as the responder (TLS server, Noise
	// responder). remote is empty when any peer is accepted.
	SecureInbound(ctx context.Context, insecure net.Conn, remote peer.ID) (SecureConn, error)
	// SecureOutbound runs the handshake as the initiator and fails unless the
	// remote proves it is peer remote.
	SecureOutbound(ctx context.Context, insecure net.Conn, remote peer.ID) (SecureConn, error)
}

// MuxedStream is one bidirectional stream of a multiplexed connection.
type MuxedStream interface {
	io.Reader
	io.Writer
	// Close closes both directions: it half-closes writing (FIN) and stops
	// reading.
	Close() error
	// CloseWrite half-closes: the peer reads EOF after the data already written.
	CloseWrite() error
	// CloseRead discards further incoming data.
	CloseRead() error
	// Reset aborts the stream in both directions.
	Reset() error
	SetDeadline(t time.Time) error
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
}

// FinalWriter is a stream that can send its last data and its half-close
// together: a yamux stream sends the FIN in the same write as the last data
// frame, which saves a system call and, most of the time, a packet and a
// wake-up on each end. Request-response protocols write their one message
// this way.
type FinalWriter interface {
	// WriteFinal writes p and then half-closes like CloseWrite.
	WriteFinal(p []byte) (int, error)
}

// WriteFinal writes p to w and half-closes it: in one step when w is a
// FinalWriter, else Write then CloseWrite. A w that can do neither gets p
// written and an error matching errors.ErrUnsupported.
func WriteFinal(w io.Writer, p []byte) (int, error) {
	if fw, ok := w.(FinalWriter); ok {
		return fw.WriteFinal(p)
	}
	n, err := w.Write(p)
	if err != nil {
		return n, err
	}
	cw, ok := w.(interface{ CloseWrite() error })
	if !ok {
		return n, fmt.Errorf("network: %T cannot half-close: %w", w, errors.ErrUnsupported)
	}
	return n, cw.CloseWrite()
}

// MuxedConn is a connection carrying many streams.
type MuxedConn interface {
	// OpenStream opens a new stream. It never waits for the peer to
	// acknowledge it.
	OpenStream(ctx context.Context) (MuxedStream, error)
	// AcceptStream blocks until the peer opens a stream or the connection
	// closes.
	AcceptStream() (MuxedStream, error)
	Close() error
	IsClosed() bool
}

// InboundStreams is implemented by a MuxedConn that can hand the streams
// the peer opens to a function itself, from the goroutine that already
// reads the connection: its owner then keeps no goroutine blocked in
// AcceptStream for the connection's life. A connection wrapping a
// MuxedConn may implement it by forwarding.
type InboundStreams interface {
	// HandleInbound makes the connection pass each stream the peer opens
	// to accept, and then, once the connection ended and after the last
	// accept returned, call ended once with the reason. accept runs on the
	// connection's reading goroutine: it must not block, and so must hand
	// the stream to a goroutine before using it; accept calls never
	// overlap. ended may close the connection.
	//
	// HandleInbound reports false, changing nothing, when the connection
	// cannot do this (it already ended, a wrapped muxer lacks it, or it was
	// called before): the caller then uses AcceptStream. Once it reported
	// true, AcceptStream fails.
	//
	// The connection hands over a bounded number of streams that the owner
	// has not released yet; the rest wait, as for AcceptStream, and a
	// stream the peer resets while waiting is never handed over. So the
	// owner calls ReleaseInbound once per stream, when the stream no longer
	// needs to count (the swarm: its protocol is negotiated, or its handler
	// returned); this may hand a waiting stream over, to accept, on the
	// calling goroutine.
	HandleInbound(accept func(MuxedStream), ended func(error)) bool
	ReleaseInbound(MuxedStream)
}

// Multiplexer turns a secured connection into a MuxedConn.
type Multiplexer interface {
	ID() protocol.ID
	// NewConn starts the muxer on c. scope, when not nil, admits the
	// streams the muxer opens and accepts and the memory it buffers for
	// them; the muxer closes it when the connection ends.
	NewConn(c net.Conn, isServer bool, scope ConnScope) (MuxedConn, error)
}

// Stream is a negotiated stream as handed to protocol handlers.
type Stream interface {
	MuxedStream
	// Protocol is the protocol negotiated on this stream.
	Protocol() protocol.ID
	LocalPeer() peer.ID
	RemotePeer() peer.ID
	// RemoteMultiaddr is the address of the connection's other end, as this
	// side sees it (identify reports it as the observed address).
	RemoteMultiaddr() ma.Multiaddr
	LocalMultiaddr() ma.Multiaddr
	Direction() Direction
	// Conn is the connection the stream belongs to.
	Conn() Conn
}

// TransportConn is a fully upgraded connection, as a transport returns it:
// secured, authenticated and multiplexed.
type TransportConn interface {
	MuxedConn
	LocalPeer() peer.ID
	RemotePeer() peer.ID
	RemotePublicKey() crypto.PubKey
	ConnState() ConnState
	LocalMultiaddr() ma.Multiaddr
	RemoteMultiaddr() ma.Multiaddr
	Direction() Direction
}

// Transport dials and listens on one kind of address.
type Transport interface {
	// CanDial reports whether the address is one this transport handles.
	CanDial(addr ma.Multiaddr) bool
	// Dial connects to peer p at addr and returns an upgraded connection.
	Dial(ctx context.Context, addr ma.Multiaddr, p peer.ID) (TransportConn, error)
	// Listen starts accepting connections on addr.
	Listen(addr ma.Multiaddr) (Listener, error)
	// Name is a short name such as "tcp".
	Name() string
}

// Listener yields upgraded inbound connections.
type Listener interface {
	// Accept blocks until a connection finished its upgrade or the listener
	// closes.
	Accept() (TransportConn, error)
	Close() error
	// Multiaddrs are the addresses this listener accepts on, with
	// unspecified IPs left as they are.
	Multiaddrs() []ma.Multiaddr
}

type eagerKey struct{}

// WithEagerNegotiation returns a context that makes a host's NewStream
// finish the protocol negotiation before it returns, at the cost of a round
// trip, so that a protocol the peer does not speak fails NewStream itself
// rather than the stream's first Read.
func WithEagerNegotiation(ctx context.Context) context.Context {
	return context.WithValue(ctx, eagerKey{}, true)
}

// EagerNegotiation reports whether ctx came from WithEagerNegotiation.
func EagerNegotiation(ctx context.Context) bool {
	return ctx.Value(eagerKey{}) != nil
}

// Conn is one connection of a host to a peer, as the host shows it:
// secured, authenticated and multiplexed.
type Conn interface {
	// ID is unique among the host's connections.
	ID() uint64
	LocalPeer() peer.ID
	RemotePeer() peer.ID
	// RemotePublicKey is the key the peer proved it holds.
	RemotePublicKey() crypto.PubKey
	// LocalMultiaddr is our address for this connection.
	LocalMultiaddr() ma.Multiaddr
	// RemoteMultiaddr is the peer's address for this connection, as we see
	// it.
	RemoteMultiaddr() ma.Multiaddr
	// Direction tells who dialed.
	Direction() Direction
	// ConnState names the transport, security protocol and muxer.
	ConnState() ConnState
	// Opened is when the connection finished its upgrade.
	Opened() time.Time
	// NumStreams is the number of streams open on the connection.
	NumStreams() int
	IsClosed() bool
	// Close closes the connection and every stream on it.
	Close() error
}

// Connectedness tells whether a host has a connection to a peer.
type Connectedness int

const (
	// NotConnected: no open connection.
	NotConnected Connectedness = iota
	// Connected: at least one open connection.
	Connected
)

func (c Connectedness) String() string {
	if c == Connected {
		return "connected"
	}
	return "not connected"
}

// Network is a host's view of its connections. It cannot change how
// inbound streams are handled; the host owns that.
type Network interface {
	LocalPeer() peer.ID
	// Peers lists the peers with at least one open connection.
	Peers() []peer.ID
	// Conns lists every open connection.
	Conns() []Conn
	// ConnsToPeer lists the open connections to p, oldest first.
	ConnsToPeer(p peer.ID) []Conn
	Connectedness(p peer.ID) Connectedness
	// ClosePeer closes every connection to p.
	ClosePeer(p peer.ID) error
	// ListenAddresses are the addresses the listeners are bound to, as
	// bound: an unspecified IP (0.0.0.0, ::) stays unspecified, and port 0
	// is replaced by the port chosen.
	ListenAddresses() []ma.Multiaddr
	// Listen starts listening on more addresses; it fails if any fails,
	// closing the ones it opened.
	Listen(addrs ...ma.Multiaddr) error
}

// ConnectionGater decides which connections a host makes and keeps. Each
// hook returns true to allow. Hooks run on the swarm's goroutines, often
// several at once, and must be quick and safe for concurrent use.
type ConnectionGater interface {
	// InterceptPeerDial is asked before dialing p at all (and before an
	// existing connection is reused for a dial).
	InterceptPeerDial(p peer.ID) bool
	// InterceptAddrDial is asked for each address of p before dialing it;
	// a refused address is skipped.
	InterceptAddrDial(p peer.ID, addr ma.Multiaddr) bool
	// InterceptAccept is asked for each inbound connection, with our and
	// the remote's address. Transports hand connections to the swarm
	// secured, so it runs after the handshake, just before
	// InterceptSecured: it filters by address, it does not save the
	// handshake's work.
	InterceptAccept(local, remote ma.Multiaddr) bool
	// InterceptSecured is asked for every connection, inbound and
	// outbound, once the peer is authenticated and before the connection is
	// registered or announced. A refused connection is closed.
	InterceptSecured(dir Direction, p peer.ID, local, remote ma.Multiaddr) bool
}

// UpgradedGater is a ConnectionGater with a last hook: once the connection
// is secured and multiplexed (its ConnState names transport, security and
// muxer), before it is registered or announced. A refused connection is
// closed. Swarms ask it when the gater implements it.
type UpgradedGater interface {
	ConnectionGater
	InterceptUpgraded(c Conn) bool
}

// PeerIDMismatchError is returned by a handshake that authenticated a
// different peer than the one dialed: the address is stale, or names
// another node. Its text names only the remote: the dialer's own error
// names the peer it dialed.
type PeerIDMismatchError struct {
	Expected, Actual peer.ID
}

func (e *PeerIDMismatchError) Error() string {
	return fmt.Sprintf("peer ID mismatch: the remote is %s", e.Actual)
}
