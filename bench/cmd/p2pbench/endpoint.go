package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/libp2p/go-libp2p"
	gconnmgr "github.com/libp2p/go-libp2p/core/connmgr"
	ghost "github.com/libp2p/go-libp2p/core/host"
	gnetwork "github.com/libp2p/go-libp2p/core/network"
	gpeer "github.com/libp2p/go-libp2p/core/peer"
	gprotocol "github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	gyamux "github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	gidentify "github.com/libp2p/go-libp2p/p2p/protocol/identify"
	gnoise "github.com/libp2p/go-libp2p/p2p/security/noise"
	gtls "github.com/libp2p/go-libp2p/p2p/security/tls"
	gquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	gtcp "github.com/libp2p/go-libp2p/p2p/transport/tcp"
	gwebrtc "github.com/libp2p/go-libp2p/p2p/transport/webrtc"
	gwebtransport "github.com/libp2p/go-libp2p/p2p/transport/webtransport"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
)

// Implementation and security names, as they appear in the tables.
const (
	implTachyon = "tachyon"
	// implTachyonMetrics is tachyon with metrics on (each host registers
	// its collectors with a registry of its own), for -metrics-overhead.
	implTachyonMetrics = "tachyon+metrics"
	// implTachyonAA is tachyon with metrics off under another name: the
	// second member of an A/A run of -metrics-overhead, which measures
	// how far two identical sides differ in this set-up.
	implTachyonAA = "tachyon (A/A)"
	implGo        = "go-libp2p"

	secNoise = "Noise"
	secTLS   = "TLS"
	// secQUIC is QUIC v1 (its own TLS 1.3, its own streams).
	secQUIC = "QUIC"
	// The TCP addresses that name the security protocol (/tcp/P/tls,
	// /tcp/P/noise) and so skip its negotiation; tachyon only.
	secTLSAddr   = "TLS /tls addr"
	secNoiseAddr = "Noise /noise addr"
	// The browser transports: WebTransport (HTTP/3 over QUIC, Noise on
	// the first stream) and WebRTC-direct (DTLS + SCTP data channels).
	secWT     = "WebTransport"
	secWebRTC = "WebRTC-direct"
)

// The listen addresses of every server; a -wan-serve child process
// replaces 127.0.0.1 with its testbed host's address.
var (
	listenIP           = "127.0.0.1"
	loopbackListen     = "/ip4/127.0.0.1/tcp/0"
	loopbackListenQUIC = "/ip4/127.0.0.1/udp/0/quic-v1"
	loopbackListenWT   = "/ip4/127.0.0.1/udp/0/quic-v1/webtransport"
	loopbackListenRTC  = "/ip4/127.0.0.1/udp/0/webrtc-direct"
)

// family is the transport a stack runs on, "TCP" or "QUIC", which picks
// the HTTP baselines it is compared with.
func family(sec string) string {
	switch sec {
	case secQUIC:
		return "QUIC"
	case secWT, secWebRTC:
		return "browser" // no HTTP baseline of the same kind
	}
	return "TCP"
}

// goSec is the go-libp2p stack a tachyon stack is compared with: the
// named-security addresses against go-libp2p's negotiated ones.
func goSec(sec string) string {
	switch sec {
	case secTLSAddr:
		return secTLS
	case secNoiseAddr:
		return secNoise
	}
	return sec
}

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
	// waitIdentified returns once identify with p has finished on the
	// connections to it, woken by the implementation's own signal: a
	// polling loop would add its tick to every connection of the
	// handshake-rate rows.
	waitIdentified(ctx context.Context, p peerRef) error
	// identified reports whether identify with p has finished (its agent
	// version is known), for loops that also watch the connection.
	identified(p peerRef) bool
	// disconnect closes every connection to p; connectedTo says whether
	// one is still open.
	disconnect(p peerRef) error
	connectedTo(p peerRef) bool
	numConns() int
	close() error
}

// newHost builds a host of impl for the stack sec (TCP + sec + yamux, or
// one UDP transport); a client (listen false) has no listen address.
func newHost(impl, sec string, listen bool) (endpoint, error) {
	switch impl {
	case implTachyon:
		return newTachyonHost(sec, listen)
	case implTachyonAA:
		return newTachyonHost(sec, listen)
	case implTachyonMetrics:
		return newTachyonHost(sec, listen, tachyon.PrometheusRegisterer(prometheus.NewRegistry()))
	case implGo:
		return newGoHost(sec, listen)
	}
	return nil, fmt.Errorf("unknown implementation %q", impl)
}

type tachyonHost struct {
	h *tachyon.Host
	// suffix, if set, keeps only the advertised addresses ending in it
	// ("/tcp/": the plain TCP one; "/webtransport", "/webrtc-direct":
	// those containing it, certhashes follow).
	suffix string
}

func newTachyonHost(sec string, listen bool, extra ...tachyon.Option) (*tachyonHost, error) {
	opts := append([]tachyon.Option(nil), extra...)
	listenAddr, suffix := loopbackListen, ""
	switch sec {
	case secNoise:
		opts = append(opts, tachyon.Security(tachyon.Noise))
		suffix = "/tcp/"
	case secTLS:
		opts = append(opts, tachyon.Security(tachyon.TLS))
		suffix = "/tcp/"
	case secNoiseAddr:
		opts = append(opts, tachyon.Security(tachyon.Noise))
		suffix = "/noise"
	case secTLSAddr:
		opts = append(opts, tachyon.Security(tachyon.TLS))
		suffix = "/tls"
	case secQUIC:
		listenAddr, suffix = loopbackListenQUIC, "/quic-v1"
	case secWT:
		listenAddr, suffix = loopbackListenWT, "/webtransport"
	case secWebRTC:
		listenAddr, suffix = loopbackListenRTC, "/webrtc-direct"
	default:
		return nil, fmt.Errorf("tachyon: unknown stack %q", sec)
	}
	if listen {
		opts = append(opts, tachyon.ListenAddrStrings(listenAddr))
	}
	h, err := tachyon.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("tachyon host: %w", err)
	}
	return &tachyonHost{h: h, suffix: suffix}, nil
}

func (t *tachyonHost) ref() peerRef {
	addrs := t.h.Addrs()
	if t.suffix != "" {
		var keep []ma.Multiaddr
		for _, a := range addrs {
			s := a.String()
			// "/tcp/" keeps the plain TCP address: its port is the last part.
			var ok bool
			switch t.suffix {
			case "/tcp/":
				ok = strings.Contains(s, "/tcp/") && !strings.HasSuffix(s, "/tls") && !strings.HasSuffix(s, "/noise")
			case "/webtransport", "/webrtc-direct":
				ok = strings.Contains(s, t.suffix+"/") || strings.HasSuffix(s, t.suffix)
			default:
				ok = strings.HasSuffix(s, t.suffix)
			}
			if ok {
				keep = append(keep, a)
			}
		}
		addrs = keep
	}
	return peerRef{t.h.ID().String(), addrs}
}

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
	s, err := t.h.NewStream(ctx, id, protocol.ID(proto))
	if err != nil || slowTachyon == 0 {
		return s, err
	}
	return &slowed{stream: s}, nil
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

func (t *tachyonHost) disconnect(p peerRef) error {
	id, err := peer.Decode(p.id)
	if err != nil {
		return err
	}
	return t.h.Network().ClosePeer(id)
}

func (t *tachyonHost) connectedTo(p peerRef) bool {
	id, err := peer.Decode(p.id)
	return err == nil && len(t.h.Network().ConnsToPeer(id)) > 0
}

func (t *tachyonHost) waitIdentified(ctx context.Context, p peerRef) error {
	id, err := peer.Decode(p.id)
	if err != nil {
		return err
	}
	_, err = t.h.IdentifyWait(ctx, id)
	return err
}

func (t *tachyonHost) numConns() int { return len(t.h.Network().Conns()) }
func (t *tachyonHost) close() error  { return t.h.Close() }

type goHost struct{ h ghost.Host }

// goStack is go-libp2p's transport, security and muxer options for the
// TCP+Noise, TCP+TLS and QUIC stacks, nil for any other.
func goStack(sec string) []libp2p.Option {
	switch sec {
	case secNoise:
		return []libp2p.Option{libp2p.Transport(gtcp.NewTCPTransport), libp2p.Security(gnoise.ID, gnoise.New), libp2p.Muxer(gyamux.ID, gyamux.DefaultTransport)}
	case secTLS:
		return []libp2p.Option{libp2p.Transport(gtcp.NewTCPTransport), libp2p.Security(gtls.ID, gtls.New), libp2p.Muxer(gyamux.ID, gyamux.DefaultTransport)}
	case secQUIC:
		return []libp2p.Option{libp2p.Transport(gquic.NewTransport)}
	}
	return nil
}

// newGoHost builds a go-libp2p host with only TCP, one security protocol
// and yamux. The resource manager gets infinite limits and the connection
// manager is the null one, so neither caps the idle-connection benchmark.
func newGoHost(sec string, listen bool) (*goHost, error) {
	listenAddr := loopbackListen
	stack := goStack(sec)
	switch sec {
	case secNoise, secTLS:
	case secQUIC:
		listenAddr = loopbackListenQUIC
	case secWT:
		stack = []libp2p.Option{libp2p.Transport(gwebtransport.New)}
		listenAddr = loopbackListenWT
	case secWebRTC:
		stack = []libp2p.Option{libp2p.Transport(gwebrtc.New)}
		listenAddr = loopbackListenRTC
	default:
		return nil, fmt.Errorf("go-libp2p: unknown stack %q", sec)
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.InfiniteLimits))
	if err != nil {
		return nil, fmt.Errorf("go-libp2p resource manager: %w", err)
	}
	opts := append(stack,
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(gconnmgr.NullConnMgr{}),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	)
	if listen {
		opts = append(opts, libp2p.ListenAddrStrings(listenAddr))
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

func (g *goHost) disconnect(p peerRef) error {
	id, err := gpeer.Decode(p.id)
	if err != nil {
		return err
	}
	return g.h.Network().ClosePeer(id)
}

func (g *goHost) connectedTo(p peerRef) bool {
	id, err := gpeer.Decode(p.id)
	return err == nil && len(g.h.Network().ConnsToPeer(id)) > 0
}

func (g *goHost) waitIdentified(ctx context.Context, p peerRef) error {
	id, err := gpeer.Decode(p.id)
	if err != nil {
		return err
	}
	ids, ok := g.h.(interface{ IDService() gidentify.IDService })
	if !ok {
		return fmt.Errorf("go-libp2p host %T has no identify service", g.h)
	}
	for _, c := range g.h.Network().ConnsToPeer(id) {
		select {
		case <-ids.IDService().IdentifyWait(c):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (g *goHost) numConns() int { return len(g.h.Network().Conns()) }
func (g *goHost) close() error  { return g.h.Close() }
