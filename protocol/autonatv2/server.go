package autonatv2

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/logs"
	"github.com/tachyon-p2p/tachyon/internal/streamctx"
)

// Server defaults, go-libp2p's values except DefaultDialBackTimeout.
const (
	DefaultDialDataMin   = 30_000
	DefaultDialDataMax   = 100_000
	DefaultStreamTimeout = 15 * time.Second
	// DefaultDialBackTimeout is 3 s where go-libp2p waits 10: an address
	// behind a firewall is only found unreachable when the dial-back times
	// out, and 3 s still covers a SYN (or QUIC Initial) and one
	// retransmission over a 600 ms path. A dial-back lost beyond that costs
	// one server's answer, and a verdict takes two.
	DefaultDialBackTimeout      = 3 * time.Second
	DefaultMaxAddrs             = 50
	DefaultGlobalRPM            = 60
	DefaultPerPeerRPM           = 12
	DefaultDialDataRPM          = 12
	DefaultMaxConcurrentPerPeer = 2
)

// minDataChunk is the smallest dial data chunk the server takes, but for
// the one that completes the payment: a client paying a byte at a time
// would make us parse 100 000 messages for one dial (go-libp2p's rule).
const minDataChunk = 100

// ServerHost is what the server needs from the host.
type ServerHost interface {
	// CanDial reports whether we have a transport for addr.
	CanDial(addr ma.Multiaddr) bool
	// DialBack connects to p at addr on a NEW connection made by a dialer
	// that has its own identity and never reuses a connection (the caller
	// guarantees that), and opens a DialBackID stream on it. Closing the
	// returned stream's Conn() ends the connection.
	DialBack(ctx context.Context, p peer.ID, addr ma.Multiaddr) (network.Stream, error)
}

// ServerConfig tunes the server; the zero value is go-libp2p's behaviour.
type ServerConfig struct {
	// AllowPrivateAddrs dials private, loopback and link-local addresses
	// too: for tests and LANs. By default only public ones are dialed, as
	// the spec asks.
	AllowPrivateAddrs bool
	// PublicPrefixes count as public besides what manet.IsPublicAddr
	// says: for emulated networks whose "Internet" is private address
	// space (testbeds use 10.0.0.0/8).
	PublicPrefixes []netip.Prefix
	// DialDataMin and DialDataMax bound the random amount of dial data
	// asked before dialing an IP other than the requester's. Defaults
	// DefaultDialDataMin and DefaultDialDataMax.
	DialDataMin, DialDataMax uint64
	// GlobalRPM, PerPeerRPM and DialDataRPM bound the requests served per
	// minute: in total, per peer, and of those that need dial data.
	// Defaults DefaultGlobalRPM, DefaultPerPeerRPM, DefaultDialDataRPM.
	GlobalRPM, PerPeerRPM, DialDataRPM int
	// MaxConcurrentPerPeer bounds the requests of one peer served at once.
	// Default DefaultMaxConcurrentPerPeer.
	MaxConcurrentPerPeer int
	// StreamTimeout bounds a whole request, dial data and dial-back
	// included. Default DefaultStreamTimeout.
	StreamTimeout time.Duration
	// DialBackTimeout bounds the dial-back dial, and then the DialBack
	// exchange on its stream. Default DefaultDialBackTimeout.
	DialBackTimeout time.Duration
	// MaxAddrs is how many addresses of a request are considered; the
	// rest are ignored. Default DefaultMaxAddrs.
	MaxAddrs int
	// OnEvent is told the outcome of every request, from the handler's
	// goroutine; it must not block.
	OnEvent func(ServerEvent)
	// Log gets a debug line per request.
	Log *slog.Logger
	// Tracer, if set, is told the result of every request served.
	Tracer Tracer
}

// Tracer is told how AutoNAT v2 exchanges ended, as a word from a small
// fixed set. It must not block.
//
// ServerRequest, for a request we served: "ok" (dialed back; the
// requester got its nonce), "dial_error", "dial_back_error",
// "refused" (E_DIAL_REFUSED: no address we would dial), "rejected"
// (E_REQUEST_REJECTED), "internal_error", or "error" (no answer sent).
//
// ClientCheck, for a Check: "reachable", "unreachable", "unknown" (the
// verdicts), "refused", "rejected", or "error" (any other failure).
type Tracer interface {
	ServerRequest(result string)
	ClientCheck(result string)
}

// serverResult is e's word for Tracer.ServerRequest.
func serverResult(e *ServerEvent) string {
	switch {
	case !e.Responded || e.Err != nil:
		return "error"
	case e.Status == StatusRequestRejected:
		return "rejected"
	case e.Status == StatusDialRefused:
		return "refused"
	case e.Status != StatusOK:
		return "internal_error"
	case e.DialStatus == DialStatusOK:
		return "ok"
	case e.DialStatus == DialStatusDialBackError:
		return "dial_back_error"
	}
	return "dial_error"
}

// ServerEvent reports one request.
type ServerEvent struct {
	Peer peer.ID
	// Observed is the address the request came from.
	Observed ma.Multiaddr
	// Addr is the address chosen for the dial-back, at AddrIdx in the
	// request; nil and -1 when none was.
	Addr    ma.Multiaddr
	AddrIdx int
	// Responded says a DialResponse was sent (or its write attempted, if
	// Err is set); Status and DialStatus are what it said. When false, the
	// stream was reset without an answer and Err says why.
	Responded  bool
	Status     ResponseStatus
	DialStatus DialStatus
	// DialData is the amount of dial data asked (0: none).
	DialData uint64
	// Reason says why a request was rejected or refused.
	Reason string
	// DialErr is why the dial-back failed (DialStatus E_DIAL_ERROR or
	// E_DIAL_BACK_ERROR).
	DialErr error
	// Err is why the exchange with the requester failed.
	Err  error
	Took time.Duration
}

// Reasons a request is rejected or refused.
const (
	ReasonRelayed         = "request over a relayed connection"
	ReasonConcurrent      = "too many concurrent requests from the peer"
	ReasonGlobalRate      = "global request rate limit"
	ReasonPeerRate        = "per-peer request rate limit"
	ReasonDialDataRate    = "dial data request rate limit"
	ReasonNoDialableAddrs = "no address we are willing to dial"
)

// ErrClosed is the Err of requests cut short by Close.
var ErrClosed = errors.New("autonatv2: closed")

// Server answers dial requests.
type Server struct {
	h   ServerHost
	cfg ServerConfig
	log *slog.Logger
	lim limiter
	now func() time.Time // time.Now; tests move the rate limit windows

	// ctx ends with Close: it cuts the requests and dial-backs in flight.
	ctx    context.Context
	cancel context.CancelFunc
}

// NewServer returns a server; the host routes DialRequestID streams to
// HandleDialRequest, on connections that are not limited.
func NewServer(h ServerHost, cfg ServerConfig) *Server {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.GlobalRPM, DefaultGlobalRPM)
	def(&cfg.PerPeerRPM, DefaultPerPeerRPM)
	def(&cfg.DialDataRPM, DefaultDialDataRPM)
	def(&cfg.MaxConcurrentPerPeer, DefaultMaxConcurrentPerPeer)
	def(&cfg.MaxAddrs, DefaultMaxAddrs)
	if cfg.DialDataMin == 0 {
		cfg.DialDataMin = DefaultDialDataMin
	}
	if cfg.DialDataMax == 0 {
		cfg.DialDataMax = DefaultDialDataMax
	}
	cfg.DialDataMax = max(cfg.DialDataMax, cfg.DialDataMin)
	if cfg.StreamTimeout <= 0 {
		cfg.StreamTimeout = DefaultStreamTimeout
	}
	if cfg.DialBackTimeout <= 0 {
		cfg.DialBackTimeout = DefaultDialBackTimeout
	}
	s := &Server{h: h, cfg: cfg, log: logs.Or(cfg.Log), now: time.Now}
	s.lim.perPeer = make(map[peer.ID][]time.Time)
	s.lim.running = make(map[peer.ID]int)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// Close cuts the requests in flight (their streams are reset, their
// dial-backs cancelled) and refuses new ones. It does not wait: the
// handlers belong to the host.
func (s *Server) Close() error {
	s.cancel()
	return nil
}

// HandleDialRequest serves one DialRequestID stream and ends it.
func (s *Server) HandleDialRequest(st network.Stream) {
	start := s.now()
	e := ServerEvent{Peer: st.RemotePeer(), Observed: st.RemoteMultiaddr(), AddrIdx: -1}
	s.serve(st, &e)
	e.Took = s.now().Sub(start)
	s.log.Debug("autonatv2 dial request", "peer", e.Peer, "observed", e.Observed, "addr", e.Addr,
		"responded", e.Responded, "status", e.Status, "dial_status", e.DialStatus, "dial_data", e.DialData,
		"reason", e.Reason, "dial_err", e.DialErr, "err", e.Err, "took", e.Took)
	if t := s.cfg.Tracer; t != nil {
		t.ServerRequest(serverResult(&e))
	}
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(e)
	}
}

// serve runs the spec's steps in wire order: admit, read the request,
// choose an address, collect dial data if its IP is not the requester's,
// dial back, answer.
func (s *Server) serve(st network.Stream, e *ServerEvent) {
	if s.ctx.Err() != nil {
		s.abort(st, e, ErrClosed)
		return
	}
	p := e.Peer
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.StreamTimeout)
	defer cancel()
	stop := streamctx.Bind(ctx, st)
	defer stop()

	// Over a relay the dial-back would prove nothing about the relay's
	// address, and the relay's limits are not ours to spend.
	if st.Conn().ConnState().Limited || isRelayed(st.Conn().RemoteMultiaddr()) {
		s.answer(ctx, st, e, &DialResponse{Status: StatusRequestRejected}, ReasonRelayed)
		return
	}
	// Admission comes before reading: a rejected request costs one write.
	if reason := s.lim.admit(p, s.now(), &s.cfg); reason != "" {
		s.answer(ctx, st, e, &DialResponse{Status: StatusRequestRejected}, reason)
		return
	}
	// The slot is freed before the answer goes out: a client that sends
	// its next request as soon as it reads this answer is not refused as
	// concurrent with it.
	release := sync.OnceFunc(func() { s.lim.done(p) })
	defer release()

	m, err := ReadMessage(st)
	if err != nil {
		s.abort(st, e, fmt.Errorf("autonatv2: reading the request of %s: %w", p, streamctx.Err(ctx, err)))
		return
	}
	req := m.DialRequest
	if req == nil {
		s.abort(st, e, fmt.Errorf("%w: %s sent %s, want a DialRequest", ErrMalformed, p, m.kind()))
		return
	}
	idx, addr := s.choose(p, req.Addrs)
	if addr == nil {
		release()
		s.answer(ctx, st, e, &DialResponse{Status: StatusDialRefused}, ReasonNoDialableAddrs)
		return
	}
	e.Addr, e.AddrIdx = addr, idx

	if !sameIP(e.Observed, addr) {
		if !s.lim.admitDialData(s.now(), s.cfg.DialDataRPM) {
			release()
			s.answer(ctx, st, e, &DialResponse{Status: StatusRequestRejected}, ReasonDialDataRate)
			return
		}
		e.DialData = s.cfg.DialDataMin + rand.Uint64N(s.cfg.DialDataMax-s.cfg.DialDataMin+1)
		if err := s.collectDialData(ctx, st, uint32(idx), e.DialData); err != nil {
			s.abort(st, e, fmt.Errorf("autonatv2: collecting %d bytes of dial data from %s: %w", e.DialData, p, err))
			return
		}
	}

	e.DialStatus, e.DialErr = s.dialBack(ctx, p, addr, req.Nonce)
	release()
	if s.ctx.Err() != nil {
		s.abort(st, e, ErrClosed)
		return
	}
	s.answer(ctx, st, e, &DialResponse{Status: StatusOK, AddrIdx: uint32(idx), DialStatus: e.DialStatus}, "")
}

// answer sends resp and closes the stream.
func (s *Server) answer(ctx context.Context, st network.Stream, e *ServerEvent, resp *DialResponse, reason string) {
	e.Responded, e.Status, e.Reason = true, resp.Status, reason
	if err := Write(st, &Message{DialResponse: resp}); err != nil {
		e.Err = fmt.Errorf("autonatv2: answering %s: %w", e.Peer, streamctx.Err(ctx, err))
		st.Reset()
		return
	}
	st.Close()
}

func (s *Server) abort(st network.Stream, e *ServerEvent, err error) {
	e.Err = err
	st.Reset()
}

// collectDialData asks for n bytes of dial data for the address at idx
// and reads DialDataResponses until they add up to n.
func (s *Server) collectDialData(ctx context.Context, st network.Stream, idx uint32, n uint64) error {
	if err := Write(st, &Message{DialDataRequest: &DialDataRequest{AddrIdx: idx, NumBytes: n}}); err != nil {
		return streamctx.Err(ctx, err)
	}
	for got := uint64(0); got < n; {
		m, err := ReadMessage(st)
		if err != nil {
			return streamctx.Err(ctx, err)
		}
		if m.DialDataResponse == nil {
			return fmt.Errorf("%w: got %s after %d bytes, want a DialDataResponse", ErrMalformed, m.kind(), got)
		}
		l := uint64(len(m.DialDataResponse.Data))
		if l > MaxDataChunk {
			return fmt.Errorf("%w: dial data chunk of %d bytes, limit %d", ErrMalformed, l, MaxDataChunk)
		}
		got += l
		if l < minDataChunk && got < n {
			return fmt.Errorf("%w: dial data chunk of %d bytes, at least %d expected", ErrMalformed, l, minDataChunk)
		}
	}
	return nil
}

// dialBack dials p at addr, hands over the nonce and waits for the
// acknowledgement, which tells us the nonce arrived before we close the
// connection (closing may drop what is still queued).
func (s *Server) dialBack(ctx context.Context, p peer.ID, addr ma.Multiaddr, nonce uint64) (DialStatus, error) {
	dctx, cancel := context.WithTimeout(ctx, s.cfg.DialBackTimeout)
	st, err := s.h.DialBack(dctx, p, addr)
	cancel()
	if err != nil {
		return DialStatusDialError, fmt.Errorf("autonatv2: dialing %s back at %s: %w", p, addr, err)
	}
	defer st.Conn().Close()
	ectx, cancel := context.WithTimeout(ctx, s.cfg.DialBackTimeout)
	defer cancel()
	stop := streamctx.Bind(ectx, st)
	defer stop()
	fail := func(what string, err error) (DialStatus, error) {
		st.Reset()
		return DialStatusDialBackError, fmt.Errorf("autonatv2: dial-back to %s at %s: %s: %w", p, addr, what, streamctx.Err(ectx, err))
	}
	if err := Write(st, &DialBack{Nonce: nonce}); err != nil {
		return fail("sending the nonce", err)
	}
	st.CloseWrite()
	r, err := ReadDialBackResponse(st)
	if errors.Is(err, network.ErrReset) {
		// go-libp2p's client resets the stream right after its answer, and
		// our muxers report a reset before the data that preceded it. The
		// reset says the client had the stream; whether it got the nonce
		// is for it to tell, and it trusts nothing else.
		return DialStatusOK, nil
	}
	if err != nil {
		return fail("reading the response", err)
	}
	if r.Status != DialBackStatusOK {
		return fail("response", fmt.Errorf("status %s", r.Status))
	}
	st.Close()
	return DialStatusOK, nil
}

// choose returns the first of the first MaxAddrs addresses we are willing
// to dial, with its index, or -1 and nil.
func (s *Server) choose(p peer.ID, raw [][]byte) (int, ma.Multiaddr) {
	for i, b := range raw[:min(len(raw), s.cfg.MaxAddrs)] {
		a, err := ma.NewMultiaddrBytes(b)
		if err != nil {
			continue
		}
		if a, ok := s.dialable(p, a); ok {
			return i, a
		}
	}
	return -1, nil
}

// dialable says whether we would dial a, and returns it without its /p2p
// suffix. An address naming another peer is not p's to have tested.
func (s *Server) dialable(p peer.ID, a ma.Multiaddr) (ma.Multiaddr, bool) {
	if len(a) == 0 || isRelayed(a) {
		return nil, false
	}
	a, id := peer.SplitAddr(a)
	if (id != "" && id != p) || len(a) == 0 || slices.ContainsFunc(a, func(c ma.Component) bool { return c.Code() == ma.P_P2P }) {
		return nil, false
	}
	if ip, err := manet.ToIP(a); err == nil && (ip.IsUnspecified() || ip.IsMulticast()) {
		return nil, false
	}
	if !s.cfg.AllowPrivateAddrs && !manet.IsPublicAddr(a) && !inPrefixes(a, s.cfg.PublicPrefixes) {
		return nil, false
	}
	if !s.h.CanDial(a) {
		return nil, false
	}
	return a, true
}

// inPrefixes says whether a's IP lies in one of prefixes.
func inPrefixes(a ma.Multiaddr, prefixes []netip.Prefix) bool {
	ip, err := manet.ToIP(a)
	if err != nil {
		return false
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	addr = addr.Unmap()
	return slices.ContainsFunc(prefixes, func(p netip.Prefix) bool { return p.Contains(addr) })
}

// sameIP says whether a and b have the same IP; a DNS name or an address
// without an IP is never the same.
func sameIP(a, b ma.Multiaddr) bool {
	ia, err := manet.ToIP(a)
	if err != nil {
		return false
	}
	ib, err := manet.ToIP(b)
	if err != nil {
		return false
	}
	return ia.Equal(ib)
}

func isRelayed(a ma.Multiaddr) bool {
	return slices.ContainsFunc(a, func(c ma.Component) bool { return c.Code() == ma.P_CIRCUIT })
}

// limiter holds the rate limits' sliding windows. Its state is bounded:
// every entry comes from an admitted request of the last minute, so there
// are at most GlobalRPM of them, and a peer's entries go with its last one.
type limiter struct {
	mu       sync.Mutex
	global   []time.Time             // admitted requests, oldest first
	perPeer  map[peer.ID][]time.Time // the same, by peer
	dialData []time.Time             // requests that were asked for dial data
	running  map[peer.ID]int         // requests being served, by peer
}

const rateWindow = time.Minute

// admit counts a request of p's and returns "", or says which limit
// refuses it.
func (l *limiter) admit(p peer.ID, now time.Time, cfg *ServerConfig) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pruneLocked(now)
	switch {
	case l.running[p] >= cfg.MaxConcurrentPerPeer:
		return ReasonConcurrent
	case len(l.global) >= cfg.GlobalRPM:
		return ReasonGlobalRate
	case len(l.perPeer[p]) >= cfg.PerPeerRPM:
		return ReasonPeerRate
	}
	l.running[p]++
	l.global = append(l.global, now)
	l.perPeer[p] = append(l.perPeer[p], now)
	return ""
}

// done ends a request admit let in.
func (l *limiter) done(p peer.ID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running[p]--; l.running[p] <= 0 {
		delete(l.running, p)
	}
}

func (l *limiter) admitDialData(now time.Time, rpm int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pruneLocked(now)
	if len(l.dialData) >= rpm {
		return false
	}
	l.dialData = append(l.dialData, now)
	return true
}

func (l *limiter) pruneLocked(now time.Time) {
	old := func(t time.Time) bool { return now.Sub(t) >= rateWindow }
	l.global = dropOld(l.global, old)
	l.dialData = dropOld(l.dialData, old)
	for p, ts := range l.perPeer {
		if ts = dropOld(ts, old); len(ts) == 0 {
			delete(l.perPeer, p)
		} else {
			l.perPeer[p] = ts
		}
	}
}

// dropOld drops the leading entries of ts that are old, and lets go of
// the array once it is empty.
func dropOld(ts []time.Time, old func(time.Time) bool) []time.Time {
	i := 0
	for i < len(ts) && old(ts[i]) {
		i++
	}
	if i == len(ts) {
		return nil
	}
	return ts[i:]
}

// sizes is for tests: how many entries the limiter holds.
func (l *limiter) sizes() (global, peers, dialData, running int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.global), len(l.perPeer), len(l.dialData), len(l.running)
}
