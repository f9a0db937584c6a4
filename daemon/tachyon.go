package daemon

import (
	"context"
	"slices"
	"strings"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
)

// TachyonHost adapts a tachyon host to Host.
func TachyonHost(h *tachyon.Host) Host { return tachyonHost{h} }

type tachyonHost struct{ h *tachyon.Host }

func (t tachyonHost) ID() peer.ID           { return t.h.ID() }
func (t tachyonHost) Addrs() []ma.Multiaddr { return t.h.Addrs() }

func (t tachyonHost) Connect(ctx context.Context, ai peer.AddrInfo) error {
	return t.h.Connect(ctx, ai)
}

func (t tachyonHost) NewStream(ctx context.Context, p peer.ID, protos ...protocol.ID) (network.Stream, error) {
	return t.h.NewStream(ctx, p, protos...)
}

// SetStreamHandler serves limited connections too: a client registering a
// handler expects it to see peers that reach the node through a relay.
func (t tachyonHost) SetStreamHandler(id protocol.ID, handler func(network.Stream)) error {
	return t.h.SetStreamHandler(id, handler, tachyon.AllowLimitedConns())
}

func (t tachyonHost) RemoveStreamHandler(id protocol.ID) { t.h.RemoveStreamHandler(id) }

func (t tachyonHost) ClosePeer(p peer.ID) error { return t.h.Network().ClosePeer(p) }

// Peers lists connected peers in peer ID order, each with the remote
// address of its oldest connection.
func (t tachyonHost) Peers() []peer.AddrInfo {
	var out []peer.AddrInfo
	for _, p := range t.h.Network().Peers() {
		conns := t.h.Network().ConnsToPeer(p)
		if len(conns) == 0 {
			continue
		}
		out = append(out, peer.AddrInfo{ID: p, Addrs: []ma.Multiaddr{conns[0].RemoteMultiaddr()}})
	}
	slices.SortFunc(out, func(a, b peer.AddrInfo) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return out
}
