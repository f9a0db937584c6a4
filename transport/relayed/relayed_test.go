package relayed

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/circuit"
	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

func newID(t testing.TB) peer.ID {
	t.Helper()
	k, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestSplitAddr(t *testing.T) {
	r, b := newID(t), newID(t)
	for _, tc := range []struct {
		addr   string
		relay  string // relay transport address, "" for none
		target peer.ID
		bad    bool
	}{
		{addr: "/ip4/1.2.3.4/tcp/1/p2p/" + r.String() + "/p2p-circuit/p2p/" + b.String(), relay: "/ip4/1.2.3.4/tcp/1", target: b},
		{addr: "/ip4/1.2.3.4/udp/1/quic-v1/p2p/" + r.String() + "/p2p-circuit", relay: "/ip4/1.2.3.4/udp/1/quic-v1"},
		{addr: "/p2p/" + r.String() + "/p2p-circuit/p2p/" + b.String(), target: b},
		{addr: "/ip4/1.2.3.4/tcp/1/p2p-circuit/p2p/" + b.String(), bad: true},                       // relay not named
		{addr: "/ip4/1.2.3.4/tcp/1/p2p/" + r.String(), bad: true},                                   // not relayed
		{addr: "/p2p/" + r.String() + "/p2p-circuit/p2p/" + b.String() + "/p2p-circuit", bad: true}, // two hops
		{addr: "/p2p/" + r.String() + "/p2p-circuit/ip4/1.2.3.4/tcp/1", bad: true},                  // junk after
		{addr: "/p2p/" + r.String() + "/p2p-circuit/webrtc/p2p/" + b.String(), bad: true},           // browser-to-browser, not ours
	} {
		relay, target, err := SplitAddr(ma.StringCast(tc.addr))
		if tc.bad {
			if err == nil {
				t.Errorf("%s: accepted", tc.addr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.addr, err)
			continue
		}
		if relay.ID != r || target != tc.target {
			t.Errorf("%s: relay %s target %s", tc.addr, relay.ID, target)
		}
		got := ""
		if len(relay.Addrs) == 1 {
			got = relay.Addrs[0].String()
		}
		if got != tc.relay {
			t.Errorf("%s: relay address %q, want %q", tc.addr, got, tc.relay)
		}
	}
}

func TestRelayAddrs(t *testing.T) {
	r, other := newID(t), newID(t)
	p := "/p2p/" + r.String()
	for _, tc := range []struct {
		name  string
		given []string
		conn  string
		want  []string
	}{
		{"public kept, loopback dropped", []string{"/ip4/1.2.3.4/tcp/1", "/ip4/127.0.0.1/tcp/1" + p}, "/ip4/1.2.3.4/tcp/1",
			[]string{"/ip4/1.2.3.4/tcp/1" + p}},
		{"loopback kept when reached over loopback", []string{"/ip4/127.0.0.1/tcp/1"}, "/ip4/127.0.0.1/tcp/1",
			[]string{"/ip4/127.0.0.1/tcp/1" + p}},
		{"other peer and relayed dropped, conn addr used", []string{"/ip4/1.2.3.4/tcp/1/p2p/" + other.String(), "/ip4/5.6.7.8/tcp/1" + p + "/p2p-circuit"},
			"/ip4/9.9.9.9/udp/1/quic-v1", []string{"/ip4/9.9.9.9/udp/1/quic-v1" + p}},
		{"duplicates once", []string{"/ip4/1.2.3.4/tcp/1", "/ip4/1.2.3.4/tcp/1" + p}, "", []string{"/ip4/1.2.3.4/tcp/1" + p}},
		{"unspecified dropped", []string{"/ip4/0.0.0.0/tcp/1"}, "", nil},
	} {
		var given []ma.Multiaddr
		for _, g := range tc.given {
			given = append(given, ma.StringCast(g))
		}
		var conn ma.Multiaddr
		if tc.conn != "" {
			conn = ma.StringCast(tc.conn)
		}
		got := relayAddrs(given, conn, r)
		var gs []string
		for _, a := range got {
			gs = append(gs, a.String())
		}
		if len(gs) != len(tc.want) || len(gs) > 0 && !equalStrings(gs, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, gs, tc.want)
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRefreshAt(t *testing.T) {
	now := time.Unix(1000000, 0)
	for _, tc := range []struct {
		ttl, before time.Duration
	}{
		{time.Hour, 5 * time.Minute},       // capped
		{4 * time.Minute, time.Minute},     // a quarter
		{8 * time.Second, 2 * time.Second}, // a quarter
	} {
		rv := &Reservation{Expire: now.Add(tc.ttl)}
		if got := rv.Expire.Sub(refreshAt(rv, now)); got != tc.before {
			t.Errorf("TTL %s: refresh %s before expiry, want %s", tc.ttl, got, tc.before)
		}
	}
}

// pipeStream is a network.Stream over one end of net.Pipe.
type pipeStream struct {
	pipeEnd
	conn network.Conn
}

type pipeEnd = net.Conn

func (s *pipeStream) CloseWrite() error             { return s.pipeEnd.Close() }
func (s *pipeStream) CloseRead() error              { return nil }
func (s *pipeStream) Reset() error                  { return s.pipeEnd.Close() }
func (s *pipeStream) Protocol() protocol.ID         { return circuit.StopID }
func (s *pipeStream) LocalPeer() peer.ID            { return "" }
func (s *pipeStream) RemotePeer() peer.ID           { return s.conn.RemotePeer() }
func (s *pipeStream) RemoteMultiaddr() ma.Multiaddr { return s.conn.RemoteMultiaddr() }
func (s *pipeStream) LocalMultiaddr() ma.Multiaddr  { return nil }
func (s *pipeStream) Direction() network.Direction  { return network.DirInbound }
func (s *pipeStream) Conn() network.Conn            { return s.conn }

// stubConn is the relay's connection as the STOP stream sees it.
type stubConn struct {
	network.Conn // nil: only the methods below are used
	relay        peer.ID
}

func (c stubConn) RemotePeer() peer.ID           { return c.relay }
func (c stubConn) RemoteMultiaddr() ma.Multiaddr { return ma.StringCast("/ip4/1.2.3.4/tcp/1") }
func (c stubConn) ConnState() network.ConnState  { return network.ConnState{Transport: "tcp"} }

// failUpgrader fails every upgrade, closing the raw connection as the
// real upgrader does.
type failUpgrader struct{}

func (failUpgrader) Upgrade(_ context.Context, raw net.Conn, _ network.Direction, _ peer.ID, _, _ ma.Multiaddr) (network.TransportConn, error) {
	raw.Close()
	return nil, errors.New("no upgrade in this test")
}

// HandleStop answers every bad or unexpected STOP message with a status or
// a reset, and always returns.
func TestHandleStopBadInput(t *testing.T) {
	leakcheck.Check(t)
	src := newID(t)
	good := (&circuit.StopMessage{Type: circuit.StopConnect, Peer: &circuit.Peer{ID: src}}).Marshal()
	for _, tc := range []struct {
		name   string
		in     []byte
		listen bool
		want   circuit.Status // 0: no answer, only a reset
	}{
		{"garbage", []byte{0x03, 0xff, 0xff, 0xff}, true, circuit.StatusMalformedMessage},
		{"no type", []byte{0x02, 0x20, 0x64}, true, circuit.StatusMalformedMessage},
		{"status instead of connect", (&circuit.StopMessage{Type: circuit.StopStatus, Status: circuit.StatusOK}).Marshal(), true, circuit.StatusUnexpectedMessage},
		{"connect without peer", (&circuit.StopMessage{Type: circuit.StopConnect}).Marshal(), true, circuit.StatusMalformedMessage},
		{"not listening", good, false, circuit.StatusConnectionFailed},
		{"oversized", append([]byte{0x80, 0x40}, make([]byte, 8192)...), true, 0},
		{"silent then gone", nil, true, 0},
		{"upgrade fails", good, true, circuit.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := New(failUpgrader{}, nil)
			if tc.listen {
				l, err := tr.Listen(ma.StringCast("/p2p-circuit"))
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
			}
			ours, theirs := net.Pipe()
			relay := newID(t)
			done := make(chan struct{})
			go func() {
				defer close(done)
				tr.HandleStop(&pipeStream{pipeEnd: ours, conn: stubConn{relay: relay}})
			}()
			theirs.SetDeadline(time.Now().Add(10 * time.Second))
			if len(tc.in) > 0 {
				// Prefix with the length unless the case is about the prefix.
				msg := tc.in
				if tc.name != "oversized" && tc.name != "garbage" {
					msg = append([]byte{byte(len(tc.in))}, tc.in...)
				}
				go theirs.Write(msg)
			} else {
				theirs.Close()
			}
			answer, _ := io.ReadAll(theirs)
			theirs.Close()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("HandleStop did not return")
			}
			if tc.want == 0 {
				if len(answer) != 0 {
					t.Errorf("answered %x, want only a reset", answer)
				}
				return
			}
			m, err := circuit.ReadStop(bytes.NewReader(answer))
			if err != nil {
				t.Fatalf("answer %x: %v", answer, err)
			}
			if m.Type != circuit.StopStatus || m.Status != tc.want {
				t.Errorf("answered %s %s, want STATUS %s", m.Type, m.Status, tc.want)
			}
		})
	}
}

// FuzzHandleStop: whatever a relay sends on a STOP stream, HandleStop
// returns, and what it answers, if anything, is one STOP STATUS.
func FuzzHandleStop(f *testing.F) {
	src := newID(f)
	f.Add(append([]byte{0}, (&circuit.StopMessage{Type: circuit.StopConnect, Peer: &circuit.Peer{ID: src}}).Marshal()...))
	f.Add([]byte{0x02, 0x08, 0x01})
	relay := newID(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		tr := New(failUpgrader{}, nil)
		l, err := tr.Listen(ma.StringCast("/p2p-circuit"))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ours, theirs := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			tr.HandleStop(&pipeStream{pipeEnd: ours, conn: stubConn{relay: relay}})
		}()
		// A complete message is answered at once; an incomplete one gets
		// no answer and ends when we hang up.
		theirs.SetDeadline(time.Now().Add(200 * time.Millisecond))
		go theirs.Write(in)
		var answer []byte
		buf := make([]byte, 512)
		for {
			n, err := theirs.Read(buf)
			answer = append(answer, buf[:n]...)
			if err != nil || len(answer) > 0 {
				break
			}
		}
		theirs.Close()
		<-done
		if len(answer) == 0 {
			return
		}
		m, err := circuit.ReadStop(bytes.NewReader(answer))
		if err != nil || m.Type != circuit.StopStatus || m.Status == circuit.StatusUnused {
			t.Fatalf("answered %x (%v)", answer, err)
		}
	})
}
