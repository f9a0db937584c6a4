package peer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// yamux as libp2p/specs yamux/README.md describes it: 12-byte frames
// (version, type, flags, stream ID, length, big endian) over one secured
// connection; per-stream flow control with a 256 KiB initial window.

const (
	yamuxSpec = "yamux/README.md"

	typeData         = 0
	typeWindowUpdate = 1
	typePing         = 2
	typeGoAway       = 3

	flagSYN = 1
	flagACK = 2
	flagFIN = 4
	flagRST = 8

	yamuxHeaderLen = 12
	initialWindow  = 256 * 1024
	// maxFrame bounds the data frames this side sends.
	maxFrame = 64 * 1024
	// acceptBacklog bounds inbound streams not yet accepted, as the spec's
	// ACK backlog of 256 suggests; past it streams are reset.
	acceptBacklog = 256

	// splitBulk is the largest data payload Split writes byte by byte.
	splitBulk = 256

	goAwayNormal   = 0
	goAwayProtocol = 1
)

// ErrStreamReset is returned by stream operations after a RST either way.
var ErrStreamReset = errors.New("yamux: stream reset")

// ErrSessionClosed is returned once the session is over.
var ErrSessionClosed = errors.New("yamux: session closed")

// Yamux is one yamux session. Its read loop runs from NewYamux until the
// connection fails or Close, which waits for it.
type Yamux struct {
	conn     net.Conn
	w        io.Writer // conn, paced by mode
	client   bool
	mode     Mode
	remoteID string
	report   func(error) // records violations of the remote

	wmu sync.Mutex // one frame at a time on the wire

	mu         sync.Mutex
	streams    map[uint32]*yStream
	remoteIDs  map[uint32]bool // every ID the remote opened: no reuse
	remoteFINs map[uint32]bool // streams dropped after the remote's FIN
	nextID     uint32
	goAwayRecv bool
	goAwayCode uint32
	goAwaySent bool
	pings      map[uint32]chan struct{}
	nextPing   uint32
	err        error // why the session ended

	accept    chan *yStream
	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// NewYamux starts a session on conn; client picks odd stream IDs. Every
// violation of the spec by the remote is passed to report, and ends the
// session with GoAway(protocol error).
func NewYamux(conn net.Conn, client bool, mode Mode, remoteID string, report func(error)) *Yamux {
	s := &Yamux{
		conn:       conn,
		w:          Paced(conn, mode),
		client:     client,
		mode:       mode,
		remoteID:   remoteID,
		report:     report,
		streams:    make(map[uint32]*yStream),
		remoteIDs:  make(map[uint32]bool),
		remoteFINs: make(map[uint32]bool),
		pings:      make(map[uint32]chan struct{}),
		accept:     make(chan *yStream, acceptBacklog),
		done:       make(chan struct{}),
	}
	if client {
		s.nextID = 1
	} else {
		s.nextID = 2
	}
	s.wg.Add(1)
	go s.readLoop()
	return s
}

// RemoteID is the remote peer's ID.
func (s *Yamux) RemoteID() string { return s.remoteID }

// Done is closed when the session is over.
func (s *Yamux) Done() <-chan struct{} { return s.done }

// Err says why the session ended (nil while it runs).
func (s *Yamux) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// GoAway reports whether the remote sent GoAway, and its code.
func (s *Yamux) GoAway() (bool, uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.goAwayRecv, s.goAwayCode
}

// Close sends GoAway(normal), closes the connection and waits for the read
// loop.
func (s *Yamux) Close() error {
	s.sendGoAway(goAwayNormal)
	s.shutdown(ErrSessionClosed)
	s.wg.Wait()
	return nil
}

func (s *Yamux) sendGoAway(code uint32) {
	s.mu.Lock()
	sent := s.goAwaySent
	s.goAwaySent = true
	s.mu.Unlock()
	if sent {
		return
	}
	// A writer stuck on a remote that reads nothing must not hold GoAway
	// (and Close) back for ever.
	s.conn.SetWriteDeadline(time.Now().Add(time.Second))
	s.writeFrame(typeGoAway, 0, 0, code, nil)
}

// shutdown ends the session: it records why, closes the connection and
// wakes every waiter. It does not wait for the read loop (it may be it).
func (s *Yamux) shutdown(err error) {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.err = err
		streams := make([]*yStream, 0, len(s.streams))
		for _, st := range s.streams {
			streams = append(streams, st)
		}
		s.mu.Unlock()
		s.conn.Close()
		close(s.done)
		for _, st := range streams {
			st.wake()
		}
	})
}

// fail records a violation by the remote and ends the session loudly.
func (s *Yamux) fail(err error) {
	if s.report != nil {
		s.report(err)
	}
	s.sendGoAway(goAwayProtocol)
	s.shutdown(err)
}

func (s *Yamux) writeFrame(typ, flags uint8, id, length uint32, payload []byte) error {
	buf := make([]byte, yamuxHeaderLen, yamuxHeaderLen+len(payload))
	buf[0] = 0
	buf[1] = typ
	binary.BigEndian.PutUint16(buf[2:], uint16(flags))
	binary.BigEndian.PutUint32(buf[4:], id)
	binary.BigEndian.PutUint32(buf[8:], length)
	buf = append(buf, payload...)
	s.wmu.Lock()
	var err error
	if s.mode == Split && len(payload) > splitBulk {
		// Byte by byte, a MiB would take a million writes: the header
		// goes split, bulk data whole.
		if _, err = s.w.Write(buf[:yamuxHeaderLen]); err == nil {
			_, err = s.conn.Write(buf[yamuxHeaderLen:])
		}
	} else {
		_, err = s.w.Write(buf)
	}
	s.wmu.Unlock()
	if err != nil {
		err = fmt.Errorf("yamux: writing a frame: %w", err)
		s.shutdown(err)
	}
	return err
}

// OpenStream opens an outbound stream. Strict and Split send the SYN at
// once on an empty WindowUpdate (a stream opened without data); Pipelined
// sends it on the stream's first frame, usually its first data.
func (s *Yamux) OpenStream(ctx context.Context) (Stream, error) {
	s.mu.Lock()
	switch {
	case s.err != nil:
		s.mu.Unlock()
		return nil, s.err
	case s.goAwayRecv:
		s.mu.Unlock()
		return nil, errors.New("yamux: remote sent GoAway, no new streams")
	}
	id := s.nextID
	s.nextID += 2
	st := newYStream(s, id)
	st.needSYN = true
	s.streams[id] = st
	s.mu.Unlock()
	if s.mode != Pipelined {
		if err := st.sendFlags(typeWindowUpdate, 0); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// AcceptStream returns the next inbound stream. Strict and Split
// acknowledge it at once with an empty WindowUpdate; Pipelined puts the ACK
// on the stream's first frame.
func (s *Yamux) AcceptStream(ctx context.Context) (Stream, error) {
	select {
	case st := <-s.accept:
		if s.mode != Pipelined {
			if err := st.sendFlags(typeWindowUpdate, 0); err != nil {
				return nil, err
			}
		}
		return st, nil
	case <-s.done:
		return nil, s.Err()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Ping sends a yamux ping and waits for the remote's ACK of it.
func (s *Yamux) Ping(ctx context.Context) error {
	s.mu.Lock()
	s.nextPing++
	v := s.nextPing
	ch := make(chan struct{})
	s.pings[v] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pings, v)
		s.mu.Unlock()
	}()
	if err := s.writeFrame(typePing, flagSYN, 0, v, nil); err != nil {
		return err
	}
	select {
	case <-ch:
		return nil
	case <-s.done:
		return s.Err()
	case <-ctx.Done():
		return fmt.Errorf("yamux: waiting for the ping's ACK: %w", ctx.Err())
	}
}

func (s *Yamux) readLoop() {
	defer s.wg.Done()
	var hdr [yamuxHeaderLen]byte
	for {
		if _, err := io.ReadFull(s.conn, hdr[:]); err != nil {
			s.shutdown(fmt.Errorf("yamux: reading a frame: %w", err))
			return
		}
		typ := hdr[1]
		flags := binary.BigEndian.Uint16(hdr[2:])
		id := binary.BigEndian.Uint32(hdr[4:])
		length := binary.BigEndian.Uint32(hdr[8:])
		if hdr[0] != 0 {
			s.fail(violation(yamuxSpec+"#version-field", "frame version %d, want 0", hdr[0]))
			return
		}
		var err error
		switch typ {
		case typeData, typeWindowUpdate:
			err = s.streamFrame(typ, flags, id, length)
		case typePing:
			err = s.pingFrame(flags, length)
		case typeGoAway:
			s.mu.Lock()
			s.goAwayRecv, s.goAwayCode = true, length
			s.mu.Unlock()
		default:
			err = violation(yamuxSpec+"#type-field", "unknown frame type %d", typ)
		}
		if err != nil {
			if isViolation(err) {
				s.fail(err)
			} else {
				s.shutdown(err)
			}
			return
		}
	}
}

func (s *Yamux) pingFrame(flags uint16, v uint32) error {
	if flags&flagSYN != 0 {
		// The answer carries the same opaque value.
		return s.writeFrame(typePing, flagACK, 0, v, nil)
	}
	if flags&flagACK != 0 {
		s.mu.Lock()
		if ch := s.pings[v]; ch != nil {
			close(ch)
			delete(s.pings, v)
		}
		s.mu.Unlock()
	}
	return nil
}

// streamFrame handles a Data or WindowUpdate frame, reading its payload.
func (s *Yamux) streamFrame(typ uint8, flags uint16, id, length uint32) error {
	var payload []byte
	if typ == typeData && length > 0 {
		if length > initialWindow*64 {
			return violation(yamuxSpec+"#flow-control", "data frame of %d bytes on stream %d", length, id)
		}
		payload = make([]byte, length)
		if _, err := io.ReadFull(s.conn, payload); err != nil {
			return fmt.Errorf("yamux: reading %d bytes of data: %w", length, err)
		}
	}
	if id == 0 {
		return violation(yamuxSpec+"#streamid-field", "%s frame on stream 0, reserved for the session", frameName(typ))
	}
	s.mu.Lock()
	st := s.streams[id]
	if flags&flagSYN != 0 {
		remoteOdd := !s.client
		switch {
		case (id%2 == 1) != remoteOdd:
			s.mu.Unlock()
			return violation(yamuxSpec+"#streamid-field", "remote opened stream %d, of this side's parity (client odd, server even)", id)
		case s.remoteIDs[id]:
			s.mu.Unlock()
			return violation(yamuxSpec+"#opening-a-stream", "remote reused stream ID %d", id)
		}
		s.remoteIDs[id] = true
		st = newYStream(s, id)
		st.needACK = true
		s.streams[id] = st
		if s.goAwaySent {
			delete(s.streams, id)
			s.mu.Unlock()
			return s.writeFrame(typeWindowUpdate, flagRST, id, 0, nil)
		}
		select {
		case s.accept <- st:
		default:
			delete(s.streams, id)
			s.mu.Unlock()
			return s.writeFrame(typeWindowUpdate, flagRST, id, 0, nil)
		}
	}
	if st == nil {
		finned := s.remoteFINs[id]
		s.mu.Unlock()
		if finned && len(payload) > 0 {
			return violation(yamuxSpec+"#closing-a-stream", "%d bytes of data on stream %d after the remote's FIN", len(payload), id)
		}
		// A stream already reset or done: frames in flight are fine.
		return nil
	}
	s.mu.Unlock()
	return st.frame(typ, flags, length, payload)
}

func frameName(typ uint8) string {
	switch typ {
	case typeData:
		return "Data"
	case typeWindowUpdate:
		return "WindowUpdate"
	case typePing:
		return "Ping"
	case typeGoAway:
		return "GoAway"
	}
	return fmt.Sprintf("type-%d", typ)
}

// forget drops a finished stream; after a remote FIN, its ID is kept to
// catch data sent after it.
func (s *Yamux) forget(st *yStream, remoteFIN bool) {
	s.mu.Lock()
	if s.streams[st.id] == st {
		delete(s.streams, st.id)
		if remoteFIN {
			s.remoteFINs[st.id] = true
		}
	}
	s.mu.Unlock()
}

// yStream is one yamux stream.
type yStream struct {
	s  *Yamux
	id uint32

	mu         sync.Mutex
	buf        []byte // received, not yet read
	recvWindow uint32 // what the remote may still send
	consumed   uint32 // read by the application, not yet granted back
	sendWindow uint32
	needSYN    bool // the next frame opens the stream
	needACK    bool // the next frame acknowledges it
	remoteFIN  bool
	localFIN   bool
	readClosed bool
	reset      bool
	rdeadline  time.Time
	wdeadline  time.Time

	readable chan struct{}
	writable chan struct{}
}

func newYStream(s *Yamux, id uint32) *yStream {
	return &yStream{
		s:          s,
		id:         id,
		recvWindow: initialWindow,
		sendWindow: initialWindow,
		readable:   make(chan struct{}, 1),
		writable:   make(chan struct{}, 1),
	}
}

func (st *yStream) wake() {
	select {
	case st.readable <- struct{}{}:
	default:
	}
	select {
	case st.writable <- struct{}{}:
	default:
	}
}

// flagsLocked returns the SYN or ACK the next frame must carry.
func (st *yStream) flagsLocked() uint8 {
	var f uint8
	if st.needSYN {
		f |= flagSYN
		st.needSYN = false
	}
	if st.needACK {
		f |= flagACK
		st.needACK = false
	}
	return f
}

// sendFlags sends an empty frame of typ with the pending SYN/ACK and extra.
func (st *yStream) sendFlags(typ uint8, extra uint8) error {
	st.mu.Lock()
	f := st.flagsLocked() | extra
	st.mu.Unlock()
	return st.s.writeFrame(typ, f, st.id, 0, nil)
}

// frame applies a Data or WindowUpdate frame from the remote.
func (st *yStream) frame(typ uint8, flags uint16, length uint32, payload []byte) error {
	st.mu.Lock()
	if typ == typeData && len(payload) > 0 {
		if st.remoteFIN {
			st.mu.Unlock()
			return violation(yamuxSpec+"#closing-a-stream", "%d bytes of data on stream %d after the remote's FIN", len(payload), st.id)
		}
		if uint32(len(payload)) > st.recvWindow {
			st.mu.Unlock()
			return violation(yamuxSpec+"#flow-control", "%d bytes of data on stream %d with a window of %d", len(payload), st.id, st.recvWindow)
		}
		st.recvWindow -= uint32(len(payload))
		if !st.readClosed && !st.reset {
			st.buf = append(st.buf, payload...)
		}
	}
	if typ == typeWindowUpdate {
		st.sendWindow += length
	}
	if flags&flagFIN != 0 {
		st.remoteFIN = true
	}
	if flags&flagRST != 0 {
		st.reset = true
	}
	done := st.reset || (st.remoteFIN && st.localFIN)
	remoteFIN := st.remoteFIN
	st.mu.Unlock()
	st.wake()
	if done {
		st.s.forget(st, remoteFIN)
	}
	return nil
}

// wait blocks until ch is signalled, the deadline passes or the session
// ends.
func (st *yStream) wait(ch <-chan struct{}, deadline time.Time) error {
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ch:
	case <-st.s.done:
	case <-timeout:
		return os.ErrDeadlineExceeded
	}
	return nil
}

func (st *yStream) sessionErr() error {
	select {
	case <-st.s.done:
		if err := st.s.Err(); err != nil {
			return err
		}
		return ErrSessionClosed
	default:
		return nil
	}
}

// Read returns received data. Consumed bytes are granted back to the
// remote, but only once half the initial window has been consumed, and
// never beyond it: the window never exceeds 256 KiB, and no update goes out
// before the application read something.
func (st *yStream) Read(p []byte) (int, error) {
	for {
		st.mu.Lock()
		if len(st.buf) > 0 {
			n := copy(p, st.buf)
			st.buf = st.buf[n:]
			if len(st.buf) == 0 {
				st.buf = nil
			}
			st.consumed += uint32(n)
			var delta uint32
			var flags uint8
			if st.consumed >= initialWindow/2 && !st.remoteFIN && !st.reset {
				delta = st.consumed
				st.recvWindow += delta
				st.consumed = 0
				flags = st.flagsLocked()
			}
			st.mu.Unlock()
			if delta > 0 {
				if err := st.s.writeFrame(typeWindowUpdate, flags, st.id, delta, nil); err != nil {
					return n, err
				}
			}
			return n, nil
		}
		switch {
		case st.reset:
			st.mu.Unlock()
			return 0, ErrStreamReset
		case st.remoteFIN:
			st.mu.Unlock()
			return 0, io.EOF
		case st.readClosed:
			st.mu.Unlock()
			return 0, errors.New("yamux: read on a closed stream")
		}
		deadline := st.rdeadline
		st.mu.Unlock()
		if err := st.sessionErr(); err != nil {
			return 0, err
		}
		if err := st.wait(st.readable, deadline); err != nil {
			return 0, err
		}
	}
}

// Write sends p in data frames, within the window the remote granted.
func (st *yStream) Write(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		st.mu.Lock()
		switch {
		case st.reset:
			st.mu.Unlock()
			return total, ErrStreamReset
		case st.localFIN:
			st.mu.Unlock()
			return total, errors.New("yamux: write after close")
		}
		if st.sendWindow == 0 {
			deadline := st.wdeadline
			st.mu.Unlock()
			if err := st.sessionErr(); err != nil {
				return total, err
			}
			if err := st.wait(st.writable, deadline); err != nil {
				return total, err
			}
			continue
		}
		n := min(uint32(len(p)), st.sendWindow, maxFrame)
		st.sendWindow -= n
		flags := st.flagsLocked()
		st.mu.Unlock()
		if err := st.s.writeFrame(typeData, flags, st.id, n, p[:n]); err != nil {
			return total, err
		}
		total += int(n)
		p = p[n:]
	}
	return total, nil
}

// CloseWrite half-closes: a FIN on a zero-length Data frame (Pipelined,
// Split) or on an empty WindowUpdate (Strict); the spec allows both.
func (st *yStream) CloseWrite() error {
	st.mu.Lock()
	if st.localFIN || st.reset {
		st.mu.Unlock()
		return nil
	}
	st.localFIN = true
	flags := st.flagsLocked() | flagFIN
	done := st.remoteFIN
	st.mu.Unlock()
	typ := uint8(typeData)
	if st.s.mode == Strict {
		typ = typeWindowUpdate
	}
	err := st.s.writeFrame(typ, flags, st.id, 0, nil)
	if done {
		st.s.forget(st, true)
	}
	return err
}

// Close half-closes and stops reading: data still arriving is dropped (but
// still counted against the window).
func (st *yStream) Close() error {
	err := st.CloseWrite()
	st.mu.Lock()
	st.readClosed = true
	st.buf = nil
	st.mu.Unlock()
	st.wake()
	return err
}

// Reset aborts the stream both ways with RST.
func (st *yStream) Reset() error {
	st.mu.Lock()
	if st.reset {
		st.mu.Unlock()
		return nil
	}
	st.reset = true
	flags := st.flagsLocked() | flagRST
	st.mu.Unlock()
	st.wake()
	st.s.forget(st, false)
	return st.s.writeFrame(typeWindowUpdate, flags, st.id, 0, nil)
}

func (st *yStream) SetDeadline(t time.Time) error {
	st.mu.Lock()
	st.rdeadline, st.wdeadline = t, t
	st.mu.Unlock()
	st.wake()
	return nil
}
