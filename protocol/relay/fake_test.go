package relay

import (
	"context"
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

// pipe is the shared state of an in-memory stream pair: an unbounded buffer
// each way, half-close, reset and deadlines. Every change closes wake, so
// that waiters look again.
type pipe struct {
	mu    sync.Mutex
	wake  chan struct{}
	buf   [2][]byte // buf[i] was written by end i, for end 1-i
	eof   [2]bool   // end i closed its write side
	reset bool
	rdl   [2]time.Time
	wdl   [2]time.Time
	// how end i ended, for the test: "close", "reset" or "".
	ended [2]string
}

func (p *pipe) changedLocked() {
	close(p.wake)
	p.wake = make(chan struct{})
}

// waitLocked waits for ready or the deadline; p.mu is held.
func (p *pipe) waitLocked(ready func() bool, deadline func() time.Time) error {
	for !ready() {
		dl := deadline()
		if !dl.IsZero() && !time.Now().Before(dl) {
			return os.ErrDeadlineExceeded
		}
		w := p.wake
		p.mu.Unlock()
		var timeout <-chan time.Time
		var t *time.Timer
		if !dl.IsZero() {
			t = time.NewTimer(time.Until(dl))
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
	return nil
}

// fakeConn is the connection a fake stream belongs to. Methods the service
// has no business calling are left to the nil embedded interface.
type fakeConn struct {
	network.Conn
	local, remote peer.ID
	raddr         ma.Multiaddr
}

func (c *fakeConn) RemoteMultiaddr() ma.Multiaddr { return c.raddr }
func (c *fakeConn) RemotePeer() peer.ID           { return c.remote }
func (c *fakeConn) LocalPeer() peer.ID            { return c.local }

// fakeStream is one end of a pipe.
type fakeStream struct {
	network.Stream
	p     *pipe
	i     int
	proto protocol.ID
	conn  *fakeConn
}

// streamPair returns two connected streams: a is at peer pa and sees
// remote pb at address addrB; b the other way round.
func streamPair(proto protocol.ID, pa, pb peer.ID, addrA, addrB ma.Multiaddr) (a, b *fakeStream) {
	p := &pipe{wake: make(chan struct{})}
	a = &fakeStream{p: p, i: 0, proto: proto, conn: &fakeConn{local: pa, remote: pb, raddr: addrB}}
	b = &fakeStream{p: p, i: 1, proto: proto, conn: &fakeConn{local: pb, remote: pa, raddr: addrA}}
	return a, b
}

func (s *fakeStream) Protocol() protocol.ID         { return s.proto }
func (s *fakeStream) LocalPeer() peer.ID            { return s.conn.local }
func (s *fakeStream) RemotePeer() peer.ID           { return s.conn.remote }
func (s *fakeStream) RemoteMultiaddr() ma.Multiaddr { return s.conn.raddr }
func (s *fakeStream) Conn() network.Conn            { return s.conn }

func (s *fakeStream) Read(b []byte) (int, error) {
	p := s.p
	p.mu.Lock()
	defer p.mu.Unlock()
	in := 1 - s.i
	err := p.waitLocked(func() bool { return p.reset || len(p.buf[in]) > 0 || p.eof[in] },
		func() time.Time { return p.rdl[s.i] })
	switch {
	case p.reset:
		return 0, network.ErrReset
	case err != nil:
		return 0, err
	case len(p.buf[in]) > 0:
		n := copy(b, p.buf[in])
		p.buf[in] = p.buf[in][n:]
		return n, nil
	}
	return 0, io.EOF
}

func (s *fakeStream) Write(b []byte) (int, error) {
	p := s.p
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.reset:
		return 0, network.ErrReset
	case p.eof[s.i]:
		return 0, errors.New("fake stream: write after close")
	case !p.wdl[s.i].IsZero() && !time.Now().Before(p.wdl[s.i]):
		return 0, os.ErrDeadlineExceeded
	}
	p.buf[s.i] = append(p.buf[s.i], b...)
	p.changedLocked()
	return len(b), nil
}

func (s *fakeStream) CloseWrite() error {
	p := s.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reset {
		return network.ErrReset
	}
	p.eof[s.i] = true
	p.changedLocked()
	return nil
}

func (s *fakeStream) CloseRead() error { return nil }

func (s *fakeStream) Close() error {
	p := s.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended[s.i] == "" {
		p.ended[s.i] = "close"
	}
	p.eof[s.i] = true
	p.changedLocked()
	return nil
}

func (s *fakeStream) Reset() error {
	p := s.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended[s.i] == "" {
		p.ended[s.i] = "reset"
	}
	p.reset = true
	p.changedLocked()
	return nil
}

func (s *fakeStream) SetDeadline(t time.Time) error {
	_ = s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

func (s *fakeStream) SetReadDeadline(t time.Time) error {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	s.p.rdl[s.i] = t
	s.p.changedLocked()
	return nil
}

func (s *fakeStream) SetWriteDeadline(t time.Time) error {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	s.p.wdl[s.i] = t
	s.p.changedLocked()
	return nil
}

// ending reports how this end was ended by its owner: "close", "reset" or "".
func (s *fakeStream) ending() string {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	return s.p.ended[s.i]
}

// waitEnded waits until this end is closed or reset by its owner.
func (s *fakeStream) waitEnded(t testing.TB, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if e := s.ending(); e != "" {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream of %s not ended within %s", s.conn.local, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// node is a test identity.
type node struct {
	id   peer.ID
	key  crypto.PrivKey
	addr ma.Multiaddr
}

func newNode(t testing.TB, name, addr string) node {
	t.Helper()
	seed := sha256.Sum256([]byte(name))
	key, err := crypto.Ed25519KeyFromSeed(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return node{id: id, key: key, addr: ma.StringCast(addr)}
}

// stopHandler is a target's answer to a STOP stream the relay opened; it
// owns the stream.
type stopHandler func(st *fakeStream)

// fakeHost is the relay's host: it hands out in-memory STOP streams to the
// targets registered with target, and runs everything it starts under wg.
type fakeHost struct {
	node
	addrs []ma.Multiaddr

	mu      sync.Mutex
	targets map[peer.ID]node
	stop    map[peer.ID]stopHandler
	openErr map[peer.ID]error
	noDial  bool // every NewStream ctx carried WithNoDial
	opened  []*fakeStream

	wg sync.WaitGroup
}

func newFakeHost(t testing.TB) *fakeHost {
	t.Helper()
	r := newNode(t, "relay", "/ip4/198.51.100.1/tcp/4001")
	other := newNode(t, "someone else", "/ip4/198.51.100.9/tcp/1")
	return &fakeHost{
		node: r,
		addrs: []ma.Multiaddr{
			ma.StringCast("/ip4/198.51.100.1/tcp/4001"),
			ma.StringCast("/ip4/198.51.100.1/udp/4001/quic-v1/p2p/" + r.id.String()),
			ma.StringCast("/ip4/203.0.113.5/tcp/4001/p2p/" + other.id.String()),
			ma.StringCast("/ip4/203.0.113.7/tcp/4001/p2p/" + r.id.String() + "/p2p-circuit"),
		},
		targets: map[peer.ID]node{},
		stop:    map[peer.ID]stopHandler{},
		openErr: map[peer.ID]error{},
		noDial:  true,
	}
}

func (h *fakeHost) ID() peer.ID                { return h.id }
func (h *fakeHost) PrivateKey() crypto.PrivKey { return h.key }
func (h *fakeHost) Addrs() []ma.Multiaddr      { return h.addrs }

func (h *fakeHost) NewStream(ctx context.Context, p peer.ID, protos ...protocol.ID) (network.Stream, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !network.NoDial(ctx) {
		h.noDial = false
	}
	if err := h.openErr[p]; err != nil {
		return nil, err
	}
	handler, ok := h.stop[p]
	if !ok || len(protos) != 1 {
		return nil, fmt.Errorf("fake host: no connection to %s", p)
	}
	target := h.targets[p]
	relaySide, targetSide := streamPair(protos[0], h.id, p, h.addrs[0], target.addr)
	h.opened = append(h.opened, relaySide)
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		handler(targetSide)
	}()
	return relaySide, nil
}

// setTarget makes NewStream to n run handler on the target's end.
func (h *fakeHost) setTarget(n node, handler stopHandler) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.targets[n.id] = n
	h.stop[n.id] = handler
}

// openedStreams returns the STOP streams opened so far.
func (h *fakeHost) openedStreams() []*fakeStream {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*fakeStream(nil), h.opened...)
}
