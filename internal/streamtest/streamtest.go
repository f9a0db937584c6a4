// Package streamtest gives protocol tests an in-memory network.Stream pair:
// two ends of one stream over a fake connection between two peers, with an
// optional one-way delay (a write returns at once, its bytes become
// readable Delay later, as over a network), half-close, reset, deadlines,
// and a record of how each end was ended. Protocol packages test their
// handlers with it instead of a host.
package streamtest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
)

// Config describes a stream pair. A is the side that opened the stream.
type Config struct {
	// Protocol is what Protocol() returns on both ends.
	Protocol protocol.ID
	// Delay is the one-way delay of everything written, EOF included.
	Delay time.Duration
	// A and B are the peers at the two ends.
	A, B peer.ID
	// AAddr and BAddr are the ends' addresses: A's LocalMultiaddr and B's
	// RemoteMultiaddr are AAddr (what B observes), and the other way round.
	AAddr, BAddr ma.Multiaddr
	// State is both ends' ConnState (Limited for a relayed connection).
	State network.ConnState
	// ADir is the direction of A's connection (B's is the opposite);
	// zero means DirOutbound: A dialed.
	ADir network.Direction
}

// ErrWriteAfterClose is returned by a write on an end that closed its
// write side.
var ErrWriteAfterClose = errors.New("streamtest: write after close")

type chunk struct {
	b   []byte
	at  time.Time
	eof bool
}

// pipe is a pair's shared state. Every change closes wake, so waiters look
// again.
type pipe struct {
	delay time.Duration

	mu      sync.Mutex
	wake    chan struct{}
	in      [2][]chunk // in[i] was written by end i, for end 1-i
	closed  [2]bool    // end i closed its write side
	reset   bool
	rdl     [2]time.Time // read deadline of end i
	wdl     [2]time.Time // write deadline of end i
	writes  [2][]time.Time
	written [2]int
	ended   [2]string // how end i was ended by its owner: "close", "reset" or ""
}

func (p *pipe) changedLocked() {
	close(p.wake)
	p.wake = make(chan struct{})
}

// Conn is the fake connection a Stream belongs to. Methods not listed
// panic through the nil embedded interface: a protocol has no business
// calling them.
type Conn struct {
	network.Conn
	local, remote peer.ID
	laddr, raddr  ma.Multiaddr
	state         network.ConnState
	dir           network.Direction

	mu     sync.Mutex
	closed bool
}

func (c *Conn) LocalPeer() peer.ID             { return c.local }
func (c *Conn) RemotePeer() peer.ID            { return c.remote }
func (c *Conn) LocalMultiaddr() ma.Multiaddr   { return c.laddr }
func (c *Conn) RemoteMultiaddr() ma.Multiaddr  { return c.raddr }
func (c *Conn) ConnState() network.ConnState   { return c.state }
func (c *Conn) Direction() network.Direction   { return c.dir }
func (c *Conn) ID() uint64                     { return 1 }
func (c *Conn) Opened() time.Time              { return time.Time{} }
func (c *Conn) NumStreams() int                { return 1 }
func (c *Conn) RemotePublicKey() crypto.PubKey { return nil }
func (c *Conn) String() string                 { return fmt.Sprintf("streamtest conn to %s at %s", c.remote, c.raddr) }

// Close marks the connection closed (IsClosed); the streams stay usable.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

func (c *Conn) IsClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Stream is one end of a pair.
type Stream struct {
	p     *pipe
	i     int
	proto protocol.ID
	conn  *Conn
}

var _ network.Stream = (*Stream)(nil)

// Pair returns the two ends of a stream that A opened to B.
func Pair(cfg Config) (a, b *Stream) {
	p := &pipe{delay: cfg.Delay, wake: make(chan struct{})}
	adir := cfg.ADir
	if adir == network.DirUnknown {
		adir = network.DirOutbound
	}
	bdir := network.DirInbound
	if adir == network.DirInbound {
		bdir = network.DirOutbound
	}
	a = &Stream{p: p, i: 0, proto: cfg.Protocol, conn: &Conn{local: cfg.A, remote: cfg.B, laddr: cfg.AAddr, raddr: cfg.BAddr, state: cfg.State, dir: adir}}
	b = &Stream{p: p, i: 1, proto: cfg.Protocol, conn: &Conn{local: cfg.B, remote: cfg.A, laddr: cfg.BAddr, raddr: cfg.AAddr, state: cfg.State, dir: bdir}}
	return a, b
}

func (s *Stream) Protocol() protocol.ID         { return s.proto }
func (s *Stream) LocalPeer() peer.ID            { return s.conn.local }
func (s *Stream) RemotePeer() peer.ID           { return s.conn.remote }
func (s *Stream) LocalMultiaddr() ma.Multiaddr  { return s.conn.laddr }
func (s *Stream) RemoteMultiaddr() ma.Multiaddr { return s.conn.raddr }
func (s *Stream) Direction() network.Direction  { return s.conn.dir }
func (s *Stream) Conn() network.Conn            { return s.conn }
func (s *Stream) FakeConn() *Conn               { return s.conn }
func (s *Stream) String() string {
	return fmt.Sprintf("streamtest stream %s -> %s", s.conn.local, s.conn.remote)
}

// Read blocks until data written by the other end is due, EOF, a reset or
// the deadline.
func (s *Stream) Read(b []byte) (int, error) {
	p := s.p
	p.mu.Lock()
	defer p.mu.Unlock()
	q := &p.in[1-s.i]
	for {
		now := time.Now()
		if p.reset {
			return 0, network.ErrReset
		}
		dl := p.rdl[s.i]
		if !dl.IsZero() && !now.Before(dl) {
			return 0, os.ErrDeadlineExceeded
		}
		wakeAt := dl
		if len(*q) > 0 {
			c := &(*q)[0]
			if !now.Before(c.at) {
				if c.eof {
					return 0, io.EOF
				}
				if len(b) == 0 {
					return 0, nil
				}
				n := copy(b, c.b)
				if c.b = c.b[n:]; len(c.b) == 0 {
					*q = (*q)[1:]
				}
				return n, nil
			}
			if wakeAt.IsZero() || c.at.Before(wakeAt) {
				wakeAt = c.at
			}
		}
		w := p.wake
		p.mu.Unlock()
		var timeout <-chan time.Time
		var t *time.Timer
		if !wakeAt.IsZero() {
			t = time.NewTimer(time.Until(wakeAt))
			timeout = t.C
		}
		select {
		case <-w:
		case <-timeout:
		}
		if t != nil {
			t.Stop()
		}
		p.mu.Lock()
	}
}

// Write never blocks: the bytes become readable Delay later.
func (s *Stream) Write(b []byte) (int, error) {
	p := s.p
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.reset:
		return 0, network.ErrReset
	case p.closed[s.i]:
		return 0, ErrWriteAfterClose
	case !p.wdl[s.i].IsZero() && !time.Now().Before(p.wdl[s.i]):
		return 0, os.ErrDeadlineExceeded
	}
	now := time.Now()
	p.writes[s.i] = append(p.writes[s.i], now)
	p.written[s.i] += len(b)
	p.in[s.i] = append(p.in[s.i], chunk{b: append([]byte(nil), b...), at: now.Add(p.delay)})
	p.changedLocked()
	return len(b), nil
}

func (s *Stream) closeWriteLocked() {
	p := s.p
	if !p.closed[s.i] {
		p.closed[s.i] = true
		p.in[s.i] = append(p.in[s.i], chunk{at: time.Now().Add(p.delay), eof: true})
	}
	p.changedLocked()
}

// CloseWrite half-closes: the other end reads EOF after the data.
func (s *Stream) CloseWrite() error {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	if s.p.reset {
		return network.ErrReset
	}
	s.closeWriteLocked()
	return nil
}

// CloseRead is a no-op: unread data stays queued.
func (s *Stream) CloseRead() error { return nil }

// Close half-closes and records "close" as how this end ended.
func (s *Stream) Close() error {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	if s.p.ended[s.i] == "" {
		s.p.ended[s.i] = "close"
	}
	s.closeWriteLocked()
	return nil
}

// Reset aborts both directions at once (no delay) and records "reset".
func (s *Stream) Reset() error {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	if s.p.ended[s.i] == "" {
		s.p.ended[s.i] = "reset"
	}
	s.p.reset = true
	s.p.changedLocked()
	return nil
}

// SetDeadline sets this end's read and write deadlines.
func (s *Stream) SetDeadline(t time.Time) error {
	s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

func (s *Stream) SetReadDeadline(t time.Time) error {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	s.p.rdl[s.i] = t
	s.p.changedLocked()
	return nil
}

func (s *Stream) SetWriteDeadline(t time.Time) error {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	s.p.wdl[s.i] = t
	s.p.changedLocked()
	return nil
}

// Ended reports how this end was ended by its owner: "close", "reset" or
// "" (not yet).
func (s *Stream) Ended() string {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	return s.p.ended[s.i]
}

// Written is how many bytes this end has written.
func (s *Stream) Written() int {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	return s.p.written[s.i]
}

// Writes is how many writes this end made.
func (s *Stream) Writes() int {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	return len(s.p.writes[s.i])
}

// LastWrite is when this end last wrote (zero if never).
func (s *Stream) LastWrite() time.Time {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	w := s.p.writes[s.i]
	if len(w) == 0 {
		return time.Time{}
	}
	return w[len(w)-1]
}

// WaitEnded waits up to timeout for this end to be closed or reset by its
// owner and says which; it fails t when neither happens.
func (s *Stream) WaitEnded(t testing.TB, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if e := s.Ended(); e != "" {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream of %s to %s not ended within %s", s.conn.local, s.conn.remote, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// PeerID returns a peer ID derived from name: the same name gives the
// same ID in every run.
func PeerID(t testing.TB, name string) peer.ID {
	t.Helper()
	key := Key(t, name)
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// Key returns an Ed25519 key derived from name.
func Key(t testing.TB, name string) crypto.PrivKey {
	t.Helper()
	seed := sha256.Sum256([]byte(name))
	key, err := crypto.Ed25519KeyFromSeed(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	return key
}
