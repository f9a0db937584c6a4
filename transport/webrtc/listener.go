package webrtc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	pion "github.com/pion/webrtc/v4"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/security/noise"
)

// ErrListenerClosed is returned by Accept after Close.
var ErrListenerClosed = errors.New("webrtc: listener closed")

// pendingCandidates bounds connection attempts the mux has seen but the
// listener has not started yet.
const pendingCandidates = 32

type listener struct {
	t     *Transport
	mux   *udpMux
	laddr ma.Multiaddr // with /certhash
	base  ma.Multiaddr // without
	v6    bool

	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup // accept loop and handshakes
	inFlight chan struct{}  // semaphore: handshakes not yet accepted
	accepted chan *Conn
	closeMu  sync.Mutex
}

// Listen serves /ip4|ip6/<ip>/udp/<port>/webrtc-direct on a UDP socket of
// its own, or on the packet connection Config.ListenPacket returns.
// Connections accepted through it use that socket, so closing the listener
// also ends them.
func (t *Transport) Listen(addr ma.Multiaddr) (network.Listener, error) {
	ua, err := parseListenAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("webrtc: cannot listen on %s: %w", addr, err)
	}
	v6 := ua.IP.To4() == nil
	sock, err := t.listenPacket(ua, v6)
	if err != nil {
		return nil, fmt.Errorf("webrtc: listen on %s: %w", addr, err)
	}
	bound, err := udpAddrOf(sock.LocalAddr())
	if err != nil {
		sock.Close()
		return nil, fmt.Errorf("webrtc: listen on %s: local address of the packet connection: %w", addr, err)
	}
	base, err := udpMultiaddr(&net.UDPAddr{IP: ua.IP, Port: bound.Port, Zone: ua.Zone})
	if err != nil {
		sock.Close()
		return nil, fmt.Errorf("webrtc: listen on %s: %w", addr, err)
	}
	ch, err := certhashComponent(t.cert.CertHash())
	if err != nil {
		sock.Close()
		return nil, fmt.Errorf("webrtc: listen on %s: %w", addr, err)
	}
	// ICE host candidates carry the listen IP with the bound port.
	local := &net.UDPAddr{IP: ua.IP, Port: bound.Port, Zone: ua.Zone}
	l := &listener{
		t:        t,
		mux:      newUDPMux(sock, local, pendingCandidates, t.cfg.Log),
		laddr:    base.Encapsulate(ch),
		base:     base,
		v6:       v6,
		inFlight: make(chan struct{}, t.cfg.MaxInFlight),
		accepted: make(chan *Conn),
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// listenPacket returns the socket the listener serves on: the hook's conn
// when Config.ListenPacket is set, a UDP socket of its own otherwise.
func (t *Transport) listenPacket(ua *net.UDPAddr, v6 bool) (net.PacketConn, error) {
	if t.cfg.ListenPacket != nil {
		ap := ua.AddrPort()
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		sock, err := t.cfg.ListenPacket(ap)
		if err != nil {
			return nil, fmt.Errorf("Config.ListenPacket(%s): %w", ap, err)
		}
		if sock == nil {
			return nil, fmt.Errorf("Config.ListenPacket(%s) returned no connection", ap)
		}
		return sock, nil
	}
	nw := "udp4"
	if v6 {
		nw = "udp6"
	}
	sock, err := net.ListenUDP(nw, ua)
	if err != nil {
		return nil, err
	}
	// Large socket buffers absorb bursts from many associations.
	_ = sock.SetReadBuffer(4 << 20)
	_ = sock.SetWriteBuffer(4 << 20)
	return sock, nil
}

// udpAddrOf converts a packet connection's address to a *net.UDPAddr
// without assuming its concrete type.
func udpAddrOf(a net.Addr) (*net.UDPAddr, error) {
	if ua, ok := a.(*net.UDPAddr); ok {
		if ua == nil {
			return nil, errors.New("no address")
		}
		return ua, nil
	}
	if a == nil {
		return nil, errors.New("no address")
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return nil, fmt.Errorf("%s address %q is not ip:port: %w", a.Network(), a.String(), err)
	}
	return net.UDPAddrFromAddrPort(ap), nil
}

func (l *listener) acceptLoop() {
	defer l.wg.Done()
	for {
		var cand muxCandidate
		select {
		case cand = <-l.mux.pending:
		case <-l.ctx.Done():
			return
		}
		handshakeDone, release, err := l.admit(cand)
		if err != nil {
			l.mux.RemoveConnByUfrag(cand.creds.serverUfrag) // drop
			if ok, held := l.t.drops.Allow(time.Second); ok {
				l.t.cfg.Log.Info("dropping inbound connection attempts", "addr", l.base, "remote", cand.addr,
					"err", err, "dropped_unlogged", held)
			}
			continue
		}
		l.wg.Add(1)
		go l.handle(cand, handshakeDone, release)
	}
}

var errTooManyInFlight = errors.New("too many in flight (Config.MaxInFlight)")

// admit decides whether to start the handshake of an inbound attempt: the
// resource manager's BeginHandshake when there is one (handshakeDone ends
// it), MaxInFlight otherwise (release returns the slot once the
// connection is accepted). Nothing is allocated for the attempt before.
func (l *listener) admit(cand muxCandidate) (handshakeDone, release func(), err error) {
	if rm := l.t.cfg.Resources; rm != nil {
		ip, _ := netip.AddrFromSlice(cand.addr.IP)
		done, err := rm.BeginHandshake(ip.Unmap())
		if err != nil {
			return nil, nil, err
		}
		return done, func() {}, nil
	}
	select {
	case l.inFlight <- struct{}{}:
		return func() {}, func() { <-l.inFlight }, nil
	default:
		return nil, nil, fmt.Errorf("%w: %d", errTooManyInFlight, l.t.cfg.MaxInFlight)
	}
}

func (l *listener) handle(cand muxCandidate, handshakeDone, release func()) {
	defer l.wg.Done()
	ctx, cancel := context.WithTimeout(l.ctx, l.t.cfg.HandshakeTimeout)
	end := traceHandshake(l.t.cfg.Tracer)
	c, err := l.setup(ctx, cand)
	end()
	cancel()
	handshakeDone()
	if err != nil {
		if l.ctx.Err() == nil {
			l.t.cfg.Log.Debug("inbound connection failed (ICE, DTLS or Noise)", "addr", l.base, "remote", cand.addr, "err", err)
		}
		l.mux.RemoveConnByUfrag(cand.creds.serverUfrag)
		release()
		return
	}
	select {
	case l.accepted <- c:
		release()
	case <-l.ctx.Done():
		release()
		c.Close()
	}
}

// setup answers the offer the dialer implied, waits for ICE and DTLS, and
// runs Noise as the initiator.
func (l *listener) setup(ctx context.Context, cand muxCandidate) (_ *Conn, err error) {
	se := settingEngine(l.v6)
	se.SetAnsweringDTLSRole(pion.DTLSRoleServer)
	se.SetICECredentials(cand.creds.serverUfrag, cand.creds.serverUfrag)
	se.SetLite(true)
	se.SetICEUDPMux(l.mux)
	se.DisableCertificateFingerprintVerification(true) // Noise authenticates
	// No HelloVerifyRequest: its cookie proves the client's address, which
	// ICE has already proved. pion's ICE-lite agent selects the pair, and
	// DTLS answers, only after the dialer answered the agent's own binding
	// request with its random transaction ID, so a spoofed source never
	// gets the server's flight. Skipping it saves a round trip; attempts in
	// progress stay bounded by Config.MaxInFlight and HandshakeTimeout.
	se.SetDTLSInsecureSkipHelloVerify(true)
	ps, err := newPeer(se, l.t.cert, network.DirInbound, l.t.cfg.Resources != nil, l.t.cfg.Log.With("remote", cand.addr))
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			ps.conn.Close()
		}
	}()
	offer := pion.SessionDescription{Type: pion.SDPTypeOffer, SDP: clientOffer(cand.addr, cand.creds)}
	if err := ps.pc.SetRemoteDescription(offer); err != nil {
		return nil, fmt.Errorf("setting offer: %w", err)
	}
	answer, err := ps.pc.CreateAnswer(nil)
	if err != nil {
		return nil, fmt.Errorf("creating answer: %w", err)
	}
	if err := ps.pc.SetLocalDescription(answer); err != nil {
		return nil, fmt.Errorf("setting answer: %w", err)
	}
	hs, err := ps.handshakeStream(ctx)
	if err != nil {
		traceICE(l.t.cfg.Tracer, ps.pc)
		return nil, err
	}
	dialerFP, err := ps.remoteFingerprint()
	if err != nil {
		return nil, err
	}
	local := l.t.cert.Fingerprint()
	if dl, ok := ctx.Deadline(); ok {
		_ = hs.SetDeadline(dl)
	}
	// The listener is the Noise initiator here, and learns who dialed from
	// message 2, so it expects no particular peer.
	nt, err := noise.New(l.t.key, &noise.Config{Prologue: noisePrologue(dialerFP, local[:])})
	if err != nil {
		return nil, err
	}
	sc, err := nt.SecureOutbound(ctx, handshakeConn{stream: hs}, "")
	if err != nil {
		_ = hs.Reset()
		return nil, err
	}
	took := time.Since(cand.seen)
	remoteKey := sc.RemotePublicKey()
	closeHandshake(hs, true)
	c := ps.conn
	c.handshake = took
	c.local, c.remoteKey = l.t.local, remoteKey
	c.remote, err = peerIDFromKey(remoteKey)
	if err != nil {
		return nil, err
	}
	c.laddr = l.base
	c.raddr, err = udpMultiaddr(cand.addr)
	if err != nil {
		return nil, err
	}
	ufrag := cand.creds.serverUfrag
	c.setOnDone(func() { l.mux.RemoveConnByUfrag(ufrag) })
	if err := c.openConn(l.t.cfg.Resources); err != nil {
		return nil, err
	}
	return c, nil
}

// Accept returns the next connection that finished its handshake.
func (l *listener) Accept() (network.TransportConn, error) {
	select {
	case c := <-l.accepted:
		return c, nil
	case <-l.ctx.Done():
		return nil, ErrListenerClosed
	}
}

// Close stops accepting, abandons handshakes in progress and closes the
// socket. It waits for every goroutine it started.
func (l *listener) Close() error {
	l.closeMu.Lock()
	defer l.closeMu.Unlock()
	l.cancel()
	l.wg.Wait()
	return l.mux.Close()
}

// Multiaddrs returns the listen address with its /certhash.
func (l *listener) Multiaddrs() []ma.Multiaddr { return []ma.Multiaddr{l.laddr} }
