package webrtc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/stun/v3"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// halfOpenRequest is a valid first STUN binding request of a dialer that
// will never answer anything: a new attempt each time, with its own ufrag.
func halfOpenRequest(t *testing.T, i int) []byte {
	t.Helper()
	ufrag := fmt.Sprintf("%sflood%028d", ufragPrefixV1, i)
	m, err := stun.Build(stun.BindingRequest, stun.TransactionID,
		stun.NewUsername(ufrag+":"+ufrag),
		ice.AttrControlling(uint64(i)),
		ice.PriorityAttr(1),
		stun.NewShortTermIntegrity(ufrag),
		stun.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	return m.Raw
}

// listenerState counts the listener's handshakes and mux entries.
func listenerState(l *listener) (inFlight, ufrags, addrs int) {
	l.mux.mu.Lock()
	defer l.mux.mu.Unlock()
	return len(l.inFlight), len(l.mux.byUfrag), len(l.mux.byAddr)
}

// TestHandshakeFlood starts many ICE handshakes that never finish, from
// several addresses. The listener runs at most MaxInFlight of them, drops
// the rest without allocating a peer connection, forgets each after
// HandshakeTimeout, and then serves a real dialer.
func TestHandshakeFlood(t *testing.T) {
	leakcheck.Check(t)
	a, _ := newTransport(t)
	b, bID := newTransport(t)
	b.cfg.MaxInFlight = 4
	b.cfg.HandshakeTimeout = time.Second
	ln := listen(t, b, "/ip4/127.0.0.1/udp/0/webrtc-direct")
	l := ln.(*listener)
	raddr := l.mux.local
	// The mux routes by source address first, so each attempt needs its
	// own socket; the further ufrags on a socket go to its first attempt.
	for s := range 24 {
		c, err := net.DialUDP("udp4", nil, raddr)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			c.Write(halfOpenRequest(t, s*3+i))
		}
		// Not STUN, and STUN that is not a binding request: ignored.
		c.Write([]byte{0x16, 0xfe, 0xfd, 0, 0})
		junk, _ := stun.Build(stun.BindingSuccess, stun.TransactionID)
		c.Write(junk.Raw)
		c.Close()
	}
	time.Sleep(200 * time.Millisecond)
	inFlight, ufrags, _ := listenerState(l)
	if inFlight == 0 || inFlight > 4 {
		t.Fatalf("%d handshakes in flight after the flood, want 1..4", inFlight)
	}
	if ufrags > 4+pendingCandidates {
		t.Fatalf("the mux tracks %d ufrags, want at most %d", ufrags, 4+pendingCandidates)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		inFlight, ufrags, addrs := listenerState(l)
		if inFlight == 0 && ufrags == 0 && addrs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the handshake timeout: %d handshakes in flight, %d ufrags and %d addresses in the mux", inFlight, ufrags, addrs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c, s := connect(t, a, ln, bID)
	echoOnce(t, c, s)
}

// TestResetByReceiverMidTransfer: the reader resets while the writer is
// blocked on a full stream; the writer gets ErrReset, and the connection
// carries other streams afterwards.
func TestResetByReceiverMidTransfer(t *testing.T) {
	leakcheck.Check(t)
	c, s := pair(t)
	accepted := make(chan network.MuxedStream, 1)
	go func() {
		st, err := s.AcceptStream()
		if err == nil {
			accepted <- st
		}
	}()
	st, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wrote := make(chan error, 1)
	go func() {
		// Far more than the receive queue and send window hold: the write
		// blocks until the reset.
		_, err := st.Write(make([]byte, 32<<20))
		wrote <- err
	}()
	var rs network.MuxedStream
	select {
	case rs = <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("no stream accepted")
	}
	if _, err := io.ReadFull(rs, make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	rs.Reset()
	select {
	case err := <-wrote:
		if !errors.Is(err, network.ErrReset) {
			t.Fatalf("writer got %v, want ErrReset", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("writer still blocked 10 s after the peer's reset")
	}
	if _, err := rs.Read(make([]byte, 1)); !errors.Is(err, network.ErrReset) {
		t.Fatalf("read after own reset: %v", err)
	}
	st.Close()
	echoOnce(t, c, s)
}

// TestOversizedSCTPMessage: one data channel message above 16 KiB (not a
// frame split over several) resets the stream with errOversized, and the
// connection carries other streams afterwards.
func TestOversizedSCTPMessage(t *testing.T) {
	leakcheck.Check(t)
	// The dialer ignores the listener's max-message-size, as a hostile
	// peer would.
	c, s := func() (network.TransportConn, network.TransportConn) {
		answerMaxMessageSize = 4 * maxMessageSize
		defer func() { answerMaxMessageSize = maxMessageSize }()
		return pair(t)
	}()
	got := make(chan error, 1)
	go func() {
		st, err := s.AcceptStream()
		if err != nil {
			got <- err
			return
		}
		_, err = io.ReadAll(st)
		got <- err
	}()
	st, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.(*stream).rwc.Write(make([]byte, maxMessageSize+1)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if !errors.Is(err, network.ErrReset) || !errors.Is(err, errOversized) {
			t.Fatalf("receiver got %v, want ErrReset and errOversized", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("receiver still reading 10 s after an oversized message")
	}
	st.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := st.Read(make([]byte, 1)); !errors.Is(err, network.ErrReset) {
		t.Fatalf("sender got %v, want the peer's reset", err)
	}
	echoOnce(t, c, s)
}

// TestStreamReadersEndWithConnOpen: once streams are closed or reset, their
// readers (draining what the peer still sent) end while the connection
// stays open, so a long-lived connection does not accumulate them.
func TestStreamReadersEndWithConnOpen(t *testing.T) {
	leakcheck.Check(t)
	c, s := pair(t)
	echoOnce(t, c, s)
	echoOnce(t, s, c)
	// A reset in the middle of a transfer, from each side.
	for _, resetter := range []string{"writer", "reader"} {
		accepted := make(chan network.MuxedStream, 1)
		go func() {
			st, err := s.AcceptStream()
			if err == nil {
				accepted <- st
			}
		}()
		st, err := c.OpenStream(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		go st.Write(make([]byte, 4<<20))
		rs := <-accepted
		io.ReadFull(rs, make([]byte, 64<<10))
		if resetter == "writer" {
			st.Reset()
		} else {
			rs.Reset()
		}
		st.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		n := strings.Count(stacks, "webrtc.(*stream).readLoop")
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			var left []string
			for _, g := range strings.Split(stacks, "\n\n") {
				if strings.Contains(g, "webrtc.(*stream).readLoop") {
					left = append(left, g)
				}
			}
			t.Fatalf("%d stream readers still running 5 s after their streams closed:\n%s", n, strings.Join(left, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	echoOnce(t, c, s)
}

// TestPeerKeepsClosedChannelOpen: a peer that goes on sending on a channel
// this side reset, instead of closing its half, loses the connection after
// drainTimeout rather than keeping a reader (and pion's buffer) forever.
func TestPeerKeepsClosedChannelOpen(t *testing.T) {
	leakcheck.Check(t)
	testDrainTimeout.Store(int64(500 * time.Millisecond))
	defer testDrainTimeout.Store(0)
	c, s := pair(t)
	// A raw channel on the dialer: no stream logic that would close it.
	dc, err := c.(*Conn).pc.CreateDataChannel("", nil)
	if err != nil {
		t.Fatal(err)
	}
	rwc, err := detachWhenOpen(context.Background(), dc, c.(*Conn).done)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	st.Reset()
	stop := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		frame := []byte{0x03, 0x12, 0x01, 'x'} // a message with 1 payload byte
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := rwc.Write(frame); err != nil {
				return
			}
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !s.IsClosed() {
		if time.Now().After(deadline) {
			close(stop)
			t.Fatal("listener still open 10 s after the peer kept a reset channel open")
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	<-writerDone
	rwc.Close()
}
