package tachyon

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/transport/webrtc"
)

// WebRTCSTUNServers sets the STUN servers (stun:host:port) that /webrtc
// connections ask for their public address, so that peers behind NATs can
// meet; none by default (a tachyon relay can be one: tachyon node --stun).
// TURN is not supported.
func WebRTCSTUNServers(urls ...string) Option {
	return func(c *config) error {
		for _, u := range urls {
			if !strings.HasPrefix(u, "stun:") {
				return fmt.Errorf("tachyon: WebRTCSTUNServers: %q is not a stun: URL", u)
			}
		}
		c.stunServers = append(c.stunServers, urls...)
		return nil
	}
}

// WebRTCICEFilter restricts the local addresses /webrtc gathers ICE
// candidates on to those keep accepts (loopback included when it accepts
// them): for tests and hosts with interfaces that must not be used. By
// default every non-loopback interface is.
func WebRTCICEFilter(keep func(netip.Addr) bool) Option {
	return func(c *config) error {
		c.iceFilter = keep
		return nil
	}
}

// newPrivateWebRTC builds the /webrtc transport when it is on and the
// relay client is too (signalling goes through relays).
func newPrivateWebRTC(cfg config) (*webrtc.PrivateTransport, error) {
	if !slices.Contains(cfg.transports, WebRTC) || cfg.noRelayClient {
		return nil, nil
	}
	t, err := webrtc.NewPrivate(cfg.key, nil, &webrtc.PrivateConfig{
		STUNServers:   cfg.stunServers,
		ICEAddrFilter: cfg.iceFilter,
		Resources:     cfg.rm,
		Log:           component(cfg, WebRTC),
		Tracer:        cfg.metrics.WebRTC(),
	})
	if err != nil {
		return nil, fmt.Errorf("tachyon: webrtc: %w", err)
	}
	return t, nil
}

// startPrivateWebRTC serves the signalling protocol, over relayed
// connections too: that is where it runs.
func (h *Host) startPrivateWebRTC() error {
	if h.webrtc == nil {
		return nil
	}
	h.webrtc.SetSignaller(webrtcSignaller{h})
	return h.SetStreamHandler(webrtc.SignalingProtocol, h.webrtc.HandleSignaling, AllowLimitedConns())
}

// webrtcSignaller opens /webrtc's signalling streams.
type webrtcSignaller struct{ h *Host }

// Signal opens a signalling stream to p: on a connection to p if there is
// one (relayed or not), else on a new one through exactly the relay named.
// It never dials p's other addresses: one of them could be a /webrtc
// address, and this dial would start another.
func (x webrtcSignaller) Signal(ctx context.Context, relayAddr ma.Multiaddr, p peer.ID) (network.Stream, error) {
	ctx = network.WithAllowLimitedConn(ctx, "webrtc signalling")
	if len(x.h.swarm.ConnsToPeer(p)) == 0 {
		circuit := relayAddr.Encapsulate(ma.StringCast("/p2p/" + p.String()))
		if _, err := x.h.swarm.DialVia(ctx, p, circuit); err != nil {
			return nil, fmt.Errorf("tachyon: webrtc signalling with %s through %s: %w", p, relayAddr, err)
		}
	}
	return x.h.NewStream(network.WithNoDial(ctx, "webrtc signalling"), p, webrtc.SignalingProtocol)
}

// webrtcAddrs replaces the bare /webrtc listen address with the addresses
// peers dial: one per relay address the host holds.
func (h *Host) webrtcAddrs(listen []ma.Multiaddr) []ma.Multiaddr {
	out := slices.DeleteFunc(listen, isWebRTCListen)
	if len(out) == len(listen) {
		return out // not listening on /webrtc
	}
	return append(out, webrtc.PrivateListenAddrs(h.relayAddrs())...)
}

func isWebRTCListen(a ma.Multiaddr) bool { return len(a) == 1 && a[0].Code() == ma.P_WEBRTC }
