// Package yamux implements the yamux stream multiplexer (/yamux/1.0.0) as
// specified in libp2p/specs yamux/README.md, byte-compatible with go-yamux,
// rust-yamux and js-libp2p-yamux.
//
// Design, chosen for throughput and for cheap idle sessions:
//
//   - One goroutine per session reads frames and dispatches them. It never
//     blocks on a write: frames it must send (ping replies, RSTs for refused
//     streams) go to a control queue.
//   - Writes happen on the writing goroutine itself. A one-slot semaphore
//     (wsem) owns the connection; its holder first flushes the control queue,
//     then its own frame, in one conn.Write. When the reader queues a control
//     frame and nobody holds wsem, it starts a short-lived flusher goroutine.
//   - Keepalive is a timer, not a goroutine. An idle session therefore costs
//     one goroutine and about a KiB: it holds no read buffer while blocked
//     (frameReader).
//   - Receive windows start at 256 KiB and double (up to MaxStreamWindow)
//     when a whole window is consumed within four round trips, as go-yamux
//     does; the round trip comes from pings.
//   - With a network.ConnScope, every stream is admitted by it, and the
//     memory held for unread data is reserved against it buffer by buffer
//     (a buffer's capacity, as it is allocated; released as the reader
//     drains it). A window grows past 256 KiB only once the whole grown
//     window is reserved, and keeps that reservation while the stream can
//     receive, so data the peer may send always fits; a stream whose data
//     cannot be reserved is reset, the session lives on.
//   - A stream that ends before it is accepted leaves the accept queue at
//     once, so an open+reset flood queues nothing. A peer that keeps
//     opening streams a limit refuses (MaxRefusedStreams within a second)
//     is closed with GoAway(protocol error), and a scope that implements
//     Abuser hears of it (limits penalises the peer's address).
package yamux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/internal/logs"
)

const (
	// readBufSize is the read buffer of a burst (see frameReader): headers
	// and small frames are served from it, large payloads are read past it
	// straight into stream buffers.
	readBufSize = 4096
	// maxCtrlQueue bounds queued control frames; a peer that makes us
	// queue more (pings while not reading) gets the session closed.
	maxCtrlQueue = 64 << 10
	// goAwayTimeout bounds the GoAway written while closing.
	goAwayTimeout = time.Second
)

var _ network.MuxedConn = (*Session)(nil)

// Session is a yamux connection carrying many streams.
type Session struct {
	conn   net.Conn
	bw     buffersWriter // conn, if it is one
	cfg    Config
	client bool
	br     frameReader

	// wsem is a one-slot semaphore owning writes to conn; a channel rather
	// than a mutex so waiting for it can honour contexts and deadlines.
	wsem         chan struct{}
	lastDeadline time.Time // when the conn write deadline was last pushed (zero: disarmed); guarded by wsem
	lastWrite    time.Time // when the last write to conn started; guarded by wsem
	// whdr and wbufs hold a frame's header (and control frames) and the
	// buffers handed to bw, without allocating per frame; guarded by wsem.
	whdr  [16 * headerSize]byte
	wfin  [headerSize]byte
	wbufs [3][]byte

	ctrlMu      sync.Mutex
	ctrl        []byte // encoded control frames waiting for a writer
	ctrlPending atomic.Bool

	rtt atomic.Int64 // last measured round trip, ns; 0 until known
	// start is the origin of the session's clock (pendingPing.sent).
	start time.Time
	// first is the ping that measures the round trip at the start. It
	// waits for the session's first write and joins it; firstOut is set
	// when a writer takes it, which stamps its departure (guarded by
	// ctrlMu).
	first    *pendingPing
	firstOut bool
	// heard: a frame arrived since the last keepalive tick (keepaliveTick)
	heard atomic.Bool

	log   *slog.Logger
	scope network.ConnScope // nil: no limits
	// scopeMu orders calls on scope before its Close: they hold it for
	// reading and check scopeEnded, which the Close sets.
	scopeMu    sync.RWMutex
	scopeEnded bool

	mu      sync.Mutex
	streams map[uint32]*Stream // nil while there are none
	// nstreams is len(streams), for NumStreams without s.mu (a Read
	// growing its window asks it under the stream's lock).
	nstreams atomic.Int32
	nextID   uint64
	inbound  int // streams the peer opened that are still open
	unacked  int // streams we opened that the peer has not acknowledged
	// acceptQ holds inbound streams not yet accepted; a stream that ends
	// before Accept (the peer reset it) leaves it at once, so a peer that
	// opens and resets streams faster than we accept them queues nothing.
	acceptQ []*Stream
	// onAccept and onEnded, once HandleInbound set them, take inbound
	// streams instead of acceptQ and hear of the session's end; handMu
	// keeps accept calls from overlapping and orders them before onEnded.
	// out counts the streams handed over and not released; beyond maxOut
	// new streams wait in acceptQ (see ReleaseInbound).
	onAccept func(network.MuxedStream)
	onEnded  func(error)
	out      int
	fresh    []*Stream // new streams to hand over; the reader's alone
	// refused counts the SYNs refused for a limit since refusedSince; a
	// peer that makes us refuse more than MaxRefusedStreams within
	// refusalWindow is abusive (see refuseForLimit).
	refused      int
	refusedSince time.Time
	pings        map[uint32]*pendingPing // nil while none is outstanding
	pingID       uint32
	kaPing       uint32 // ID of the outstanding keepalive ping
	kaPending    bool
	localGoAway  bool // Close began: refuse new streams
	remoteGoAway bool
	closed       bool
	// readerDone is set, under handMu and mu, once the reader no longer
	// hands streams over (see onAccept).
	readerDone bool
	closeErr   error

	// acceptCh is signalled when acceptQ grows. Made by the first Accept
	// that waits: a session whose streams are handed over has none.
	acceptCh  chan struct{}
	backlogCh chan struct{} // signalled when unacked drops
	done      chan struct{} // closed on shutdown
	// The keepalive tick's place in keepalives (under its lock): when it
	// is due, how late it may run, and its heap index (-1: not scheduled).
	kaAt, kaLate time.Duration
	kaIdx        int
	wg           sync.WaitGroup // the reader and flusher goroutines
	handMu       sync.Mutex     // see onAccept
}

type pendingPing struct {
	sent atomic.Int64  // when it left, on the session's clock
	done chan struct{} // nil for internal pings
	rtt  time.Duration
}

// NewSession starts a yamux session over c. The client side (the dialer,
// or the TLS/Noise initiator) opens odd stream IDs, the server even ones.
// A nil cfg uses the defaults.
func NewSession(c net.Conn, isClient bool, cfg *Config) *Session {
	return NewSessionScope(c, isClient, cfg, nil)
}

// NewSessionScope is NewSession accounting streams and buffered data to
// scope (nil: no limits), which it closes, once, when the session ends.
func NewSessionScope(c net.Conn, isClient bool, cfg *Config, scope network.ConnScope) *Session {
	s := &Session{
		conn:      c,
		cfg:       cfg.withDefaults(),
		scope:     scope,
		client:    isClient,
		br:        frameReader{conn: c},
		wsem:      make(chan struct{}, 1),
		nextID:    2,
		backlogCh: make(chan struct{}, 1),
		done:      make(chan struct{}),
		start:     time.Now(),
		kaIdx:     -1, // not scheduled
	}
	s.log = logs.Or(s.cfg.Logger)
	s.bw, _ = c.(buffersWriter)
	if isClient {
		s.nextID = 1
	}
	// Measure the round trip once at the start: window auto-tuning needs it.
	// The ping is not flushed here but leaves with the session's first
	// write (a stream's first frame, an ACK, a window update, a keepalive),
	// which a new libp2p connection makes at once: measuring costs no
	// write, and the peer no read, of its own.
	// It is queued before anything can queue a frame (the reader's pong to
	// a ping already waiting, a keepalive), so that while it has not left
	// it heads the queue.
	s.first = &pendingPing{}
	s.mu.Lock()
	id := s.newPingLocked(s.first)
	s.appendControl(header{typ: typePing, flags: flagSYN, length: id}) // one frame: no overflow
	if s.cfg.KeepAliveInterval > 0 {
		// Armed before the reader starts, which may shut the session down
		// at once, and under s.mu, which the tick and shutdown also take.
		keepalives.schedule(s, s.cfg.KeepAliveInterval)
	}
	s.mu.Unlock()
	s.wg.Add(1)
	go s.readLoop()
	return s
}

// OpenStream opens a new stream; see Open.
func (s *Session) OpenStream(ctx context.Context) (network.MuxedStream, error) {
	st, err := s.Open(ctx)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// Open opens a new stream. Its SYN (a WindowUpdate carrying any window
// beyond 256 KiB) is queued to leave in the same write as the stream's first
// frame, or before a Read on it waits, so that opening costs no write of its
// own. Open never waits for the ACK (js-yamux acknowledges lazily), only
// while MaxAckBacklog streams are unacknowledged.
func (s *Session) Open(ctx context.Context) (*Stream, error) {
	var done func()
	if s.scope != nil {
		var err error
		if done, err = s.scopeOpenStream(network.DirOutbound); err != nil {
			return nil, fmt.Errorf("yamux: opening a stream: %w", err)
		}
	}
	st, err := s.open(ctx, done)
	if err != nil && done != nil {
		done()
	}
	return st, err
}

// open is Open once the scope admitted the stream; done goes with it.
func (s *Session) open(ctx context.Context, done func()) (*Stream, error) {
	s.mu.Lock()
	for {
		if s.closed {
			err := s.closeErr
			s.mu.Unlock()
			return nil, err
		}
		if s.localGoAway {
			s.mu.Unlock()
			return nil, ErrSessionClosed
		}
		if s.remoteGoAway {
			s.mu.Unlock()
			return nil, ErrRemoteGoAway
		}
		if s.unacked < s.cfg.MaxAckBacklog {
			break
		}
		s.mu.Unlock()
		s.tryFlush() // the peer cannot acknowledge SYNs still queued
		select {
		case <-s.backlogCh:
		case <-ctx.Done():
			return nil, fmt.Errorf("yamux: waiting for the peer to acknowledge streams: %w", ctx.Err())
		case <-s.done:
		}
		s.mu.Lock()
	}
	if s.nextID > 1<<32-1 {
		s.mu.Unlock()
		return nil, ErrStreamsExhausted
	}
	id := uint32(s.nextID)
	s.nextID += 2
	st := newStream(s, id, false)
	st.scopeDone = done
	st.unacked = true
	s.addStreamLocked(st)
	s.unacked++
	if s.unacked < s.cfg.MaxAckBacklog {
		signal(s.backlogCh) // let the next waiter in
	}
	// Queue the SYN under s.mu so SYNs leave in stream-ID order. It is not
	// flushed here: the opener's first write takes it along (see Open).
	over := s.appendControl(header{typ: typeWindowUpdate, flags: flagSYN, stream: id, length: st.recvWindow - initialWindow})
	s.mu.Unlock()
	if over {
		s.shutdown(errCtrlOverflow)
		return nil, s.Err()
	}
	return st, nil
}

// AcceptStream waits for the peer to open a stream; see Accept.
func (s *Session) AcceptStream() (network.MuxedStream, error) {
	st, err := s.Accept()
	if err != nil {
		return nil, err
	}
	return st, nil
}

// Accept waits for the peer to open a stream and acknowledges it, granting
// the configured window. It returns an error once the session is closed,
// and at once when streams go to a HandleInbound function.
func (s *Session) Accept() (*Stream, error) {
	for {
		s.mu.Lock()
		if s.onAccept != nil { // acceptQ holds streams waiting to be handed over
			s.mu.Unlock()
			return nil, errHandedOver
		}
		if len(s.acceptQ) > 0 {
			st := s.acceptQ[0]
			s.acceptQ[0] = nil
			s.acceptQ = s.acceptQ[1:]
			if len(s.acceptQ) == 0 {
				s.acceptQ = nil // do not keep a burst's worth of backing array
			} else {
				signal(s.acceptCh)
			}
			st.queued = false
			s.mu.Unlock()
			st.sendACK()
			return st, nil
		}
		if s.closed {
			err := s.closeErr
			s.mu.Unlock()
			return nil, err
		}
		if s.acceptCh == nil {
			s.acceptCh = make(chan struct{}, 1)
		}
		grew := s.acceptCh
		s.mu.Unlock()
		select {
		case <-grew:
		case <-s.done:
		}
	}
}

// Ping sends a ping and returns the round trip once the peer echoes it.
func (s *Session) Ping(ctx context.Context) (time.Duration, error) {
	p := &pendingPing{done: make(chan struct{})}
	s.mu.Lock()
	if s.closed {
		err := s.closeErr
		s.mu.Unlock()
		return 0, err
	}
	id := s.newPingLocked(p)
	s.mu.Unlock()
	s.queueControl(header{typ: typePing, flags: flagSYN, length: id})
	s.tryFlush()
	select {
	case <-p.done:
		return p.rtt, nil
	case <-ctx.Done():
		s.mu.Lock()
		s.deletePingLocked(id)
		s.mu.Unlock()
		return 0, fmt.Errorf("yamux: waiting for ping reply: %w", ctx.Err())
	case <-s.done:
		return 0, s.Err()
	}
}

// Close sends GoAway (normal), closes the connection, unblocks every
// pending call and waits for the session's goroutines to exit.
func (s *Session) Close() error {
	return s.CloseWithError(GoAwayNormal)
}

// CloseWithError is Close with the given GoAway code (GoAwayNormal,
// GoAwayProtocolError, GoAwayInternalError or an application code).
func (s *Session) CloseWithError(code uint32) error {
	s.mu.Lock()
	first := !s.closed && !s.localGoAway
	s.localGoAway = true
	s.mu.Unlock()
	if first {
		s.sendGoAway(code)
	}
	s.shutdown(ErrSessionClosed)
	s.wg.Wait()
	return nil
}

// IsClosed reports whether the session has shut down.
func (s *Session) IsClosed() bool {
	return isClosed(s.done)
}

// Done is closed when the session shuts down, for any reason.
func (s *Session) Done() <-chan struct{} {
	return s.done
}

// Err is the reason the session shut down, or nil while it runs.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeErr
}

// NumStreams is the number of streams currently open.
func (s *Session) NumStreams() int { return int(s.nstreams.Load()) }

// shutdown closes the session with err without sending anything. It never
// waits, so any goroutine of the session may call it.
func (s *Session) shutdown(err error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.closeErr = err
	close(s.done)
	s.acceptQ = nil
	if s.cfg.KeepAliveInterval > 0 {
		keepalives.remove(s) // never waits for a running tick
	}
	s.mu.Unlock()
	s.conn.Close()
}

// sendGoAway writes GoAway with code, waiting at most goAwayTimeout: it is
// only used on the way out, where a stuck peer must not hold us up.
func (s *Session) sendGoAway(code uint32) {
	s.dropFirstPing()
	s.queueControl(header{typ: typeGoAway, length: code})
	t := time.NewTimer(goAwayTimeout)
	defer t.Stop()
	select {
	case s.wsem <- struct{}{}:
	case <-t.C:
		return
	case <-s.done:
		return
	}
	// The GoAway's own deadline: marked as pushed and written just now, so
	// that pushWriteDeadline neither moves it to WriteTimeout nor disarms
	// it.
	now := time.Now()
	_ = s.conn.SetWriteDeadline(now.Add(goAwayTimeout))
	s.lastDeadline, s.lastWrite = now, now
	_ = s.flushControlHeld()
	<-s.wsem
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// newPingLocked registers a ping and returns its opaque ID. s.mu is held.
func (s *Session) newPingLocked(p *pendingPing) uint32 {
	if p == nil {
		p = &pendingPing{}
	}
	if s.pings == nil {
		s.pings = make(map[uint32]*pendingPing)
	}
	s.pingID++
	p.sent.Store(s.clock())
	s.pings[s.pingID] = p
	return s.pingID
}

func (s *Session) keepaliveTick() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if s.kaPending {
		s.mu.Unlock()
		// Not on the shared ticker: closing may wait on the connection
		// (a TLS close_notify), and every session's tick waits behind it.
		s.shutdownAsync(ErrKeepAliveTimeout)
		return
	}
	if s.heard.Swap(false) {
		// A frame came within the interval: the peer is alive, and a
		// ping would only prove it again. Between two keepalive-running
		// peers (go-yamux pings every 30 s too) this halves the pings,
		// most of what an idle connection costs; the peer's own pings
		// get our pongs, which keep a NAT mapping warm. The next window
		// is an eighth longer: a peer pinging at our interval (go-yamux
		// does, every 30 s) but a little later than our ticks would fall
		// outside a window of one interval now and then and draw a ping
		// for nothing.
		keepalives.schedule(s, s.cfg.KeepAliveInterval+s.cfg.KeepAliveInterval/8)
		s.mu.Unlock()
		return
	}
	id := s.newPingLocked(nil)
	s.kaPing, s.kaPending = id, true
	// Re-armed under s.mu: shutdown removes the tick under it, so a tick
	// that saw the session open cannot re-arm a closed session.
	keepalives.schedule(s, s.cfg.KeepAliveInterval)
	s.mu.Unlock()
	if s.appendControl(header{typ: typePing, flags: flagSYN, length: id}) {
		s.shutdownAsync(errCtrlOverflow)
		return
	}
	s.spawnFlush()
}

// shutdownAsync is shutdown on a goroutine of the session's, for the
// keepalive ticker, which must not wait on one connection.
func (s *Session) shutdownAsync(err error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.shutdown(err)
	}()
}

// ---- writing ----

var errCtrlOverflow = errors.New("yamux: control queue overflow: peer is not reading")

// queueControl appends a control frame for the next writer to send.
func (s *Session) queueControl(h header) {
	if s.appendControl(h) {
		s.shutdown(errCtrlOverflow)
	}
}

// appendControl is queueControl for callers holding s.mu, which shutdown
// takes: it reports an overflow for the caller to act on after unlocking.
func (s *Session) appendControl(h header) (over bool) {
	s.ctrlMu.Lock()
	s.ctrl = appendHeader(s.ctrl, h)
	over = len(s.ctrl) > maxCtrlQueue
	s.ctrlMu.Unlock()
	s.ctrlPending.Store(true)
	return over
}

// tryFlush writes queued control frames on the calling goroutine unless
// another goroutine holds wsem, in which case that one flushes them when it
// releases (see release). It is for application goroutines, which may block.
func (s *Session) tryFlush() {
	for s.ctrlPending.Load() {
		select {
		case s.wsem <- struct{}{}:
		default:
			return
		}
		err := s.flushControlHeld()
		<-s.wsem
		if err != nil {
			return
		}
	}
}

// spawnFlush is tryFlush for the reader goroutine, which must never block
// on the connection: the write happens on a short-lived goroutine.
func (s *Session) spawnFlush() {
	if !s.ctrlPending.Load() {
		return
	}
	select {
	case s.wsem <- struct{}{}:
	default:
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.wsem
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		err := s.flushControlHeld()
		<-s.wsem
		if err == nil {
			s.tryFlush()
		}
	}()
}

// acquire takes wsem, giving up when the session closes or cancel fires.
func (s *Session) acquire(cancel <-chan struct{}) error {
	select {
	case s.wsem <- struct{}{}:
		return nil
	default:
	}
	select {
	case s.wsem <- struct{}{}:
		return nil
	case <-s.done:
		return s.Err()
	case <-cancel:
		return errDeadline
	}
}

// release gives up wsem and flushes control frames queued meanwhile.
func (s *Session) release() {
	<-s.wsem
	if s.ctrlPending.Load() {
		s.tryFlush()
	}
}

// takeControl moves the queued control frames onto b. wsem is held.
func (s *Session) takeControl(b []byte) []byte {
	s.ctrlMu.Lock()
	b = append(b, s.ctrl...)
	s.ctrl = s.ctrl[:0]
	if cap(s.ctrl) > 4096 {
		s.ctrl = nil // do not keep a burst's worth of memory around
	}
	s.ctrlPending.Store(false)
	// The first control frames taken include the first ping: it leaves now.
	// Under ctrlMu, so that dropFirstPing sees it either queued or gone.
	if !s.firstOut {
		s.firstOut = true
		s.first.sent.Store(s.clock())
	}
	s.ctrlMu.Unlock()
	return b
}

// dropFirstPing takes the first ping out of the queue if it has not left:
// a session closing before its first write sends GoAway alone, not a ping
// whose answer would reach a closed connection (and reset it).
func (s *Session) dropFirstPing() {
	s.ctrlMu.Lock()
	if !s.firstOut {
		s.firstOut = true
		s.ctrl = s.ctrl[:copy(s.ctrl, s.ctrl[headerSize:])] // it heads the queue
		s.ctrlPending.Store(len(s.ctrl) > 0)
	}
	s.ctrlMu.Unlock()
}

// clock is the time since the session started, monotonic.
func (s *Session) clock() int64 { return int64(time.Since(s.start)) }

// flushControlHeld writes the queued control frames. wsem is held.
func (s *Session) flushControlHeld() error {
	var small [16 * headerSize]byte
	b := s.takeControl(small[:0])
	if len(b) == 0 {
		return nil
	}
	return s.writeHeld(b)
}

// writeHeld writes b to the connection. wsem is held. Any failure is fatal
// to the session: a frame may have been cut in half.
func (s *Session) writeHeld(b []byte) error {
	disarm := s.pushWriteDeadline()
	if _, err := s.conn.Write(b); err != nil {
		err = fmt.Errorf("yamux: writing to connection: %w", err)
		s.shutdown(err)
		return err
	}
	if disarm {
		s.disarmWriteDeadline()
	}
	return nil
}

// writeHeldBuffers is writeHeld for a buffersWriter connection.
func (s *Session) writeHeldBuffers(bufs [][]byte) error {
	disarm := s.pushWriteDeadline()
	if _, err := s.bw.WriteBuffers(bufs); err != nil {
		err = fmt.Errorf("yamux: writing to connection: %w", err)
		s.shutdown(err)
		return err
	}
	if disarm {
		s.disarmWriteDeadline()
	}
	return nil
}

// pushWriteDeadline arms the connection's write deadline for a write
// about to start and reports whether the caller must disarm it once the
// write returns. wsem is held.
//
// A session that writes often pushes the deadline forward only every half
// WriteTimeout: each write still gets at least WriteTimeout/2, without a
// deadline change per frame, and the deadline expires unobserved once
// after the last write of a burst. A session that had not written for a
// WriteTimeout writes rarely (an idle connection's pong or keepalive
// ping): a deadline left armed after each of its writes would expire
// after each of them, and every expiry wakes the runtime's poller for
// nothing. Its write gets a deadline of its own, disarmed afterwards.
func (s *Session) pushWriteDeadline() (disarm bool) {
	if s.cfg.WriteTimeout <= 0 {
		return false
	}
	now := time.Now()
	disarm = now.Sub(s.lastWrite) > s.cfg.WriteTimeout
	s.lastWrite = now
	if disarm || now.Sub(s.lastDeadline) > s.cfg.WriteTimeout/2 {
		_ = s.conn.SetWriteDeadline(now.Add(s.cfg.WriteTimeout))
		s.lastDeadline = now
	}
	return disarm
}

// disarmWriteDeadline removes the write deadline after a lone write; the
// next write arms it again. wsem is held.
func (s *Session) disarmWriteDeadline() {
	_ = s.conn.SetWriteDeadline(time.Time{})
	s.lastDeadline = time.Time{}
}

var writeBufPool = sync.Pool{New: func() any { return new([]byte) }}

// buffersWriter is a connection that writes several buffers in one go
// more cheaply than one buffer they were copied into: security/tls.Conn
// seals each in records of its own and writes them with one system call.
type buffersWriter interface {
	WriteBuffers(bufs [][]byte) (int, error)
}

// minVectorPayload is the payload from which a data frame goes to a
// buffersWriter as header and payload, not joined by a copy: below it the
// copy costs less than a record of its own for the header.
const minVectorPayload = 4 << 10

// writeData sends one data frame for stream id, preceded by any queued
// control frames and, with fin, followed by the stream's FIN, in a single
// write.
//
// The FIN is a WindowUpdate of its own, never a flag on the data frame:
// js-libp2p (3.x) closes a stream's readable end when a frame with data and
// FIN arrives, and then fails to hand back the bytes its multistream-select
// read past the echo ("Cannot push data onto a stream that is closed"), so
// an answer and its FIN in one frame break every js dialer's negotiation.
// In one write with the data they still cost no system call of their own.
func (s *Session) writeData(id uint32, p []byte, fin bool, cancel <-chan struct{}) error {
	if err := s.acquire(cancel); err != nil {
		return err
	}
	var err error
	if s.bw != nil && len(p) >= minVectorPayload {
		b := s.whdr[:0]
		if s.ctrlPending.Load() {
			b = s.takeControl(b)
		}
		b = appendHeader(b, header{typ: typeData, stream: id, length: uint32(len(p))})
		s.wbufs = [3][]byte{b, p}
		bufs := s.wbufs[:2]
		if fin {
			s.wbufs[2] = appendHeader(s.wfin[:0], header{typ: typeWindowUpdate, flags: flagFIN, stream: id})
			bufs = s.wbufs[:3]
		}
		err = s.writeHeldBuffers(bufs)
		s.wbufs = [3][]byte{} // the payload is the caller's
	} else {
		bp := writeBufPool.Get().(*[]byte)
		b := (*bp)[:0]
		if s.ctrlPending.Load() {
			b = s.takeControl(b)
		}
		b = appendHeader(b, header{typ: typeData, stream: id, length: uint32(len(p))})
		b = append(b, p...)
		if fin {
			b = appendHeader(b, header{typ: typeWindowUpdate, flags: flagFIN, stream: id})
		}
		err = s.writeHeld(b)
		*bp = b[:0]
		writeBufPool.Put(bp)
	}
	s.release()
	return err
}

// ---- reading ----

func (s *Session) readLoop() {
	err := s.recvLoop()
	s.br.release()
	if errors.Is(err, ErrProtocol) {
		s.mu.Lock()
		s.localGoAway = true
		s.mu.Unlock()
		s.sendGoAway(GoAwayProtocolError)
	}
	s.shutdown(err)
	s.mu.Lock()
	streams := s.streams
	s.streams = nil
	s.nstreams.Store(0)
	var dones []func()
	for _, st := range streams {
		if st.scopeDone != nil {
			dones = append(dones, st.scopeDone)
			st.scopeDone = nil
		}
	}
	s.mu.Unlock()
	for _, st := range streams {
		st.release()
	}
	for _, done := range dones {
		done()
	}
	s.endScope()
	ended, err := s.stopHandOver()
	// Done before ended, which may Close the session: Close waits for wg.
	s.wg.Done()
	if ended != nil {
		ended(err)
	}
}

func (s *Session) recvLoop() error {
	for {
		if len(s.fresh) > 0 && s.br.buffered() < headerSize {
			s.handOverFresh() // before waiting for the network
		}
		b, err := s.br.Peek(headerSize)
		if err != nil {
			if s.IsClosed() {
				return s.Err()
			}
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("yamux: connection closed by peer: %w", err)
			}
			return fmt.Errorf("yamux: reading frame header: %w", err)
		}
		h, err := parseHeader(b)
		if err != nil {
			return err
		}
		if len(s.fresh) > 0 && h.typ == typeData && s.br.buffered() < headerSize+int(h.length) {
			s.handOverFresh() // before waiting for the rest of the payload
		}
		_, _ = s.br.Discard(headerSize)
		if !s.heard.Load() {
			s.heard.Store(true)
		}
		switch h.typ {
		case typeData, typeWindowUpdate:
			err = s.handleStreamFrame(h)
		case typePing:
			s.handlePing(h)
		case typeGoAway:
			err = s.handleGoAway(h)
		}
		if err != nil {
			return err
		}
	}
}

func (s *Session) handleStreamFrame(h header) error {
	var fresh *Stream // a new inbound stream for onAccept
	s.mu.Lock()
	st := s.streams[h.stream]
	if h.flags&flagSYN != 0 {
		if st != nil {
			s.mu.Unlock()
			return fmt.Errorf("%w: SYN for open stream %d", ErrProtocol, h.stream)
		}
		if (h.stream%2 == 1) == s.client {
			s.mu.Unlock()
			return fmt.Errorf("%w: peer opened stream %d with our parity", ErrProtocol, h.stream)
		}
		if s.localGoAway || s.closed {
			s.mu.Unlock()
			return s.refuseStream(h)
		}
		if s.inbound >= s.cfg.MaxIncomingStreams {
			s.mu.Unlock()
			return s.refuseForLimit(h, errTooManyStreams{s.cfg.MaxIncomingStreams})
		}
		var done func()
		if s.scope != nil {
			s.mu.Unlock()
			var err error
			if done, err = s.scopeOpenStream(network.DirInbound); err != nil {
				s.logRefusal("yamux: refused an inbound stream", h.stream, err)
				return s.refuseForLimit(h, err)
			}
			s.mu.Lock()
			if s.localGoAway || s.closed {
				s.mu.Unlock()
				done()
				return s.refuseStream(h)
			}
		}
		st = newStream(s, h.stream, true)
		st.scopeDone = done
		s.addStreamLocked(st)
		s.inbound++
		st.queued = true
		if s.onAccept != nil && s.out < maxOut {
			fresh = st
			st.out = true
			s.out++
		} else {
			s.acceptQ = append(s.acceptQ, st)
			signal(s.acceptCh)
		}
	}
	if h.flags&flagACK != 0 && st != nil && st.unacked {
		st.unacked = false
		s.unacked--
		signal(s.backlogCh)
	}
	s.mu.Unlock()
	if st == nil {
		// A stream that is already gone (reset, or closed both ways):
		// frames in flight are dropped.
		return s.discardData(h)
	}
	if h.typ == typeWindowUpdate {
		// go-yamux v5 puts an error code in the length of WindowUpdate|RST.
		if h.flags&flagRST == 0 {
			if err := st.addSendWindow(h.length); err != nil {
				return err
			}
		}
	} else if err := st.receive(h.length); err != nil {
		return err
	}
	if h.flags&flagRST != 0 {
		st.remoteReset()
	} else if h.flags&flagFIN != 0 {
		st.remoteFIN()
	}
	if fresh != nil {
		// Handed over once the reader has parsed what it holds, so that
		// the SYN's data awaits the stream's reader and a stream that the
		// same burst reset is not handed over (see handOverFresh).
		s.fresh = append(s.fresh, fresh)
	}
	return nil
}

// refuseStream answers a SYN with RST and skips the frame's payload.
func (s *Session) refuseStream(h header) error {
	s.queueControl(header{typ: typeWindowUpdate, flags: flagRST, stream: h.stream})
	s.spawnFlush()
	return s.discardData(h)
}

// refuseForLimit refuses a SYN that a limit does not admit, and closes the
// session, as abusive, once the peer has been refused more than
// MaxRefusedStreams streams within refusalWindow: a peer that keeps
// opening streams it is refused (a SYN flood) costs us a refusal per SYN
// for as long as we let it, where a well-behaved one waits for its streams
// to end. Only refusals count, never admitted streams, so a peer that
// opens and closes many streams within the limits is never closed. The
// scope, if it can (Abuse), makes the peer's address pay on reconnect.
func (s *Session) refuseForLimit(h header, cause error) error {
	if limit := s.cfg.MaxRefusedStreams; limit > 0 {
		now := time.Now()
		s.mu.Lock()
		if now.Sub(s.refusedSince) > refusalWindow {
			s.refused, s.refusedSince = 0, now
		}
		s.refused++
		n := s.refused
		s.mu.Unlock()
		if n > limit {
			err := &AbuseError{Refused: n, Window: refusalWindow, Last: cause}
			if a, ok := s.scope.(Abuser); ok {
				s.scopeMu.RLock()
				if !s.scopeEnded {
					a.Abuse(err)
				}
				s.scopeMu.RUnlock()
			}
			return err
		}
	}
	return s.refuseStream(h)
}

// refusalWindow is the window MaxRefusedStreams counts refusals in.
const refusalWindow = time.Second

// Abuser is implemented by a network.ConnScope that wants to hear when the
// session closes its connection for abuse (limits' scopes do: the peer's
// address is refused handshakes for a while). Abuse is called once, before
// the session closes.
type Abuser interface {
	Abuse(reason error)
}

// AbuseError is the reason a session closed a connection whose peer kept
// opening streams it was refused. It wraps ErrProtocol (the session sends
// GoAway with a protocol error) and the last refusal's cause, which names
// the limit.
type AbuseError struct {
	Refused int           // SYNs refused
	Window  time.Duration // within this long
	Last    error         // why the last one was refused
}

func (e *AbuseError) Error() string {
	return fmt.Sprintf("yamux: peer opened %d streams that were refused within %s (limit: MaxRefusedStreams); last refused: %v", e.Refused, e.Window, e.Last)
}

// Unwrap returns ErrProtocol and the last refusal's cause.
func (e *AbuseError) Unwrap() []error { return []error{ErrProtocol, e.Last} }

// errTooManyStreams refuses a SYN beyond Config.MaxIncomingStreams.
type errTooManyStreams struct{ max int }

func (e errTooManyStreams) Error() string {
	return fmt.Sprintf("yamux: the peer has %d streams open, the most Config.MaxIncomingStreams allows", e.max)
}

// refusals holds back refusal records beyond one a second, for all
// sessions: a flood of refused streams must not flood the log.
var refusals logs.Limiter

func (s *Session) logRefusal(msg string, id uint32, err error) {
	if !s.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	if ok, held := refusals.Allow(time.Second); ok {
		s.log.Debug(msg, "stream", id, "remote", s.conn.RemoteAddr(), "err", err, "refused_unlogged", held)
	}
}

// discardData skips the payload of a data frame for a stream we do not keep.
func (s *Session) discardData(h header) error {
	if h.typ != typeData || h.length == 0 {
		return nil
	}
	if h.length > s.cfg.MaxStreamWindow {
		return fmt.Errorf("%w: %d-byte data frame exceeds any window", ErrProtocol, h.length)
	}
	if _, err := s.br.Discard(int(h.length)); err != nil {
		return fmt.Errorf("yamux: reading frame payload: %w", err)
	}
	return nil
}

func (s *Session) handlePing(h header) {
	if h.flags&flagSYN != 0 {
		s.queueControl(header{typ: typePing, flags: flagACK, length: h.length})
		// On a listener's session without streams the pong is written
		// here, on the reader: what an idle inbound connection costs is
		// mostly its keepalive exchanges, and a flusher goroutine (and the
		// thread the scheduler wakes for it) costs more than the write.
		// The reader then waits on the peer reading, so the peer's reader
		// must never wait on ours: only the accepting side does this
		// (a dialer's reader, ours or go-yamux's, never blocks on a
		// write), and WriteTimeout ends the wait on a peer that stopped
		// reading. With streams, whose data may fill the connection for
		// long, or without a write timeout, a flusher writes it.
		s.mu.Lock()
		quiet := len(s.streams) == 0
		s.mu.Unlock()
		if quiet && !s.client && s.cfg.WriteTimeout > 0 {
			s.tryFlush()
		} else {
			s.spawnFlush()
		}
		return
	}
	if h.flags&flagACK == 0 {
		return
	}
	now := s.clock()
	s.mu.Lock()
	p := s.pings[h.length]
	s.deletePingLocked(h.length)
	if s.kaPending && h.length == s.kaPing {
		s.kaPending = false
	}
	s.mu.Unlock()
	if p == nil {
		return
	}
	p.rtt = time.Duration(now - p.sent.Load())
	s.rtt.Store(int64(p.rtt))
	if p.done != nil {
		close(p.done)
	}
}

func (s *Session) handleGoAway(h header) error {
	if h.length != GoAwayNormal {
		return &GoAwayError{Code: h.length}
	}
	s.mu.Lock()
	s.remoteGoAway = true
	s.mu.Unlock()
	signal(s.backlogCh)
	return nil
}

// addStreamLocked registers st; the map exists only while streams do.
func (s *Session) addStreamLocked(st *Stream) {
	if s.streams == nil {
		s.streams = make(map[uint32]*Stream)
	}
	s.streams[st.id] = st
	s.nstreams.Store(int32(len(s.streams)))
}

// deletePingLocked forgets ping id; the map exists only while pings are
// outstanding.
func (s *Session) deletePingLocked(id uint32) {
	delete(s.pings, id)
	if len(s.pings) == 0 {
		s.pings = nil
	}
}

// removeStream forgets a stream that is finished in both directions.
func (s *Session) removeStream(st *Stream) {
	var done func()
	s.mu.Lock()
	if s.streams[st.id] == st {
		delete(s.streams, st.id)
		s.nstreams.Store(int32(len(s.streams)))
		if len(s.streams) == 0 {
			s.streams = nil // an emptied map keeps its groups; idle sessions hold none
		}
		if st.inbound {
			s.inbound--
		}
		if st.queued {
			s.unqueueLocked(st)
		}
		if st.unacked {
			st.unacked = false
			s.unacked--
			signal(s.backlogCh)
		}
		done, st.scopeDone = st.scopeDone, nil
	}
	s.mu.Unlock()
	if done != nil {
		done()
	}
}

// unqueueLocked takes a stream that ended before Accept out of acceptQ;
// it is most likely the newest (SYN and RST in one burst), so the search
// starts at the back. s.mu is held.
func (s *Session) unqueueLocked(st *Stream) {
	st.queued = false
	for i := len(s.acceptQ) - 1; i >= 0; i-- {
		if s.acceptQ[i] == st {
			copy(s.acceptQ[i:], s.acceptQ[i+1:])
			s.acceptQ[len(s.acceptQ)-1] = nil
			s.acceptQ = s.acceptQ[:len(s.acceptQ)-1]
			break
		}
	}
	if len(s.acceptQ) == 0 {
		s.acceptQ = nil
	}
}

// ---- resource scope ----
// Calls on the scope hold scopeMu for reading, so that none follows its
// Close: a reader may drain buffered data after the session ended.

// scopeOpenStream admits a stream; the done func it returns releases it
// unless the scope is closed by then.
func (s *Session) scopeOpenStream(dir network.Direction) (func(), error) {
	s.scopeMu.RLock()
	defer s.scopeMu.RUnlock()
	if s.scopeEnded {
		return nil, ErrSessionClosed
	}
	done, err := s.scope.OpenStream(dir)
	if err != nil {
		return nil, err
	}
	return func() {
		s.scopeMu.RLock()
		if !s.scopeEnded {
			done()
		}
		s.scopeMu.RUnlock()
	}, nil
}

// reserve reserves n bytes against the scope, which must be set.
func (s *Session) reserve(n int64) error {
	s.scopeMu.RLock()
	defer s.scopeMu.RUnlock()
	if s.scopeEnded {
		return ErrSessionClosed
	}
	return s.scope.ReserveMemory(int(n))
}

// reserveLeaving reserves n bytes only if spare more would still fit; the
// scope must be set.
func (s *Session) reserveLeaving(n, spare int64) error {
	s.scopeMu.RLock()
	defer s.scopeMu.RUnlock()
	if s.scopeEnded {
		return ErrSessionClosed
	}
	return s.scope.ReserveMemoryLeaving(int(n), int(spare))
}

// unreserve returns n bytes to the scope, which must be set.
func (s *Session) unreserve(n int64) {
	s.scopeMu.RLock()
	if !s.scopeEnded {
		s.scope.ReleaseMemory(int(n))
	}
	s.scopeMu.RUnlock()
}

// endScope closes the scope, once; it runs when the reader exits.
func (s *Session) endScope() {
	if s.scope == nil {
		return
	}
	s.scopeMu.Lock()
	ended := s.scopeEnded
	s.scopeEnded = true
	s.scopeMu.Unlock()
	if !ended {
		s.scope.Close()
	}
}
