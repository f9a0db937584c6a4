package network

import (
	"net/netip"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
)

// ResourceManager admits work before it is done: inbound handshakes,
// authenticated connections, streams and the memory that buffers their
// unread data. Every refusal is an error that names the limit, its value,
// the current use and the option that raises it (see package limits, which
// implements it). Transports, the upgrader, muxers and the host take one;
// nil everywhere means no limits.
type ResourceManager interface {
	// BeginHandshake admits an inbound connection from remote before any
	// handshake work is spent on it; done is called exactly once when the
	// handshake ends, whatever its outcome.
	BeginHandshake(remote netip.Addr) (done func(), err error)
	// OpenConn admits an authenticated connection with p whose other end is
	// remote. The scope lives as long as the connection: Close it when the
	// connection closes (or when the upgrade fails after OpenConn).
	OpenConn(dir Direction, p peer.ID, remote ma.Multiaddr) (ConnScope, error)
	// OpenProtocolStream admits a stream once its protocol is negotiated
	// (per-protocol stream counts and inbound stream rates); done is called
	// exactly once when the stream ends.
	OpenProtocolStream(dir Direction, p peer.ID, proto protocol.ID) (done func(), err error)
}

// ConnScope accounts for one connection: its streams and the memory its
// muxer holds for data not yet read. It is safe for concurrent use.
type ConnScope interface {
	// ReserveMemory reserves n bytes against the connection's, its peer's
	// and the node's memory budgets before the muxer buffers or promises
	// them (a window grown past its initial size).
	ReserveMemory(n int) error
	// ReserveMemoryLeaving reserves n bytes like ReserveMemory, but only
	// if spare more bytes would still fit in every budget afterwards;
	// spare is not reserved. A muxer growing one stream's window uses it
	// to leave room for what its other streams were promised, without
	// holding that room even for a moment.
	ReserveMemoryLeaving(n, spare int) error
	// ReleaseMemory returns n bytes reserved earlier.
	ReleaseMemory(n int)
	// OpenStream admits one more stream on the connection; done is called
	// exactly once when the stream is gone (closed both ways or reset).
	OpenStream(dir Direction) (done func(), err error)
	// Close releases the connection and everything still reserved by it.
	// It may be called more than once.
	Close()
}
