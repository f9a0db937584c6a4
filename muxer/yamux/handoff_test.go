package yamux

import (
	"errors"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// TestHandleInbound: streams opened before HandleInbound and after it reach
// accept, acknowledged; one reset in its SYN's burst does not; Accept fails
// meanwhile; ended runs once, after the peer hung up, and may Close.
func TestHandleInbound(t *testing.T) {
	leakcheck.Check(t)
	a, b := net.Pipe()
	raw := newRawPeer(t, b)
	s := NewSession(a, false, nil)
	defer s.Close()

	raw.write(header{typ: typeData, flags: flagSYN, stream: 1, length: 3}, []byte("abc"))
	for s.NumStreams() == 0 { // wait until the reader queued it
		runtime.Gosched()
	}
	accepted := make(chan network.MuxedStream, 8)
	endedCh := make(chan error) // closed by ended: a second call panics
	var endErr error
	var afterEnd atomic.Bool
	accept := func(ms network.MuxedStream) {
		if afterEnd.Load() {
			t.Error("accept called after ended")
		}
		accepted <- ms
	}
	ended := func(err error) {
		afterEnd.Store(true)
		endErr = err
		s.Close() // must not wait for the reader that runs this
		close(endedCh)
	}
	if !s.HandleInbound(accept, ended) {
		t.Fatal("HandleInbound = false on a live session")
	}
	if s.HandleInbound(accept, ended) {
		t.Fatal("second HandleInbound = true")
	}
	st1 := <-accepted
	if id := st1.(*Stream).StreamID(); id != 1 {
		t.Fatalf("first stream handed over: %d, want 1", id)
	}
	if h, _, _ := raw.next(); h != (header{typ: typeWindowUpdate, flags: flagACK, stream: 1}) {
		t.Fatalf("frame sent %v, want the ACK of stream 1", h)
	}
	if _, err := s.Accept(); !errors.Is(err, errHandedOver) {
		t.Fatalf("Accept after HandleInbound = %v, want errHandedOver", err)
	}
	s.mu.Lock()
	made := s.acceptCh != nil
	s.mu.Unlock()
	if made {
		t.Fatal("a session whose streams are handed over made the channel Accept waits on")
	}

	// Stream 3 ends in its SYN's burst; stream 5 is live.
	var burst []byte
	burst = appendHeader(burst, header{typ: typeData, flags: flagSYN | flagRST, stream: 3, length: 1})
	burst = append(burst, 'x')
	burst = appendHeader(burst, header{typ: typeData, flags: flagSYN | flagFIN, stream: 5, length: 2})
	burst = append(burst, "hi"...)
	if err := raw.writeRaw(burst); err != nil {
		t.Fatal(err)
	}
	st5 := <-accepted
	if id := st5.(*Stream).StreamID(); id != 5 {
		t.Fatalf("second stream handed over: %d, want 5 (3 was reset)", id)
	}
	if h, _, _ := raw.next(); h != (header{typ: typeWindowUpdate, flags: flagACK, stream: 5}) {
		t.Fatalf("frame sent %v, want the ACK of stream 5 only", h)
	}
	if got, err := io.ReadAll(st5); err != nil || string(got) != "hi" {
		t.Fatalf("stream 5 read %q, %v", got, err)
	}
	raw.write(header{typ: typeData, flags: flagFIN, stream: 1}, nil)
	if got, err := io.ReadAll(st1); err != nil || string(got) != "abc" {
		t.Fatalf("stream 1 read %q, %v", got, err)
	}

	b.Close() // the peer hangs up
	<-endedCh
	if endErr == nil || !errors.Is(endErr, s.Err()) {
		t.Fatalf("ended with %v, session error %v", endErr, s.Err())
	}
	if len(accepted) != 0 {
		t.Fatalf("%d more streams handed over", len(accepted))
	}
	if s.HandleInbound(accept, ended) {
		t.Fatal("HandleInbound = true on an ended session")
	}
}

// TestHandleInboundEndedSession: a session whose reader is done refuses
// HandleInbound, so that the caller falls back on AcceptStream, which fails.
func TestHandleInboundEndedSession(t *testing.T) {
	leakcheck.Check(t)
	a, b := net.Pipe()
	s := NewSession(a, false, nil)
	b.Close()
	<-s.Done()
	s.Close() // waits for the reader
	if s.HandleInbound(func(network.MuxedStream) { t.Error("accept called") }, func(error) { t.Error("ended called") }) {
		t.Fatal("HandleInbound = true after the reader ended")
	}
	if _, err := s.AcceptStream(); err == nil {
		t.Fatal("AcceptStream on an ended session succeeded")
	}
}
