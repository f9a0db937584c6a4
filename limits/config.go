// Package limits is tachyon's resource manager: it admits inbound
// handshakes, connections, streams and the memory that buffers unread
// stream data, against a few limits set by one Config and scaled to the
// machine by default.
//
// Every refusal is a *LimitError (errors.Is(err, ErrLimit)) that names the
// limit, where it applies, its value, the current use and the Config field
// that raises it; the same is logged, at most once a second per limit.
//
// Limits that count addresses (connections per IP and per subnet,
// handshakes per IP, memory per IP) apply to inbound connections only: we
// choose whom we dial, an attacker chooses whom to dial from.
package limits

import (
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
)

// Config sets every limit. In New, a zero field takes Default()'s value and
// a negative one means no limit (for durations: no deadline; for a Rate: a
// negative PerSecond). Nil slices and maps take the default too; for
// NoIPLimits, an empty non-nil slice means "no exemptions".
type Config struct {
	// Conns bounds connections in both directions; ConnsInbound those the
	// peers opened, below Conns so that inbound ones cannot keep us from
	// dialing.
	Conns, ConnsInbound int
	// ConnsPerPeer bounds connections with one peer ID, both directions.
	ConnsPerPeer int
	// ConnsPerIP, ConnsPerSubnet4 (per IPv4 /24) and ConnsPerSubnet6 (per
	// IPv6 /56, one customer site) bound inbound connections by address.
	ConnsPerIP, ConnsPerSubnet4, ConnsPerSubnet6 int

	// Handshakes and HandshakesPerIP bound inbound connections still in
	// their security and muxer handshakes.
	Handshakes, HandshakesPerIP int
	// HandshakeTimeout is the deadline transports and the upgrader give an
	// inbound handshake; this package does not enforce it itself.
	HandshakeTimeout time.Duration

	// Streams bounds the streams of the node, both directions;
	// StreamsPerConn the streams the peer opened on one connection (ours
	// are the application's business: a client that opens and closes
	// streams fast has many waiting for the peer's FIN).
	Streams, StreamsPerConn int
	// StreamsPerProtocol bounds the streams of one protocol, node-wide;
	// ProtocolStreams overrides it per protocol.
	StreamsPerProtocol int
	ProtocolStreams    map[protocol.ID]int
	// InboundStreamRate bounds how fast one peer may open inbound streams
	// of one protocol; ProtocolRates overrides it per protocol.
	InboundStreamRate Rate
	ProtocolRates     map[protocol.ID]Rate
	// ConnStreamRate bounds how fast the peer opens streams on one
	// connection, whatever their protocol, counted when the muxer admits
	// them: it catches streams that never reach protocol negotiation
	// (opened and reset at once). The zero value is maxBuckets (64) times
	// InboundStreamRate, what a peer using many protocols may open at full
	// rate, so only a flood meets it; none if InboundStreamRate is none.
	ConnStreamRate Rate

	// AbusePenalty is how long the address of a connection closed for
	// abuse (a peer that kept opening streams it was refused, see
	// Manager's Abuse) is refused handshakes. It doubles with each
	// offence, up to AbusePenaltyMax, and starts over once the address
	// has been quiet for AbusePenaltyMax after its last penalty. Only
	// addresses limited by address (not NoIPLimits, not AllowSubnets or
	// AllowPeers) are penalised. Defaults 1 s and 1 min; a negative
	// AbusePenalty turns penalties off.
	AbusePenalty, AbusePenaltyMax time.Duration

	// Memory, MemoryPerPeer and MemoryPerConn bound the bytes muxers hold
	// for unread stream data and promise in receive windows grown past
	// their initial size. MemoryPerIP bounds the same for all inbound
	// connections from one address, whatever peer IDs they claim.
	Memory, MemoryPerPeer, MemoryPerConn, MemoryPerIP int64

	// AllowPeers and AllowSubnets bypass every limit (their use is still
	// counted in the node's totals).
	AllowPeers   []peer.ID
	AllowSubnets []netip.Prefix
	// NoIPLimits exempts addresses from the limits that count addresses;
	// stream and memory limits still apply. The default is loopback
	// (127.0.0.0/8 and ::1/128), as in go-libp2p: tests and local tools
	// open many connections from one loopback address.
	NoIPLimits []netip.Prefix

	// Tracer, if set, is told about every refusal.
	Tracer Tracer
}

// Tracer is told about refusals: the scope of the limit reached (node,
// peer, ip, subnet, conn, protocol, peer_protocol) and what ran out
// (connections, inbound_connections, handshakes, streams, stream_rate,
// memory, penalty). Both come from those small fixed sets. It must not
// block.
type Tracer interface {
	Refused(scope, resource string)
}

// Rate is a token bucket: PerSecond new streams on average, Burst at once.
type Rate struct {
	PerSecond float64
	// Burst is the bucket's size; 0 means max(1, PerSecond).
	Burst int
}

// Fixed defaults: see Default for the reasoning.
const (
	defaultConnsPerPeer     = 8
	defaultConnsPerIP       = 8
	defaultConnsPerSubnet   = 32
	defaultHandshakesPerIP  = 8
	defaultHandshakeTimeout = 10 * time.Second
	defaultStreamsPerConn   = 128
	defaultMemoryPerPeer    = 64 << 20
	defaultMemoryPerConn    = 32 << 20
	defaultMemoryPerIP      = 16 << 20
	defaultRatePerSecond    = 100
	defaultRateBurst        = 200
	defaultAbusePenalty     = time.Second
	defaultAbusePenaltyMax  = time.Minute
)

// Default returns limits scaled to this machine: its memory (MemTotal from
// /proc/meminfo, or the cgroup's memory limit if lower; 2 GiB when neither
// is known) and its file descriptors (RLIMIT_NOFILE, which Go raises to the
// hard limit at start; 1024 when unknown).
//
// Formulas (RAM, FDs as above; values for a 24 GiB machine with a large
// RLIMIT_NOFILE in brackets):
//
//	Memory             = RAM/8, within [128 MiB, 4 GiB]             [3 GiB]
//	MemoryPerPeer      = 64 MiB (at most Memory)
//	MemoryPerConn      = 32 MiB (at most MemoryPerPeer)
//	MemoryPerIP        = 16 MiB
//	Conns              = min(FDs/2, Memory/1 MiB), within [64, 8192] [3072]
//	ConnsInbound       = Conns*3/4                                   [2304]
//	ConnsPerPeer       = 8; ConnsPerIP = 8; per /24 and per /56: 32
//	Handshakes         = Conns/8, within [32, 1024]                  [384]
//	HandshakesPerIP    = 8; HandshakeTimeout = 10 s
//	Streams            = 16*Conns                                    [49152]
//	StreamsPerConn     = 128
//	StreamsPerProtocol = Streams/4                                   [12288]
//	InboundStreamRate  = 100/s, burst 200, per peer and protocol
//	ConnStreamRate     = 6400/s, burst 12800, per connection
//	AbusePenalty       = 1 s, doubling up to AbusePenaltyMax = 1 min
//	NoIPLimits         = 127.0.0.0/8, ::1/128
//
// Why: FDs/2 leaves half the descriptors to files and dials in progress;
// Memory/1 MiB lets the average connection buffer a megabyte. MemoryPerConn
// fits two yamux streams whose windows auto-tuned to the full 16 MiB, so a
// fast transfer keeps its throughput. One remote address, whatever peer
// IDs it claims, holds at most ConnsPerIP = 8 connections and
// HandshakesPerIP = 8 handshakes (so 2000 idle sockets from one address
// cost 8 slots, not all of them), at most 8*128 = 1024 inbound streams and
// MemoryPerIP = 16 MiB of buffered data: the attack of issue #12 (1000
// streams of 256 KiB each on each of many connections, ~1.3 GB) is held to
// 16 MiB of buffers plus the streams' bookkeeping, which keeps one
// attacker under 64 MiB of RSS even with the garbage collector's slack
// (GOGC=100 lets the heap reach twice what is live). A single inbound
// stream from a remote address can still grow its window to 8 MiB (16 MiB
// if nothing else of that address is buffered); loopback is exempt.
// StreamsPerProtocol is well above what one address can open, so one
// attacker cannot fill a protocol (say, ping) for everyone.
func Default() Config {
	return defaults(readSystem())
}

// system is what Default scales with.
type system struct {
	ram int64 // bytes; 0 when unknown
	fds int64 // 0 when unknown
}

func defaults(sys system) Config {
	ram := sys.ram
	if ram <= 0 {
		ram = 2 << 30
	}
	fds := sys.fds
	if fds <= 0 {
		fds = 1024
	}
	mem := clamp(ram/8, 128<<20, 4<<30)
	conns := clamp(min(fds/2, mem/(1<<20)), 64, 8192)
	streams := 16 * conns
	return Config{
		Conns:              int(conns),
		ConnsInbound:       int(conns * 3 / 4),
		ConnsPerPeer:       defaultConnsPerPeer,
		ConnsPerIP:         defaultConnsPerIP,
		ConnsPerSubnet4:    defaultConnsPerSubnet,
		ConnsPerSubnet6:    defaultConnsPerSubnet,
		Handshakes:         int(clamp(conns/8, 32, 1024)),
		HandshakesPerIP:    defaultHandshakesPerIP,
		HandshakeTimeout:   defaultHandshakeTimeout,
		Streams:            int(streams),
		StreamsPerConn:     defaultStreamsPerConn,
		StreamsPerProtocol: int(streams / 4),
		InboundStreamRate:  Rate{PerSecond: defaultRatePerSecond, Burst: defaultRateBurst},
		ConnStreamRate:     Rate{PerSecond: maxBuckets * defaultRatePerSecond, Burst: maxBuckets * defaultRateBurst},
		AbusePenalty:       defaultAbusePenalty,
		AbusePenaltyMax:    defaultAbusePenaltyMax,
		Memory:             mem,
		MemoryPerPeer:      min(defaultMemoryPerPeer, mem),
		MemoryPerConn:      min(defaultMemoryPerConn, mem),
		MemoryPerIP:        min(defaultMemoryPerIP, mem),
		NoIPLimits:         []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
	}
}

func clamp(v, lo, hi int64) int64 { return max(lo, min(v, hi)) }

// resolve fills cfg's zero fields from def, turns negative ones into
// "unlimited" (-1) and checks what cannot be meant.
func resolve(cfg, def Config) (Config, error) {
	ints := []struct {
		v *int
		d int
	}{
		{&cfg.Conns, def.Conns}, {&cfg.ConnsInbound, def.ConnsInbound}, {&cfg.ConnsPerPeer, def.ConnsPerPeer},
		{&cfg.ConnsPerIP, def.ConnsPerIP}, {&cfg.ConnsPerSubnet4, def.ConnsPerSubnet4}, {&cfg.ConnsPerSubnet6, def.ConnsPerSubnet6},
		{&cfg.Handshakes, def.Handshakes}, {&cfg.HandshakesPerIP, def.HandshakesPerIP},
		{&cfg.Streams, def.Streams}, {&cfg.StreamsPerConn, def.StreamsPerConn}, {&cfg.StreamsPerProtocol, def.StreamsPerProtocol},
	}
	for _, f := range ints {
		*f.v = orDefault(*f.v, f.d)
	}
	for _, f := range []struct {
		v *int64
		d int64
	}{{&cfg.Memory, def.Memory}, {&cfg.MemoryPerPeer, def.MemoryPerPeer}, {&cfg.MemoryPerConn, def.MemoryPerConn}, {&cfg.MemoryPerIP, def.MemoryPerIP}} {
		*f.v = orDefault(*f.v, f.d)
	}
	cfg.HandshakeTimeout = orDefault(cfg.HandshakeTimeout, def.HandshakeTimeout)
	cfg.AbusePenalty = orDefault(cfg.AbusePenalty, def.AbusePenalty)
	cfg.AbusePenaltyMax = orDefault(cfg.AbusePenaltyMax, def.AbusePenaltyMax)
	if cfg.AbusePenaltyMax < cfg.AbusePenalty {
		cfg.AbusePenaltyMax = cfg.AbusePenalty // also: a negative one never grows
	}
	var err error
	if cfg.InboundStreamRate, err = resolveRate(cfg.InboundStreamRate, def.InboundStreamRate); err != nil {
		return Config{}, fmt.Errorf("InboundStreamRate: %w", err)
	}
	// The connection's rate follows the per-protocol one it was left to.
	connRate := Rate{PerSecond: -1}
	if r := cfg.InboundStreamRate; r.PerSecond >= 0 {
		connRate = Rate{PerSecond: maxBuckets * r.PerSecond, Burst: maxBuckets * r.Burst}
	}
	if cfg.ConnStreamRate, err = resolveRate(cfg.ConnStreamRate, connRate); err != nil {
		return Config{}, fmt.Errorf("ConnStreamRate: %w", err)
	}
	rates := make(map[protocol.ID]Rate, len(cfg.ProtocolRates))
	for p, r := range cfg.ProtocolRates {
		if rates[p], err = resolveRate(r, cfg.InboundStreamRate); err != nil {
			return Config{}, fmt.Errorf("ProtocolRates[%q]: %w", p, err)
		}
	}
	cfg.ProtocolRates = rates
	streams := make(map[protocol.ID]int, len(cfg.ProtocolStreams))
	for p, n := range cfg.ProtocolStreams {
		streams[p] = orDefault(n, cfg.StreamsPerProtocol)
	}
	cfg.ProtocolStreams = streams
	if cfg.NoIPLimits == nil {
		cfg.NoIPLimits = def.NoIPLimits
	}
	for _, list := range []struct {
		name string
		ps   []netip.Prefix
	}{{"AllowSubnets", cfg.AllowSubnets}, {"NoIPLimits", cfg.NoIPLimits}} {
		for _, p := range list.ps {
			if !p.IsValid() {
				return Config{}, fmt.Errorf("%s: invalid prefix %v", list.name, p)
			}
		}
	}
	return cfg, nil
}

type number interface{ ~int | ~int64 }

func orDefault[T number](v, d T) T {
	switch {
	case v == 0:
		return d
	case v < 0:
		return -1
	}
	return v
}

func resolveRate(r, def Rate) (Rate, error) {
	switch {
	case math.IsNaN(r.PerSecond) || math.IsInf(r.PerSecond, 0):
		return Rate{}, fmt.Errorf("rate %v is not a number", r.PerSecond)
	case r.Burst < 0:
		return Rate{}, fmt.Errorf("negative burst %d", r.Burst)
	case r.PerSecond < 0:
		return Rate{PerSecond: -1}, nil
	case r.PerSecond == 0 && r.Burst == 0:
		return def, nil
	case r.PerSecond == 0:
		return Rate{}, fmt.Errorf("burst %d without a rate", r.Burst)
	case r.Burst == 0:
		r.Burst = int(max(1, math.Ceil(r.PerSecond)))
	}
	return r, nil
}
