package swarm

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/netbuf"
)

// Conn is one connection to a peer. It implements network.Conn.
type Conn struct {
	tc        network.TransportConn
	s         *Swarm
	id        uint64
	opened    time.Time
	closeOnce sync.Once
	closeErr  error
	closed    atomic.Bool // Close was called
	streams   atomic.Int64
	// metered holds the streams with a meter to end when the connection
	// ends (Config.Streams set), so the streams gauge falls with the
	// connection even for streams nobody closed.
	smu     sync.Mutex
	metered map[*Stream]struct{}
	// hand is tc when it hands inbound streams over (set before the first
	// one, never changed after): they are released to it (see release).
	hand network.InboundStreams
}

// ID is unique among the swarm's connections.
func (c *Conn) ID() uint64 { return c.id }

// RemotePeer is the authenticated peer at the other end.
func (c *Conn) RemotePeer() peer.ID { return c.tc.RemotePeer() }

// LocalPeer is our ID.
func (c *Conn) LocalPeer() peer.ID { return c.tc.LocalPeer() }

// RemotePublicKey is the key the peer proved it holds.
func (c *Conn) RemotePublicKey() crypto.PubKey { return c.tc.RemotePublicKey() }

// RemoteMultiaddr is the peer's address for this connection.
func (c *Conn) RemoteMultiaddr() ma.Multiaddr { return c.tc.RemoteMultiaddr() }

// LocalMultiaddr is our address for this connection.
func (c *Conn) LocalMultiaddr() ma.Multiaddr { return c.tc.LocalMultiaddr() }

// ConnState tells what the connection negotiated.
func (c *Conn) ConnState() network.ConnState { return c.tc.ConnState() }

// Limited reports whether the connection is limited (relayed).
func (c *Conn) Limited() bool { return c.tc.ConnState().Limited }

// Direction tells who dialed.
func (c *Conn) Direction() network.Direction { return c.tc.Direction() }

// Opened is when the connection finished its upgrade.
func (c *Conn) Opened() time.Time { return c.opened }

// NumStreams is the number of streams open on the connection.
func (c *Conn) NumStreams() int { return int(c.streams.Load()) }

// IsClosed reports whether the connection is closed, by either side.
func (c *Conn) IsClosed() bool { return c.closed.Load() || c.tc.IsClosed() }

// Close closes the connection and every stream on it. The swarm's lists
// (Peers, Conns, ConnsToPeer) leave it out from now on; notifiees hear of
// it shortly after, when the muxer reports the end.
func (c *Conn) Close() error {
	c.closed.Store(true)
	c.closeOnce.Do(func() { c.closeErr = c.tc.Close() })
	return c.closeErr
}

// NewStream opens a stream on this connection. The stream has no protocol
// yet: the caller negotiates one and records it with SetProtocol.
func (c *Conn) NewStream(ctx context.Context) (*Stream, error) {
	ms, err := c.tc.OpenStream(ctx)
	if err != nil {
		return nil, fmt.Errorf("swarm: opening stream to %s: %w", c.RemotePeer(), err)
	}
	return c.wrap(ms, network.DirOutbound), nil
}

func (c *Conn) wrap(ms network.MuxedStream, dir network.Direction) *Stream {
	c.streams.Add(1)
	s := &Stream{MuxedStream: ms, conn: c, dir: dir}
	if c.s.cfg.Streams != nil {
		c.smu.Lock()
		if c.metered == nil {
			c.metered = make(map[*Stream]struct{})
		}
		c.metered[s] = struct{}{}
		c.smu.Unlock()
	}
	return s
}

// endMeters ends the meters of the streams still open when the connection
// ended.
func (c *Conn) endMeters() {
	t := c.s.cfg.Streams
	if t == nil {
		return
	}
	c.smu.Lock()
	left := c.metered
	c.metered = nil
	c.smu.Unlock()
	for s := range left {
		s.endMeter(t)
	}
}

// acceptStreams runs for the life of a connection whose muxer cannot hand
// inbound streams over itself (network.InboundStreams), waiting for them.
func (c *Conn) acceptStreams() {
	for {
		ms, err := c.tc.AcceptStream()
		if err != nil {
			c.ended(err)
			return
		}
		c.inbound(ms)
	}
}

// inbound hands a stream the peer opened to the swarm's handler, in a
// goroutine of its own: with network.InboundStreams it runs on the
// muxer's reader, which must not block.
func (c *Conn) inbound(ms network.MuxedStream) {
	st := c.wrap(ms, network.DirInbound)
	c.s.wg.Add(1) // the connection's own count is held until ended
	go func() {
		defer c.s.wg.Done()
		defer st.release()
		h := c.s.handler.Load()
		if h == nil {
			st.Reset()
			return
		}
		(*h)(st)
		st.finish()
	}()
}

// release tells a muxer that hands streams over that this inbound stream
// no longer counts against its bound of streams being negotiated (see
// network.InboundStreams): once its protocol is set, or its handler
// returned.
func (s *Stream) release() {
	if s.dir != network.DirInbound {
		return // outbound streams may come before hand is set
	}
	// Once, so that the handler's end after SetProtocol takes none of the
	// muxer's locks, which its reader also takes.
	if h := s.conn.hand; h != nil && !s.released.Swap(true) {
		h.ReleaseInbound(s.MuxedStream)
	}
}

// ended runs once when the connection ended, after the last inbound call:
// it closes the connection and takes it out of the swarm, which stops
// waiting for it.
func (c *Conn) ended(err error) {
	defer c.s.wg.Done()
	defer c.s.removeConn(c)
	defer c.endMeters()
	defer c.Close()
	if !c.closed.Load() { // not closed on this side
		c.s.cfg.Log.Debug("connection ended", "peer", c.RemotePeer(), "remote", c.RemoteMultiaddr(),
			"transport", c.tc.ConnState().Transport, "err", err)
	}
}

// Stream is a stream of a swarm connection. It implements network.Stream.
type Stream struct {
	network.MuxedStream
	conn     *Conn
	dir      network.Direction
	proto    atomic.Pointer[protocol.ID]
	doneOnce sync.Once
	ended    atomic.Bool // Close or Reset was called
	onDone   func()      // set once before use by SetOnDone; run at most once
	ahead    []byte      // read by ReadAhead, returned first by Read
	released atomic.Bool // release ran: the muxer heard of it once
	// meter gets the stream's byte counts once SetProtocol opened it
	// (Config.Streams). in is Read's alone; out is atomic because Close
	// (which flushes it) may run while another goroutine writes, as a
	// net.Conn allows (a TLS session closing its raw stream during a
	// write). mmu orders SetProtocol's write of meter with done's read,
	// which may come from another goroutine (a Reset).
	meter     StreamMeter
	in        uint64
	out       atomic.Uint64
	mmu       sync.Mutex
	meterDone bool // done ran: SetProtocol opens no meter any more
	// pending is what DeferWrite holds back for the next write; pmu is
	// held while it is written, and hasPending is cleared only after, so
	// a write that sees it clear cannot overtake it.
	pending    []byte
	hasPending atomic.Bool
	pmu        sync.Mutex
}

var _ network.Stream = (*Stream)(nil)

var _ network.Conn = (*Conn)(nil)

// Conn is the connection the stream belongs to.
func (s *Stream) Conn() network.Conn { return s.conn }

// Protocol is the protocol negotiated on the stream, if any yet.
func (s *Stream) Protocol() protocol.ID {
	if p := s.proto.Load(); p != nil {
		return *p
	}
	return ""
}

// SetProtocol records the negotiated protocol. Call it before the stream
// is in use by another goroutine. With Config.Streams set, it opens the
// stream's meter under p (the first protocol set wins); a stream that ends
// without one counts under protocol "".
func (s *Stream) SetProtocol(p protocol.ID) {
	s.proto.Store(&p)
	if t := s.conn.s.cfg.Streams; t != nil {
		s.mmu.Lock()
		if s.meter == nil && !s.meterDone {
			s.meter = t.StreamOpened(s.dir, p)
		}
		s.mmu.Unlock()
	}
	s.release()
}

func (s *Stream) LocalPeer() peer.ID            { return s.conn.LocalPeer() }
func (s *Stream) RemotePeer() peer.ID           { return s.conn.RemotePeer() }
func (s *Stream) RemoteMultiaddr() ma.Multiaddr { return s.conn.RemoteMultiaddr() }
func (s *Stream) LocalMultiaddr() ma.Multiaddr  { return s.conn.LocalMultiaddr() }
func (s *Stream) Direction() network.Direction  { return s.dir }

// Read returns what ReadAhead read first, then reads from the muxer.
func (s *Stream) Read(p []byte) (int, error) {
	if len(s.ahead) > 0 {
		n := copy(p, s.ahead)
		s.ahead = s.ahead[n:]
		s.countIn(n, nil)
		return n, nil
	}
	if s.hasPending.Load() && s.Buffered() == 0 {
		// About to wait for the peer, who may be waiting for what we hold.
		// A failed write does not stop the read: the peer may have sent
		// its data and gone, and that data is still ours to read; the
		// muxer reports a reset or a closed session by itself.
		_, _, _ = s.writePending(nil, false, true)
	}
	n, err := s.MuxedStream.Read(p)
	s.countIn(n, err)
	return n, err
}

// copyBufLen is io.Copy's own buffer size.
const copyBufLen = 32 << 10

// copyBufs holds CopyStream's buffers.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufLen); return &b }}

// WriteTo copies the stream to w until EOF. It makes io.Copy from a stream
// (echo, proxy and relay handlers) take a pooled buffer, where io.Copy would
// allocate 32 KiB per call: more than a connection's whole set-up allocates.
//
// A type that embedded *Stream and read differently would get this WriteTo
// promoted, reading past its own Read: wrap a Stream as a network.Stream.
func (s *Stream) WriteTo(w io.Writer) (int64, error) { return CopyStream(w, s) }

// CopyStream copies r to w until EOF through a pooled buffer: io.Copy
// without its 32 KiB allocation, for a stream's WriteTo.
func CopyStream(w io.Writer, r io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var total int64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
			if m != n {
				return total, io.ErrShortWrite
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// countIn counts bytes read; they reach the meter every meterFlush bytes
// and when a Read fails (EOF included), which is when a reader stops.
func (s *Stream) countIn(n int, err error) {
	s.in += uint64(n)
	if s.meter != nil && (s.in >= meterFlush || err != nil && s.in > 0) {
		s.meter.AddBytes(s.in, 0)
		s.in = 0
	}
}

// DeferWrite holds b back to go out ahead of the stream's next write, in
// the same frame when it is small, or by itself when a Read is about to wait
// or the stream is closed; a Reset drops it. The host defers a multistream
// echo this way so that it rides with the handler's answer. Call it before
// the stream is in use by another goroutine.
func (s *Stream) DeferWrite(b []byte) {
	s.pending = b
	s.hasPending.Store(true)
}

// maxJoined bounds the write that a deferred prefix is copied in front of;
// a larger one goes after the prefix, in a write of its own.
const maxJoined = 16 << 10

// writePending writes what DeferWrite held, joined with p unless alone or p
// is large (with final, as the stream's last data and the half-close). ok
// means p was dealt with (written, or the write failed): n and err are the
// caller's answer. Otherwise p is still the caller's to write: nothing was
// held any more, or the held bytes went out alone.
func (s *Stream) writePending(p []byte, final, alone bool) (n int, ok bool, err error) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if !s.hasPending.Load() {
		return 0, false, nil
	}
	pre := s.pending
	joined := !alone && len(p) <= maxJoined
	buf := pre
	if joined {
		buf = append(pre[:len(pre):len(pre)], p...)
	}
	var m int
	if final && (joined || len(p) == 0) {
		m, err = network.WriteFinal(s.MuxedStream, buf)
	} else {
		m, err = s.MuxedStream.Write(buf)
	}
	s.out.Add(uint64(m))
	switch {
	case m >= len(pre):
		s.pending = nil
		s.hasPending.Store(false)
	case m > 0:
		// Part of the held bytes left: whatever is written next would be
		// read as the rest of them.
		s.pending = nil
		s.hasPending.Store(false)
		_ = s.MuxedStream.Reset()
	}
	// Nothing left (a deadline passed before the write began): the bytes
	// stay held, so that a later write still sends them first.
	if !joined {
		return 0, err != nil, err
	}
	return max(0, m-len(pre)), true, err
}

// Write writes to the muxer, counting the bytes for the meter.
func (s *Stream) Write(p []byte) (int, error) {
	if s.hasPending.Load() {
		if n, ok, err := s.writePending(p, false, false); ok {
			if s.meter != nil && (s.out.Load() >= meterFlush || err != nil) {
				s.flushOut()
			}
			return n, err
		}
	}
	n, err := s.MuxedStream.Write(p)
	out := s.out.Add(uint64(n))
	if s.meter != nil && (out >= meterFlush || err != nil) {
		s.flushOut()
	}
	return n, err
}

// WriteFinal writes p and half-closes the stream, in one frame when the
// muxer can (see network.FinalWriter).
func (s *Stream) WriteFinal(p []byte) (int, error) {
	if s.hasPending.Load() {
		if n, ok, err := s.writePending(p, true, false); ok {
			s.flushOut()
			return n, err
		}
	}
	n, err := network.WriteFinal(s.MuxedStream, p)
	s.out.Add(uint64(n))
	s.flushOut()
	return n, err
}

// flushOut hands the bytes written to the meter. Write calls it, and so
// do Close and CloseWrite (which may run while another goroutine writes:
// the swap counts each byte once). Bytes are thus counted every 64 KiB, when a
// Read or Write fails (EOF included), and on Close and CloseWrite; those
// of a reader that stopped before EOF, or written before a Reset, are not.
func (s *Stream) flushOut() {
	if s.meter == nil {
		return
	}
	if out := s.out.Swap(0); out > 0 {
		s.meter.AddBytes(0, out)
	}
}

// readAheadSize fits a multistream header, a proposal and the start of a
// request.
const readAheadSize = 256

// ReadAhead makes one Read from a muxer that cannot tell how much it holds
// (QUIC, WebTransport and WebRTC streams) and keeps the bytes for Read, so
// that Buffered can tell what arrived together: a multistream listener
// batches its header with its answer only when the proposal came with the
// dialer's header. It blocks like Read; a yamux stream needs none of this.
func (s *Stream) ReadAhead() error {
	if _, ok := s.MuxedStream.(netbuf.Bufferer); ok || len(s.ahead) > 0 {
		return nil
	}
	buf := make([]byte, readAheadSize)
	for {
		n, err := s.MuxedStream.Read(buf)
		if n > 0 {
			s.ahead = buf[:n]
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Buffered returns how many received bytes a Read would return without
// waiting, as far as the stream can tell.
func (s *Stream) Buffered() int {
	n := len(s.ahead)
	if b, ok := s.MuxedStream.(netbuf.Bufferer); ok {
		n += b.Buffered()
	}
	return n
}

func (s *Stream) done() {
	s.ended.Store(true)
	s.doneOnce.Do(func() {
		s.conn.streams.Add(-1)
		if s.onDone != nil {
			s.onDone()
		}
		if t := s.conn.s.cfg.Streams; t != nil {
			s.endMeter(t)
		}
	})
}

// endMeter closes the stream's meter, once; a stream that never got a protocol
// is counted now, as opened and closed under "", and as a failed
// negotiation.
func (s *Stream) endMeter(t StreamTracer) {
	s.mmu.Lock()
	m, ended := s.meter, s.meterDone
	s.meterDone = true
	s.mmu.Unlock()
	if ended {
		return // the connection ended first
	}
	c := s.conn
	c.smu.Lock()
	delete(c.metered, s)
	c.smu.Unlock()
	if m == nil {
		t.NegotiationFailed(s.dir)
		m = t.StreamOpened(s.dir, "")
	}
	m.StreamClosed()
}

// SetOnDone makes f run once when the stream is closed or reset, or when
// an inbound stream's handler returns. The host uses it to release what
// it accounted to the stream's protocol. Call it before the stream is in
// use by another goroutine; it replaces an earlier f.
func (s *Stream) SetOnDone(f func()) { s.onDone = f }

// finish ends an inbound stream whose handler returned: a stream the handler
// left open is closed (the peer reads what was written, then EOF), or reset
// if closing fails.
func (s *Stream) finish() {
	if s.ended.Load() {
		return
	}
	if err := s.Close(); err != nil {
		s.Reset()
	}
}

// Close closes both directions of the stream.
func (s *Stream) Close() error {
	if s.hasPending.Load() {
		_, _, _ = s.writePending(nil, true, false)
	}
	s.flushOut()
	s.done()
	return s.MuxedStream.Close()
}

// CloseWrite half-closes the stream: the peer reads EOF after what was
// written.
func (s *Stream) CloseWrite() error {
	if s.hasPending.Load() {
		if _, ok, err := s.writePending(nil, true, false); ok && err == nil {
			s.flushOut()
			return nil
		}
		// Nothing held any more, or the write failed: half-close all the
		// same, as asked.
	}
	s.flushOut()
	return s.MuxedStream.CloseWrite()
}

// Reset aborts the stream; what DeferWrite held is dropped.
func (s *Stream) Reset() error {
	s.hasPending.Store(false)
	s.done()
	return s.MuxedStream.Reset()
}
