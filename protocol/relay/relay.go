// Package relay serves circuit relay v2 as a relay: the hop side of
// relay/circuit-v2.md. A peer behind a NAT reserves a slot (RESERVE); a
// dialer then asks the relay to CONNECT it to that peer, the relay opens a
// STOP stream to the peer over the connection it already has, and from then
// on splices the two streams, within a data and a duration limit.
//
// Defaults follow go-libp2p's relay service (p2p/protocol/circuitv2/relay),
// the implementation most relays on the network run.
//
// Goroutines: HandleHop runs on the host's handler goroutine and, for a
// CONNECT, stays there until the circuit ends; it starts the two copy
// goroutines of the circuit and waits for them. Close resets every stream
// the service holds and waits for all of them. Expired reservations are
// dropped lazily, whenever the reservation table is used.
package relay

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/circuit"
	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/logs"
)

// go-libp2p's defaults (relay.DefaultResources and the stream timeouts).
const (
	DefaultReservationTTL       = time.Hour
	DefaultMaxReservations      = 128
	DefaultMaxReservationsPerIP = 8
	DefaultMaxCircuitsPerPeer   = 16
	DefaultMaxCircuits          = 1024
	DefaultBufferSize           = 2048
	DefaultStreamTimeout        = time.Minute
	DefaultLimitDuration        = 2 * time.Minute
	DefaultLimitData            = 128 << 10
)

// Host is what the service needs from the host (the root package implements it).
type Host interface {
	ID() peer.ID
	PrivateKey() crypto.PrivKey
	// Addrs are the relay's own addresses to put in reservations (the service drops /p2p-circuit ones and
	// appends /p2p/<relay id>).
	Addrs() []ma.Multiaddr
	// NewStream opens a stream to p speaking proto; the service passes ctx with network.WithNoDial.
	NewStream(ctx context.Context, p peer.ID, protos ...protocol.ID) (network.Stream, error)
}

// Limit bounds each relayed connection. A zero field means no limit on that
// dimension.
type Limit struct {
	// Duration is how long a circuit may live. On the wire it is whole
	// seconds, rounded up.
	Duration time.Duration
	// Data is how many bytes may cross the circuit in each direction.
	Data int64
}

// Config holds the service's limits. A zero field takes its Default value.
type Config struct {
	// ReservationTTL is how long a reservation lasts before the peer must
	// refresh it.
	ReservationTTL time.Duration
	// MaxReservations bounds the reservations held at once.
	MaxReservations int
	// MaxReservationsPerIP bounds the reservations whose connection comes
	// from one IP address.
	MaxReservationsPerIP int
	// MaxCircuitsPerPeer bounds the circuits a peer takes part in, as
	// dialer or as target.
	MaxCircuitsPerPeer int
	// MaxCircuits bounds the circuits open at once.
	MaxCircuits int
	// BufferSize is the copy buffer of each direction of a circuit.
	BufferSize int
	// StreamTimeout bounds the wait for a request, the writing of an
	// answer, and the whole STOP exchange with a target.
	StreamTimeout time.Duration
	// Limit applies to every circuit; nil means DefaultLimitDuration and
	// DefaultLimitData. &Limit{} relays without limits and sends no Limit.
	Limit *Limit
	// Tracer, if set, is told about requests, reservations and circuits.
	Tracer Tracer
}

// Request is the kind of a hop request, as a Tracer is told.
type Request uint8

const (
	ReqReserve Request = iota
	ReqConnect
	// ReqOther is a request that is neither: unreadable, or of a type the
	// relay does not serve.
	ReqOther
)

// Tracer is told what the service does. Its methods are called with the
// service's lock held at times, so they must be quick and must not call
// back into the service.
type Tracer interface {
	// Request: a hop request was answered with status (StatusOK for
	// an accepted reservation or circuit).
	Request(req Request, status circuit.Status)
	// Reservations: n reservations are held now.
	Reservations(n int)
	// Circuits: n circuits are spliced now.
	Circuits(n int)
	// CircuitClosed: a spliced circuit ended after d.
	CircuitClosed(d time.Duration)
	// BytesRelayed: n bytes crossed a circuit, either way.
	BytesRelayed(n int)
}

// DefaultConfig returns go-libp2p's defaults, every field filled in.
func DefaultConfig() Config {
	return Config{
		ReservationTTL:       DefaultReservationTTL,
		MaxReservations:      DefaultMaxReservations,
		MaxReservationsPerIP: DefaultMaxReservationsPerIP,
		MaxCircuitsPerPeer:   DefaultMaxCircuitsPerPeer,
		MaxCircuits:          DefaultMaxCircuits,
		BufferSize:           DefaultBufferSize,
		StreamTimeout:        DefaultStreamTimeout,
		Limit:                &Limit{Duration: DefaultLimitDuration, Data: DefaultLimitData},
	}
}

// withDefaults fills the zero fields and copies Limit, so that the caller
// changing its Limit later does not change a running service.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.ReservationTTL <= 0 {
		c.ReservationTTL = d.ReservationTTL
	}
	if c.MaxReservations <= 0 {
		c.MaxReservations = d.MaxReservations
	}
	if c.MaxReservationsPerIP <= 0 {
		c.MaxReservationsPerIP = d.MaxReservationsPerIP
	}
	if c.MaxCircuitsPerPeer <= 0 {
		c.MaxCircuitsPerPeer = d.MaxCircuitsPerPeer
	}
	if c.MaxCircuits <= 0 {
		c.MaxCircuits = d.MaxCircuits
	}
	if c.BufferSize <= 0 {
		c.BufferSize = d.BufferSize
	}
	if c.StreamTimeout <= 0 {
		c.StreamTimeout = d.StreamTimeout
	}
	if c.Limit == nil {
		c.Limit = d.Limit
	} else {
		l := *c.Limit
		c.Limit = &l
	}
	return c
}

// Stat is a snapshot of the service's state and counters.
type Stat struct {
	// Reservations held now (expired ones excluded).
	Reservations int
	// Circuits open now.
	Circuits int
	// CircuitsOpened counts the circuits that reached STATUS OK.
	CircuitsOpened uint64
	// BytesRelayed counts the bytes relayed in both directions, over open
	// and ended circuits.
	BytesRelayed uint64
	// DataLimitResets and DurationLimitResets count the circuits reset by
	// their limit.
	DataLimitResets     uint64
	DurationLimitResets uint64
	// Refused counts the requests answered with a non-OK status, by status.
	Refused map[circuit.Status]uint64
}

// reservationRefused is the status of a reservation over a limit: the
// spec's "too many reservations" example, and what go-libp2p answers.
const reservationRefused = circuit.StatusReservationRefused

type reservation struct {
	expire time.Time
	// ip is the reserving connection's remote IP, zero when it has none.
	ip netip.Addr
}

// Service serves the hop protocol. Its methods are safe for concurrent use.
type Service struct {
	host Host
	cfg  Config
	log  *slog.Logger

	// ctx ends when the service closes; STOP exchanges run under it.
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex // guards everything below it
	closed   bool
	rsvp     map[peer.ID]reservation
	perPeer  map[peer.ID]int // circuits a peer takes part in, either end
	circuits map[*relayedConn]struct{}
	// pending are the streams of requests not yet spliced, which Close
	// resets to unblock their handler.
	pending map[network.Stream]struct{}
	refused map[circuit.Status]uint64
	opened  uint64
	live    int // circuits admitted, in the STOP exchange or spliced
	// dataResets and durationResets count circuits ended by a limit.
	dataResets, durationResets uint64

	bytes atomic.Uint64
	// wg counts running handlers and copy goroutines. Add happens only
	// under mu while not closed, so never concurrently with Close's Wait.
	wg sync.WaitGroup
}

// New returns a service relaying for h. log may be nil (discard).
func New(h Host, cfg Config, log *slog.Logger) *Service {
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{
		host:     h,
		cfg:      cfg.withDefaults(),
		log:      logs.Or(log),
		ctx:      ctx,
		cancel:   cancel,
		rsvp:     make(map[peer.ID]reservation),
		perPeer:  make(map[peer.ID]int),
		circuits: make(map[*relayedConn]struct{}),
		pending:  make(map[network.Stream]struct{}),
		refused:  make(map[circuit.Status]uint64),
	}
}

// Close refuses new work, resets every circuit and every stream in a
// request, and waits for the handlers and copy goroutines to return. It is
// safe to call more than once.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	s.cancel()
	for st := range s.pending {
		_ = st.Reset()
	}
	for c := range s.circuits {
		c.abort(endClosed)
	}
	clear(s.rsvp)
	s.reservationsChangedLocked()
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// PeerDisconnected drops p's reservation: the spec makes a reservation
// valid only while the peer stays connected.
func (s *Service) PeerDisconnected(p peer.ID) {
	s.mu.Lock()
	_, ok := s.rsvp[p]
	delete(s.rsvp, p)
	if ok {
		s.reservationsChangedLocked()
	}
	s.mu.Unlock()
	if ok {
		s.log.Debug("relay: reservation dropped: peer disconnected", "peer", p)
	}
}

// Stat returns a snapshot of the service.
func (s *Service) Stat() Stat {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(time.Now())
	st := Stat{
		Reservations:        len(s.rsvp),
		Circuits:            len(s.circuits),
		CircuitsOpened:      s.opened,
		BytesRelayed:        s.bytes.Load(),
		DataLimitResets:     s.dataResets,
		DurationLimitResets: s.durationResets,
		Refused:             make(map[circuit.Status]uint64, len(s.refused)),
	}
	for k, v := range s.refused {
		st.Refused[k] = v
	}
	return st
}

// HandleHop serves one inbound hop stream: one request, then the answer,
// and for an accepted CONNECT the relayed bytes until the circuit ends. It
// returns once the stream is closed or reset.
func (s *Service) HandleHop(st network.Stream) {
	if !s.begin(st) {
		_ = st.Reset()
		return
	}
	defer s.wg.Done()
	defer s.untrack(st)

	_ = st.SetReadDeadline(time.Now().Add(s.cfg.StreamTimeout))
	msg, err := circuit.ReadHop(st)
	if err != nil {
		if isTimeoutOrReset(err) {
			// Nobody is waiting for an answer.
			s.log.Debug("relay: no request", "peer", st.RemotePeer(), "err", err)
			_ = st.Reset()
			return
		}
		s.refuse(st, ReqOther, circuit.StatusMalformedMessage, "reading the request", "err", err)
		return
	}
	_ = st.SetReadDeadline(time.Time{})

	switch msg.Type {
	case circuit.HopReserve:
		s.reserve(st)
	case circuit.HopConnect:
		s.connect(st, msg)
	case circuit.HopStatus:
		s.refuse(st, ReqOther, circuit.StatusUnexpectedMessage, "STATUS sent to the relay")
	default:
		s.refuse(st, ReqOther, circuit.StatusMalformedMessage, "unknown message type", "type", msg.Type)
	}
}

// begin registers a handler, unless the service is closed.
func (s *Service) begin(st network.Stream) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	s.pending[st] = struct{}{}
	return true
}

// track adds a stream the service opened to the ones Close resets; it
// reports false, and resets st, when the service closed meanwhile.
func (s *Service) track(st network.Stream) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = st.Reset()
		return false
	}
	s.pending[st] = struct{}{}
	return true
}

func (s *Service) untrack(st network.Stream) {
	s.mu.Lock()
	delete(s.pending, st)
	s.mu.Unlock()
}

// reserve serves RESERVE.
func (s *Service) reserve(st network.Stream) {
	p := st.RemotePeer()
	raddr := remoteAddr(st)
	if isRelayed(raddr) {
		s.refuse(st, ReqReserve, circuit.StatusPermissionDenied, "reservation over a relayed connection")
		return
	}
	now := time.Now()
	expire := now.Add(s.cfg.ReservationTTL)
	ip := ipOf(raddr)

	s.mu.Lock()
	s.expireLocked(now)
	_, refresh := s.rsvp[p]
	var why string
	switch {
	case s.closed:
		s.mu.Unlock()
		s.refuse(st, ReqReserve, circuit.StatusPermissionDenied, "relay closed")
		return
	case !refresh && len(s.rsvp) >= s.cfg.MaxReservations:
		why = "too many reservations"
	case ip.IsValid() && s.reservationsFromLocked(ip, p) >= s.cfg.MaxReservationsPerIP:
		why = "too many reservations from the IP"
	default:
		s.rsvp[p] = reservation{expire: expire, ip: ip}
		s.reservationsChangedLocked()
	}
	s.mu.Unlock()
	if why != "" {
		s.refuse(st, ReqReserve, reservationRefused, why, "ip", ip)
		return
	}
	s.traceRequest(ReqReserve, circuit.StatusOK)

	m := &circuit.HopMessage{
		Type:        circuit.HopStatus,
		Status:      circuit.StatusOK,
		Reservation: s.reservationMsg(p, expire),
		Limit:       s.limitMsg(),
	}
	if err := s.write(st, m); err != nil {
		// The peer is likely gone; PeerDisconnected or expiry drops the
		// reservation.
		s.log.Debug("relay: writing reservation", "peer", p, "err", err)
		_ = st.Reset()
		return
	}
	_ = st.Close()
	s.log.Debug("relay: reserved", "peer", p, "refresh", refresh, "expire", expire)
}

// reservationsFromLocked counts the reservations from ip other than p's.
func (s *Service) reservationsFromLocked(ip netip.Addr, p peer.ID) int {
	n := 0
	for q, r := range s.rsvp {
		if q != p && r.ip == ip {
			n++
		}
	}
	return n
}

// expireLocked drops the reservations that ended before now. The table
// holds at most MaxReservations entries, so a sweep on each use is cheap
// and needs no timer.
func (s *Service) expireLocked(now time.Time) {
	n := len(s.rsvp)
	for p, r := range s.rsvp {
		if !now.Before(r.expire) {
			delete(s.rsvp, p)
		}
	}
	if len(s.rsvp) != n {
		s.reservationsChangedLocked()
	}
}

// reservationMsg builds the Reservation for p: the relay's addresses and a
// voucher, which is advisory and left out if it cannot be signed.
func (s *Service) reservationMsg(p peer.ID, expire time.Time) *circuit.Reservation {
	self := s.host.ID()
	r := &circuit.Reservation{Expire: uint64(expire.Unix()), Addrs: s.ownAddrs(self)}
	key := s.host.PrivateKey()
	if key == nil {
		return r
	}
	v, err := circuit.SealVoucher(&circuit.Voucher{Relay: self, Peer: p, Expiration: r.Expire}, key)
	if err != nil {
		s.log.Debug("relay: voucher not sealed", "peer", p, "err", err)
		return r
	}
	r.Voucher = v
	return r
}

// ownAddrs are the host's addresses ending in /p2p/<self>, without relayed
// ones and without ones that name another peer.
func (s *Service) ownAddrs(self peer.ID) []ma.Multiaddr {
	comp, err := self.Component()
	if err != nil {
		return nil
	}
	var out []ma.Multiaddr
	for _, a := range s.host.Addrs() {
		if len(a) == 0 || isRelayed(a) {
			continue
		}
		switch _, id := peer.SplitAddr(a); id {
		case "":
			out = append(out, ma.Join(a, comp))
		case self:
			out = append(out, a)
		}
	}
	return out
}

// limitMsg is the Limit sent with reservations and circuits, nil when there
// is none.
func (s *Service) limitMsg() *circuit.Limit {
	l := s.cfg.Limit
	if l.Duration <= 0 && l.Data <= 0 {
		return nil
	}
	var m circuit.Limit
	if l.Duration > 0 {
		// Round up, so a short limit is never announced as none (0).
		secs := (l.Duration + time.Second - 1) / time.Second
		m.Duration = uint32(min(secs, 1<<32-1))
	}
	if l.Data > 0 {
		m.Data = uint64(l.Data)
	}
	return &m
}

func (s *Service) traceRequest(req Request, status circuit.Status) {
	if t := s.cfg.Tracer; t != nil {
		t.Request(req, status)
	}
}

// reservationsChangedLocked tells the tracer how many reservations are
// held after a change.
func (s *Service) reservationsChangedLocked() {
	if t := s.cfg.Tracer; t != nil {
		t.Reservations(len(s.rsvp))
	}
}

// refuse answers st with a non-OK status and closes it.
func (s *Service) refuse(st network.Stream, req Request, status circuit.Status, why string, attrs ...any) {
	s.mu.Lock()
	s.refused[status]++
	s.mu.Unlock()
	s.traceRequest(req, status)
	s.log.Debug("relay: refused", append([]any{"peer", st.RemotePeer(), "status", status, "why", why}, attrs...)...)
	if err := s.write(st, &circuit.HopMessage{Type: circuit.HopStatus, Status: status}); err != nil {
		_ = st.Reset()
		return
	}
	_ = st.Close()
}

// write sends m within the stream timeout.
func (s *Service) write(st network.Stream, m *circuit.HopMessage) error {
	_ = st.SetWriteDeadline(time.Now().Add(s.cfg.StreamTimeout))
	defer func() { _ = st.SetWriteDeadline(time.Time{}) }()
	return circuit.WriteHop(st, m)
}

// remoteAddr is the remote address of st's connection.
func remoteAddr(st network.Stream) ma.Multiaddr {
	if c := st.Conn(); c != nil {
		return c.RemoteMultiaddr()
	}
	return st.RemoteMultiaddr()
}

func isRelayed(a ma.Multiaddr) bool {
	for _, c := range a {
		if c.Code() == ma.P_CIRCUIT {
			return true
		}
	}
	return false
}

// ipOf is the first IP address in a, or the zero Addr.
func ipOf(a ma.Multiaddr) netip.Addr {
	for _, c := range a {
		switch c.Code() {
		case ma.P_IP4, ma.P_IP6:
			ip, _ := netip.AddrFromSlice(c.RawValue())
			return ip.Unmap()
		}
	}
	return netip.Addr{}
}

func isTimeoutOrReset(err error) bool {
	if errors.Is(err, network.ErrReset) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
