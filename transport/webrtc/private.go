package webrtc

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/pion/stun/v3"
	"github.com/pion/transport/v3"
	"github.com/pion/transport/v3/stdnet"
	pion "github.com/pion/webrtc/v4"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/logs"
)

// The /webrtc transport (libp2p/specs webrtc/webrtc.md), "private to
// private": two peers that cannot reach each other directly, typically
// browsers or nodes behind NATs, already share a connection, usually
// relayed and limited. The dialer A opens SignalingProtocol on it, creates
// the "init" data channel (so that its offer has an application section),
// sends its SDP offer, and both sides trickle ICE candidates until ICE and
// DTLS are up; then each closes the signalling stream (any failure resets
// it). pion checks the peer's DTLS certificate against the fingerprint in
// the SDP it received, and that SDP came over the connection that
// authenticated the peer: that is the whole of the security, there is no
// Noise. Streams are data channels framed as for WebRTC-direct (stream.go).

// initChannelLabel names the dialer's first data channel, which is not a
// stream.
const initChannelLabel = "init"

// Signaller opens signalling streams for a PrivateTransport. The host
// implements it.
type Signaller interface {
	// Signal opens a SignalingProtocol stream to p over a connection that
	// may be limited: an existing connection to p, or a new one through the
	// relay circuit address relayAddr (<relay addr>/p2p/<relay>/p2p-circuit;
	// dial relayAddr/p2p/<p>, never p's /webrtc addresses, which would ask
	// this transport again).
	Signal(ctx context.Context, relayAddr ma.Multiaddr, p peer.ID) (network.Stream, error)
}

// PrivateConfig tunes a PrivateTransport. The zero value is the default.
type PrivateConfig struct {
	// STUNServers are the STUN servers ICE asks for server-reflexive
	// candidates, as URIs ("stun:host:port"). None by default: then only
	// host candidates are offered, which connects peers on one network
	// only. TURN is not supported.
	STUNServers []string
	// MaxInFlight bounds signalling sessions in progress, each holding a
	// PeerConnection until it connects or fails, per direction: a further
	// inbound stream is reset at once, a further Dial fails. Default 64.
	MaxInFlight int
	// MaxInFlightPerPeer bounds one peer's inbound sessions in progress.
	// Default 4.
	MaxInFlightPerPeer int
	// HandshakeTimeout bounds a session, from the signalling stream to a
	// connected PeerConnection. Default 20s: ICE checks of server-reflexive
	// pairs through NATs may take seconds.
	HandshakeTimeout time.Duration
	// Resources, when set, admits each connection once it is up
	// (OpenConn: refused, the connection is closed) and, in its scope, each
	// stream and its unread data, as for WebRTC-direct. There is no
	// BeginHandshake: the signalling stream comes over a connection the
	// host admitted already, and the remote IP is the relay's.
	Resources network.ResourceManager
	// ICEAddrFilter, when set, picks the local addresses ICE gathers host
	// candidates on, loopback ones included (tests keep everything on
	// 127.0.0.1 with it). Nil: every non-loopback address.
	ICEAddrFilter func(netip.Addr) bool
	// Log receives failed sessions (Debug) and refusals over the limits
	// (Info, at most once a second). Nil discards.
	Log *slog.Logger
	// Tracer, if set, is told about sessions in progress and ICE
	// failures.
	Tracer Tracer
}

// PrivateTransport dials and listens on /webrtc addresses. It implements
// network.Transport; the host must also give it a Signaller
// (SetSignaller) and hand it every inbound SignalingProtocol stream
// (HandleSignaling), limited connections included.
type PrivateTransport struct {
	key     crypto.PrivKey
	local   peer.ID
	cert    *Certificate
	cfg     PrivateConfig
	ice     []pion.ICEServer
	drops   logs.Limiter  // of refusal records
	dialing chan struct{} // semaphore: outbound sessions in progress

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // sessions and signalling stream tails

	mu        sync.Mutex
	signaller Signaller
	listener  *privateListener
	inbound   int
	perPeer   map[peer.ID]int
	closed    bool
}

var _ network.Transport = (*PrivateTransport)(nil)

// Errors of PrivateTransport.
var (
	ErrNoSignaller     = errors.New("webrtc: no Signaller set")
	ErrTransportClosed = errors.New("webrtc: transport closed")
	errNotListening    = errors.New("not listening on /webrtc")
	errSessionLimit    = errors.New("too many /webrtc sessions in progress")
)

// NewPrivate returns a /webrtc transport authenticating as key (the peer
// ID it tells apart from others; the connections themselves are
// authenticated by the signalling connection). cert is the DTLS
// certificate of every connection; nil generates one. cfg may be nil.
func NewPrivate(key crypto.PrivKey, cert *Certificate, cfg *PrivateConfig) (*PrivateTransport, error) {
	if key == nil {
		return nil, errors.New("webrtc: nil host key")
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("webrtc: deriving peer ID: %w", err)
	}
	if cert == nil {
		if cert, err = GenerateCertificate(); err != nil {
			return nil, err
		}
	}
	t := &PrivateTransport{key: key, local: id, cert: cert, perPeer: map[peer.ID]int{}}
	if cfg != nil {
		t.cfg = *cfg
	}
	for _, u := range t.cfg.STUNServers {
		uri, err := stun.ParseURI(u)
		if err != nil {
			return nil, fmt.Errorf("webrtc: STUN server %q: %w", u, err)
		}
		if uri.Scheme != stun.SchemeTypeSTUN && uri.Scheme != stun.SchemeTypeSTUNS {
			return nil, fmt.Errorf("webrtc: STUN server %q: only stun: and stuns: URIs are supported", u)
		}
	}
	if len(t.cfg.STUNServers) > 0 {
		t.ice = []pion.ICEServer{{URLs: append([]string(nil), t.cfg.STUNServers...)}}
	}
	if t.cfg.MaxInFlight <= 0 {
		t.cfg.MaxInFlight = 64
	}
	if t.cfg.MaxInFlightPerPeer <= 0 {
		t.cfg.MaxInFlightPerPeer = 4
	}
	if t.cfg.HandshakeTimeout <= 0 {
		t.cfg.HandshakeTimeout = 20 * time.Second
	}
	t.cfg.Log = logs.Or(t.cfg.Log)
	t.dialing = make(chan struct{}, t.cfg.MaxInFlight)
	t.ctx, t.cancel = context.WithCancel(context.Background())
	return t, nil
}

// SetSignaller sets how Dial reaches peers. The host calls it once it
// exists (host and transport refer to each other).
func (t *PrivateTransport) SetSignaller(s Signaller) {
	t.mu.Lock()
	t.signaller = s
	t.mu.Unlock()
}

// Name returns "webrtc".
func (t *PrivateTransport) Name() string { return "webrtc" }

// CanDial reports whether addr is <relay addr>/p2p/<relay>/p2p-circuit/webrtc,
// with or without a trailing /p2p/<peer>.
func (t *PrivateTransport) CanDial(addr ma.Multiaddr) bool {
	_, _, err := parsePrivateAddr(addr)
	return err == nil
}

// CanListen accepts exactly /webrtc: the listener is reachable wherever
// the host has a relay reservation (see PrivateListenAddrs).
func (t *PrivateTransport) CanListen(addr ma.Multiaddr) bool {
	return len(addr) == 1 && addr[0].Code() == ma.P_WEBRTC
}

// parsePrivateAddr splits a /webrtc dial address into the circuit address
// before /webrtc and the peer it names, if any.
func parsePrivateAddr(addr ma.Multiaddr) (relayAddr ma.Multiaddr, target peer.ID, err error) {
	i := -1
	for j, c := range addr {
		if c.Code() == ma.P_CIRCUIT {
			if i >= 0 {
				return nil, "", errors.New("more than one /p2p-circuit")
			}
			i = j
		}
	}
	if i < 0 {
		return nil, "", errors.New("no /p2p-circuit")
	}
	if i == 0 || addr[i-1].Code() != ma.P_P2P {
		return nil, "", errors.New("the relay is not named (/p2p/<relay> before /p2p-circuit)")
	}
	rest := addr[i+1:]
	switch {
	case len(rest) == 1 && rest[0].Code() == ma.P_WEBRTC:
	case len(rest) == 2 && rest[0].Code() == ma.P_WEBRTC && rest[1].Code() == ma.P_P2P:
		target = peer.ID(rest[1].RawValue())
	default:
		return nil, "", errors.New("want /webrtc or /webrtc/p2p/<peer> after /p2p-circuit")
	}
	return addr[:i+1], target, nil
}

// PrivateListenAddrs returns the /webrtc addresses a host listening on
// /webrtc advertises: <circuit>/webrtc for each of its relay circuit
// addresses (<relay addr>/p2p/<relay>/p2p-circuit, as reservations give
// them; others are skipped).
func PrivateListenAddrs(circuitAddrs []ma.Multiaddr) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range circuitAddrs {
		if len(a) < 2 || a[len(a)-1].Code() != ma.P_CIRCUIT {
			continue
		}
		w := a.Encapsulate(webrtcAddr())
		if _, _, err := parsePrivateAddr(w); err == nil {
			out = append(out, w)
		}
	}
	return out
}

// Close fails sessions in progress, closes the listener and waits for the
// goroutines the transport started. Connections already handed out stay
// up.
func (t *PrivateTransport) Close() error {
	t.mu.Lock()
	t.closed = true
	l := t.listener
	t.mu.Unlock()
	t.cancel()
	if l != nil {
		_ = l.Close()
	}
	t.wg.Wait()
	return nil
}

// newPeer creates a PeerConnection and its Conn.
func (t *PrivateTransport) newPeer(dir network.Direction, log *slog.Logger) (*Conn, error) {
	se := settingEngine(false)
	se.SetNetworkTypes([]pion.NetworkType{pion.NetworkTypeUDP4, pion.NetworkTypeUDP6})
	se.SetIncludeLoopbackCandidate(t.cfg.ICEAddrFilter != nil)
	// The peer's connectivity checks come straight over UDP, its trickled
	// candidates over the relay, so the checks usually win: the peer is
	// first known as a peer-reflexive candidate, and pion (ice v4.0.10)
	// keeps crediting the checks to it once the signalled candidate at the
	// same address arrives (it looks remote candidates up by address).
	// As controlling agent (the dialer) pion would then hold the working
	// pair back for the prflx acceptance wait, 1 s by default, which was
	// the whole difference between tachyon dialing js or Chromium (1.1 s)
	// and the other pairs (0.1-0.4 s). A valid prflx pair is a path the
	// peer's own packets took; nominate it as soon as a host pair.
	se.SetPrflxAcceptanceMinWait(0)
	// The same wait for a server-reflexive pair is 500 ms, then pion's
	// next 200 ms tick: through NATs that pair is the one, and the wait
	// cost ~14 RTT at 40 ms on the testbed (test/webrtcnat).
	se.SetSrflxAcceptanceMinWait(0)
	// No HelloVerifyRequest, as for WebRTC-direct's listener: DTLS runs
	// only on a pair ICE validated with the credentials of the SDP that
	// came over the authenticated signalling stream, which proves the
	// peer's address already; it saves a round trip.
	se.SetDTLSInsecureSkipHelloVerify(true)
	if n, err := stdnet.NewNet(); err == nil {
		se.SetNet(bufferedNet{n})
	}
	if f := t.cfg.ICEAddrFilter; f != nil {
		se.SetIPFilter(func(ip net.IP) bool {
			a, ok := netip.AddrFromSlice(ip)
			return ok && f(a.Unmap())
		})
	}
	api := pion.NewAPI(pion.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(pion.Configuration{Certificates: []pion.Certificate{t.cert.pion()}, ICEServers: t.ice})
	if err != nil {
		return nil, fmt.Errorf("creating peer connection: %w", err)
	}
	return newConn(pc, dir, t.cfg.Resources != nil, true, log), nil
}

// refused logs a refusal, at most once a second.
func (t *PrivateTransport) refused(msg string, p peer.ID, err error) {
	if ok, held := t.drops.Allow(time.Second); ok {
		t.cfg.Log.Info(msg, "peer", p, "err", err, "refused_unlogged", held)
	}
}

// Dial connects to p through the relay named in addr: it opens a
// signalling stream with the Signaller and runs the session as the
// offerer. The connection's RemotePeer is the peer authenticated on the
// signalling stream's connection.
func (t *PrivateTransport) Dial(ctx context.Context, addr ma.Multiaddr, p peer.ID) (network.TransportConn, error) {
	c, err := t.dial(ctx, addr, p)
	if err != nil {
		return nil, fmt.Errorf("webrtc: dial %s: %w", addr, err)
	}
	return c, nil
}

func (t *PrivateTransport) dial(ctx context.Context, addr ma.Multiaddr, p peer.ID) (*Conn, error) {
	relayAddr, target, err := parsePrivateAddr(addr)
	if err != nil {
		return nil, err
	}
	if p == "" {
		p = target
	}
	if p == "" || (target != "" && target != p) {
		return nil, fmt.Errorf("the address names peer %q, the dial %q", target, p)
	}
	t.mu.Lock()
	sig, closed := t.signaller, t.closed
	if !closed {
		t.wg.Add(1)
	}
	t.mu.Unlock()
	if closed {
		return nil, ErrTransportClosed
	}
	defer t.wg.Done()
	if sig == nil {
		return nil, ErrNoSignaller
	}
	select {
	case t.dialing <- struct{}{}:
		defer func() { <-t.dialing }()
	default:
		return nil, fmt.Errorf("%w: %d dials (PrivateConfig.MaxInFlight)", errSessionLimit, t.cfg.MaxInFlight)
	}
	ctx, cancel := context.WithTimeout(ctx, t.cfg.HandshakeTimeout)
	defer cancel()
	stop := context.AfterFunc(t.ctx, cancel)
	defer stop()
	s, err := sig.Signal(ctx, relayAddr, p)
	if err != nil {
		return nil, fmt.Errorf("opening a signalling stream: %w", err)
	}
	if got := s.Conn().RemotePeer(); got != p {
		_ = s.Reset()
		return nil, fmt.Errorf("the signalling stream reached %s, not %s", got, p)
	}
	return t.runSession(ctx, s, network.DirOutbound)
}

// HandleSignaling answers an inbound SignalingProtocol stream; the host
// registers it as the protocol's handler, allowing limited connections.
// It returns once the connection is up and handed to the listener's
// Accept, or the session failed (the stream is then reset), within
// PrivateConfig.HandshakeTimeout.
func (t *PrivateTransport) HandleSignaling(s network.Stream) {
	remote := s.Conn().RemotePeer()
	l, release, err := t.admit(remote)
	if err != nil {
		_ = s.Reset()
		t.refused("refusing a /webrtc signalling stream", remote, err)
		return
	}
	defer release()
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.HandshakeTimeout)
	defer cancel()
	c, err := t.runSession(ctx, s, network.DirInbound)
	if err != nil {
		if t.ctx.Err() == nil {
			t.cfg.Log.Debug("inbound /webrtc session failed", "peer", remote, "err", err)
		}
		return
	}
	select {
	case l.accepted <- c:
	case <-l.done:
		_ = c.Close()
	case <-ctx.Done():
		t.cfg.Log.Debug("inbound /webrtc connection not accepted in time", "peer", remote)
		_ = c.Close()
	}
}

// admit takes an inbound slot for p, or says why not.
func (t *PrivateTransport) admit(p peer.ID) (*privateListener, func(), error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
		return nil, nil, ErrTransportClosed
	case t.listener == nil:
		return nil, nil, errNotListening
	case t.inbound >= t.cfg.MaxInFlight:
		return nil, nil, fmt.Errorf("%w: %d inbound (PrivateConfig.MaxInFlight)", errSessionLimit, t.cfg.MaxInFlight)
	case t.perPeer[p] >= t.cfg.MaxInFlightPerPeer:
		return nil, nil, fmt.Errorf("%w: %d inbound from %s (PrivateConfig.MaxInFlightPerPeer)", errSessionLimit, t.cfg.MaxInFlightPerPeer, p)
	}
	t.inbound++
	t.perPeer[p]++
	t.wg.Add(1)
	return t.listener, func() {
		t.mu.Lock()
		t.inbound--
		if t.perPeer[p]--; t.perPeer[p] == 0 {
			delete(t.perPeer, p)
		}
		t.mu.Unlock()
		t.wg.Done()
	}, nil
}

// runSession runs the signalling of one connection on s, as the offerer
// (DirOutbound) or the answerer, and returns the connection, admitted by
// the resource manager. On failure s is reset and nothing is left behind.
func (t *PrivateTransport) runSession(ctx context.Context, s network.Stream, dir network.Direction) (_ *Conn, err error) {
	defer traceHandshake(t.cfg.Tracer)()
	remote := s.Conn().RemotePeer()
	remoteKey := s.Conn().RemotePublicKey()
	if remoteKey == nil {
		if remoteKey, err = remote.ExtractPublicKey(); err != nil {
			_ = s.Reset()
			return nil, fmt.Errorf("no public key for %s: %w", remote, err)
		}
	}
	c, err := t.newPeer(dir, t.cfg.Log.With("peer", remote, "transport", "webrtc"))
	if err != nil {
		_ = s.Reset()
		return nil, err
	}
	ss := newSession(t, s, c)
	defer func() {
		if err != nil {
			ss.decide(false)
			_ = c.Close()
		}
	}()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	if dir == network.DirOutbound {
		err = ss.offer()
	} else {
		err = ss.answer()
	}
	if err != nil {
		return nil, err
	}
	if err := ss.waitConnected(ctx); err != nil {
		traceICE(t.cfg.Tracer, c.pc)
		return nil, iceFailure(c.pc, err)
	}
	if err := ss.checkFingerprint(); err != nil {
		return nil, err
	}
	if !stop() {
		return nil, fmt.Errorf("signalling: %w", ctx.Err())
	}
	c.local, c.remote, c.remoteKey = t.local, remote, remoteKey
	c.laddr, c.raddr = selectedAddrs(c.pc)
	if err := c.openConn(t.cfg.Resources); err != nil {
		return nil, err
	}
	ss.decide(true)
	return c, nil
}

// remoteCertFingerprint is the SHA-256 of the certificate the peer used in
// DTLS.
func remoteCertFingerprint(pc *pion.PeerConnection) ([]byte, error) {
	der := pc.SCTP().Transport().GetRemoteCertificate()
	if len(der) == 0 {
		return nil, errors.New("no remote DTLS certificate")
	}
	fp := sha256.Sum256(der)
	return fp[:], nil
}

// selectedAddrs are the addresses of the ICE pair in use, as
// /ip4|ip6/<ip>/udp/<port>/webrtc; plain /webrtc where one is unknown
// (an mDNS name, or no pair yet).
func selectedAddrs(pc *pion.PeerConnection) (laddr, raddr ma.Multiaddr) {
	laddr, raddr = webrtcAddr(), webrtcAddr()
	pair, err := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		return laddr, raddr
	}
	conv := func(c *pion.ICECandidate, def ma.Multiaddr) ma.Multiaddr {
		ip, err := netip.ParseAddr(strings.TrimSuffix(c.Address, "."))
		if err != nil {
			return def
		}
		a, err := udpMultiaddr(net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip.Unmap(), c.Port)))
		if err != nil {
			return def
		}
		// /ip4/A/udp/P/webrtc-direct -> /ip4/A/udp/P/webrtc
		return a[:len(a)-1].Encapsulate(webrtcAddr())
	}
	return conv(pair.Local, laddr), conv(pair.Remote, raddr)
}

// privateListener hands out the connections HandleSignaling set up.
type privateListener struct {
	t        *PrivateTransport
	accepted chan *Conn
	done     chan struct{}
	once     sync.Once
}

// Listen starts accepting /webrtc connections: HandleSignaling refuses
// streams while no listener is open. One listener at a time.
func (t *PrivateTransport) Listen(addr ma.Multiaddr) (network.Listener, error) {
	if !t.CanListen(addr) {
		return nil, fmt.Errorf("webrtc: cannot listen on %s: want /webrtc", addr)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrTransportClosed
	}
	if t.listener != nil {
		return nil, errors.New("webrtc: already listening on /webrtc")
	}
	l := &privateListener{t: t, accepted: make(chan *Conn), done: make(chan struct{})}
	t.listener = l
	return l, nil
}

// Accept returns the next connection a peer set up with us.
func (l *privateListener) Accept() (network.TransportConn, error) {
	select {
	case c := <-l.accepted:
		return c, nil
	case <-l.done:
		return nil, ErrListenerClosed
	}
}

// Close stops accepting; sessions in progress close their connections
// when they finish.
func (l *privateListener) Close() error {
	l.once.Do(func() {
		l.t.mu.Lock()
		if l.t.listener == l {
			l.t.listener = nil
		}
		l.t.mu.Unlock()
		close(l.done)
	})
	return nil
}

// Multiaddrs returns /webrtc; the host advertises it under each relay
// circuit address (PrivateListenAddrs).
func (l *privateListener) Multiaddrs() []ma.Multiaddr {
	return []ma.Multiaddr{webrtcAddr()}
}

// webrtcAddr returns /webrtc.
func webrtcAddr() ma.Multiaddr {
	c, err := ma.NewComponent("webrtc", "")
	if err != nil {
		panic(err) // a protocol go-multiaddr knows
	}
	return ma.Multiaddr{*c}
}

// iceFailure says why ICE did not connect, from the candidate pairs it
// checked, around err (a timeout or the signalling's end), unless ICE did
// connect (then err is about DTLS or the signalling).
func iceFailure(pc *pion.PeerConnection, err error) error {
	switch pc.ICEConnectionState() {
	case pion.ICEConnectionStateConnected, pion.ICEConnectionStateCompleted:
		return err
	}
	var pairs, succeeded int
	local, remote := map[string]int{}, map[string]int{}
	for _, st := range pc.GetStats() {
		switch s := st.(type) {
		case pion.ICECandidatePairStats:
			pairs++
			if s.State == pion.StatsICECandidatePairStateSucceeded {
				succeeded++
			}
		case pion.ICECandidateStats:
			if s.Type == pion.StatsTypeLocalCandidate {
				local[s.CandidateType.String()]++
			} else {
				remote[s.CandidateType.String()]++
			}
		}
	}
	if succeeded > 0 {
		return fmt.Errorf("ICE did not connect (state %s, %d of %d candidate pairs answered): %w", pc.ICEConnectionState(), succeeded, pairs, err)
	}
	return fmt.Errorf("ICE failed: no candidate pair answered (%d pairs checked; local candidates %v, remote %v; both peers behind symmetric NATs, or UDP blocked?): %w",
		pairs, local, remote, err)
}

// bufferedNet gives ICE's UDP sockets the receive and send buffers of
// WebRTC-direct's (4 MiB): with the kernel's default (208 KiB) a fast
// SCTP sender overflows them and the drops halved throughput at 40 ms RTT
// on the testbed.
type bufferedNet struct{ *stdnet.Net }

func (n bufferedNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	return c, growUDPBuffers(c, err)
}

func (n bufferedNet) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := n.Net.ListenPacket(network, address)
	return c, growUDPBuffers(c, err)
}

// growUDPBuffers sets a UDP socket's buffers to 4 MiB (best effort: the kernel caps
// them at its maximum).
func growUDPBuffers(c any, err error) error {
	if u, ok := c.(*net.UDPConn); ok && err == nil {
		_ = u.SetReadBuffer(4 << 20)
		_ = u.SetWriteBuffer(4 << 20)
	}
	return err
}
