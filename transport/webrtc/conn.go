package webrtc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/pion/datachannel"
	pion "github.com/pion/webrtc/v4"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
)

// ErrConnClosed is returned by OpenStream and AcceptStream on a closed
// connection.
var ErrConnClosed = errors.New("webrtc: connection closed")

// acceptQueueLen bounds the streams the peer may open before AcceptStream
// takes them; more are reset.
const acceptQueueLen = 256

// Conn is a WebRTC-direct or /webrtc connection: a PeerConnection whose
// data channels are the streams. It implements network.TransportConn.
//
// For WebRTC-direct ConnState is {Transport: "webrtc-direct", Security:
// "/noise"}: Noise proved the peer's identity (DTLS encrypts), and the data
// channels are the native multiplexer, so Muxer is empty and nothing is
// negotiated for it. For /webrtc it is {Transport: "webrtc"}: no security
// protocol ran on the connection itself (see PrivateTransport).
type Conn struct {
	pc  *pion.PeerConnection
	dir network.Direction
	// private marks a /webrtc connection: its ConnState, and the dialer's
	// "init" channel, which is not a stream.
	private bool

	local, remote peer.ID
	remoteKey     crypto.PubKey
	laddr, raddr  ma.Multiaddr
	handshake     time.Duration // inbound WebRTC-direct: see HandshakeDuration

	incoming chan *stream
	streams  sync.WaitGroup // reader goroutines and inbound channels waiting for admitted
	scope    connScope      // the resource manager's account of the connection
	// admitted is closed once the resource manager admitted the
	// connection (at once without one): inbound channels wait for it, so
	// that every stream and its buffered data are accounted in its scope.
	admitted chan struct{}
	budget   *sendBudget // what all streams may keep queued together
	drains   drainGuard  // streams this side closed that still deliver

	log *slog.Logger // hears, at Debug, how the connection ended; names the remote address

	mu     sync.Mutex
	closed bool
	done   chan struct{} // closed by Close
	onDone func()        // run once after Close (listener bookkeeping)

	connected chan struct{} // closed when the PeerConnection connects
	failed    chan struct{} // closed when it fails or closes
	watchDone chan struct{}
	closeDone chan struct{} // closed when the first Close has returned
}

var _ network.TransportConn = (*Conn)(nil)

// newConn wraps pc. Its callbacks must be registered before the peer can
// open channels, so Conn is created with the PeerConnection and its
// identity filled in after the handshake.
func newConn(pc *pion.PeerConnection, dir network.Direction, managed, private bool, log *slog.Logger) *Conn {
	c := &Conn{
		pc:        pc,
		dir:       dir,
		private:   private,
		log:       log,
		incoming:  make(chan *stream, acceptQueueLen),
		admitted:  make(chan struct{}),
		done:      make(chan struct{}),
		connected: make(chan struct{}),
		failed:    make(chan struct{}),
		watchDone: make(chan struct{}),
		closeDone: make(chan struct{}),
		budget:    newSendBudget(pc.SCTP().BufferedAmount),
	}
	if !managed {
		close(c.admitted)
	}
	c.drains.fail = func() { go c.Close() } // Close waits for the readers
	failed := c.failed
	var failOnce, connOnce sync.Once
	var endedBy string // what closed failed; read after it is closed
	fail := func(why string) {
		failOnce.Do(func() {
			endedBy = why
			close(failed)
		})
	}
	pc.OnConnectionStateChange(func(st pion.PeerConnectionState) {
		c.log.Debug("peer connection state", "state", st)
		if st == pion.PeerConnectionStateConnected {
			connOnce.Do(func() { close(c.connected) })
		}
		if st == pion.PeerConnectionStateFailed || st == pion.PeerConnectionStateClosed || st == pion.PeerConnectionStateDisconnected {
			fail("peer connection " + st.String())
		}
	})
	pc.SCTP().OnClose(func(err error) {
		if err != nil {
			fail("SCTP association closed: " + err.Error())
			return
		}
		fail("SCTP association closed")
	})
	pc.OnDataChannel(func(dc *pion.DataChannel) {
		// pion runs this in a goroutine of its own.
		if c.private && dc.Label() == initChannelLabel {
			// The /webrtc dialer's channel that made its offer carry
			// ICE and DTLS details; js closes it on receipt too.
			dc.OnOpen(func() { _ = dc.Close() })
			return
		}
		dc.OnOpen(func() {
			if !c.waitAdmitted() {
				_ = dc.Close()
				return
			}
			rwc, err := dc.Detach()
			if err != nil {
				_ = dc.Close()
				return
			}
			done, err := c.scope.openStream(network.DirInbound)
			if err != nil {
				// Refused: the peer learns it from a reset.
				if s, ok := c.addStream(dc, rwc, false, nil); ok {
					_ = s.Reset()
				}
				return
			}
			s, ok := c.addStream(dc, rwc, true, done)
			if !ok {
				return
			}
			select {
			case c.incoming <- s:
			default:
				_ = s.Reset() // too many unaccepted streams
			}
		})
	})
	// The watcher closes the connection when the peer goes away. It is
	// owned by the Conn: Close stops it and waits for it.
	go func() {
		defer close(c.watchDone)
		select {
		case <-failed:
			if !c.IsClosed() { // not our own Close's doing
				c.log.Debug("connection ended by the peer or the network", "signal", endedBy)
			}
			go c.Close() // Close waits for this goroutine
		case <-c.done:
		}
	}()
	return c
}

// waitAdmitted waits until the resource manager admitted the connection
// and reports false if the connection closed first.
func (c *Conn) waitAdmitted() bool {
	select {
	case <-c.admitted:
		return true
	default:
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	c.streams.Add(1) // Close waits for this wait to end
	c.mu.Unlock()
	defer c.streams.Done()
	select {
	case <-c.admitted:
		return true
	case <-c.done:
		return false
	}
}

// openConn asks rm, if any, to admit the authenticated connection, and
// then lets inbound streams in (newConn did without rm).
func (c *Conn) openConn(rm network.ResourceManager) error {
	if rm == nil {
		return nil
	}
	scope, err := rm.OpenConn(c.dir, c.remote, c.raddr)
	if err != nil {
		return fmt.Errorf("resource manager refused the connection with %s: %w", c.remote, err)
	}
	if scope != nil {
		c.scope.set(scope)
	}
	close(c.admitted)
	return nil
}

// addStream starts a stream's reader unless the connection is closed. A
// scoped stream accounts its unread data in the connection's scope;
// streamDone (may be nil) runs once when the stream is gone, or at once
// if the connection is closed.
func (c *Conn) addStream(dc *pion.DataChannel, rwc datachannel.ReadWriteCloser, scoped bool, streamDone func()) (*stream, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		_ = rwc.Close()
		if streamDone != nil {
			streamDone()
		}
		return nil, false
	}
	c.streams.Add(1)
	done := c.streams.Done
	if streamDone != nil {
		done = func() {
			streamDone()
			c.streams.Done()
		}
	}
	var mem *connScope
	if scoped {
		mem = &c.scope
	}
	return newStream(dc, rwc, done, c.done, c.budget, &c.drains, mem), true
}

// OpenStream opens a data channel (label "", not negotiated). It waits only
// for the channel to open locally.
func (c *Conn) OpenStream(ctx context.Context) (network.MuxedStream, error) {
	if c.IsClosed() {
		return nil, ErrConnClosed
	}
	done, err := c.scope.openStream(network.DirOutbound)
	if err != nil {
		return nil, fmt.Errorf("webrtc: opening a stream to %s: %w", c.remote, err)
	}
	dc, err := c.pc.CreateDataChannel("", nil)
	if err != nil {
		done()
		return nil, fmt.Errorf("webrtc: creating data channel: %w", err)
	}
	rwc, err := detachWhenOpen(ctx, dc, c.done)
	if err != nil {
		done()
		_ = dc.Close()
		return nil, err
	}
	s, ok := c.addStream(dc, rwc, true, done)
	if !ok {
		return nil, ErrConnClosed
	}
	return s, nil
}

// detachWhenOpen waits for dc to open and detaches it.
func detachWhenOpen(ctx context.Context, dc *pion.DataChannel, closed <-chan struct{}) (datachannel.ReadWriteCloser, error) {
	type result struct {
		rwc datachannel.ReadWriteCloser
		err error
	}
	ch := make(chan result, 1)
	dc.OnOpen(func() {
		rwc, err := dc.Detach()
		ch <- result{rwc, err}
	})
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("webrtc: detaching data channel: %w", r.err)
		}
		return r.rwc, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("webrtc: waiting for data channel: %w", ctx.Err())
	case <-closed:
		return nil, ErrConnClosed
	}
}

// AcceptStream returns the next stream the peer opened.
func (c *Conn) AcceptStream() (network.MuxedStream, error) {
	select {
	case s := <-c.incoming:
		return s, nil
	case <-c.done:
		return nil, ErrConnClosed
	}
}

// Close closes the PeerConnection and waits until pion and every stream
// goroutine have stopped, and the scope is closed: a later or concurrent
// call too (the watcher's, when the peer went away, may be the first).
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.closeDone
		return nil
	}
	c.closed = true
	close(c.done)
	onDone := c.onDone
	c.mu.Unlock()
	defer close(c.closeDone)
	err := c.pc.GracefulClose()
	c.streams.Wait()
	<-c.watchDone
	for {
		select {
		case s := <-c.incoming:
			_ = s.Reset()
			continue
		default:
		}
		break
	}
	c.scope.close() // after every stream's done: the readers have returned
	if onDone != nil {
		onDone()
	}
	if err != nil {
		return fmt.Errorf("webrtc: closing peer connection: %w", err)
	}
	return nil
}

// setOnDone sets what Close runs last.
func (c *Conn) setOnDone(f func()) {
	c.mu.Lock()
	c.onDone = f
	c.mu.Unlock()
}

// IsClosed reports whether Close was called or the peer went away.
func (c *Conn) IsClosed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *Conn) LocalPeer() peer.ID             { return c.local }
func (c *Conn) RemotePeer() peer.ID            { return c.remote }
func (c *Conn) RemotePublicKey() crypto.PubKey { return c.remoteKey }
func (c *Conn) LocalMultiaddr() ma.Multiaddr   { return c.laddr }
func (c *Conn) RemoteMultiaddr() ma.Multiaddr  { return c.raddr }
func (c *Conn) Direction() network.Direction   { return c.dir }

// HandshakeDuration (swarm.HandshakeTimer) is, for an inbound
// WebRTC-direct connection, everything the listener waited for: from the
// STUN binding request that started the attempt (the first with its
// ufrag) through ICE, DTLS and SCTP to the end of the Noise handshake. It
// is 0 for an outbound connection, whose dial attempt times it, and for a
// /webrtc one.
func (c *Conn) HandshakeDuration() time.Duration { return c.handshake }

func (c *Conn) ConnState() network.ConnState {
	if c.private {
		return network.ConnState{Transport: "webrtc"}
	}
	return network.ConnState{Transport: "webrtc-direct", Security: protocol.ID("/noise")}
}

// handshakeConn presents the handshake channel's stream as the net.Conn the
// Noise code expects. Close resets it: closing during a handshake is a
// failure.
type handshakeConn struct {
	*stream
	laddr, raddr net.Addr
}

func (h handshakeConn) Close() error         { return h.stream.Reset() }
func (h handshakeConn) LocalAddr() net.Addr  { return h.laddr }
func (h handshakeConn) RemoteAddr() net.Addr { return h.raddr }
func (h handshakeConn) SetDeadline(t time.Time) error {
	return h.stream.SetDeadline(t)
}
