package limits

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/logs"
)

// maxBuckets bounds the rate buckets kept for one peer; protocols beyond it
// share one bucket. Inbound protocols are those we handle, so this is a
// guard, not a limit anyone should meet.
const maxBuckets = 64

// errScopeClosed refuses work on a connection scope after Close.
var errScopeClosed = errors.New("limits: connection scope already closed")

// Manager implements network.ResourceManager. It is safe for concurrent
// use. State kept per peer (connection count, memory, rate buckets) and
// per address exists only while that peer or address has a connection or
// handshake, so it is bounded by the connection limits whatever peer IDs
// an attacker makes up.
//
// Every done func it returns, and connection scope's Close, may be called
// more than once: only the first call releases anything. Calls on a scope
// after its Close are ignored (ReleaseMemory, stream done funcs) or refused
// (ReserveMemory, OpenStream).
type Manager struct {
	cfg   Config
	log   *slog.Logger
	now   func() time.Time // the clock of rate buckets; replaced in tests
	allow map[peer.ID]struct{}

	// Hot counters, updated without mu.
	streams atomic.Int64
	mem     atomic.Int64

	mu         sync.Mutex
	conns      int
	connsIn    int
	handshakes int
	peers      map[peer.ID]*peerState
	ips        map[netip.Addr]*ipState
	subnets    map[netip.Prefix]int
	protos     map[protocol.ID]int
	penalties  map[netip.Addr]*penalty

	logged      [numKinds]logs.Limiter // one log line per limit per second
	abuseLogged logs.Limiter
}

// maxPenalties bounds the addresses remembered for abuse. Each one cost
// its owner an authenticated connection; beyond it, new offenders go
// unpenalised (their connections are still closed) until old entries
// are forgotten.
const maxPenalties = 4096

// penalty is an address refused handshakes until until, for abuse.
type penalty struct {
	until time.Time
	last  time.Duration // the penalty given last, which the next doubles
}

var _ network.ResourceManager = (*Manager)(nil)

type peerState struct {
	conns int // guarded by Manager.mu
	mem   atomic.Int64
	// The rate buckets, guarded by Manager.mu: the first protocol's
	// inline, the others in a map. Nearly every peer opens streams of one
	// protocol only (identify), and a map for one bucket costs about 250
	// bytes per connected peer.
	firstProto protocol.ID
	first      bucket
	hasFirst   bool
	buckets    map[protocol.ID]*bucket
}

type ipState struct {
	conns, handshakes int // guarded by Manager.mu
	mem               atomic.Int64
}

// New returns a Manager enforcing cfg, whose zero fields take Default()'s
// values and negative ones mean no limit. A nil log discards.
func New(cfg Config, log *slog.Logger) (*Manager, error) {
	return newManager(cfg, Default(), log)
}

func newManager(cfg, def Config, log *slog.Logger) (*Manager, error) {
	cfg, err := resolve(cfg, def)
	if err != nil {
		return nil, fmt.Errorf("limits: checking the configuration: %w", err)
	}
	m := &Manager{
		cfg:       cfg,
		log:       logs.Or(log),
		now:       time.Now,
		allow:     make(map[peer.ID]struct{}, len(cfg.AllowPeers)),
		peers:     make(map[peer.ID]*peerState),
		ips:       make(map[netip.Addr]*ipState),
		subnets:   make(map[netip.Prefix]int),
		protos:    make(map[protocol.ID]int),
		penalties: make(map[netip.Addr]*penalty),
	}
	for _, p := range cfg.AllowPeers {
		m.allow[p] = struct{}{}
	}
	return m, nil
}

// Config returns the limits in force: zero fields resolved to defaults,
// unlimited ones as -1.
func (m *Manager) Config() Config { return m.cfg }

// Stat is the current use, for tests, metrics and the CLI.
type Stat struct {
	Conns, ConnsInbound, Handshakes, Streams int
	Memory                                   int64
	// Peers, IPs, Subnets and Protocols count the per-peer, per-address,
	// per-subnet and per-protocol entries held: they drop to zero when the
	// node is idle.
	Peers, IPs, Subnets, Protocols int
}

// Stat returns the current use.
func (m *Manager) Stat() Stat {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Stat{
		Conns: m.conns, ConnsInbound: m.connsIn, Handshakes: m.handshakes,
		Streams: int(m.streams.Load()), Memory: m.mem.Load(),
		Peers: len(m.peers), IPs: len(m.ips), Subnets: len(m.subnets), Protocols: len(m.protos),
	}
}

// BeginHandshake admits an inbound connection from remote before any
// handshake work is spent on it.
func (m *Manager) BeginHandshake(remote netip.Addr) (done func(), err error) {
	remote = remote.Unmap()
	allowed := m.allowedAddr(remote)
	byAddr := !allowed && m.limitedAddr(remote)
	m.mu.Lock()
	if !allowed {
		if left := m.penaltyLocked(remote); byAddr && left > 0 {
			err = m.limitErr(kPenalty, remote.String(), "", int64(m.penalties[remote].last/time.Millisecond), int64(left/time.Millisecond))
		} else if ip := m.ips[remote]; byAddr && ip != nil && over(ip.handshakes, m.cfg.HandshakesPerIP) {
			err = m.limitErr(kHandshakesPerIP, remote.String(), "", int64(m.cfg.HandshakesPerIP), int64(ip.handshakes))
		} else if over(m.handshakes, m.cfg.Handshakes) {
			err = m.limitErr(kHandshakes, "node", "", int64(m.cfg.Handshakes), int64(m.handshakes))
		}
	}
	if err != nil {
		m.mu.Unlock()
		return nil, m.refused(err)
	}
	m.handshakes++
	var ip *ipState
	if byAddr {
		ip = m.ipLocked(remote)
		ip.handshakes++
	}
	m.mu.Unlock()
	var once atomic.Bool
	return func() {
		if !once.CompareAndSwap(false, true) {
			return
		}
		m.mu.Lock()
		m.handshakes--
		if ip != nil {
			ip.handshakes--
			m.freeIPLocked(remote, ip)
		}
		m.mu.Unlock()
	}, nil
}

// penaltyLocked returns what is left of a's penalty, forgetting one old
// enough to start over. m.mu is held.
func (m *Manager) penaltyLocked(a netip.Addr) time.Duration {
	p := m.penalties[a]
	if p == nil {
		return 0
	}
	now := m.now()
	if left := p.until.Sub(now); left > 0 {
		return left
	}
	if now.Sub(p.until) >= m.cfg.AbusePenaltyMax {
		delete(m.penalties, a)
	}
	return 0
}

// abuse is what a scope's Abuse calls when a muxer closes an inbound
// connection whose peer abused it, reason saying how: the address
// is refused handshakes for AbusePenalty, doubled for each offence after
// an earlier penalty ended, up to AbusePenaltyMax; the doubling starts
// over after AbusePenaltyMax without an offence. Offences while a penalty
// is being served (the address's other connections, opened before it)
// do not double it. Exempt: addresses not limited by address, allowed
// peers and subnets.
func (m *Manager) abuse(s *connScope, reason error) {
	if s.ip == nil || m.cfg.AbusePenalty < 0 {
		m.logAbuse(s, reason, 0)
		return
	}
	now := m.now()
	m.mu.Lock()
	p := m.penalties[s.addr]
	switch {
	case p != nil && now.Before(p.until):
		// Serving it already.
	case p != nil && now.Sub(p.until) < m.cfg.AbusePenaltyMax:
		p.last = min(2*p.last, m.cfg.AbusePenaltyMax)
		p.until = now.Add(p.last)
	default:
		if p == nil && len(m.penalties) >= maxPenalties {
			m.forgetPenaltiesLocked(now)
		}
		if p == nil && len(m.penalties) >= maxPenalties {
			break
		}
		if p == nil {
			p = &penalty{}
			m.penalties[s.addr] = p
		}
		p.last = m.cfg.AbusePenalty
		p.until = now.Add(p.last)
	}
	var d time.Duration
	if p != nil {
		d = p.until.Sub(now)
	}
	m.mu.Unlock()
	m.logAbuse(s, reason, d)
}

// forgetPenaltiesLocked drops the penalties that would start over anyway.
// m.mu is held.
func (m *Manager) forgetPenaltiesLocked(now time.Time) {
	for a, p := range m.penalties {
		if now.Sub(p.until) >= m.cfg.AbusePenaltyMax {
			delete(m.penalties, a)
		}
	}
}

func (m *Manager) logAbuse(s *connScope, reason error, penalty time.Duration) {
	if ok, held := m.abuseLogged.Allow(time.Second); ok {
		m.log.Warn("connection closed for abuse", "peer", s.p, "remote", s.remote, "reason", reason,
			"address_refused_for", penalty, "unlogged", held)
	}
}

// OpenConn admits an authenticated connection with p at remote.
func (m *Manager) OpenConn(dir network.Direction, p peer.ID, remote ma.Multiaddr) (network.ConnScope, error) {
	addr := ipOf(remote)
	_, allowed := m.allow[p]
	allowed = allowed || m.allowedAddr(addr)
	byAddr := !allowed && dir == network.DirInbound && m.limitedAddr(addr)
	s := &connScope{m: m, p: p, remote: remote, dir: dir, allowed: allowed}
	var subnet netip.Prefix
	subnetLimit, subnetOption := m.cfg.ConnsPerSubnet4, "ConnsPerSubnet4"
	if byAddr {
		subnet = subnetOf(addr)
		if addr.Is6() {
			subnetLimit, subnetOption = m.cfg.ConnsPerSubnet6, "ConnsPerSubnet6"
		}
	}
	var err error
	m.mu.Lock()
	if !allowed {
		ip, ps := m.ips[addr], m.peers[p]
		switch {
		case byAddr && ip != nil && over(ip.conns, m.cfg.ConnsPerIP):
			err = m.limitErr(kConnsPerIP, addr.String(), "", int64(m.cfg.ConnsPerIP), int64(ip.conns))
		case byAddr && over(m.subnets[subnet], subnetLimit):
			err = m.limitErr(kConnsPerSubnet, subnet.String(), subnetOption, int64(subnetLimit), int64(m.subnets[subnet]))
		case ps != nil && over(ps.conns, m.cfg.ConnsPerPeer):
			err = m.limitErr(kConnsPerPeer, p.String(), "", int64(m.cfg.ConnsPerPeer), int64(ps.conns))
		case dir == network.DirInbound && over(m.connsIn, m.cfg.ConnsInbound):
			err = m.limitErr(kConnsInbound, "node", "", int64(m.cfg.ConnsInbound), int64(m.connsIn))
		case over(m.conns, m.cfg.Conns):
			err = m.limitErr(kConns, "node", "", int64(m.cfg.Conns), int64(m.conns))
		}
	}
	if err != nil {
		m.mu.Unlock()
		return nil, m.refused(err)
	}
	m.conns++
	if dir == network.DirInbound {
		m.connsIn++
	}
	if !allowed {
		s.peer = m.peers[p]
		if s.peer == nil {
			s.peer = &peerState{}
			m.peers[p] = s.peer
		}
		s.peer.conns++
	}
	if byAddr {
		s.ip, s.addr, s.subnet = m.ipLocked(addr), addr, subnet
		s.ip.conns++
		m.subnets[subnet]++
	}
	m.mu.Unlock()
	return s, nil
}

// OpenProtocolStream admits a stream once its protocol is negotiated: the
// protocol's node-wide stream count and, for inbound streams, the rate at
// which the peer opens streams of that protocol. Rates are tracked for
// peers with a connection admitted by OpenConn, and forgotten with the
// peer's last connection.
func (m *Manager) OpenProtocolStream(dir network.Direction, p peer.ID, proto protocol.ID) (done func(), err error) {
	_, allowed := m.allow[p]
	m.mu.Lock()
	if !allowed {
		limit, option := m.cfg.StreamsPerProtocol, "StreamsPerProtocol"
		if n, ok := m.cfg.ProtocolStreams[proto]; ok {
			limit, option = n, fmt.Sprintf("ProtocolStreams[%q]", proto)
		}
		if over(m.protos[proto], limit) {
			err = m.limitErr(kStreamsPerProtocol, string(proto), option, int64(limit), int64(m.protos[proto]))
		} else if ps := m.peers[p]; dir == network.DirInbound && ps != nil {
			rate, option := m.cfg.InboundStreamRate, "InboundStreamRate"
			if r, ok := m.cfg.ProtocolRates[proto]; ok {
				rate, option = r, fmt.Sprintf("ProtocolRates[%q]", proto)
			}
			if rate.PerSecond >= 0 && !ps.bucketLocked(proto).take(rate, m.now()) {
				err = m.limitErr(kRate, fmt.Sprintf("%s from %s", proto, p), option, int64(math.Ceil(rate.PerSecond)), int64(rate.Burst))
			}
		}
	}
	if err != nil {
		m.mu.Unlock()
		return nil, m.refused(err)
	}
	m.protos[proto]++
	m.mu.Unlock()
	var once atomic.Bool
	return func() {
		if !once.CompareAndSwap(false, true) {
			return
		}
		m.mu.Lock()
		if m.protos[proto]--; m.protos[proto] <= 0 {
			delete(m.protos, proto)
		}
		m.mu.Unlock()
	}, nil
}

// connScope accounts for one connection. Its memory and stream counts are
// guarded by its own mutex; the node's, the peer's and the address's
// memory are atomics, so the per-frame path never takes Manager.mu.
type connScope struct {
	m       *Manager
	p       peer.ID
	remote  ma.Multiaddr
	dir     network.Direction
	allowed bool
	peer    *peerState // nil when allowed
	ip      *ipState   // nil unless limited by address
	addr    netip.Addr
	subnet  netip.Prefix

	mu        sync.Mutex
	closed    bool
	mem       int64
	streams   int // both directions
	streamsIn int
	opens     bucket // inbound stream opens, for ConnStreamRate
	abused    bool
	nameStr   string // name, once built: a flood of refusals builds it once
}

// name is how refusals name the connection. s.mu is held.
func (s *connScope) name() string {
	if s.nameStr == "" {
		s.nameStr = fmt.Sprintf("%s connection with %s at %s", s.dir, s.p, s.remote)
	}
	return s.nameStr
}

// Abuse tells the manager that the muxer closes this connection for
// abuse (see muxer/yamux's Abuser): the peer's address is penalised. Only
// the first call counts.
func (s *connScope) Abuse(reason error) {
	s.mu.Lock()
	first := !s.abused
	s.abused = true
	s.mu.Unlock()
	if first {
		s.m.abuse(s, reason)
	}
}

// ReserveMemory reserves n bytes against the connection's, its address's,
// its peer's and the node's budgets, all or nothing.
func (s *connScope) ReserveMemory(n int) error { return s.reserveMemory(n, 0) }

// ReserveMemoryLeaving reserves n bytes only if spare more would still fit
// in each of those budgets.
func (s *connScope) ReserveMemoryLeaving(n, spare int) error {
	return s.reserveMemory(n, max(spare, 0))
}

func (s *connScope) reserveMemory(n, spare int) error {
	if n <= 0 {
		return nil
	}
	m, n64, spare64 := s.m, int64(n), int64(spare)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errScopeClosed
	}
	var err error
	if lim := m.cfg.MemoryPerConn; !s.allowed && lim >= 0 && s.mem+n64+spare64 > lim {
		err = m.limitErr(kMemoryPerConn, s.name(), "", lim, s.mem)
	} else {
		err = s.reserveShared(n64, spare64)
	}
	if err == nil {
		s.mem += n64
	}
	s.mu.Unlock()
	if err != nil {
		return m.refused(err)
	}
	return nil
}

// reserveShared takes n bytes from the address's, the peer's and the
// node's budgets, or none of them, if each keeps spare bytes free. A
// concurrent reservation may be refused while a failed one rolls back: a
// refusal then is early, never late.
func (s *connScope) reserveShared(n, spare int64) error {
	m := s.m
	if s.ip != nil {
		if cur, ok := tryAdd(&s.ip.mem, n, lessSpare(m.cfg.MemoryPerIP, spare)); !ok {
			return m.limitErr(kMemoryPerIP, s.addr.String(), "", m.cfg.MemoryPerIP, cur)
		}
	}
	if s.peer != nil {
		if cur, ok := tryAdd(&s.peer.mem, n, lessSpare(m.cfg.MemoryPerPeer, spare)); !ok {
			s.ipAdd(-n)
			return m.limitErr(kMemoryPerPeer, s.p.String(), "", m.cfg.MemoryPerPeer, cur)
		}
	}
	limit := lessSpare(m.cfg.Memory, spare)
	if s.allowed {
		limit = -1
	}
	if cur, ok := tryAdd(&m.mem, n, limit); !ok {
		s.ipAdd(-n)
		s.peerAdd(-n)
		return m.limitErr(kMemory, "node", "", m.cfg.Memory, cur)
	}
	return nil
}

func (s *connScope) ipAdd(n int64) {
	if s.ip != nil {
		s.ip.mem.Add(n)
	}
}

func (s *connScope) peerAdd(n int64) {
	if s.peer != nil {
		s.peer.mem.Add(n)
	}
}

// ReleaseMemory returns n bytes; more than is reserved releases what is.
func (s *connScope) ReleaseMemory(n int) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	n64 := min(int64(n), s.mem)
	s.mem -= n64
	s.releaseShared(n64)
	s.mu.Unlock()
}

func (s *connScope) releaseShared(n int64) {
	s.ipAdd(-n)
	s.peerAdd(-n)
	s.m.mem.Add(-n)
}

// OpenStream admits one more stream on the connection.
func (s *connScope) OpenStream(dir network.Direction) (done func(), err error) {
	m := s.m
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errScopeClosed
	}
	limited := !s.allowed && dir == network.DirInbound
	if limited && over(s.streamsIn, m.cfg.StreamsPerConn) {
		err = m.limitErr(kStreamsPerConn, s.name(), "", int64(m.cfg.StreamsPerConn), int64(s.streamsIn))
	} else if r := m.cfg.ConnStreamRate; limited && r.PerSecond >= 0 && !s.opens.take(r, m.now()) {
		err = m.limitErr(kConnStreamRate, s.name(), "", int64(math.Ceil(r.PerSecond)), int64(r.Burst))
	} else {
		limit := m.cfg.Streams
		if s.allowed {
			limit = -1
		}
		if cur, ok := tryAdd(&m.streams, 1, int64(limit)); !ok {
			err = m.limitErr(kStreams, "node", "", int64(limit), cur)
		}
	}
	if err != nil {
		s.mu.Unlock()
		return nil, m.refused(err)
	}
	in := 0
	if dir == network.DirInbound {
		in = 1
	}
	s.streams++
	s.streamsIn += in
	s.mu.Unlock()
	var once atomic.Bool
	return func() {
		if !once.CompareAndSwap(false, true) {
			return
		}
		s.mu.Lock()
		if !s.closed { // Close released it already
			s.streams--
			s.streamsIn -= in
			m.streams.Add(-1)
		}
		s.mu.Unlock()
	}, nil
}

// Close releases the connection, its streams and its memory.
func (s *connScope) Close() {
	m := s.m
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.releaseShared(s.mem)
	m.streams.Add(-int64(s.streams))
	s.mem, s.streams, s.streamsIn = 0, 0, 0
	s.mu.Unlock()

	m.mu.Lock()
	m.conns--
	if s.dir == network.DirInbound {
		m.connsIn--
	}
	if s.peer != nil {
		if s.peer.conns--; s.peer.conns == 0 {
			delete(m.peers, s.p)
		}
	}
	if s.ip != nil {
		s.ip.conns--
		m.freeIPLocked(s.addr, s.ip)
		if m.subnets[s.subnet]--; m.subnets[s.subnet] <= 0 {
			delete(m.subnets, s.subnet)
		}
	}
	m.mu.Unlock()
}

// ---- helpers ----

// over reports whether one more would exceed limit; a negative limit is
// none.
func over(cur, limit int) bool { return limit >= 0 && cur >= limit }

// lessSpare is the limit a reservation that must leave spare bytes free
// is held to; a negative limit (none) stays none.
func lessSpare(limit, spare int64) int64 {
	if limit < 0 {
		return limit
	}
	return max(limit-spare, 0)
}

// tryAdd adds n to c unless that would exceed limit (negative: none); it
// returns the value it found.
func tryAdd(c *atomic.Int64, n, limit int64) (int64, bool) {
	if limit < 0 {
		return c.Add(n) - n, true
	}
	for {
		cur := c.Load()
		if cur+n > limit {
			return cur, false
		}
		if c.CompareAndSwap(cur, cur+n) {
			return cur, true
		}
	}
}

func (m *Manager) allowedAddr(a netip.Addr) bool {
	return a.IsValid() && containsAddr(m.cfg.AllowSubnets, a)
}

// limitedAddr reports whether the limits that count addresses apply to a.
func (m *Manager) limitedAddr(a netip.Addr) bool {
	return a.IsValid() && !containsAddr(m.cfg.NoIPLimits, a)
}

func containsAddr(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ipLocked returns a's state, creating it. m.mu is held.
func (m *Manager) ipLocked(a netip.Addr) *ipState {
	ip := m.ips[a]
	if ip == nil {
		ip = &ipState{}
		m.ips[a] = ip
	}
	return ip
}

// freeIPLocked forgets a once nothing of it is left. m.mu is held.
func (m *Manager) freeIPLocked(a netip.Addr, ip *ipState) {
	if ip.conns == 0 && ip.handshakes == 0 && m.ips[a] == ip {
		delete(m.ips, a)
	}
}

// ipOf is the IP address a multiaddr reaches, or the zero Addr when it has
// none or runs through a relay (the relay's address says nothing about the
// peer, and the relay's own connection is accounted already).
func ipOf(a ma.Multiaddr) netip.Addr {
	var ip netip.Addr
	for i := range a {
		c := &a[i]
		switch c.Code() {
		case ma.P_CIRCUIT:
			return netip.Addr{}
		case ma.P_IP4, ma.P_IP6:
			if !ip.IsValid() {
				ip, _ = netip.AddrFromSlice(c.RawValue())
			}
		}
	}
	return ip.Unmap()
}

// subnetOf is a's /24 (IPv4) or /56 (IPv6).
func subnetOf(a netip.Addr) netip.Prefix {
	bits := 24
	if a.Is6() {
		bits = 56
	}
	p, _ := a.Prefix(bits)
	return p
}

// bucketLocked returns the peer's bucket for proto. Manager.mu is held.
func (ps *peerState) bucketLocked(proto protocol.ID) *bucket {
	if !ps.hasFirst {
		ps.hasFirst, ps.firstProto = true, proto
	}
	if proto == ps.firstProto {
		return &ps.first
	}
	b := ps.buckets[proto]
	if b == nil {
		if 1+len(ps.buckets) >= maxBuckets-1 {
			proto = "" // the shared overflow bucket
			if proto == ps.firstProto {
				return &ps.first
			}
			if b = ps.buckets[proto]; b != nil {
				return b
			}
		}
		if ps.buckets == nil {
			ps.buckets = make(map[protocol.ID]*bucket)
		}
		b = &bucket{}
		ps.buckets[proto] = b
	}
	return b
}

// numBuckets is how many buckets the peer holds. Manager.mu is held.
func (ps *peerState) numBuckets() int {
	n := len(ps.buckets)
	if ps.hasFirst {
		n++
	}
	return n
}

// bucket is a token bucket; it starts full.
type bucket struct {
	tokens float64
	last   time.Time
}

func (b *bucket) take(r Rate, now time.Time) bool {
	if b.last.IsZero() {
		b.tokens = float64(r.Burst)
	} else if d := now.Sub(b.last); d > 0 {
		b.tokens = min(float64(r.Burst), b.tokens+d.Seconds()*r.PerSecond)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// ---- refusals ----

type kind int

const (
	kConns kind = iota
	kConnsInbound
	kConnsPerPeer
	kConnsPerIP
	kConnsPerSubnet
	kHandshakes
	kHandshakesPerIP
	kStreams
	kStreamsPerConn
	kStreamsPerProtocol
	kRate
	kMemory
	kMemoryPerPeer
	kMemoryPerConn
	kMemoryPerIP
	kConnStreamRate
	kPenalty
	numKinds
)

// kinds describes each limit: its name, the Config field that raises it,
// its unit, and the scope and resource a Tracer is told.
var kinds = [numKinds]struct{ limit, option, unit, scope, resource string }{
	kConns:              {"connections", "Conns", "", "node", "connections"},
	kConnsInbound:       {"inbound connections", "ConnsInbound", "", "node", "inbound_connections"},
	kConnsPerPeer:       {"connections per peer", "ConnsPerPeer", "", "peer", "connections"},
	kConnsPerIP:         {"connections per IP", "ConnsPerIP", "", "ip", "connections"},
	kConnsPerSubnet:     {"connections per subnet", "", "", "subnet", "connections"},
	kHandshakes:         {"inbound handshakes", "Handshakes", "", "node", "handshakes"},
	kHandshakesPerIP:    {"inbound handshakes per IP", "HandshakesPerIP", "", "ip", "handshakes"},
	kStreams:            {"streams", "Streams", "", "node", "streams"},
	kStreamsPerConn:     {"inbound streams per connection", "StreamsPerConn", "", "conn", "streams"},
	kStreamsPerProtocol: {"streams per protocol", "", "", "protocol", "streams"},
	kRate:               {"inbound stream rate", "", "streams/s", "peer_protocol", "stream_rate"},
	kMemory:             {"memory", "Memory", "bytes", "node", "memory"},
	kMemoryPerPeer:      {"memory per peer", "MemoryPerPeer", "bytes", "peer", "memory"},
	kMemoryPerConn:      {"memory per connection", "MemoryPerConn", "bytes", "conn", "memory"},
	kMemoryPerIP:        {"memory per IP", "MemoryPerIP", "bytes", "ip", "memory"},
	kConnStreamRate:     {"inbound stream rate per connection", "ConnStreamRate", "streams/s", "conn", "stream_rate"},
	kPenalty:            {"abuse penalty", "AbusePenalty", "ms", "ip", "penalty"},
}

// limitErr builds a refusal; option overrides the kind's own (for the
// subnet and per-protocol ones). Logging is left to refused, called once
// no lock is held.
func (m *Manager) limitErr(k kind, scope, option string, value, current int64) *limitErr {
	if option == "" {
		option = kinds[k].option
	}
	return &limitErr{k: k, e: &LimitError{Limit: kinds[k].limit, Scope: scope, Option: option, Value: value, Current: current, Unit: kinds[k].unit}}
}

// limitErr carries a LimitError and its kind from under a lock to refused.
type limitErr struct {
	k kind
	e *LimitError
}

func (l *limitErr) Error() string { return l.e.Error() }

// refused logs a refusal (Warn, so that `tachyon node` shows it at its
// default level), at most once a second per kind of limit, and returns its
// *LimitError, after telling the Tracer.
func (m *Manager) refused(err error) error {
	l := err.(*limitErr)
	if t := m.cfg.Tracer; t != nil {
		t.Refused(kinds[l.k].scope, kinds[l.k].resource)
	}
	if ok, held := m.logged[l.k].Allow(time.Second); ok {
		e := l.e
		m.log.Warn("resource limit reached", "limit", e.Limit, "scope", e.Scope, "value", e.Value, "in_use", e.Current,
			"unit", e.Unit, "raise", "limits.Config."+e.Option, "refused_unlogged", held)
	}
	return l.e
}
