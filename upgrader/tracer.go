package upgrader

import (
	"errors"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/dialrank"
)

// Tracer hears of every upgrade, for metrics and trace spans. Nil
// (Upgrader.Tracer unset) costs a nil check per upgrade. HandshakeDone runs
// on the upgrading goroutine: it must not block nor keep its argument's
// addresses.
type Tracer interface {
	HandshakeDone(Handshake)
}

// Handshake is one upgrade, ended.
type Handshake struct {
	Dir       network.Direction
	Transport string      // Upgrader.Transport: "tcp", "websocket", "p2p-circuit"
	Security  protocol.ID // empty if the upgrade failed before one was chosen
	Muxer     protocol.ID // empty if it failed before one was chosen
	// EarlyMuxer: the muxer was agreed inside the security handshake (TLS
	// ALPN, Noise extensions), without a multistream-select round trip.
	EarlyMuxer bool
	Peer       peer.ID      // the authenticated peer, or the one dialed; for traces
	RemoteAddr ma.Multiaddr // for traces; never a metric label
	Start      time.Time
	Took       time.Duration
	Err        error // nil: upgraded
}

// Result names how the upgrade ended, for metric labels and span
// attributes: success, refused (by our resource manager), peer_id_mismatch,
// timeout, canceled or error.
func (h Handshake) Result() string {
	if errors.Is(h.Err, ErrRefused) {
		return "refused"
	}
	switch dialrank.Classify(h.Err) {
	case dialrank.Connected:
		return "success"
	case dialrank.PeerMismatch:
		return "peer_id_mismatch"
	case dialrank.Timeout:
		return "timeout"
	case dialrank.Cancelled:
		return "canceled"
	}
	return "error"
}
