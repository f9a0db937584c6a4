package connmgr

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
)

// fakeConn is a connection that only records being closed.
type fakeConn struct {
	id     uint64
	p      peer.ID
	opened time.Time
	closed atomic.Bool
}

func (c *fakeConn) ID() uint64                     { return c.id }
func (c *fakeConn) LocalPeer() peer.ID             { return "" }
func (c *fakeConn) RemotePeer() peer.ID            { return c.p }
func (c *fakeConn) RemotePublicKey() crypto.PubKey { return nil }
func (c *fakeConn) LocalMultiaddr() ma.Multiaddr   { return nil }
func (c *fakeConn) RemoteMultiaddr() ma.Multiaddr  { return nil }
func (c *fakeConn) Direction() network.Direction   { return network.DirInbound }
func (c *fakeConn) ConnState() network.ConnState   { return network.ConnState{} }
func (c *fakeConn) Opened() time.Time              { return c.opened }
func (c *fakeConn) NumStreams() int                { return 0 }
func (c *fakeConn) IsClosed() bool                 { return c.closed.Load() }
func (c *fakeConn) Close() error                   { c.closed.Store(true); return nil }

var _ network.Conn = (*fakeConn)(nil)

// setup describes one peer's connections for a table case.
type setup struct {
	peer      string
	conns     int
	age       time.Duration // age of every connection but the young ones
	young     int           // connections 1 s old
	tag       int
	protect   bool
	streams   map[protocol.ID]int // on its first connection
	wantTrims bool
}

func TestTrim(t *testing.T) {
	base := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	old := 10 * time.Minute
	cases := []struct {
		name      string
		low, high int
		protoTags map[protocol.ID]int
		peers     []setup
	}{
		{
			name: "under high: nothing", low: 2, high: 4,
			peers: []setup{{peer: "a", conns: 2, age: old}, {peer: "b", conns: 2, age: old}},
		},
		{
			name: "lowest tag first, down to low", low: 2, high: 3,
			peers: []setup{
				{peer: "a", conns: 1, age: old, tag: 10},
				{peer: "b", conns: 1, age: old, tag: 1, wantTrims: true},
				{peer: "c", conns: 1, age: old, tag: 5},
				{peer: "d", conns: 1, age: old, tag: 0, wantTrims: true},
			},
		},
		{
			name: "protected and young survive", low: 1, high: 2,
			peers: []setup{
				{peer: "a", conns: 1, age: old, protect: true},
				{peer: "b", conns: 1, age: time.Second},
				{peer: "c", conns: 1, age: old, wantTrims: true},
				{peer: "d", conns: 1, age: old, wantTrims: true},
			},
		},
		{
			name: "protocol tags and streams count", low: 2, high: 3,
			protoTags: map[protocol.ID]int{"/relay": 100},
			peers: []setup{
				{peer: "a", conns: 1, age: old, streams: map[protocol.ID]int{"/relay": 1}},
				{peer: "b", conns: 1, age: old, streams: map[protocol.ID]int{"/chat": 2}},
				{peer: "c", conns: 1, age: old, wantTrims: true},
				{peer: "d", conns: 1, age: old, wantTrims: true},
			},
		},
		{
			name: "whole peers, no more than needed", low: 3, high: 4,
			peers: []setup{
				{peer: "a", conns: 3, age: old, tag: 1, wantTrims: true},
				{peer: "b", conns: 2, age: old, tag: 2},
			},
		},
		{
			name: "a peer with a young connection keeps its old ones", low: 1, high: 2,
			peers: []setup{
				{peer: "a", conns: 2, young: 1, age: old},
				{peer: "b", conns: 2, age: old, tag: 1, wantTrims: true},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := New(Config{Low: tc.low, High: tc.high})
			m.now = func() time.Time { return base }
			for p, v := range tc.protoTags {
				m.TagProtocol(p, v)
			}
			byPeer := map[string][]*fakeConn{}
			id := uint64(0)
			for _, s := range tc.peers {
				p := peer.ID(s.peer)
				for i := 0; i < s.conns; i++ {
					id++
					age := s.age
					if i < s.young {
						age = time.Second
					}
					c := &fakeConn{id: id, p: p, opened: base.Add(-age)}
					m.Connected(c)
					byPeer[s.peer] = append(byPeer[s.peer], c)
				}
				if s.tag != 0 {
					m.TagPeer(p, "t", s.tag)
				}
				if s.protect {
					m.Protect(p, "keep")
				}
				for proto, n := range s.streams {
					for i := 0; i < n; i++ {
						m.StreamOpened(byPeer[s.peer][0], proto)
					}
				}
			}
			m.TrimOpenConns(context.Background())
			for _, s := range tc.peers {
				for i, c := range byPeer[s.peer] {
					if c.IsClosed() != s.wantTrims {
						t.Errorf("peer %s conn %d: closed %v, want %v", s.peer, i, c.IsClosed(), s.wantTrims)
					}
				}
			}
		})
	}
}

func TestProtectionTags(t *testing.T) {
	m := New(Config{})
	p := peer.ID("p")
	m.Protect(p, "relay")
	m.Protect(p, "holepunch")
	if !m.IsProtected(p, "") || !m.IsProtected(p, "relay") {
		t.Fatal("not protected")
	}
	if !m.Unprotect(p, "relay") {
		t.Fatal("Unprotect(relay) says no protection left; holepunch remains")
	}
	if m.Unprotect(p, "holepunch") {
		t.Fatal("still protected after the last tag")
	}
	if len(m.peers) != 0 {
		t.Fatalf("a peer without connections, tags or protection is kept: %d records", len(m.peers))
	}
}

func TestForgetsDisconnected(t *testing.T) {
	m := New(Config{})
	var conns []*fakeConn
	for i := 0; i < 100; i++ {
		c := &fakeConn{id: uint64(i), p: peer.ID(fmt.Sprint("p", i%10))}
		m.Connected(c)
		m.StreamOpened(c, "/x")
		conns = append(conns, c)
	}
	for _, c := range conns {
		m.StreamClosed(c, "/x")
		m.Disconnected(c)
		m.Disconnected(c) // twice is harmless
	}
	if len(m.conns) != 0 || len(m.peers) != 0 {
		t.Fatalf("left %d conns and %d peers", len(m.conns), len(m.peers))
	}
}

// TestRunTrimsOnItsOwn checks that passing High wakes Run, which trims once
// the silence period allows.
func TestRunTrimsOnItsOwn(t *testing.T) {
	base := time.Now().Add(-time.Hour)
	m := New(Config{Low: 1, High: 2, SilencePeriod: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	var conns []*fakeConn
	for i := 0; i < 3; i++ {
		c := &fakeConn{id: uint64(i), p: peer.ID(fmt.Sprint("p", i)), opened: base.Add(time.Duration(i) * time.Second)}
		conns = append(conns, c)
		m.Connected(c)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := 0
		for _, c := range conns {
			if c.IsClosed() {
				n++
			}
		}
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 3 closed after 10 s, want 2", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The oldest stays (ties broken by age).
	if conns[0].IsClosed() || !slices.ContainsFunc(conns[1:], func(c *fakeConn) bool { return c.IsClosed() }) {
		t.Fatalf("closed the wrong ones: %v %v %v", conns[0].IsClosed(), conns[1].IsClosed(), conns[2].IsClosed())
	}
}
