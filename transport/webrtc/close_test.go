package webrtc

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	pion "github.com/pion/webrtc/v4"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/internal/logs"
)

// peerGoneBound is how long TestPeerCloseNoticed lets a close take to be
// noticed: far above the ~1 ms it takes on loopback, far below the ICE
// disconnected timeout (20 s, see settingEngine) that notices a peer that
// vanished without a word (measured: 20 s on the listener, 30 s on the
// dialer, whose ICE checks run on the 15 s keepalive tick).
const peerGoneBound = 5 * time.Second

// TestPeerCloseNoticed: every way a pion peer ends a connection is noticed
// at once by the other side. pc.Close is what go-libp2p v0.51 does (an
// SCTP ABORT, then the DTLS close_notify, then ICE stops); the others send
// only one of the two, as a peer whose first packet is lost would.
func TestPeerCloseNoticed(t *testing.T) {
	ways := []struct {
		name  string
		close func(c *Conn)
	}{
		{"pc.Close", func(c *Conn) { c.pc.Close() }},
		{"SCTP ABORT only", func(c *Conn) { c.pc.SCTP().Stop() }},
		{"DTLS close_notify only", func(c *Conn) { c.pc.SCTP().Transport().Stop() }},
	}
	for _, w := range ways {
		for _, listenerCloses := range []bool{false, true} {
			name := w.name + "/dialer closes"
			if listenerCloses {
				name = w.name + "/listener closes"
			}
			t.Run(name, func(t *testing.T) {
				leakcheck.Check(t)
				c, s := pair(t)
				closer, other := c.(*Conn), s.(*Conn)
				if listenerCloses {
					closer, other = other, closer
				}
				w.close(closer)
				noticed := make(chan error, 1)
				go func() {
					_, err := other.AcceptStream()
					noticed <- err
				}()
				select {
				case err := <-noticed:
					if !errors.Is(err, ErrConnClosed) {
						t.Fatalf("AcceptStream: %v, want ErrConnClosed", err)
					}
				case <-time.After(peerGoneBound):
					other.Close() // ends the AcceptStream
					t.Fatalf("the close was not noticed in %v", peerGoneBound)
				}
				if !other.IsClosed() {
					t.Fatal("IsClosed is false after the peer closed")
				}
			})
		}
	}
}

// TestMuxKeepsNewestWhenFull: when a connection's queue in the listener's
// mux is full, a new datagram displaces the oldest. A peer that closes
// behind a backlog sends its SCTP ABORT and DTLS close_notify last;
// dropping the newest lost both, and only the ICE timeouts ended the
// connection, 20 s later (go-libp2p's close in the interop test, under CI
// load: the queue overflowed while it closed).
func TestMuxKeepsNewestWhenFull(t *testing.T) {
	leakcheck.Check(t)
	sock, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	m := newUDPMux(sock, sock.LocalAddr().(*net.UDPAddr), 1, logs.Or(nil))
	defer m.Close()
	peer, err := net.DialUDP("udp4", nil, m.local)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()

	// The binding request gives the peer's address its connection; the
	// test, not an ICE agent, reads the connection, only at the end.
	if _, err := peer.Write(halfOpenRequest(t, 0)); err != nil {
		t.Fatal(err)
	}
	var cand muxCandidate
	select {
	case cand = <-m.pending:
	case <-time.After(5 * time.Second):
		t.Fatal("the binding request made no connection attempt")
	}
	pc, err := m.GetConn(cand.creds.serverUfrag, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := pc.(*muxConn)

	// A backlog that fills the queue, then the peer's last two datagrams.
	// Sent in batches that the mux has routed before the next, so that
	// the socket's receive buffer never overflows.
	var sent []string
	for i := range muxConnQueue {
		sent = append(sent, fmt.Sprintf("backlog %d", i))
	}
	sent = append(sent, "abort", "close_notify")
	for i, d := range sent {
		if _, err := peer.Write([]byte(d)); err != nil {
			t.Fatal(err)
		}
		if i%64 == 63 || i == len(sent)-1 {
			want := int64(i + 2) // with the binding request
			waitUntil(t, fmt.Sprintf("the mux to route %d datagrams", want), func() bool { return c.in.Load() >= want })
		}
	}

	var got []string
	buf := make([]byte, muxPacketSize)
	for len(c.packets) > 0 {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(buf[:n]))
	}
	// The binding request and the two oldest of the backlog made room.
	want := sent[len(sent)-muxConnQueue:]
	if !slices.Equal(got, want) {
		t.Fatalf("queued %d datagrams, %q ... %q; want %q ... %q", len(got), head(got), tail(got), head(want), tail(want))
	}
	if d := c.dropped.Load(); d != 3 {
		t.Fatalf("%d dropped, want 3", d)
	}
}

func head(s []string) []string { return s[:min(2, len(s))] }
func tail(s []string) []string { return s[max(0, len(s)-2):] }

// TestHandshakeChannelWaitsForPeer: after Noise, a side leaves the
// handshake channel open until the peer has finished its half. Here the
// dialer half-closes 300 ms late; its channel must still be open then, not
// reset by the listener as soon as the dialer acknowledged the listener's
// FIN. (A peer whose late FIN raced that reset, js-libp2p in Node, sent it
// behind the reset, and pion took it for a new stream whose first message
// is not a DCEP open, ending its accept loop.)
func TestHandshakeChannelWaitsForPeer(t *testing.T) {
	leakcheck.Check(t)
	open := make(chan bool, 1)
	testBeforeHandshakeClose = func(listener bool, hs *stream) {
		if listener {
			return
		}
		time.Sleep(300 * time.Millisecond)
		hs.mu.Lock()
		closed := hs.closed
		hs.mu.Unlock()
		open <- !closed && hs.dc.ReadyState() == pion.DataChannelStateOpen
	}
	defer func() { testBeforeHandshakeClose = nil }()
	c, s := pair(t)
	if !<-open {
		t.Fatal("the dialer's handshake channel was closed before the dialer finished its half")
	}
	echoOnce(t, c, s)
}
