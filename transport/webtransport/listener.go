package webtransport

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	wt "github.com/quic-go/webtransport-go"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/internal/logs"
	"github.com/tachyon-p2p/tachyon/security/noise"
	"github.com/tachyon-p2p/tachyon/transport/udpmux"
)

// Listener accepts WebTransport sessions. Its goroutines: one accept loop
// and, per QUIC connection, webtransport-go's ServeQUICConn (which returns
// when the connection closes); HTTP handlers run on http3's goroutines.
// Close stops all of them and closes every connection it accepted: the
// HTTP/3 server owns them.
type Listener struct {
	t      *Transport
	ul     *udpmux.Listener
	server *wt.Server
	queue  chan *Conn

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	pending map[*quic.Conn]*time.Timer // QUIC conns without a session yet
	resp    *noise.Transport           // Noise responder for respFor
	respFor [][]byte

	refusals logs.Limiter // of sessions the ResourceManager refused
}

type connKey struct{}

// Listen accepts WebTransport sessions on addr, which must not carry
// /certhash (the listener makes its own certificates). Port 0 shares the UDP
// socket of a QUIC listener on the same IP, if there is one.
func (t *Transport) Listen(addr ma.Multiaddr) (network.Listener, error) {
	ap, hashes, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	if len(hashes) != 0 {
		return nil, fmt.Errorf("webtransport: cannot listen on %s: /certhash is chosen by the listener", addr)
	}
	if _, _, _, err := t.certs.current(); err != nil {
		return nil, err
	}
	conf := &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			cert, _, _, err := t.certs.current()
			return cert, err
		},
	}
	// Early: the HTTP/3 server then sends its SETTINGS in the first flight,
	// and webtransport-go's client, which waits for them before CONNECT,
	// saves a round trip. Noise authenticates the peer, and quic-go reads
	// nothing the client sends before the QUIC handshake completed.
	ul, err := t.mux.ListenEarly(ap, udpmux.ALPNH3, conf)
	if err != nil {
		return nil, fmt.Errorf("webtransport: listen on %s: %w", addr, err)
	}
	l := &Listener{t: t, ul: ul, queue: make(chan *Conn, 16), pending: map[*quic.Conn]*time.Timer{}}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	mux := http.NewServeMux()
	mux.Handle(Path, l)
	l.server = &wt.Server{
		H3: &http3.Server{
			Handler:         mux,
			EnableDatagrams: true,
			ConnContext: func(ctx context.Context, c *quic.Conn) context.Context {
				return context.WithValue(ctx, connKey{}, c)
			},
		},
		// Browsers send their page's origin; any origin may connect.
		CheckOrigin: func(*http.Request) bool { return true },
		// Session flow-control limits that never bind (as go-libp2p): the
		// QUIC limits stay in force. Safari needs them announced.
		Config: &wt.Config{MaxIncomingStreams: 1 << 60, MaxIncomingUniStreams: 1 << 60, MaxIncomingData: 1 << 60},
	}
	l.wg.Go(l.acceptLoop)
	return l, nil
}

// acceptLoop serves each QUIC connection with ALPN h3 and gives it
// HandshakeTimeout to establish a session.
func (l *Listener) acceptLoop() {
	for {
		qc, err := l.ul.Accept(l.ctx)
		if err != nil {
			if l.ctx.Err() == nil {
				l.t.cfg.Log.Warn("listener stopped: accept failed", "addr", l.ul.Addr(), "err", err)
			}
			return
		}
		l.mu.Lock()
		l.pending[qc] = time.AfterFunc(l.t.cfg.HandshakeTimeout, func() {
			l.mu.Lock()
			delete(l.pending, qc)
			l.mu.Unlock()
			l.t.cfg.Log.Debug("inbound session not established in time", "addr", l.ul.Addr(), "remote", qc.RemoteAddr(), "timeout", l.t.cfg.HandshakeTimeout)
			qc.CloseWithError(0, "handshake timeout")
		})
		l.mu.Unlock()
		l.wg.Go(func() {
			l.server.ServeQUICConn(qc)
			l.mu.Lock()
			if tm := l.pending[qc]; tm != nil {
				tm.Stop()
				delete(l.pending, qc)
			}
			l.mu.Unlock()
		})
	}
}

// ServeHTTP handles the CONNECT request: it checks the endpoint, upgrades
// to a session, runs the Noise handshake as responder and queues the
// connection for Accept.
func (l *Listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := l.t.cfg.Log
	if r.URL.Query().Get("type") != "noise" {
		log.Debug("inbound session refused: not type=noise", "addr", l.ul.Addr(), "remote", r.RemoteAddr)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	qc, _ := r.Context().Value(connKey{}).(*quic.Conn)
	if qc == nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	end := l.t.traceHandshake()
	sess, err := l.server.Upgrade(w, r)
	if err != nil {
		end()
		log.Debug("inbound session refused: WebTransport upgrade failed", "addr", l.ul.Addr(), "remote", r.RemoteAddr, "err", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	c, err := l.handshake(sess, qc)
	end()
	if err != nil {
		if l.ctx.Err() == nil {
			log.Debug("inbound session failed", "addr", l.ul.Addr(), "remote", r.RemoteAddr, "err", err)
		}
		sess.CloseWithError(1, "")
		qc.CloseWithError(0, "")
		return
	}
	l.mu.Lock()
	tm := l.pending[qc]
	delete(l.pending, qc)
	l.mu.Unlock()
	if tm == nil || !tm.Stop() { // timed out meanwhile, or a second session
		log.Debug("inbound session dropped: timed out, or not the connection's first", "addr", l.ul.Addr(), "remote", r.RemoteAddr, "peer", c.RemotePeer())
		c.Close()
		return
	}
	if err := l.t.admit(c); err != nil {
		if ok, held := l.refusals.Allow(time.Second); ok {
			log.Debug("inbound session refused", "addr", l.ul.Addr(), "remote", r.RemoteAddr, "err", err, "refused_unlogged", held)
		}
		return
	}
	select {
	case l.queue <- c:
	default:
		log.Debug("inbound session dropped: accept queue full", "addr", l.ul.Addr(), "remote", r.RemoteAddr, "peer", c.RemotePeer())
		c.Close() // nobody is accepting
	}
}

func (l *Listener) handshake(sess *wt.Session, qc *quic.Conn) (*Conn, error) {
	ctx, cancel := context.WithTimeout(l.ctx, l.t.cfg.HandshakeTimeout)
	defer cancel()
	str, err := sess.AcceptStream(ctx)
	if err != nil {
		return nil, fmt.Errorf("webtransport: waiting for the Noise stream from %s: %w", sess.RemoteAddr(), err)
	}
	resp, err := l.responder()
	if err != nil {
		str.CancelRead(0)
		str.CancelWrite(0)
		return nil, err
	}
	sc, err := resp.SecureInbound(ctx, &streamConn{Stream: str, sess: sess, finOnly: true}, "")
	if err != nil {
		return nil, fmt.Errorf("webtransport: Noise handshake with %s: %w", sess.RemoteAddr(), err)
	}
	sc.Close()
	c := newConn(sess, qc, l.t.localID, sc.RemotePeer(), sc.RemotePublicKey(), network.DirInbound)
	if start, ok := udpmux.HandshakeStart(qc); ok {
		c.handshake = time.Since(start)
	}
	return c, nil
}

// responder returns the Noise transport announcing the current certificate
// hashes, making a new one when they rotated.
func (l *Listener) responder() (*noise.Transport, error) {
	_, _, ext, err := l.t.certs.current()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.resp == nil || !slices.EqualFunc(ext, l.respFor, func(a, b []byte) bool { return string(a) == string(b) }) {
		n, err := noise.New(l.t.key, &noise.Config{CertHashes: ext})
		if err != nil {
			return nil, fmt.Errorf("webtransport: setting up Noise: %w", err)
		}
		l.resp, l.respFor = n, ext
	}
	return l.resp, nil
}

// Accept waits for the next connection whose handshake completed.
func (l *Listener) Accept() (network.TransportConn, error) {
	select {
	case c := <-l.queue:
		return c, nil
	case <-l.ctx.Done():
		return nil, fmt.Errorf("webtransport: accept on %s: %w", l.ul.Addr(), net.ErrClosed)
	}
}

// Close stops accepting, closes every connection of this listener and
// waits for its goroutines.
func (l *Listener) Close() error {
	l.cancel()
	err := l.ul.Close()
	l.server.Close()
	l.wg.Wait()
	l.mu.Lock()
	for qc, tm := range l.pending {
		tm.Stop()
		qc.CloseWithError(0, "")
	}
	clear(l.pending)
	l.mu.Unlock()
	for {
		select {
		case c := <-l.queue:
			c.Close()
		default:
			return err
		}
	}
}

// Multiaddrs returns the listening address with the hashes of the current
// and the next certificate. It changes when certificates rotate.
func (l *Listener) Multiaddrs() []ma.Multiaddr {
	_, adv, _, err := l.t.certs.current()
	if err != nil {
		return nil
	}
	return []ma.Multiaddr{FormatAddr(l.ul.Addr(), adv)}
}
