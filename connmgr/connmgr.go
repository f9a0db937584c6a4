// Package connmgr keeps a host's connection count between two watermarks:
// when more than High connections are open it closes the least useful ones
// until Low remain.
//
// Usefulness, most useful kept first:
//  1. protected peers are never trimmed (Protect, e.g. a relay reservation);
//  2. connections younger than the grace period are never trimmed;
//  3. then peers by score: the sum of their tags (TagPeer) and of the
//     protocol tags of the streams open on their connections (TagProtocol);
//  4. ties go to the peer with more open streams, then to the older
//     connection (it has proved it lasts).
//
// Trimming closes whole peers (every connection to them), since a peer with
// one connection left is as costly to keep as with two; it never closes more
// than needed to get to Low. It runs at most once per SilencePeriod, and
// checks again every SilencePeriod while the count stays above High.
package connmgr

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/logs"
)

// Config sets the watermarks. Zero fields take the defaults, go-libp2p's.
type Config struct {
	// Low is how many connections trimming leaves open. Default 160.
	Low int
	// High is the count above which trimming starts. Default 192.
	High int
	// GracePeriod protects a new connection from trimming. Default 1 min.
	GracePeriod time.Duration
	// SilencePeriod is the shortest time between two trims. Default 10 s.
	SilencePeriod time.Duration
	// Log receives one line per trim (Info). Nil discards.
	Log *slog.Logger
	// Tracer, if set, is told about every trim.
	Tracer Tracer
}

// Tracer is told how many connections each trim closed (only trims that
// closed some). It must not block.
type Tracer interface {
	Trimmed(n int)
}

// Defaults.
const (
	DefaultLow           = 160
	DefaultHigh          = 192
	DefaultGracePeriod   = time.Minute
	DefaultSilencePeriod = 10 * time.Second
)

// Manager tracks connections (Connected, Disconnected, StreamOpened,
// StreamClosed are called by the host) and trims them. Its methods are safe
// for concurrent use.
type Manager struct {
	cfg Config
	now func() time.Time

	mu        sync.Mutex
	conns     map[network.Conn]*connInfo
	peers     map[peer.ID]*peerInfo
	protoTags map[protocol.ID]int
	lastTrim  time.Time

	kick chan struct{}
}

type connInfo struct {
	opened time.Time
	protos map[protocol.ID]int // open streams per protocol
}

type peerInfo struct {
	conns     int
	tags      map[string]int
	protected map[string]struct{}
}

// New returns a manager; Run must be running for trims to happen on their
// own (TrimOpenConns trims at once).
func New(cfg Config) *Manager {
	if cfg.Low <= 0 {
		cfg.Low = DefaultLow
	}
	if cfg.High <= 0 {
		cfg.High = DefaultHigh
	}
	if cfg.High < cfg.Low {
		cfg.High = cfg.Low
	}
	if cfg.GracePeriod <= 0 {
		cfg.GracePeriod = DefaultGracePeriod
	}
	if cfg.SilencePeriod <= 0 {
		cfg.SilencePeriod = DefaultSilencePeriod
	}
	cfg.Log = logs.Or(cfg.Log)
	return &Manager{
		cfg:       cfg,
		now:       time.Now,
		conns:     make(map[network.Conn]*connInfo),
		peers:     make(map[peer.ID]*peerInfo),
		protoTags: make(map[protocol.ID]int),
		kick:      make(chan struct{}, 1),
	}
}

// Config returns the configuration in use, defaults filled in.
func (m *Manager) Config() Config { return m.cfg }

// peer returns p's record, creating it. m.mu is held.
func (m *Manager) peer(p peer.ID) *peerInfo {
	pi := m.peers[p]
	if pi == nil {
		pi = &peerInfo{}
		m.peers[p] = pi
	}
	return pi
}

// forget drops p's record once nothing is left in it. m.mu is held.
func (m *Manager) forget(p peer.ID, pi *peerInfo) {
	if pi.conns == 0 && len(pi.tags) == 0 && len(pi.protected) == 0 {
		delete(m.peers, p)
	}
}

// Connected records a new connection; past High it wakes Run to trim.
func (m *Manager) Connected(c network.Conn) {
	m.mu.Lock()
	if _, ok := m.conns[c]; ok {
		m.mu.Unlock()
		return
	}
	opened := c.Opened()
	if opened.IsZero() {
		opened = m.now()
	}
	m.conns[c] = &connInfo{opened: opened}
	m.peer(c.RemotePeer()).conns++
	over := len(m.conns) > m.cfg.High
	m.mu.Unlock()
	if over {
		select {
		case m.kick <- struct{}{}:
		default:
		}
	}
}

// Disconnected forgets a connection.
func (m *Manager) Disconnected(c network.Conn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.conns[c]; !ok {
		return
	}
	delete(m.conns, c)
	p := c.RemotePeer()
	if pi := m.peers[p]; pi != nil {
		pi.conns--
		m.forget(p, pi)
	}
}

// StreamOpened records a negotiated stream of proto on c.
func (m *Manager) StreamOpened(c network.Conn, proto protocol.ID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ci := m.conns[c]
	if ci == nil {
		return
	}
	if ci.protos == nil {
		ci.protos = make(map[protocol.ID]int)
	}
	ci.protos[proto]++
}

// StreamProtocols returns the negotiated streams open on c, per protocol
// (a copy; nil when c is not tracked or has none).
func (m *Manager) StreamProtocols(c network.Conn) map[protocol.ID]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	ci := m.conns[c]
	if ci == nil || len(ci.protos) == 0 {
		return nil
	}
	out := make(map[protocol.ID]int, len(ci.protos))
	for p, n := range ci.protos {
		out[p] = n
	}
	return out
}

// StreamClosed undoes StreamOpened.
func (m *Manager) StreamClosed(c network.Conn, proto protocol.ID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ci := m.conns[c]
	if ci == nil || ci.protos[proto] == 0 {
		return
	}
	if ci.protos[proto]--; ci.protos[proto] == 0 {
		delete(ci.protos, proto)
	}
}

// TagPeer sets p's tag to value (replacing an earlier value of the tag).
// Tags of a peer without connections are kept until UntagPeer, so a tag
// may be set before connecting.
func (m *Manager) TagPeer(p peer.ID, tag string, value int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	pi := m.peer(p)
	if pi.tags == nil {
		pi.tags = make(map[string]int)
	}
	pi.tags[tag] = value
}

// UntagPeer removes a tag.
func (m *Manager) UntagPeer(p peer.ID, tag string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if pi := m.peers[p]; pi != nil {
		delete(pi.tags, tag)
		m.forget(p, pi)
	}
}

// TagProtocol makes every open stream of proto add value to its peer's
// score (for example the relay protocols, or a protocol the application
// depends on). Zero removes the tag.
func (m *Manager) TagProtocol(proto protocol.ID, value int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if value == 0 {
		delete(m.protoTags, proto)
		return
	}
	m.protoTags[proto] = value
}

// Protect keeps p's connections from being trimmed until every tag it was
// protected under is unprotected.
func (m *Manager) Protect(p peer.ID, tag string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	pi := m.peer(p)
	if pi.protected == nil {
		pi.protected = make(map[string]struct{})
	}
	pi.protected[tag] = struct{}{}
}

// Unprotect removes one protection; it reports whether p is still
// protected under another tag.
func (m *Manager) Unprotect(p peer.ID, tag string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	pi := m.peers[p]
	if pi == nil {
		return false
	}
	delete(pi.protected, tag)
	still := len(pi.protected) > 0
	m.forget(p, pi)
	return still
}

// IsProtected reports whether p is protected under tag, or under any tag
// when tag is "".
func (m *Manager) IsProtected(p peer.ID, tag string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	pi := m.peers[p]
	if pi == nil {
		return false
	}
	if tag == "" {
		return len(pi.protected) > 0
	}
	_, ok := pi.protected[tag]
	return ok
}

// Run trims whenever the count passes High, and checks again every
// SilencePeriod (connections that were in their grace period at the last
// trim may be trimmable now), until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	tick := time.NewTicker(m.cfg.SilencePeriod)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.kick:
		case <-tick.C:
		}
		m.mu.Lock()
		over := len(m.conns) > m.cfg.High
		wait := m.cfg.SilencePeriod - m.now().Sub(m.lastTrim)
		m.mu.Unlock()
		if !over {
			continue
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		m.TrimOpenConns(ctx)
	}
}

// candidate is one trimmable peer.
type candidate struct {
	p       peer.ID
	conns   []network.Conn
	score   int
	streams int
	oldest  time.Time
}

// TrimOpenConns closes the least useful peers' connections until Low remain
// (or nothing trimmable is left), if more than High are open. It returns how
// many connections it closed.
func (m *Manager) TrimOpenConns(ctx context.Context) int {
	victims := m.pick()
	closed := 0
	for _, c := range victims {
		if ctx.Err() != nil {
			break
		}
		c.Close()
		closed++
	}
	if closed > 0 {
		if t := m.cfg.Tracer; t != nil {
			t.Trimmed(closed)
		}
		m.cfg.Log.Info("connection manager trimmed connections", "closed", closed, "low", m.cfg.Low, "high", m.cfg.High)
	}
	return closed
}

// pick chooses the connections to close.
func (m *Manager) pick() []network.Conn {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.lastTrim = now
	if len(m.conns) <= m.cfg.High {
		return nil
	}
	byPeer := make(map[peer.ID]*candidate)
	for c, ci := range m.conns {
		p := c.RemotePeer()
		pi := m.peers[p]
		if pi != nil && len(pi.protected) > 0 {
			continue
		}
		cd := byPeer[p]
		if cd == nil {
			cd = &candidate{p: p, oldest: ci.opened}
			if pi != nil {
				for _, v := range pi.tags {
					cd.score += v
				}
			}
			byPeer[p] = cd
		}
		cd.conns = append(cd.conns, c)
		if ci.opened.Before(cd.oldest) {
			cd.oldest = ci.opened
		}
		for proto, n := range ci.protos {
			cd.streams += n
			cd.score += n * m.protoTags[proto]
		}
	}
	// A peer any of whose connections is in its grace period keeps all of
	// them: closing the old ones alone would not close the peer.
	cands := make([]*candidate, 0, len(byPeer))
	for _, cd := range byPeer {
		young := false
		for _, c := range cd.conns {
			if now.Sub(m.conns[c].opened) < m.cfg.GracePeriod {
				young = true
				break
			}
		}
		if !young {
			cands = append(cands, cd)
		}
	}
	slices.SortFunc(cands, func(a, b *candidate) int {
		switch {
		case a.score != b.score:
			return a.score - b.score // lowest score first
		case a.streams != b.streams:
			return a.streams - b.streams
		default:
			return b.oldest.Compare(a.oldest) // newest first
		}
	})
	excess := len(m.conns) - m.cfg.Low
	var out []network.Conn
	for _, cd := range cands {
		if excess <= 0 {
			break
		}
		out = append(out, cd.conns...)
		excess -= len(cd.conns)
	}
	return out
}
