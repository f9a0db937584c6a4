// Package quic is the QUIC v1 transport (libp2p/specs quic/README.md): it
// dials and listens on /ip4|ip6/…/udp/N/quic-v1. The QUIC handshake is the
// libp2p TLS 1.3 handshake (package security/tls) with ALPN "libp2p", so
// there is no multistream-select security or muxer negotiation: every
// bidirectional QUIC stream is one libp2p stream.
//
// Sockets come from a udpmux.Mux shared with WebTransport: listeners on
// port 0 join an existing socket of the same IP, and dials leave from the
// listening socket so the peer observes our listening port.
package quic

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/quic-go/quic-go"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/logs"
	"github.com/tachyon-p2p/tachyon/security/tls"
	"github.com/tachyon-p2p/tachyon/transport/udpmux"
)

// Config tunes the transport. The zero value is ready to use.
type Config struct {
	// DialTimeout bounds a dial, handshake included, when the caller's
	// context has no earlier deadline. Default 15 s.
	DialTimeout time.Duration
	// Resources, when set, admits each connection, inbound and outbound,
	// once the handshake has authenticated the peer (OpenConn; a refused
	// one is closed with RESOURCE_LIMIT_EXCEEDED), and the streams and
	// flow-control window growth of each through its scope. Inbound
	// handshakes are admitted by the udpmux.Mux (its Config.Resources).
	Resources network.ResourceManager
	// Log receives inbound connections the listener drops (Debug). QUIC
	// handshakes that fail are logged by the udpmux.Mux (its Config.Log).
	// Nil discards.
	Log *slog.Logger
	// Tracer, if set, is told about outbound handshakes and hole punches
	// (udpmux traces inbound ones).
	Tracer Tracer
}

// Tracer is told when one of our handshakes starts (delta 1) and ends
// (delta -1), for dials and hole punches. It must not block.
type Tracer interface {
	Handshakes(delta int)
}

// traceHandshake tells the tracer a handshake started and returns what
// tells it the handshake ended.
func (t *Transport) traceHandshake() (end func()) {
	return udpmux.TraceHandshake(t.cfg.Tracer)
}

// Transport is the QUIC v1 transport. It is safe for concurrent use.
type Transport struct {
	mux     *udpmux.Mux
	sec     *tls.Transport
	localID peer.ID
	cfg     Config
}

var (
	_ network.Transport   = (*Transport)(nil)
	_ network.HolePuncher = (*Transport)(nil)
)

// New returns a QUIC transport authenticating as key, on sockets from mux.
func New(key crypto.PrivKey, mux *udpmux.Mux, cfg *Config) (*Transport, error) {
	if mux == nil {
		return nil, fmt.Errorf("quic: nil udpmux.Mux")
	}
	sec, err := tls.New(key, &tls.Config{})
	if err != nil {
		return nil, fmt.Errorf("quic: setting up TLS: %w", err)
	}
	t := &Transport{mux: mux, sec: sec, localID: sec.LocalPeer()}
	if cfg != nil {
		t.cfg = *cfg
	}
	if t.cfg.DialTimeout <= 0 {
		t.cfg.DialTimeout = 15 * time.Second
	}
	t.cfg.Log = logs.Or(t.cfg.Log)
	return t, nil
}

// Name returns "quic-v1".
func (t *Transport) Name() string { return "quic-v1" }

// CanDial accepts /ip4|ip6/…/udp/N/quic-v1 with nothing after it.
func (t *Transport) CanDial(addr ma.Multiaddr) bool {
	ap, rest, err := ParseAddr(addr)
	return err == nil && len(rest) == 0 && ap.Port() != 0 && !ap.Addr().IsUnspecified()
}

// CanListen accepts /ip4|ip6/…/udp/N/quic-v1, with port 0 and unspecified
// IPs allowed.
func (t *Transport) CanListen(addr ma.Multiaddr) bool {
	_, rest, err := ParseAddr(addr)
	return err == nil && len(rest) == 0
}

// Dial connects to p at addr and verifies that the server's certificate
// authenticates p.
//
// In a hole punch, the side whose ctx comes from
// network.WithSimultaneousConnect(ctx, false) is the server and does not
// dial: Dial is then HolePunch, as in go-libp2p, so that a caller can treat
// TCP and QUIC alike. The client side dials as usual.
func (t *Transport) Dial(ctx context.Context, addr ma.Multiaddr, p peer.ID) (network.TransportConn, error) {
	if isClient, ok := network.SimultaneousConnect(ctx); ok && !isClient {
		return t.HolePunch(ctx, addr, p)
	}
	if p == "" {
		return nil, fmt.Errorf("quic: dial %s: the remote peer ID is required", addr)
	}
	if !t.CanDial(addr) {
		return nil, fmt.Errorf("quic: cannot dial %s", addr)
	}
	raddr, _, _ := ParseAddr(addr)
	conf, verified, err := t.sec.DialConfig(p)
	if err != nil {
		return nil, fmt.Errorf("quic: dial %s at %s: %w", p, addr, err)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, t.cfg.DialTimeout)
	defer cancel()
	ctx, refused := context.WithCancelCause(ctx)
	defer refused(nil)
	stopProbe := func() {}
	if _, holePunch := network.SimultaneousConnect(ctx); !holePunch {
		// The peer's NAT has no mapping for the probe's port, and may
		// answer it with an ICMP error while our punched dial gets in.
		stopProbe = probeUnreachable(raddr, refused)
	}
	end := t.traceHandshake()
	qc, err := t.mux.Dial(ctx, raddr, conf)
	end()
	stopProbe()
	if err != nil {
		return nil, dialError(ctx, addr, time.Since(start), err)
	}
	if _, _, err := verified(); err != nil {
		qc.CloseWithError(0, "")
		return nil, fmt.Errorf("quic: dial %s at %s: %w", p, addr, err)
	}
	c, err := t.newConn(qc, network.DirOutbound)
	if err != nil {
		qc.CloseWithError(0, "")
		return nil, fmt.Errorf("quic: dial %s at %s: %w", p, addr, err)
	}
	if c.remotePeer != p { // verified checked it already; never trust one check
		qc.CloseWithError(0, "")
		return nil, fmt.Errorf("quic: dial %s: %w", addr, &network.PeerIDMismatchError{Expected: p, Actual: c.remotePeer})
	}
	if err := t.admit(c); err != nil {
		return nil, fmt.Errorf("quic: dial %s at %s: %w", p, addr, err)
	}
	return c, nil
}

// HolePunch is the QUIC part of a DCUtR hole punch for the peer that does
// not dial (B, the DCUtR initiator). From our listening socket of raddr's
// address family it sends raddr datagrams (random bytes, every 10-200 ms,
// see udpmux.Mux.HolePunch) that open our NAT to it, and returns the
// connection peer p then makes to that socket: authenticated, admitted by
// the ResourceManager and set up as Dial's, with Direction DirOutbound, as
// we asked for it. The listener never sees that connection. The punch
// needs a Listen on that address family first.
//
// It fails when ctx, bounded by Config.DialTimeout, ends first. No
// goroutine outlives the call.
func (t *Transport) HolePunch(ctx context.Context, raddr ma.Multiaddr, p peer.ID) (network.TransportConn, error) {
	if p == "" {
		return nil, fmt.Errorf("quic: hole punch to %s: the remote peer ID is required", raddr)
	}
	if !t.CanDial(raddr) {
		return nil, fmt.Errorf("quic: cannot hole punch to %s", raddr)
	}
	ap, _, _ := ParseAddr(raddr)
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, t.cfg.DialTimeout)
	defer cancel()
	// Only p's connection will do; a NAT may show it from another port
	// than raddr's.
	claim := func(qc *quic.Conn) bool {
		_, id, err := t.peerOf(qc)
		return err == nil && id == p
	}
	end := t.traceHandshake()
	qc, err := t.mux.HolePunch(ctx, ap, udpmux.ALPNLibp2p, claim)
	end()
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("quic: hole punch to %s for %s: no connection from the peer within %s: %w",
				raddr, p, time.Since(start).Round(time.Millisecond), err)
		}
		return nil, fmt.Errorf("quic: hole punch to %s for %s: %w", raddr, p, err)
	}
	c, err := t.newConn(qc, network.DirOutbound)
	if err != nil {
		qc.CloseWithError(0, "")
		return nil, fmt.Errorf("quic: hole punch to %s for %s: %w", raddr, p, err)
	}
	if c.remotePeer != p { // the claim checked it already; never trust one check
		qc.CloseWithError(0, "")
		return nil, fmt.Errorf("quic: hole punch to %s: %w", raddr, &network.PeerIDMismatchError{Expected: p, Actual: c.remotePeer})
	}
	if err := t.admit(c); err != nil {
		return nil, fmt.Errorf("quic: hole punch to %s for %s: %w", raddr, p, err)
	}
	return c, nil
}

// peerOf checks the peer's certificate of a handshaken connection and
// returns the host key and peer ID it proves. Every libp2p QUIC handshake
// runs with a config of security/tls: DialConfig for dials, which checked
// the server's certificate before Dial gets here (CheckPeer finds it kept),
// and ServerConfig for the listener's socket, which hole punches share and
// which counts the client's chain only: CheckPeer runs the checks once the
// client has proved it holds the certificate's key (a certificate that
// passed before is kept, and its time tells nothing to a client without
// the key), first as the listener's verify (see Listen), then on every
// path that takes the connection. The ALPN tells such a connection from
// one of another consumer of the socket (WebTransport's h3).
func (t *Transport) peerOf(qc *quic.Conn) (crypto.PubKey, peer.ID, error) {
	st := qc.ConnectionState().TLS
	if !st.HandshakeComplete {
		return nil, "", errors.New("reading peer certificate: the TLS handshake is not complete, so the peer has not proved it holds the certificate's key")
	}
	if st.NegotiatedProtocol != udpmux.ALPNLibp2p {
		return nil, "", fmt.Errorf("reading peer certificate: ALPN %q is not libp2p's, so this is not a libp2p connection", st.NegotiatedProtocol)
	}
	pub, id, err := t.sec.CheckPeer(st.PeerCertificates)
	if err != nil {
		return nil, "", fmt.Errorf("checking peer certificate: %w", err)
	}
	return pub, id, nil
}

// newConn sets up a handshaken connection with the peer its verified
// certificate authenticates.
func (t *Transport) newConn(qc *quic.Conn, dir network.Direction) (*Conn, error) {
	pub, id, err := t.peerOf(qc)
	if err != nil {
		return nil, err
	}
	return &Conn{
		qc:         qc,
		localPeer:  t.localID,
		remotePeer: id,
		remoteKey:  pub,
		laddr:      FormatAddr(addrPortOf(qc.LocalAddr())),
		raddr:      FormatAddr(addrPortOf(qc.RemoteAddr())),
		dir:        dir,
	}, nil
}

// ErrRefused is wrapped by the error of a connection that the
// ResourceManager refused; so is the manager's own error.
var ErrRefused = errors.New("refused by the resource manager")

// CodeResourceLimitExceeded is the application error code a connection or
// stream refused by the ResourceManager is closed or reset with
// (RESOURCE_LIMIT_EXCEEDED of libp2p's error codes).
const CodeResourceLimitExceeded = 0x1001

// admit opens c's scope with the ResourceManager, or closes c when it is
// refused. The scope is closed when the connection closes.
func (t *Transport) admit(c *Conn) error {
	if t.cfg.Resources == nil {
		return nil
	}
	scope, err := t.cfg.Resources.OpenConn(c.dir, c.remotePeer, c.raddr)
	if err != nil {
		c.qc.CloseWithError(CodeResourceLimitExceeded, "resource limit exceeded")
		return fmt.Errorf("connection with %s %w: %w", c.remotePeer, ErrRefused, err)
	}
	c.scope = scope
	context.AfterFunc(c.qc.Context(), scope.Close)
	t.mux.SetScope(c.qc, scope)
	return nil
}

// Listen accepts QUIC connections on addr. Port 0 shares the UDP socket of
// a WebTransport listener on the same IP, if there is one.
func (t *Transport) Listen(addr ma.Multiaddr) (network.Listener, error) {
	ap, rest, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("quic: cannot listen on %s", addr)
	}
	conf, err := t.sec.ServerConfig()
	if err != nil {
		return nil, fmt.Errorf("quic: listen on %s: %w", addr, err)
	}
	// Clients are checked on their connections' own goroutines, inside
	// the socket's handshake budget; Accept then finds them kept.
	verify := func(qc *quic.Conn) error {
		_, _, err := t.peerOf(qc)
		return err
	}
	ul, err := t.mux.ListenVerified(ap, udpmux.ALPNLibp2p, conf, verify)
	if err != nil {
		return nil, fmt.Errorf("quic: listen on %s: %w", addr, err)
	}
	return &Listener{t: t, ul: ul}, nil
}

// Listener accepts QUIC connections. Closing it stops accepting; accepted
// connections stay open.
type Listener struct {
	t        *Transport
	ul       *udpmux.Listener
	refusals logs.Limiter
}

// Accept waits for the next authenticated connection.
func (l *Listener) Accept() (network.TransportConn, error) {
	for {
		qc, err := l.ul.Accept(context.Background())
		if err != nil {
			return nil, fmt.Errorf("quic: accept: %w", err)
		}
		select {
		case <-qc.HandshakeComplete():
		default:
			// udpmux hands out only handshaken connections; before that
			// the client has not proved it holds its certificate's key.
			l.t.cfg.Log.Debug("inbound connection dropped: handshake not complete", "addr", l.ul.Addr(), "remote", qc.RemoteAddr())
			qc.CloseWithError(0, "")
			continue
		}
		c, err := l.t.newConn(qc, network.DirInbound)
		if err != nil {
			// verify refused such clients already; this is a safety net.
			l.t.cfg.Log.Debug("inbound connection dropped", "addr", l.ul.Addr(), "remote", qc.RemoteAddr(), "err", err)
			qc.CloseWithError(0, udpmux.RefusedReason)
			continue
		}
		c.handshake, _ = udpmux.HandshakeDuration(qc) // recorded before udpmux handed qc over
		if err := l.t.admit(c); err != nil {
			if ok, held := l.refusals.Allow(time.Second); ok {
				l.t.cfg.Log.Debug("inbound connection refused", "addr", l.ul.Addr(), "remote", qc.RemoteAddr(), "err", err, "refused_unlogged", held)
			}
			continue
		}
		return c, nil
	}
}

// Close stops accepting.
func (l *Listener) Close() error { return l.ul.Close() }

// Multiaddrs returns the listening address, /…/udp/N/quic-v1.
func (l *Listener) Multiaddrs() []ma.Multiaddr {
	return []ma.Multiaddr{FormatAddr(l.ul.Addr())}
}

// Addr returns the UDP address the listener is bound to.
func (l *Listener) Addr() netip.AddrPort { return l.ul.Addr() }

// ErrUnreachable is wrapped by a dial error when the peer's host answered
// with an ICMP "port unreachable" (nothing listens on that UDP port), or
// host or network unreachable. Such errors also match the errno
// (syscall.ECONNREFUSED for a closed port) with errors.Is.
var ErrUnreachable = errors.New("ICMP destination unreachable")

// dialError names the address and, for the two ways a dial to a silent or
// closed port ends, says so plainly.
func dialError(ctx context.Context, addr ma.Multiaddr, took time.Duration, err error) error {
	var pe *probeError
	if errors.As(context.Cause(ctx), &pe) {
		return fmt.Errorf("quic: dial %s: %w: %w", addr, ErrUnreachable, pe.err)
	}
	var te interface{ Timeout() bool }
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &te) && te.Timeout() {
		return fmt.Errorf("quic: QUIC handshake with %s timed out after %s (no reply: is a node listening on that UDP port?): %w",
			addr, took.Round(100*time.Millisecond), err)
	}
	return fmt.Errorf("quic: dial %s: %w", addr, err)
}

// probeError is the cause a dial's context is cancelled with when the
// probe learned that the port is closed.
type probeError struct{ err error }

func (e *probeError) Error() string { return e.err.Error() }
func (e *probeError) Unwrap() error { return e.err }

// probeConn is what runProbe needs of its connected UDP socket.
type probeConn interface {
	Write([]byte) (int, error)
	Read([]byte) (int, error)
	SetReadDeadline(time.Time) error
}

// runProbe sends on schedule and reads in between, the read deadline being
// the next send's time, until the socket is closed, the schedule is done
// and a read fails, or an ICMP error comes back, which it reports to
// refused. The kernel hands a pending ICMP error to whichever call comes
// first, a send or a read, so both are checked. Another failure of a send
// (a full buffer, a local firewall) is tried again at the next send.
func runProbe(c probeConn, schedule []time.Duration, refused context.CancelCauseFunc) {
	start := time.Now()
	var b [64]byte
	for i := range schedule {
		if _, err := c.Write([]byte{0x40}); err != nil {
			if isUnreachable(err) {
				refused(&probeError{err})
				return
			}
			if errors.Is(err, net.ErrClosed) {
				return // stopped
			}
		}
		var next time.Time // none after the last send
		if i+1 < len(schedule) {
			next = start.Add(schedule[i+1])
		}
		c.SetReadDeadline(next)
		for {
			_, err := c.Read(b[:])
			if err == nil {
				continue // an answer is ignored
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break // time to send again
			}
			if isUnreachable(err) {
				refused(&probeError{err})
			}
			return // stopped, or an error that says nothing
		}
	}
}

// probeSchedule is when the probe sends, from the start of the dial: a
// lost datagram or ICMP message, or ICMP rate limiting, gets a few more
// chances.
var probeSchedule = []time.Duration{0, 200 * time.Millisecond, time.Second, 3 * time.Second}

// probeUnreachable finds out early whether anything listens on raddr, so
// that a dial to a closed port fails at once rather than at the timeout,
// as a TCP dial does.
//
// quic-go cannot tell: its sockets are unconnected, and Linux reports ICMP
// errors only on connected UDP sockets (or with IP_RECVERR, which quic-go
// does not set, and whose error a read would return as fatal to the whole
// shared socket). So a connected socket of its own sends raddr a 1-byte
// datagram, 0x40: a QUIC short header too short to hold a connection ID,
// which QUIC stacks drop unanswered. If the host answers "port
// unreachable", the next send or read on the socket fails with
// ECONNREFUSED, and the probe cancels the dial with it as the cause. No
// answer, or any other outcome, changes nothing. (A NAT that refuses datagrams from unknown
// sources could refuse the probe, so a hole-punching dial skips it.)
//
// stop ends the probe and waits for its goroutine.
func probeUnreachable(raddr netip.AddrPort, refused context.CancelCauseFunc) (stop func()) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(raddr))
	if err != nil {
		return func() {} // no probe; the dial reports what is wrong
	}
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		runProbe(c, probeSchedule, refused)
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			c.Close()
			<-exited
		})
	}
}
