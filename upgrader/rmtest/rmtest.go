// Package rmtest is a small network.ResourceManager for the tests of the
// transports and the upgrader: caps on handshakes (in all and per IP, with
// no loopback exemption, so loopback tests can hit them), on connections
// and on streams and memory per connection, and counters that let a test
// check every admission was given back exactly once.
package rmtest

import (
	"fmt"
	"net/netip"
	"sync"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
)

// LimitError is the refusal of a Manager: it names the limit.
type LimitError struct {
	Limit string
	Max   int
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("rmtest: %s limit %d reached", e.Limit, e.Max)
}

// Manager implements network.ResourceManager. Zero caps mean no limit. Set
// the caps before use; the methods are safe for concurrent use.
type Manager struct {
	Handshakes       int  // in progress, in all
	HandshakesPerIP  int  // in progress, per remote IP
	RefuseHandshakes bool // refuse every handshake
	Conns            int  // open connections, in all
	RefuseConns      bool // refuse every connection
	StreamsPerConn   int  // open streams per connection, both directions
	MemoryPerConn    int  // bytes reserved per connection

	mu       sync.Mutex
	hs       int
	hsPerIP  map[netip.Addr]int
	hsBegun  int
	hsRefuse int
	conns    int
	scopes   []*Scope
	misuse   []string
}

// BeginHandshake implements network.ResourceManager.
func (m *Manager) BeginHandshake(ip netip.Addr) (func(), error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.hsPerIP == nil {
		m.hsPerIP = map[netip.Addr]int{}
	}
	switch {
	case m.RefuseHandshakes:
		m.hsRefuse++
		return nil, &LimitError{"handshakes", 0}
	case m.Handshakes > 0 && m.hs >= m.Handshakes:
		m.hsRefuse++
		return nil, &LimitError{"handshakes", m.Handshakes}
	case m.HandshakesPerIP > 0 && m.hsPerIP[ip] >= m.HandshakesPerIP:
		m.hsRefuse++
		return nil, &LimitError{"handshakes per IP", m.HandshakesPerIP}
	}
	m.hs++
	m.hsPerIP[ip]++
	m.hsBegun++
	return m.once("handshake done", func() {
		m.hs--
		if m.hsPerIP[ip]--; m.hsPerIP[ip] == 0 {
			delete(m.hsPerIP, ip)
		}
	}), nil
}

// once returns a func that runs f under m.mu the first time and records a
// misuse the next times.
func (m *Manager) once(what string, f func()) func() {
	called := false
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if called {
			m.misuse = append(m.misuse, what+" called twice")
			return
		}
		called = true
		f()
	}
}

// OpenConn implements network.ResourceManager.
func (m *Manager) OpenConn(dir network.Direction, p peer.ID, remote ma.Multiaddr) (network.ConnScope, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.RefuseConns {
		return nil, &LimitError{"connections", 0}
	}
	if m.Conns > 0 && m.conns >= m.Conns {
		return nil, &LimitError{"connections", m.Conns}
	}
	m.conns++
	s := &Scope{m: m, Dir: dir, Peer: p, Remote: remote}
	m.scopes = append(m.scopes, s)
	return s, nil
}

// OpenProtocolStream implements network.ResourceManager; it admits all.
func (m *Manager) OpenProtocolStream(network.Direction, peer.ID, protocol.ID) (func(), error) {
	return func() {}, nil
}

// Stats is a snapshot of a Manager.
type Stats struct {
	Handshakes        int // in progress
	HandshakesBegun   int // admitted since the start
	HandshakesRefused int
	Conns             int // open scopes
	Scopes            int // opened since the start
	Streams           int // open streams over all scopes
	Memory            int // reserved over all scopes
	Misuse            []string
}

// Stats returns the counters now.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := Stats{Handshakes: m.hs, HandshakesBegun: m.hsBegun, HandshakesRefused: m.hsRefuse, Conns: m.conns, Scopes: len(m.scopes), Misuse: m.misuse}
	for _, s := range m.scopes {
		st.Streams += s.streams
		st.Memory += s.mem
	}
	return st
}

// Scopes returns the scopes opened so far.
func (m *Manager) Scopes() []*Scope {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*Scope(nil), m.scopes...)
}

// Scope is the network.ConnScope of one connection.
type Scope struct {
	m      *Manager
	Dir    network.Direction
	Peer   peer.ID
	Remote ma.Multiaddr

	// Guarded by m.mu.
	closed  bool
	streams int
	mem     int
	opened  int // streams admitted since the start
	refused int // streams refused
}

// ReserveMemory implements network.ConnScope.
func (s *Scope) ReserveMemory(n int) error { return s.ReserveMemoryLeaving(n, 0) }

// ReserveMemoryLeaving implements network.ConnScope.
func (s *Scope) ReserveMemoryLeaving(n, spare int) error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if s.closed {
		return &LimitError{"memory of a closed connection", 0}
	}
	if s.m.MemoryPerConn > 0 && s.mem+n+spare > s.m.MemoryPerConn {
		return &LimitError{"memory per connection", s.m.MemoryPerConn}
	}
	s.mem += n
	return nil
}

// ReleaseMemory implements network.ConnScope.
func (s *Scope) ReleaseMemory(n int) {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if s.closed {
		return // Close gave it all back
	}
	if n > s.mem {
		s.m.misuse = append(s.m.misuse, fmt.Sprintf("released %d bytes of %d reserved", n, s.mem))
		n = s.mem
	}
	s.mem -= n
}

// OpenStream implements network.ConnScope.
func (s *Scope) OpenStream(network.Direction) (func(), error) {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if s.closed {
		return nil, &LimitError{"streams of a closed connection", 0}
	}
	if s.m.StreamsPerConn > 0 && s.streams >= s.m.StreamsPerConn {
		s.refused++
		return nil, &LimitError{"streams per connection", s.m.StreamsPerConn}
	}
	s.streams++
	s.opened++
	return s.m.once("stream done", func() {
		if !s.closed {
			s.streams--
		}
	}), nil
}

// Close implements network.ConnScope: the first call releases everything.
func (s *Scope) Close() {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.m.conns--
	s.streams, s.mem = 0, 0
}

// Closed reports whether Close was called.
func (s *Scope) Closed() bool {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	return s.closed
}

// StreamsOpened and StreamsRefused count the scope's stream admissions.
func (s *Scope) StreamsOpened() (opened, refused int) {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	return s.opened, s.refused
}

// Memory is what the scope has reserved now.
func (s *Scope) Memory() int {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	return s.mem
}
