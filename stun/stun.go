// Package stun is a STUN responder (RFC 8489, Binding method only): it
// answers each Binding request with the address the request came from,
// in XOR-MAPPED-ADDRESS. That is all ICE asks of a STUN server to learn
// its server-reflexive candidates, so a tachyon relay can also be the
// STUN server that peers behind NATs need to connect over /webrtc.
//
// Nothing else is answered: no authentication, no other methods, no error
// responses (RFC 8489 lets a server drop what it does not serve). A
// response is at most twice the size of the smallest request, and
// Config.MaxPerSecond bounds how many go out, so a spoofed flood gets
// little reflected.
package stun

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	pstun "github.com/pion/stun/v3"

	"github.com/tachyon-p2p/tachyon/internal/logs"
)

// Config tunes a Server. The zero value is the default.
type Config struct {
	// MaxPerSecond bounds the responses sent per second, over all
	// clients; requests beyond it are dropped. Default 5000.
	MaxPerSecond int
	// Log hears of a socket that stops on a read error (Warn) and of
	// requests dropped over MaxPerSecond (Info, at most once a second).
	// Nil discards.
	Log *slog.Logger
}

// Server answers STUN Binding requests on one packet connection.
type Server struct {
	conn net.PacketConn
	cfg  Config

	drops logs.Limiter

	mu      sync.Mutex
	closed  bool
	serving chan struct{} // closed when Serve returns; nil while not serving

	// the rate window, used by Serve's goroutine only
	window time.Time
	sent   int
}

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("stun: server closed")

// Listen opens a UDP socket on addr (host:port; port 0 picks one) for a
// Server; call Serve to answer on it. cfg may be nil.
func Listen(addr string, cfg *Config) (*Server, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("stun: listen address %q: %w", addr, err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("stun: listen on %s: %w", addr, err)
	}
	return NewServer(conn, cfg), nil
}

// NewServer returns a Server answering on conn, which it owns: Close
// closes it. conn's ReadFrom must return *net.UDPAddr senders (or
// addresses whose String is ip:port). cfg may be nil.
func NewServer(conn net.PacketConn, cfg *Config) *Server {
	s := &Server{conn: conn}
	if cfg != nil {
		s.cfg = *cfg
	}
	if s.cfg.MaxPerSecond <= 0 {
		s.cfg.MaxPerSecond = 5000
	}
	s.cfg.Log = logs.Or(s.cfg.Log)
	return s
}

// ListenAndServe answers on addr until ctx ends (then it returns nil) or
// reading the socket fails.
func ListenAndServe(ctx context.Context, addr string, cfg *Config) error {
	s, err := Listen(addr, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Serve(ctx); err != nil && !errors.Is(err, ErrServerClosed) {
		return err
	}
	return nil
}

// Addr is the address the server answers on.
func (s *Server) Addr() net.Addr { return s.conn.LocalAddr() }

// Serve answers requests until ctx ends (it returns nil and closes the
// server), Close is called (ErrServerClosed) or reading fails. One Serve
// at a time.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	if s.serving != nil {
		s.mu.Unlock()
		return errors.New("stun: already serving")
	}
	done := make(chan struct{})
	s.serving = done
	s.mu.Unlock()
	defer close(done)
	stop := context.AfterFunc(ctx, func() { s.closeConn() })
	defer stop()
	buf := make([]byte, 1500)
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if ctx.Err() != nil {
				return nil
			}
			if s.isClosed() {
				return ErrServerClosed
			}
			s.cfg.Log.Warn("STUN server stopped: reading the socket failed", "addr", s.conn.LocalAddr(), "err", err)
			return fmt.Errorf("stun: reading: %w", err)
		}
		s.handle(buf[:n], from)
	}
}

// handle answers b if it is a Binding request.
func (s *Server) handle(b []byte, from net.Addr) {
	if !pstun.IsMessage(b) {
		return
	}
	req := &pstun.Message{Raw: b}
	if req.Decode() != nil || req.Type != pstun.BindingRequest {
		return
	}
	ap, ok := addrPort(from)
	if !ok {
		return
	}
	if !s.allow() {
		if ok, held := s.drops.Allow(time.Second); ok {
			s.cfg.Log.Info("dropping STUN requests over Config.MaxPerSecond", "addr", s.conn.LocalAddr(),
				"max_per_second", s.cfg.MaxPerSecond, "dropped_unlogged", held)
		}
		return
	}
	resp, err := pstun.Build(
		pstun.NewTransactionIDSetter(req.TransactionID),
		pstun.BindingSuccess,
		&pstun.XORMappedAddress{IP: ap.Addr().AsSlice(), Port: int(ap.Port())},
		pstun.Fingerprint,
	)
	if err != nil {
		return
	}
	_, _ = s.conn.WriteTo(resp.Raw, from)
}

// allow counts a response against this second's budget.
func (s *Server) allow() bool {
	now := time.Now()
	if now.Sub(s.window) >= time.Second {
		s.window, s.sent = now, 0
	}
	if s.sent >= s.cfg.MaxPerSecond {
		return false
	}
	s.sent++
	return true
}

// addrPort reads a sender's address; an IPv4 peer of a dual-stack socket
// is reported as IPv4, as it sees itself.
func addrPort(a net.Addr) (netip.AddrPort, bool) {
	var ap netip.AddrPort
	if ua, ok := a.(*net.UDPAddr); ok {
		ap = ua.AddrPort()
	} else {
		var err error
		if ap, err = netip.ParseAddrPort(a.String()); err != nil {
			return ap, false
		}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), ap.IsValid()
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Server) closeConn() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	return s.conn.Close()
}

// Close closes the socket and waits for Serve, if running, to return.
func (s *Server) Close() error {
	err := s.closeConn()
	s.mu.Lock()
	serving := s.serving
	s.mu.Unlock()
	if serving != nil {
		<-serving
	}
	return err
}
