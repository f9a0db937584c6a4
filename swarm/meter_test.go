package swarm

import (
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/protocol"
)

// nopStream reads zeros and swallows writes, allocation-free; reads fail
// with EOF once eofAfter bytes were read (0: never).
type nopStream struct {
	read, eofAfter int
}

func (s *nopStream) Read(p []byte) (int, error) {
	if s.eofAfter > 0 && s.read >= s.eofAfter {
		return 0, io.EOF
	}
	s.read += len(p)
	return len(p), nil
}
func (s *nopStream) Write(p []byte) (int, error)     { return len(p), nil }
func (s *nopStream) Close() error                    { return nil }
func (s *nopStream) CloseWrite() error               { return nil }
func (s *nopStream) CloseRead() error                { return nil }
func (s *nopStream) Reset() error                    { return nil }
func (s *nopStream) SetDeadline(time.Time) error     { return nil }
func (s *nopStream) SetReadDeadline(time.Time) error { return nil }
func (s *nopStream) SetWriteDeadline(time.Time) error {
	return nil
}

// countingTracer records what the swarm reports about streams.
type countingTracer struct {
	opened map[protocol.ID]int
	failed int
	meter  countingMeter
}

type countingMeter struct{ in, out, closed int }

func (m *countingMeter) AddBytes(in, out uint64) { m.in += int(in); m.out += int(out) }
func (m *countingMeter) StreamClosed()           { m.closed++ }

func (c *countingTracer) StreamOpened(_ network.Direction, p protocol.ID) StreamMeter {
	c.opened[p]++
	return &c.meter
}
func (c *countingTracer) NegotiationFailed(network.Direction) { c.failed++ }

// testConn is a connection of a swarm configured with cfg, enough to wrap
// streams.
func testConn(cfg Config) *Conn {
	return &Conn{s: &Swarm{cfg: cfg}}
}

func TestStreamMeter(t *testing.T) {
	for _, tc := range []struct {
		name              string
		proto             protocol.ID // "": never set
		write, read       int         // bytes, in 1 KiB calls
		eofAfter          int
		end               func(*Stream)
		wantIn, wantOut   int
		wantFailed        int
		wantOpenedUnder   protocol.ID
		wantClosedStreams int
	}{
		{"read to EOF, closed", "/p", 200 << 10, 70 << 10, 70 << 10, func(s *Stream) { s.Close() }, 70 << 10, 200 << 10, 0, "/p", 1},
		{"reader stopped early: only full 64 KiB", "/p", 0, 70 << 10, 0, func(s *Stream) { s.Close() }, 64 << 10, 0, 0, "/p", 1},
		{"reset loses what Write held", "/p", 10 << 10, 0, 0, func(s *Stream) { s.Reset() }, 0, 0, 0, "/p", 1},
		{"close write flushes", "/p", 10 << 10, 0, 0, func(s *Stream) { s.CloseWrite(); s.Reset() }, 0, 10 << 10, 0, "/p", 1},
		{"never negotiated", "", 0, 0, 0, func(s *Stream) { s.Reset() }, 0, 0, 1, "", 1},
		{"connection ended first", "/p", 0, 0, 0, func(s *Stream) { s.conn.endMeters(); s.Close() }, 0, 0, 0, "/p", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &countingTracer{opened: map[protocol.ID]int{}}
			c := testConn(Config{Streams: tr})
			s := c.wrap(&nopStream{eofAfter: tc.eofAfter}, network.DirOutbound)
			if tc.proto != "" {
				s.SetProtocol(tc.proto)
			}
			buf := make([]byte, 1<<10)
			for n := 0; n < tc.write; n += len(buf) {
				s.Write(buf)
			}
			for n := 0; n < tc.read; n += len(buf) {
				s.Read(buf)
			}
			if tc.eofAfter > 0 {
				if _, err := s.Read(buf); err != io.EOF {
					t.Fatalf("read after the end: %v", err)
				}
			}
			tc.end(s)
			m := tr.meter
			if m.in != tc.wantIn || m.out != tc.wantOut {
				t.Errorf("counted in %d out %d, want %d and %d", m.in, m.out, tc.wantIn, tc.wantOut)
			}
			if m.closed != tc.wantClosedStreams || tr.opened[tc.wantOpenedUnder] != 1 || len(tr.opened) != 1 {
				t.Errorf("opened %v, closed %d", tr.opened, m.closed)
			}
			if tr.failed != tc.wantFailed {
				t.Errorf("%d negotiation failures, want %d", tr.failed, tc.wantFailed)
			}
		})
	}
}

// TestStreamNoAllocsWithoutMetrics: without Config.Streams, a stream's
// life costs what it did before metrics existed (the Stream and its
// protocol), and Read and Write allocate nothing, with or without.
func TestStreamNoAllocsWithoutMetrics(t *testing.T) {
	buf := make([]byte, 512)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"off", Config{}},
		{"on", Config{Streams: &countingTracer{opened: map[protocol.ID]int{}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConn(tc.cfg)
			ms := &nopStream{}
			s := c.wrap(ms, network.DirInbound)
			s.SetProtocol("/p")
			if n := testing.AllocsPerRun(1000, func() {
				s.Write(buf)
				s.Read(buf)
			}); n != 0 {
				t.Errorf("Read and Write: %v allocations, want 0", n)
			}
		})
	}
	c := testConn(Config{})
	ms := &nopStream{}
	if n := testing.AllocsPerRun(1000, func() {
		s := c.wrap(ms, network.DirInbound)
		s.SetProtocol("/p")
		s.Write(buf)
		s.Read(buf)
		s.Close()
	}); n > 2 {
		t.Errorf("a stream's life without metrics: %v allocations, want at most 2 (the Stream, its protocol)", n)
	}
}

func BenchmarkStreamReadWrite(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  Config
	}{
		{"metrics-off", Config{}},
		{"metrics-on", Config{Streams: &countingTracer{opened: map[protocol.ID]int{}}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := testConn(bc.cfg).wrap(&nopStream{}, network.DirInbound)
			s.SetProtocol("/p")
			buf := make([]byte, 1024)
			b.ReportAllocs()
			b.SetBytes(2 * int64(len(buf)))
			for b.Loop() {
				s.Write(buf)
				s.Read(buf)
			}
		})
	}
}

// atomicMeter counts bytes from any goroutine.
type atomicMeter struct{ out atomic.Uint64 }

func (m *atomicMeter) AddBytes(_, out uint64) { m.out.Add(out) }
func (m *atomicMeter) StreamClosed()          {}

type atomicTracer struct{ m atomicMeter }

func (c *atomicTracer) StreamOpened(network.Direction, protocol.ID) StreamMeter { return &c.m }
func (c *atomicTracer) NegotiationFailed(network.Direction)                     {}

// TestStreamMeterCloseDuringWrite: Close may run while another goroutine
// writes, as a net.Conn allows (a TLS session closes its raw stream during
// a write); the written-byte count is shared by both (the race detector
// checks it) and no byte is counted twice.
func TestStreamMeterCloseDuringWrite(t *testing.T) {
	tr := &atomicTracer{}
	s := testConn(Config{Streams: tr}).wrap(&nopStream{}, network.DirOutbound)
	s.SetProtocol("/p")
	const writes = 200
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1<<10)
		for range writes {
			s.Write(buf)
		}
	}()
	s.Close()
	<-done
	s.flushOut()
	if got := tr.m.out.Load(); got != writes<<10 {
		t.Errorf("counted %d bytes written, want %d", got, writes<<10)
	}
}
