package tachyon

import (
	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/swarm"
)

// DefaultDialTimeout bounds how long Connect, NewStream and IdentifyWait
// spend dialing a peer, unless the DialTimeout option says otherwise. A
// shorter deadline on the call's context wins.
const DefaultDialTimeout = swarm.DefaultDialTimeout

// hostNetwork is the host's network.Network: the swarm's connections,
// without the swarm's wiring (stream handler, notifiees).
type hostNetwork struct{ h *Host }

var _ network.Network = hostNetwork{}

func (n hostNetwork) LocalPeer() peer.ID { return n.h.id }
func (n hostNetwork) Peers() []peer.ID   { return n.h.swarm.Peers() }
func (n hostNetwork) Conns() []network.Conn {
	return asConns(n.h.swarm.Conns())
}
func (n hostNetwork) ConnsToPeer(p peer.ID) []network.Conn {
	return asConns(n.h.swarm.ConnsToPeer(p))
}
func (n hostNetwork) Connectedness(p peer.ID) network.Connectedness { return n.h.Connectedness(p) }
func (n hostNetwork) ClosePeer(p peer.ID) error                     { return n.h.ClosePeer(p) }

// ListenAddresses leaves out the relay client's /p2p-circuit: it is bound
// to nothing, and the addresses through relays are in Host.Addrs.
func (n hostNetwork) ListenAddresses() []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range n.h.swarm.ListenAddrs() {
		if !isCircuitListen(a) {
			out = append(out, a)
		}
	}
	return out
}

func (n hostNetwork) Listen(addrs ...ma.Multiaddr) error {
	if err := n.h.swarm.Listen(addrs...); err != nil {
		return err
	}
	n.h.addrsChanged()
	return nil
}

func asConns(cs []*swarm.Conn) []network.Conn {
	if len(cs) == 0 {
		return nil
	}
	out := make([]network.Conn, len(cs))
	for i, c := range cs {
		out[i] = c
	}
	return out
}
