package yamux

import (
	"net"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/protocol"
)

// ID is the multistream-select protocol id of yamux.
const ID protocol.ID = "/yamux/1.0.0"

// Transport is the yamux network.Multiplexer; its embedded Config applies
// to every session it creates.
type Transport struct {
	Config
}

var _ network.Multiplexer = (*Transport)(nil)

// ID returns "/yamux/1.0.0".
func (t *Transport) ID() protocol.ID { return ID }

// NewConn starts a session over c. The server side (the listener, or the
// security handshake's responder) uses even stream IDs. The session
// accounts its streams and buffered data to scope (nil: no limits) and
// closes it when it ends.
func (t *Transport) NewConn(c net.Conn, isServer bool, scope network.ConnScope) (network.MuxedConn, error) {
	return NewSessionScope(c, !isServer, &t.Config, scope), nil
}
