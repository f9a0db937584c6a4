package main

import (
	"context"
	"fmt"
	"io"

	"github.com/libp2p/go-libp2p"
	gconnmgr "github.com/libp2p/go-libp2p/core/connmgr"
	ghost "github.com/libp2p/go-libp2p/core/host"
	gnetwork "github.com/libp2p/go-libp2p/core/network"
	gpeer "github.com/libp2p/go-libp2p/core/peer"
	gprotocol "github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	gyamux "github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	gnoise "github.com/libp2p/go-libp2p/p2p/security/noise"
	gtls "github.com/libp2p/go-libp2p/p2p/security/tls"
	gtcp "github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
)

// Implementation and security names, as they appear in the tables.
const (
	implTachyon = "tachyon"
	implGo      = "go-libp2p"

	secNoise = "Noise"
	secTLS   = "TLS"
)

const loopbackListen = "/ip4/127.0.0.1/tcp/0"

// stream is what both implementations' streams have in common.
type stream interface {
	io.ReadWriter
	CloseWrite() error
	Close() error
	Reset() error
}

// peerRef names a listening host in a form either implementation can dial:
// both use the same go-multiaddr module, and peer IDs cross as text.
type peerRef struct {
	id    string
	addrs []ma.Multiaddr
}

// endpoint is a host of either implementation, reduced to what the
// benchmarks do with it.
type endpoint interface {
	ref() peerRef
	// connect dials p the way a user of the implementation would.
	connect(ctx context.Context, p peerRef) error
	newStream(ctx context.Context, p peerRef, proto string) (stream, error)
	handle(proto string, h func(stream)) error
	// identified reports whether identify with p has finished (its agent
	// version is known).
	identified(p peerRef) bool
	numConns() int
	close() error
}

// newHost builds a TCP + sec + yamux host of impl; a client (listen false)
// has no listen address.
func newHost(impl, sec string, listen bool) (endpoint, error) {
	switch impl {
	case implTachyon:
		return newTachyonHost(sec, listen)
	case implGo:
		return newGoHost(sec, listen)
	}
	return nil, fmt.Errorf("unknown implementation %q", impl)
}

type tachyonHost struct{ h *tachyon.Host }

func newTachyonHost(sec string, listen bool) (*tachyonHost, error) {
	id := tachyon.Noise
	if sec == secTLS {
		id = tachyon.TLS
	}
	opts := []tachyon.Option{tachyon.Security(id)}
	if listen {
		opts = append(opts, tachyon.ListenAddrStrings(loopbackListen))
	}
	h, err := tachyon.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("tachyon host: %w", err)
	}
	return &tachyonHost{h}, nil
}

func (t *tachyonHost) ref() peerRef { return peerRef{t.h.ID().String(), t.h.Addrs()} }

func (t *tachyonHost) connect(ctx context.Context, p peerRef) error {
	id, err := peer.Decode(p.id)
	if err != nil {
		return fmt.Errorf("tachyon: peer ID %q: %w", p.id, err)
	}
	return t.h.Connect(ctx, peer.AddrInfo{ID: id, Addrs: p.addrs})
}

func (t *tachyonHost) newStream(ctx context.Context, p peerRef, proto string) (stream, error) {
	id, err := peer.Decode(p.id)
	if err != nil {
		return nil, fmt.Errorf("tachyon: peer ID %q: %w", p.id, err)
	}
	return t.h.NewStream(ctx, id, protocol.ID(proto))
}

func (t *tachyonHost) handle(proto string, h func(stream)) error {
	return t.h.SetStreamHandler(protocol.ID(proto), func(s network.Stream) { h(s) })
}

func (t *tachyonHost) identified(p peerRef) bool {
	id, err := peer.Decode(p.id)
	if err != nil {
		return false
	}
	agent, _ := t.h.Peerstore().Agent(id)
	return agent != ""
}

func (t *tachyonHost) numConns() int { return len(t.h.Network().Conns()) }
func (t *tachyonHost) close() error  { return t.h.Close() }

type goHost struct{ h ghost.Host }

// newGoHost builds a go-libp2p host with only TCP, one security protocol
// and yamux. The resource manager gets infinite limits and the connection
// manager is the null one, so neither caps the idle-connection benchmark.
func newGoHost(sec string, listen bool) (*goHost, error) {
	secOpt := libp2p.Security(gnoise.ID, gnoise.New)
	if sec == secTLS {
		secOpt = libp2p.Security(gtls.ID, gtls.New)
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.InfiniteLimits))
	if err != nil {
		return nil, fmt.Errorf("go-libp2p resource manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Transport(gtcp.NewTCPTransport),
		secOpt,
		libp2p.Muxer(gyamux.ID, gyamux.DefaultTransport),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(gconnmgr.NullConnMgr{}),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	}
	if listen {
		opts = append(opts, libp2p.ListenAddrStrings(loopbackListen))
	} else {
		opts = append(opts, libp2p.NoListenAddrs)
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("go-libp2p host: %w", err)
	}
	return &goHost{h}, nil
}

func (g *goHost) ref() peerRef { return peerRef{g.h.ID().String(), g.h.Addrs()} }

func (g *goHost) connect(ctx context.Context, p peerRef) error {
	id, err := gpeer.Decode(p.id)
	if err != nil {
		return fmt.Errorf("go-libp2p: peer ID %q: %w", p.id, err)
	}
	return g.h.Connect(ctx, gpeer.AddrInfo{ID: id, Addrs: p.addrs})
}

func (g *goHost) newStream(ctx context.Context, p peerRef, proto string) (stream, error) {
	id, err := gpeer.Decode(p.id)
	if err != nil {
		return nil, fmt.Errorf("go-libp2p: peer ID %q: %w", p.id, err)
	}
	return g.h.NewStream(ctx, id, gprotocol.ID(proto))
}

func (g *goHost) handle(proto string, h func(stream)) error {
	g.h.SetStreamHandler(gprotocol.ID(proto), func(s gnetwork.Stream) {
		defer s.Close() // go-libp2p leaves closing to the handler
		h(s)
	})
	return nil
}

func (g *goHost) identified(p peerRef) bool {
	id, err := gpeer.Decode(p.id)
	if err != nil {
		return false
	}
	v, err := g.h.Peerstore().Get(id, "AgentVersion")
	return err == nil && v != nil
}

func (g *goHost) numConns() int { return len(g.h.Network().Conns()) }
func (g *goHost) close() error  { return g.h.Close() }
