package main

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	libp2pwebrtc "github.com/libp2p/go-libp2p/p2p/transport/webrtc"
	"github.com/libp2p/go-libp2p/p2p/transport/websocket"
	libp2pwebtransport "github.com/libp2p/go-libp2p/p2p/transport/webtransport"
)

// AgentVersion is what this peer announces in identify. The tachyon side
// asserts on it, so keep it in step with the go-libp2p version in go.mod.
const AgentVersion = "golibp2p-peer/0.51.0"

// stackConfig is the transport/security/muxer choice made on the command
// line. Every component is selected by name from the registries below, so a
// new transport (ws, quic-v1, ...) is one more registry entry.
type stackConfig struct {
	Transport string
	Security  string
	Muxer     string
	KeySeed   string   // optional 64 hex chars (32-byte ed25519 seed)
	ProtoVer  string   // identify protocolVersion; "" is go-libp2p's default
	Listen    []string // empty: no listen addresses
}

type transportEntry struct {
	option        libp2p.Option
	defaultListen string
	// selfSecured transports (quic-v1, webtransport) bring their own
	// security and stream multiplexing: --security and --muxer are optional
	// and ignored for them.
	selfSecured bool
}

var transports = map[string]transportEntry{
	"tcp": {
		option:        libp2p.Transport(tcp.NewTCPTransport),
		defaultListen: "/ip4/127.0.0.1/tcp/0",
	},
	"ws": {
		option:        libp2p.Transport(websocket.New),
		defaultListen: "/ip4/127.0.0.1/tcp/0/ws",
	},
	"webrtc-direct": {
		option:        libp2p.Transport(libp2pwebrtc.New),
		defaultListen: "/ip4/127.0.0.1/udp/0/webrtc-direct",
		selfSecured:   true,
	},
	"quic-v1": {
		option:        libp2p.Transport(libp2pquic.NewTransport),
		defaultListen: "/ip4/127.0.0.1/udp/0/quic-v1",
		selfSecured:   true,
	},
	"webtransport": {
		option:        libp2p.Transport(libp2pwebtransport.New),
		defaultListen: "/ip4/127.0.0.1/udp/0/quic-v1/webtransport",
		selfSecured:   true,
	},
}

var securities = map[string]libp2p.Option{
	"noise": libp2p.Security(noise.ID, noise.New),
	"tls":   libp2p.Security(libp2ptls.ID, libp2ptls.New),
}

var muxers = map[string]libp2p.Option{
	"yamux": libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
}

func names[V any](m map[string]V) string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, "|")
}

// validate checks that every named component exists. It is called before
// anything is started so that usage errors exit with code 2.
func (c *stackConfig) validate() error {
	if _, ok := transports[c.Transport]; !ok {
		return fmt.Errorf("unknown --transport %q (have %s)", c.Transport, names(transports))
	}
	if transports[c.Transport].selfSecured {
		return c.validateKey()
	}
	for _, sec := range strings.Split(c.Security, ",") {
		if _, ok := securities[sec]; !ok {
			return fmt.Errorf("unknown --security %q (have %s, or a comma-separated list in preference order)", sec, names(securities))
		}
	}
	if _, ok := muxers[c.Muxer]; !ok {
		return fmt.Errorf("unknown --muxer %q (have %s)", c.Muxer, names(muxers))
	}
	return c.validateKey()
}

func (c *stackConfig) validateKey() error {
	if c.KeySeed != "" {
		if _, err := seedKey(c.KeySeed); err != nil {
			return err
		}
	}
	return nil
}

// seedKey turns 32 hex-encoded bytes into a deterministic ed25519 identity.
func seedKey(h string) (crypto.PrivKey, error) {
	seed, err := hex.DecodeString(h)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("--key-seed must be %d bytes as %d hex characters", ed25519.SeedSize, 2*ed25519.SeedSize)
	}
	return crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(seed))
}

// newHost builds a go-libp2p host that has exactly the chosen transport,
// security and muxer, and nothing that would reach beyond the given
// addresses (no relay, no NAT port mapping, no metrics).
func newHost(c *stackConfig) (host.Host, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	opts := []libp2p.Option{transports[c.Transport].option}
	if !transports[c.Transport].selfSecured {
		// A list such as "tls,noise" offers both, in that order, as a
		// default go-libp2p host does.
		for _, sec := range strings.Split(c.Security, ",") {
			opts = append(opts, securities[sec])
		}
		opts = append(opts, muxers[c.Muxer])
	}
	opts = append(opts,
		libp2p.UserAgent(AgentVersion),
		libp2p.Ping(true),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	)
	if len(c.Listen) == 0 {
		opts = append(opts, libp2p.NoListenAddrs)
	} else {
		opts = append(opts, libp2p.ListenAddrStrings(c.Listen...))
	}
	if c.ProtoVer != "" {
		opts = append(opts, libp2p.ProtocolVersion(c.ProtoVer))
	}
	if c.KeySeed != "" {
		sk, err := seedKey(c.KeySeed)
		if err != nil {
			return nil, err
		}
		opts = append(opts, libp2p.Identity(sk))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, err
	}
	h.SetStreamHandler(EchoProtocol, echoHandler)
	return h, nil
}
