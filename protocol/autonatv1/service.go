package autonatv1

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/logs"
)

// go-libp2p's server defaults (p2p/host/autonat: options.go and svc.go).
const (
	DefaultDialTimeout     = 15 * time.Second
	DefaultStreamTimeout   = time.Minute
	DefaultMaxAddrs        = 16
	DefaultMaxDials        = 30
	DefaultMaxDialsPerPeer = 3
	DefaultRateWindow      = time.Minute
)

// Host is what the service needs from the host.
type Host interface {
	// CanDial reports whether some transport of ours dials addr.
	CanDial(addr ma.Multiaddr) bool
	// DialBack connects to p at one of addrs on a NEW connection made by a
	// dialer that never reuses an existing connection (the caller
	// guarantees that), closes it, and returns the address that connected.
	DialBack(ctx context.Context, p peer.ID, addrs []ma.Multiaddr) (ma.Multiaddr, error)
}

// Config tunes the service; a zero field takes its Default value.
type Config struct {
	// AllowPrivateAddrs dials back private (RFC 1918, ULA, loopback...)
	// addresses too: for tests and LANs. By default only public ones are
	// dialed, as go-libp2p and js-libp2p do.
	AllowPrivateAddrs bool
	// PublicPrefixes count as public besides what manet.IsPublicAddr
	// says: for emulated networks whose "Internet" is private space.
	PublicPrefixes []netip.Prefix
	// DialTimeout bounds one dial-back. A failed dial-back is answered
	// only when it runs out, as go-libp2p does, so that the answer's
	// timing does not tell a port scanner which ports are closed.
	DialTimeout time.Duration
	// StreamTimeout bounds the whole exchange: reading the request, the
	// dial-back and writing the answer.
	StreamTimeout time.Duration
	// MaxAddrs bounds the addresses dialed back per request.
	MaxAddrs int
	// MaxDials bounds the dial-backs started per RateWindow, over all
	// peers; MaxDialsPerPeer per peer.
	MaxDials        int
	MaxDialsPerPeer int
	// RateWindow is the sliding window of the two limits above.
	RateWindow time.Duration
	// OnEvent is told about every request, from the goroutine that
	// handled it; it must not block.
	OnEvent func(Event)
	Log     *slog.Logger
	// Tracer, if set, is told the result of every request.
	Tracer Tracer
}

func (c Config) withDefaults() Config {
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.StreamTimeout <= 0 {
		c.StreamTimeout = DefaultStreamTimeout
	}
	if c.MaxAddrs <= 0 {
		c.MaxAddrs = DefaultMaxAddrs
	}
	if c.MaxDials <= 0 {
		c.MaxDials = DefaultMaxDials
	}
	if c.MaxDialsPerPeer <= 0 {
		c.MaxDialsPerPeer = DefaultMaxDialsPerPeer
	}
	if c.RateWindow <= 0 {
		c.RateWindow = DefaultRateWindow
	}
	c.PublicPrefixes = slices.Clone(c.PublicPrefixes)
	return c
}

// Tracer is told how every request served ended, as a word from a small
// fixed set: "ok" (dialed back), "dial_error", "refused"
// (E_DIAL_REFUSED), "bad_request", "internal_error", or "error" (no answer
// sent). It must not block.
type Tracer interface {
	ServerRequest(result string)
}

// result is e's word for Tracer.ServerRequest.
func result(e *Event) string {
	if !e.Answered {
		return "error"
	}
	switch e.Status {
	case StatusOK:
		return "ok"
	case StatusDialError:
		return "dial_error"
	case StatusDialRefused:
		return "refused"
	case StatusBadRequest:
		return "bad_request"
	}
	return "internal_error"
}

// Event reports one request.
type Event struct {
	Peer peer.ID
	// Remote is the address the request came from.
	Remote ma.Multiaddr
	// Addrs are the addresses accepted and dialed back; nil when the
	// request was refused before dialing.
	Addrs []ma.Multiaddr
	// Answered says a response was sent; when false the stream was reset
	// (no request, an unreadable one, Close) and Err says why.
	Answered bool
	// Status and Text are the answer sent.
	Status Status
	Text   string
	// Addr is the address that connected (Status OK).
	Addr ma.Multiaddr
	Took time.Duration
	// Err is the dial-back's error, or why the exchange failed.
	Err error
}

// Status texts, as go-libp2p and js-libp2p word them where they have one.
const (
	textMalformed    = "malformed message"
	textNotDial      = "expected a DIAL message"
	textNoDial       = "missing dial"
	textNoPeer       = "missing peer info"
	textBadPeerID    = "bad peer id"
	textPeerMismatch = "peer id mismatch"
	textRelayed      = "refusing a request over a relayed connection"
	textNoIP         = "no IP address observed"
	textNoAddrs      = "no dialable addresses"
	textRateLimited  = "too many dials"
	textDialFailed   = "dial failed"
)

// Service answers AutoNAT v1 requests. Its methods are safe for
// concurrent use.
type Service struct {
	h   Host
	cfg Config
	log *slog.Logger
	now func() time.Time

	// ctx ends with Close; every exchange runs under it.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex // guards closed, rate and wg.Add
	closed bool
	rate   limiter
	wg     sync.WaitGroup // running HandleStream calls
}

// New returns a service; the host routes ID's streams to HandleStream.
func New(h Host, cfg Config) *Service {
	cfg = cfg.withDefaults()
	s := &Service{h: h, cfg: cfg, log: logs.Or(cfg.Log), now: time.Now}
	s.rate = limiter{window: cfg.RateWindow, total: cfg.MaxDials, perPeer: cfg.MaxDialsPerPeer, peers: make(map[peer.ID]int)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// Close resets the streams of the exchanges running, cancels their
// dial-backs and waits for HandleStream to return; later streams are
// reset at once.
func (s *Service) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

func (s *Service) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// HandleStream serves one request on st and closes or resets it.
func (s *Service) HandleStream(st network.Stream) {
	if !s.enter() {
		st.Reset()
		return
	}
	defer s.wg.Done()
	start := time.Now()
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.StreamTimeout)
	defer cancel()
	// The timeout or Close resets the stream, which ends a read or write
	// blocked on the peer.
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()

	e := Event{Peer: st.Conn().RemotePeer(), Remote: st.Conn().RemoteMultiaddr()}
	resp, err := s.respond(ctx, st, &e)
	if resp != nil && ctx.Err() == nil {
		if werr := Write(st, &Message{Type: TypeDialResponse, DialResponse: resp}); werr != nil {
			err = errors.Join(err, fmt.Errorf("autonatv1: answering %s: %w", e.Peer, werr))
		} else {
			e.Answered = true
			e.Status, e.Text, e.Addr = resp.Status, resp.StatusText, resp.Addr
		}
	}
	if ctx.Err() != nil {
		// Timed out or closed: the stream is being reset.
		err = errors.Join(err, fmt.Errorf("autonatv1: exchange with %s: %w", e.Peer, context.Cause(ctx)))
	}
	if e.Answered {
		st.Close()
	} else {
		st.Reset()
	}
	e.Err, e.Took = err, time.Since(start)
	s.log.Debug("autonat v1 request", "peer", e.Peer, "remote", e.Remote, "answered", e.Answered, "status", e.Status,
		"text", e.Text, "addrs", e.Addrs, "addr", e.Addr, "took", e.Took, "err", e.Err)
	if t := s.cfg.Tracer; t != nil {
		t.ServerRequest(result(&e))
	}
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(e)
	}
}

// respond reads the request and works out the answer; a nil response
// means the stream is to be reset.
func (s *Service) respond(ctx context.Context, st network.Stream, e *Event) (*DialResponse, error) {
	req, err := Read(st)
	if err != nil {
		err = fmt.Errorf("autonatv1: reading the request of %s: %w", e.Peer, err)
		if errors.Is(err, ErrMalformed) {
			return refuse(StatusBadRequest, textMalformed), err
		}
		// No complete message: nothing to answer.
		return nil, err
	}
	if req.Type != TypeDial {
		return refuse(StatusBadRequest, textNotDial), nil
	}
	if req.Dial == nil {
		return refuse(StatusBadRequest, textNoDial), nil
	}
	pi := req.Dial.Peer
	if pi == nil {
		return refuse(StatusBadRequest, textNoPeer), nil
	}
	p := e.Peer
	// An absent ID is accepted, as go-libp2p does (js-libp2p refuses it):
	// we dial the stream's peer whatever the message says.
	if pi.ID != nil {
		id, err := peer.IDFromBytes(pi.ID)
		if err != nil {
			return refuse(StatusBadRequest, textBadPeerID), fmt.Errorf("autonatv1: request of %s: %w", p, err)
		}
		if id != p {
			return refuse(StatusBadRequest, textPeerMismatch), nil
		}
	}
	// Over a relay we cannot see the client's IP, so we cannot tell its
	// addresses from a victim's (spec, and RFC 3489 12.1.1).
	if st.Conn().ConnState().Limited || isRelayed(e.Remote) {
		return refuse(StatusDialRefused, textRelayed), nil
	}
	ip, ok := leadingIP(e.Remote)
	if !ok {
		return refuse(StatusDialRefused, textNoIP), nil
	}
	addrs := s.dialable(p, ip, pi.Addrs)
	if len(addrs) == 0 {
		return refuse(StatusDialRefused, textNoAddrs), nil
	}
	s.mu.Lock()
	allowed := s.rate.allow(p, s.now())
	s.mu.Unlock()
	if !allowed {
		return refuse(StatusDialRefused, textRateLimited), nil
	}
	e.Addrs = addrs

	dctx, dcancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer dcancel()
	addr, err := s.h.DialBack(dctx, p, addrs)
	if err != nil {
		// Answer only when the dial time is up, whatever made the dial
		// fail (see Config.DialTimeout).
		<-dctx.Done()
		return refuse(StatusDialError, textDialFailed), fmt.Errorf("autonatv1: dialing %s back: %w", p, err)
	}
	return &DialResponse{Status: StatusOK, Addr: addr}, nil
}

func refuse(st Status, text string) *DialResponse {
	return &DialResponse{Status: st, StatusText: text}
}

// dialable keeps, in order, up to MaxAddrs of addrs that are on the IP the
// request came from (the client may not send us at anyone else), public
// (or allowed), not relayed and dialable by us, without their /p2p part.
// An address naming another peer is dropped.
func (s *Service) dialable(p peer.ID, ip netip.Addr, addrs []ma.Multiaddr) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range addrs {
		if len(out) == s.cfg.MaxAddrs {
			break
		}
		tpt, id := peer.SplitAddr(a)
		if (id != "" && id != p) || len(tpt) == 0 || isRelayed(tpt) {
			continue
		}
		if aip, ok := leadingIP(tpt); !ok || aip != ip {
			continue
		}
		if !s.cfg.AllowPrivateAddrs && !manet.IsPublicAddr(tpt) && !s.inPublicPrefix(ip) {
			continue
		}
		if slices.ContainsFunc(out, tpt.Equal) || !s.h.CanDial(tpt) {
			continue
		}
		out = append(out, tpt)
	}
	return out
}

func (s *Service) inPublicPrefix(ip netip.Addr) bool {
	return slices.ContainsFunc(s.cfg.PublicPrefixes, func(p netip.Prefix) bool { return p.Contains(ip) })
}

// leadingIP is the IP an address starts with, IPv4-mapped IPv6 ones as
// IPv4.
func leadingIP(a ma.Multiaddr) (netip.Addr, bool) {
	if len(a) == 0 || (a[0].Code() != ma.P_IP4 && a[0].Code() != ma.P_IP6) {
		return netip.Addr{}, false
	}
	ip, ok := netip.AddrFromSlice(a[0].RawValue())
	return ip.Unmap(), ok
}

func isRelayed(a ma.Multiaddr) bool {
	return slices.ContainsFunc(a, func(c ma.Component) bool { return c.Code() == ma.P_CIRCUIT })
}

// limiter counts the dial-backs started in a sliding window, in total and
// per peer. It holds one entry per dial-back in the window, so at most
// total entries whatever the number of peers asking.
type limiter struct {
	window         time.Duration
	total, perPeer int

	starts []dialStart // oldest first
	peers  map[peer.ID]int
}

type dialStart struct {
	at time.Time
	p  peer.ID
}

// allow reports whether p may have a dial-back now and, if so, counts it.
func (l *limiter) allow(p peer.ID, now time.Time) bool {
	n := 0
	for n < len(l.starts) && now.Sub(l.starts[n].at) >= l.window {
		old := l.starts[n].p
		if l.peers[old]--; l.peers[old] <= 0 {
			delete(l.peers, old)
		}
		n++
	}
	l.starts = slices.Delete(l.starts, 0, n)
	if len(l.starts) >= l.total || l.peers[p] >= l.perPeer {
		return false
	}
	l.starts = append(l.starts, dialStart{at: now, p: p})
	l.peers[p]++
	return true
}
