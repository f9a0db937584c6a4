// Package daemon serves the p2pd control protocol, which lets another
// process drive a libp2p node: the @libp2p/daemon-client library and the
// @libp2p/interop test suite speak it.
//
// A client opens one control connection per request and writes one
// varint-prefixed Request; the daemon answers with one Response and closes
// the connection, except for two operations that keep it:
//
//   - STREAM_OPEN: after the OK Response the control connection carries the
//     bytes of the new libp2p stream, both ways.
//   - STREAM_HANDLER: after the OK Response the connection closes, but for
//     each inbound libp2p stream of the protocol the daemon dials the
//     client's address, writes a varint-prefixed StreamInfo, then carries
//     the stream's bytes on that connection.
//
// In both cases an EOF on one side half-closes the other. IDENTIFY, CONNECT,
// LIST_PEERS and DISCONNECT are served; DHT, PUBSUB, CONNMANAGER, PEERSTORE
// and unknown types get an ERROR Response. A malformed or oversized request
// gets an ERROR Response and the connection is closed.
//
// The package does not know the transport: Serve takes any net.Listener,
// and the node behind it through the small Host interface.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
)

// MaxRequestSize bounds one Request, as the js daemon does.
const MaxRequestSize = 4 << 20

// Host is what the daemon needs of a libp2p node.
type Host interface {
	ID() peer.ID
	// Addrs are the node's listen addresses, without /p2p/.
	Addrs() []ma.Multiaddr
	Connect(ctx context.Context, ai peer.AddrInfo) error
	// NewStream opens a stream to p, reusing an existing connection. It
	// may use a limited (relayed) connection when ctx allows it
	// (network.WithAllowLimitedConn).
	NewStream(ctx context.Context, p peer.ID, protos ...protocol.ID) (network.Stream, error)
	// SetStreamHandler serves inbound streams of id, replacing an earlier
	// handler, on limited (relayed) connections too. The stream is closed
	// when handler returns.
	SetStreamHandler(id protocol.ID, handler func(network.Stream)) error
	RemoveStreamHandler(id protocol.ID)
	// Peers lists connected peers, each with the remote address of one
	// connection.
	Peers() []peer.AddrInfo
	ClosePeer(p peer.ID) error
}

// Config tunes Serve. The zero value works.
type Config struct {
	// Logger receives debug logs. Default: discard.
	Logger *slog.Logger
	// RequestTimeout bounds reading a request and writing its response.
	// Default: 10s.
	RequestTimeout time.Duration
	// OperationTimeout bounds CONNECT, STREAM_OPEN and handler dial-backs
	// when the request names no timeout. Default: 60s.
	OperationTimeout time.Duration
	// Tracer, if set, is told about every request.
	Tracer Tracer
}

// Tracer is told about every control request once answered: its type
// (identify, connect, stream_open, stream_handler, list_peers,
// disconnect, one of the unsupported dht, connmanager, pubsub,
// peerstore, or unknown; malformed for a request that could not be read)
// and the error it was refused with, nil when it succeeded. It must not
// block.
type Tracer interface {
	Request(typ string, err error)
}

// Serve answers control requests from ln for h until ctx ends, then closes
// ln and every control connection, removes the stream handlers it
// registered, and waits for all its goroutines before returning. It returns
// nil when ctx ended, or the error that stopped accepting.
func Serve(ctx context.Context, ln net.Listener, h Host, cfg *Config) error {
	s := newServer(h, cfg)
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()

	var err error
	for {
		c, aerr := ln.Accept()
		if aerr != nil {
			if ctx.Err() == nil {
				err = fmt.Errorf("daemon: accepting control connections on %s: %w", ln.Addr(), aerr)
			}
			break
		}
		if !s.enter() {
			c.Close()
			break
		}
		s.addConn(c)
		go func() {
			defer s.leave()
			defer s.removeConn(c)
			s.serveConn(c)
		}()
	}
	ln.Close()
	s.shutdown()
	return err
}

// server is the state of one Serve call.
type server struct {
	h   Host
	log *slog.Logger

	requestTimeout time.Duration
	opTimeout      time.Duration
	tracer         Tracer

	// ctx ends at shutdown; operations and dial-backs run under it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // connection goroutines and running handlers

	mu       sync.Mutex
	closing  bool
	conns    map[net.Conn]struct{}        // open control and handler connections
	handlers map[protocol.ID]ma.Multiaddr // STREAM_HANDLER registrations
}

func newServer(h Host, cfg *Config) *server {
	if cfg == nil {
		cfg = &Config{}
	}
	s := &server{
		h:              h,
		log:            cfg.Logger,
		requestTimeout: cfg.RequestTimeout,
		tracer:         cfg.Tracer,
		opTimeout:      cfg.OperationTimeout,
		conns:          make(map[net.Conn]struct{}),
		handlers:       make(map[protocol.ID]ma.Multiaddr),
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.requestTimeout <= 0 {
		s.requestTimeout = 10 * time.Second
	}
	if s.opTimeout <= 0 {
		s.opTimeout = 60 * time.Second
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// enter counts a goroutine in, unless the server is shutting down.
func (s *server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.wg.Add(1)
	return true
}

func (s *server) leave() { s.wg.Done() }

// addConn tracks c so shutdown closes it. A connection added during
// shutdown is closed at once.
func (s *server) addConn(c net.Conn) {
	s.mu.Lock()
	closing := s.closing
	if !closing {
		s.conns[c] = struct{}{}
	}
	s.mu.Unlock()
	if closing {
		c.Close()
	}
}

func (s *server) removeConn(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
}

// shutdown stops taking work, removes the stream handlers, closes every
// connection and waits for the goroutines.
func (s *server) shutdown() {
	s.mu.Lock()
	s.closing = true
	conns := make([]net.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	s.cancel()
	for _, c := range conns {
		c.Close()
	}
	s.wg.Wait()
	// Registrations are final now; handlers still invoked by the host
	// find the server closing and reset their stream.
	s.mu.Lock()
	protos := make([]protocol.ID, 0, len(s.handlers))
	for p := range s.handlers {
		protos = append(protos, p)
	}
	s.mu.Unlock()
	for _, p := range protos {
		s.h.RemoveStreamHandler(p)
	}
}

// serveConn reads one request from c and answers it. c is closed by the
// caller when this returns.
func (s *server) serveConn(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(s.requestTimeout))
	req, err := readRequest(c)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return // the client left without asking anything
		}
		err = fmt.Errorf("reading request from %s: %w", c.RemoteAddr(), err)
		s.trace("malformed", err)
		s.refuse(c, err)
		return
	}
	c.SetReadDeadline(time.Time{})
	s.log.Debug("control request", "type", req.typ, "from", c.RemoteAddr())
	switch req.typ {
	case reqIdentify:
		err = s.respond(c, appendIdentify(nil, s.h.ID(), s.h.Addrs()))
	case reqConnect:
		err = s.connect(c, req.connect)
	case reqListPeers:
		err = s.respond(c, appendPeers(nil, s.h.Peers()))
	case reqStreamOpen:
		err = s.streamOpen(c, req.streamOpen)
	case reqStreamHandler:
		err = s.streamHandler(c, req.streamHandler)
	case reqDisconnect:
		err = s.disconnect(c, req.disconnect)
	case reqDHT, reqPubsub, reqConnManager, reqPeerstore:
		err = fmt.Errorf("%s requests are not supported by this daemon", req.typ)
	default:
		err = fmt.Errorf("unknown request type %d", uint64(req.typ))
	}
	s.trace(req.typ.label(), err)
	if err != nil {
		s.refuse(c, err)
	}
}

func (s *server) trace(typ string, err error) {
	if t := s.tracer; t != nil {
		t.Request(typ, err)
	}
}

// respond writes one Response and closes c for writing.
func (s *server) respond(c net.Conn, resp []byte) error {
	c.SetWriteDeadline(time.Now().Add(s.requestTimeout))
	if err := writeMsg(c, resp); err != nil {
		return nil // the client is gone; nobody to tell
	}
	closeWrite(c)
	return nil
}

// refuse answers an ERROR Response carrying err and ends the connection.
// Unread request bytes are drained for a moment first, so that closing does
// not reset the connection under the response.
func (s *server) refuse(c net.Conn, err error) {
	msg := "daemon: " + err.Error()
	s.log.Debug("control request failed", "from", c.RemoteAddr(), "err", err)
	c.SetWriteDeadline(time.Now().Add(s.requestTimeout))
	if writeMsg(c, appendError(nil, msg)) != nil {
		return
	}
	closeWrite(c)
	c.SetReadDeadline(time.Now().Add(time.Second))
	io.Copy(io.Discard, io.LimitReader(c, 1<<20))
}

func (s *server) timeout(d time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return s.opTimeout
}

func (s *server) connect(c net.Conn, r *connectReq) error {
	ctx, cancel := context.WithTimeout(s.ctx, s.timeout(r.timeout))
	defer cancel()
	if err := s.h.Connect(ctx, peer.AddrInfo{ID: r.peer, Addrs: r.addrs}); err != nil {
		return fmt.Errorf("connecting to %s: %w", r.peer, err)
	}
	return s.respond(c, appendOK(nil))
}

func (s *server) disconnect(c net.Conn, r *disconnectReq) error {
	if err := s.h.ClosePeer(r.peer); err != nil {
		return fmt.Errorf("disconnecting from %s: %w", r.peer, err)
	}
	return s.respond(c, appendOK(nil))
}

// streamOpen opens the stream, answers with its StreamInfo and then pipes
// it over c until both directions end.
func (s *server) streamOpen(c net.Conn, r *streamOpenReq) error {
	ctx, cancel := context.WithTimeout(s.ctx, s.timeout(r.timeout))
	// The response names the protocol, so the peer must have agreed first
	// (p2pd answers ERROR for a protocol the peer does not speak). The
	// client chose the peer and the protocol, and a peer reached through a
	// relay has only a limited connection: p2pd allows it too.
	ctx = network.WithAllowLimitedConn(network.WithEagerNegotiation(ctx), "daemon STREAM_OPEN")
	st, err := s.h.NewStream(ctx, r.peer, r.protos...)
	cancel()
	if err != nil {
		return fmt.Errorf("opening a %v stream to %s: %w", r.protos, r.peer, err)
	}
	si := streamInfo{peer: st.RemotePeer(), addr: st.RemoteMultiaddr(), proto: st.Protocol()}
	c.SetWriteDeadline(time.Now().Add(s.requestTimeout))
	if err := writeMsg(c, appendStreamOpened(nil, si)); err != nil {
		st.Reset()
		return nil
	}
	c.SetWriteDeadline(time.Time{})
	pipe(c, st)
	return nil
}

// streamHandler (re)registers the dial-back address for each protocol.
func (s *server) streamHandler(c net.Conn, r *streamHandlerReq) error {
	if _, _, err := dialArgs(r.addr); err != nil {
		return fmt.Errorf("handler address %s: %w", r.addr, err)
	}
	for _, p := range r.protos {
		s.mu.Lock()
		_, had := s.handlers[p]
		s.handlers[p] = r.addr
		s.mu.Unlock()
		if had {
			continue // the host handler reads the new address
		}
		if err := s.h.SetStreamHandler(p, s.inbound(p)); err != nil {
			s.mu.Lock()
			delete(s.handlers, p)
			s.mu.Unlock()
			return fmt.Errorf("registering a handler for %s: %w", p, err)
		}
	}
	return s.respond(c, appendOK(nil))
}

// inbound is the host handler for proto: it dials the address registered
// last, sends StreamInfo and pipes the stream over that connection. It runs
// on the host's goroutine for the stream and returns when the pipe ends or
// the server shuts down.
func (s *server) inbound(proto protocol.ID) func(network.Stream) {
	return func(st network.Stream) {
		s.mu.Lock()
		addr, ok := s.handlers[proto]
		s.mu.Unlock()
		if !ok || !s.enter() {
			st.Reset()
			return
		}
		defer s.leave()
		ctx, cancel := context.WithTimeout(s.ctx, s.opTimeout)
		c, err := dial(ctx, addr)
		cancel()
		if err != nil {
			s.log.Debug("handler dial-back failed", "proto", proto, "addr", addr, "peer", st.RemotePeer(), "err", err)
			st.Reset()
			return
		}
		s.addConn(c)
		defer s.removeConn(c)
		si := streamInfo{peer: st.RemotePeer(), addr: st.RemoteMultiaddr(), proto: st.Protocol()}
		c.SetWriteDeadline(time.Now().Add(s.requestTimeout))
		if err := writeMsg(c, appendStreamInfo(nil, si)); err != nil {
			s.log.Debug("handler StreamInfo write failed", "addr", addr, "err", err)
			st.Reset()
			return
		}
		c.SetWriteDeadline(time.Time{})
		pipe(c, st)
	}
}
