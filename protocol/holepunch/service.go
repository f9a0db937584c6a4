package holepunch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/logs"
	"github.com/tachyon-p2p/tachyon/internal/streamctx"
	"github.com/tachyon-p2p/tachyon/mss"
)

// StreamTimeout bounds one CONNECT/SYNC exchange by default (go-libp2p's
// value).
const StreamTimeout = time.Minute

// Host is what the service needs from the host.
type Host interface {
	// NewStream opens a stream on the relayed connection (the service
	// passes ctx with network.WithAllowLimitedConn).
	NewStream(ctx context.Context, p peer.ID, protos ...protocol.ID) (network.Stream, error)
	// DialDirect dials p at addrs at once and returns the direct
	// connection; ctx carries network.WithSimultaneousConnect.
	DialDirect(ctx context.Context, p peer.ID, addrs []ma.Multiaddr) (network.Conn, error)
	// DirectConn is an open connection to p that is not limited, or nil.
	DirectConn(p peer.ID) network.Conn
	// PeerAddrs are p's known addresses (for connection reversal).
	PeerAddrs(p peer.ID) []ma.Multiaddr
	// OwnAddrs are our addresses others may dial: listen addresses and
	// the addresses peers observed for us.
	OwnAddrs() []ma.Multiaddr
}

// Config tunes the service; the zero value is go-libp2p's behaviour.
type Config struct {
	// AllowPrivateAddrs sends and dials private (RFC 1918, ULA...)
	// addresses too. For tests on emulated networks and for LANs: by
	// default only public addresses are exchanged, as the spec asks.
	AllowPrivateAddrs bool
	// PublicPrefixes count as public besides what manet.IsPublicAddr
	// says: for emulated networks whose "Internet" is private address
	// space while the networks behind their NATs stay private, so that
	// only the addresses a NAT could forward are sent and dialed.
	PublicPrefixes []netip.Prefix
	// Attempts is how many CONNECT/SYNC rounds B tries. Default 3, as
	// the spec asks; every third round swaps the roles (see clientRole).
	Attempts int
	// DialTimeout bounds the direct dial of one round. Default 5 s.
	DialTimeout time.Duration
	// StreamTimeout bounds one CONNECT/SYNC exchange, on both sides.
	// Default StreamTimeout.
	StreamTimeout time.Duration
	// OnEvent is told the outcome of every attempt, from the goroutine
	// that made it; it must not block.
	OnEvent func(Event)
	Log     *slog.Logger
	// Tracer, if set, is told about every attempt.
	Tracer Tracer
}

// Tracer is told about every attempt as it ends: our side, the transport
// of the direct connection (empty on failure), the failure's reason (one
// of the Reason constants; empty on success) and how long it took. It
// must not block.
type Tracer interface {
	Attempt(side Side, transport, reason string, took time.Duration)
}

// Side says which role a peer played.
type Side string

const (
	// SideInitiator is B: it accepted the relayed connection and opened
	// the DCUtR stream.
	SideInitiator Side = "initiator"
	// SideResponder is A: it dialed through the relay.
	SideResponder Side = "responder"
)

// Event reports one attempt to get a direct connection.
type Event struct {
	Peer peer.ID
	Side Side
	// Attempt counts from 1; 0 is the connection reversal (a plain dial
	// of the peer's public addresses before any punching).
	Attempt int
	// Addrs are the peer's addresses that were dialed.
	Addrs []ma.Multiaddr
	// RTT is the round trip measured over the relay (initiator only).
	RTT time.Duration
	// Took is from the start of the attempt to the direct connection or
	// the failure.
	Took    time.Duration
	Success bool
	// Transport and Remote describe the direct connection on success.
	Transport string
	Remote    ma.Multiaddr
	// Reason says why a failed attempt failed.
	Reason string
	Err    error
}

// Reasons a hole punch fails.
const (
	ReasonNoOwnAddrs    = "no public address of ours to send"
	ReasonNoPeerAddrs   = "the peer sent no public address"
	ReasonProtocol      = "protocol error"
	ReasonTimeout       = "timeout: no packet got through (symmetric NAT, or a firewall)"
	ReasonDialError     = "dial error"
	ReasonNotSupported  = "the peer does not speak DCUtR"
	ReasonNoStream      = "no stream over the relayed connection"
	ReasonAlreadyDirect = "already connected directly"
)

// Service runs both roles of DCUtR.
type Service struct {
	h   Host
	cfg Config
	log *slog.Logger

	// ctx ends with Close: it bounds what A's side does after a round.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	running map[peer.ID]bool        // initiator rounds in flight
	recent  map[peer.ID][]time.Time // responder: when each peer's rounds began
}

// New returns a service; the host routes ID's streams to HandleStream and
// calls DirectConnect on the relayed connections it accepts.
func New(h Host, cfg Config) *Service {
	if cfg.Attempts <= 0 {
		cfg.Attempts = 3
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.StreamTimeout <= 0 {
		cfg.StreamTimeout = StreamTimeout
	}
	s := &Service{h: h, cfg: cfg, log: logs.Or(cfg.Log), running: make(map[peer.ID]bool), recent: make(map[peer.ID][]time.Time)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// Close ends the exchanges and dials HandleStream is running, at once, so
// that a host closing does not wait for them. DirectConnect follows its
// caller's context.
func (s *Service) Close() error {
	s.cancel()
	return nil
}

// Usable keeps the addresses worth sending or dialing: no relayed ones, no
// loopback, unspecified, link-local or multicast ones, and public ones only
// unless private ones are allowed. It strips /p2p and drops duplicates.
func (s *Service) Usable(addrs []ma.Multiaddr) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range addrs {
		if len(a) == 0 || slices.ContainsFunc(a, func(c ma.Component) bool { return c.Code() == ma.P_CIRCUIT }) {
			continue
		}
		if manet.IsIPLoopback(a) || manet.IsIPUnspecified(a) {
			continue
		}
		// Link-local and multicast addresses (IPv4 ones too, which
		// AllowPrivateAddrs would let through) reach no one beyond the link.
		if ip, err := manet.ToIP(a); err == nil && (ip.IsLinkLocalUnicast() || ip.IsMulticast()) {
			continue
		}
		if !s.cfg.AllowPrivateAddrs && !manet.IsPublicAddr(a) && !s.inPublicPrefix(a) {
			continue
		}
		tpt, _ := peer.SplitAddr(a)
		// One address per socket: /tcp/P/tls and /tcp/P/noise (our own
		// forms, which name the security protocol) are /tcp/P. Dialing all
		// three races three connections to one socket from one port, and
		// go-libp2p cannot dial them at all.
		if n := len(tpt); n == 3 && tpt[1].Code() == ma.P_TCP && (tpt[2].Code() == ma.P_TLS || tpt[2].Code() == ma.P_NOISE) {
			tpt = tpt[:2]
		}
		if len(tpt) > 0 && !slices.ContainsFunc(out, tpt.Equal) {
			out = append(out, tpt)
		}
	}
	return out
}

func (s *Service) inPublicPrefix(a ma.Multiaddr) bool {
	ip, err := manet.ToIP(a)
	if err != nil {
		return false
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	addr = addr.Unmap()
	return slices.ContainsFunc(s.cfg.PublicPrefixes, func(p netip.Prefix) bool { return p.Contains(addr) })
}

func (s *Service) emit(e Event) {
	if e.Success {
		s.log.Info("hole punch succeeded", "peer", e.Peer, "side", e.Side, "attempt", e.Attempt, "transport", e.Transport,
			"remote", e.Remote, "rtt", e.RTT, "took", e.Took)
	} else {
		s.log.Info("hole punch failed", "peer", e.Peer, "side", e.Side, "attempt", e.Attempt, "reason", e.Reason,
			"addrs", e.Addrs, "rtt", e.RTT, "took", e.Took, "err", e.Err)
	}
	if t := s.cfg.Tracer; t != nil {
		if e.Success {
			t.Attempt(e.Side, e.Transport, "", e.Took)
		} else {
			t.Attempt(e.Side, "", e.Reason, e.Took)
		}
	}
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(e)
	}
}

// ErrFailed is wrapped by DirectConnect's error when no attempt worked.
var ErrFailed = errors.New("holepunch: no direct connection")

// DirectConnect is B's side: it tries to replace the relayed connection to
// p with a direct one, first by dialing p's known public addresses
// (connection reversal), then by up to Attempts rounds of DCUtR. One run
// per peer at a time.
func (s *Service) DirectConnect(ctx context.Context, p peer.ID) (network.Conn, error) {
	if c := s.h.DirectConn(p); c != nil {
		return c, nil
	}
	s.mu.Lock()
	if s.running[p] {
		s.mu.Unlock()
		return nil, fmt.Errorf("holepunch: with %s: already running", p)
	}
	s.running[p] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.running, p)
		s.mu.Unlock()
	}()

	if theirs := s.Usable(s.h.PeerAddrs(p)); len(theirs) > 0 {
		start := time.Now()
		c, reason, err := s.dial(network.WithForceDirectDial(ctx, "connection reversal"), p, theirs)
		e := Event{Peer: p, Side: SideInitiator, Attempt: 0, Addrs: theirs, Took: time.Since(start)}
		if err == nil {
			e.Success, e.Transport, e.Remote = true, c.ConnState().Transport, c.RemoteMultiaddr()
			s.emit(e)
			return c, nil
		}
		e.Reason, e.Err = reason, err
		s.emit(e)
	}
	var last error
	for attempt := 1; attempt <= s.cfg.Attempts; attempt++ {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		c, e := s.initiate(ctx, p, attempt)
		s.emit(e)
		if c != nil {
			return c, nil
		}
		last = errors.New(e.Reason)
		if e.Err != nil {
			last = fmt.Errorf("%s: %w", e.Reason, e.Err)
		}
		switch e.Reason {
		case ReasonNoOwnAddrs, ReasonNoPeerAddrs, ReasonNotSupported, ReasonNoStream:
			// Another round would fail the same way.
			return nil, fmt.Errorf("%w with %s: %w", ErrFailed, p, last)
		}
	}
	return nil, fmt.Errorf("%w with %s after %d attempts: %w", ErrFailed, p, s.cfg.Attempts, last)
}

// initiate runs one round as B.
func (s *Service) initiate(ctx context.Context, p peer.ID, attempt int) (network.Conn, Event) {
	start := time.Now()
	e := Event{Peer: p, Side: SideInitiator, Attempt: attempt}
	fail := func(reason string, err error) (network.Conn, Event) {
		e.Reason, e.Err, e.Took = reason, err, time.Since(start)
		return nil, e
	}
	ours := s.Usable(s.h.OwnAddrs())
	if len(ours) == 0 {
		return fail(ReasonNoOwnAddrs, nil)
	}
	sctx, cancel := context.WithTimeout(network.WithAllowLimitedConn(ctx, "hole punch"), s.cfg.StreamTimeout)
	defer cancel()
	// Optimistic negotiation: the protocol proposal rides with CONNECT, so
	// the exchange costs one round trip, not two (the host negotiates first
	// anyway when identify did not list DCUtR). The RTT measured below is
	// then the relayed path's plus the peer's turnaround, as in go-libp2p.
	st, err := s.h.NewStream(sctx, p, ID)
	if err != nil {
		if errors.Is(err, mss.ErrNotSupported) {
			return fail(ReasonNotSupported, err)
		}
		return fail(ReasonNoStream, err)
	}
	theirs, rtt, err := Initiate(sctx, st, ours, s.Usable)
	e.RTT = rtt
	if err != nil {
		st.Reset()
		switch {
		case errors.Is(err, ErrNoAddrs):
			return fail(ReasonNoPeerAddrs, err)
		case errors.Is(err, mss.ErrNotSupported):
			return fail(ReasonNotSupported, err)
		}
		return fail(ReasonProtocol, err)
	}
	st.Close()
	e.Addrs = theirs
	// SYNC is on its way: A dials when it arrives, half a round trip from
	// now, and so do we.
	timer := time.NewTimer(rtt / 2)
	select {
	case <-timer.C:
	case <-ctx.Done():
		timer.Stop()
		return fail(ReasonTimeout, ctx.Err())
	}
	c, reason, err := s.punch(ctx, p, theirs, clientRole(SideInitiator, attempt))
	if err != nil {
		return fail(reason, err)
	}
	e.Took = time.Since(start)
	e.Success, e.Transport, e.Remote = true, c.ConnState().Transport, c.RemoteMultiaddr()
	return c, e
}

// punch dials p at the agreed moment, as the client of the upgrade or not.
func (s *Service) punch(ctx context.Context, p peer.ID, addrs []ma.Multiaddr, isClient bool) (network.Conn, string, error) {
	return s.dial(network.WithForceDirectDial(network.WithSimultaneousConnect(ctx, isClient), "hole punch"), p, addrs)
}

// dial dials p directly within DialTimeout and says why it failed. A dial
// that ran out of time is a timeout whatever the transport made of it:
// net.Dialer reports an i/o timeout, not ctx's error.
func (s *Service) dial(ctx context.Context, p peer.ID, addrs []ma.Multiaddr) (network.Conn, string, error) {
	dctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	c, err := s.h.DialDirect(dctx, p, addrs)
	switch {
	case err == nil:
		return c, "", nil
	case errors.Is(err, context.DeadlineExceeded), errors.Is(dctx.Err(), context.DeadlineExceeded):
		return nil, ReasonTimeout, err
	}
	return nil, ReasonDialError, err
}

// HandleStream is A's side: it answers a round that B opened over the
// relayed connection, and dials B when SYNC arrives.
func (s *Service) HandleStream(st network.Stream) {
	p := st.RemotePeer()
	start := time.Now()
	e := Event{Peer: p, Side: SideResponder}
	if !st.Conn().ConnState().Limited && !isRelayed(st.Conn().RemoteMultiaddr()) {
		// Nothing to upgrade: B already has a direct connection to us.
		st.Reset()
		return
	}
	if st.Conn().Direction() != network.DirOutbound {
		// B opens the exchange on the relayed connection it accepted, which
		// A dialed: on a connection we accepted, the roles are wrong (as
		// go-libp2p, refuse rather than dial with a role the peer does not
		// expect).
		st.Reset()
		return
	}
	e.Attempt = s.countRound(p, start)
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.StreamTimeout)
	defer cancel()
	// With no address of ours, we still answer: an empty CONNECT tells B
	// to stop, where a reset would make it try again.
	ours := s.Usable(s.h.OwnAddrs())
	theirs, err := Respond(ctx, st, ours, s.Usable)
	if err != nil {
		st.Reset()
		e.Reason, e.Err, e.Took = ReasonProtocol, err, time.Since(start)
		switch {
		case errors.Is(err, ErrNoAddrs):
			e.Reason = ReasonNoPeerAddrs
		case len(ours) == 0:
			e.Reason = ReasonNoOwnAddrs
		}
		s.emit(e)
		return
	}
	st.Close()
	e.Addrs = theirs
	c, reason, err := s.punch(s.ctx, p, theirs, clientRole(SideResponder, e.Attempt))
	e.Took = time.Since(start)
	if err != nil {
		e.Reason, e.Err = reason, err
		s.emit(e)
		return
	}
	s.forgetRounds(p)
	e.Success, e.Transport, e.Remote = true, c.ConnState().Transport, c.RemoteMultiaddr()
	s.emit(e)
}

// clientRole says whether side is the client of the upgrade in round
// attempt. The spec makes A the client and B the server; go-libp2p before
// v0.41 had them the other way round, so, like current go-libp2p's B, every
// third round swaps them to give old peers a chance too.
func clientRole(side Side, attempt int) bool {
	swapped := attempt%3 == 0
	return (side == SideResponder) != swapped
}

// countRound guesses which of B's rounds a stream from p opens: A cannot
// see it, as each round comes on a new stream. Rounds less than a minute
// apart belong to one DirectConnect of B's, which makes 3 at most, so the
// count goes 1, 2, 3 and around again; a success ends B's run, and
// forgetRounds starts the count afresh.
func (s *Service) countRound(p peer.ID, now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := slices.DeleteFunc(s.recent[p], func(t time.Time) bool { return now.Sub(t) > time.Minute })
	ts = append(ts, now)
	s.recent[p] = ts
	for q, t := range s.recent {
		if len(t) > 0 && now.Sub(t[len(t)-1]) > time.Minute {
			delete(s.recent, q)
		}
	}
	return (len(ts)-1)%3 + 1
}

func (s *Service) forgetRounds(p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.recent, p)
}

func isRelayed(a ma.Multiaddr) bool {
	return slices.ContainsFunc(a, func(c ma.Component) bool { return c.Code() == ma.P_CIRCUIT })
}

// Stream is what the exchanges need from a stream.
type Stream interface {
	io.ReadWriter
	SetDeadline(t time.Time) error
}

// ErrNoAddrs is wrapped by the exchanges' error when the peer sent no
// address worth dialing.
var ErrNoAddrs = errors.New("holepunch: the peer sent no usable address")

// Initiate runs B's exchange on s: CONNECT with ours, A's CONNECT back
// (timed: the round trip over the relay), then SYNC. keep, if not nil,
// filters A's addresses; when it leaves none, Initiate returns ErrNoAddrs
// (and the round trip) without sending SYNC, as A would dial alone. It
// returns A's kept addresses and the round trip.
func Initiate(ctx context.Context, s Stream, ours []ma.Multiaddr, keep func([]ma.Multiaddr) []ma.Multiaddr) ([]ma.Multiaddr, time.Duration, error) {
	stop := streamctx.Bind(ctx, s)
	defer stop()
	start := time.Now()
	if err := Write(s, &Message{Type: Connect, ObsAddrs: ours}); err != nil {
		return nil, 0, fmt.Errorf("holepunch: sending CONNECT: %w", streamctx.Err(ctx, err))
	}
	m, err := Read(s)
	if err != nil {
		return nil, 0, fmt.Errorf("holepunch: reading CONNECT: %w", streamctx.Err(ctx, err))
	}
	rtt := time.Since(start)
	if m.Type != Connect {
		return nil, 0, fmt.Errorf("%w: got %s, want CONNECT", ErrMalformed, m.Type)
	}
	theirs := m.ObsAddrs
	if keep != nil {
		theirs = keep(theirs)
	}
	if len(theirs) == 0 {
		return nil, rtt, fmt.Errorf("%w (%d sent)", ErrNoAddrs, len(m.ObsAddrs))
	}
	if err := Write(s, &Message{Type: Sync}); err != nil {
		return nil, 0, fmt.Errorf("holepunch: sending SYNC: %w", streamctx.Err(ctx, err))
	}
	return theirs, rtt, nil
}

// Respond runs A's exchange on s: B's CONNECT, our CONNECT with ours, then
// B's SYNC. keep, if not nil, filters B's addresses; when it leaves none,
// Respond returns ErrNoAddrs before answering, as there is nothing to dial.
// It returns B's kept addresses once SYNC arrived: time to dial.
func Respond(ctx context.Context, s Stream, ours []ma.Multiaddr, keep func([]ma.Multiaddr) []ma.Multiaddr) ([]ma.Multiaddr, error) {
	stop := streamctx.Bind(ctx, s)
	defer stop()
	m, err := Read(s)
	if err != nil {
		return nil, fmt.Errorf("holepunch: reading CONNECT: %w", streamctx.Err(ctx, err))
	}
	if m.Type != Connect {
		return nil, fmt.Errorf("%w: got %s, want CONNECT", ErrMalformed, m.Type)
	}
	theirs := m.ObsAddrs
	if keep != nil {
		theirs = keep(theirs)
	}
	if len(theirs) == 0 {
		return nil, fmt.Errorf("%w (%d sent)", ErrNoAddrs, len(m.ObsAddrs))
	}
	if err := Write(s, &Message{Type: Connect, ObsAddrs: ours}); err != nil {
		return nil, fmt.Errorf("holepunch: sending CONNECT: %w", streamctx.Err(ctx, err))
	}
	sync, err := Read(s)
	if err != nil {
		return nil, fmt.Errorf("holepunch: reading SYNC: %w", streamctx.Err(ctx, err))
	}
	if sync.Type != Sync {
		return nil, fmt.Errorf("%w: got %s, want SYNC", ErrMalformed, sync.Type)
	}
	return theirs, nil
}
