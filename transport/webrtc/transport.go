// Package webrtc is the WebRTC-direct transport (libp2p/specs
// webrtc/webrtc-direct.md) on pion/webrtc: a listener is an ICE-lite, DTLS
// server on one UDP socket, reachable at
// /ip4|ip6/<ip>/udp/<port>/webrtc-direct/certhash/<sha2-256 multihash>; a
// dialer builds the listener's SDP answer from that address. Peers prove
// their identity with Noise on data channel 0, the listener being the Noise
// initiator, and every other data channel is one stream framed as in
// webrtc/README.md.
//
// The package also holds the /webrtc transport (PrivateTransport,
// private.go): peers that share a relayed connection exchange SDP over it
// and connect directly, with the same streams.
package webrtc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/pion/ice/v4"
	"github.com/pion/stun/v3"
	pion "github.com/pion/webrtc/v4"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/logs"
	"github.com/tachyon-p2p/tachyon/security/noise"
)

// Config tunes a Transport. The zero value is the default.
type Config struct {
	// MaxInFlight bounds inbound connections between the first STUN request
	// and Accept; further attempts are dropped. Default 128. It applies
	// only without Resources, whose BeginHandshake decides instead.
	MaxInFlight int
	// Resources, when set, admits work: BeginHandshake(remote IP) for each
	// inbound attempt (the first STUN binding request with a new ufrag),
	// until its Noise handshake ends; OpenConn for every authenticated
	// connection, both directions (refused: the connection is closed); and,
	// in the connection's scope, OpenStream per data channel (an inbound
	// one refused is reset) and ReserveMemory for each stream's unread data
	// (refused: that stream is reset). Nil admits everything.
	Resources network.ResourceManager
	// HandshakeTimeout bounds an inbound connection's ICE, DTLS and Noise
	// setup. Default 10s.
	HandshakeTimeout time.Duration
	// ListenPacket, when set, gives Listen the packet connection to serve
	// on instead of a UDP socket of its own, e.g. the STUN and DTLS share of
	// a socket QUIC also listens on. laddr is the listen address (port 0
	// asks for any port). The returned conn's LocalAddr must report the
	// bound address (*net.UDPAddr or a string host:port), its ReadFrom must
	// return the sender's address and its WriteTo must accept a
	// *net.UDPAddr. The listener owns the conn: it closes it on Close, or
	// at once if Listen fails after the hook returned.
	ListenPacket func(laddr netip.AddrPort) (net.PacketConn, error)
	// Log receives inbound connections whose ICE, DTLS or Noise setup
	// failed (Debug), attempts dropped over MaxInFlight (Info, at most once
	// a second) and sockets that stop on a read error (Warn). Nil discards.
	Log *slog.Logger
	// Tracer, if set, is told about handshakes and ICE failures.
	Tracer Tracer
}

// Tracer is told when a handshake (a dial, or an inbound connection from
// its first STUN packet or signalling stream to its end) starts (delta 1)
// and ends (delta -1), and about every handshake that failed before ICE
// connected. It must not block.
type Tracer interface {
	Handshakes(delta int)
	ICEFailed()
}

// traceHandshake tells tr (when not nil) a handshake started and returns
// what tells it the handshake ended.
func traceHandshake(tr Tracer) (end func()) {
	if tr == nil {
		return func() {}
	}
	tr.Handshakes(1)
	return func() { tr.Handshakes(-1) }
}

// traceICE tells tr (when not nil) about a failed handshake whose ICE did
// not connect.
func traceICE(tr Tracer, pc *pion.PeerConnection) {
	if tr == nil {
		return
	}
	switch pc.ICEConnectionState() {
	case pion.ICEConnectionStateConnected, pion.ICEConnectionStateCompleted:
		return
	}
	tr.ICEFailed()
}

// Transport dials and listens on WebRTC-direct addresses.
type Transport struct {
	key   crypto.PrivKey
	local peer.ID
	cert  *Certificate
	cfg   Config
	drops logs.Limiter // of "too many in flight" records
}

var _ network.Transport = (*Transport)(nil)

const (
	// sctpReceiveBuffer is the association's receive window. SCTP has no
	// per-stream flow control, so this is also how much data of streams
	// nobody reads (beyond their recvQueueMax) the connection absorbs
	// before every stream stalls: keep it large. What the sender keeps in
	// flight is bounded by sendHighWater instead.
	sctpReceiveBuffer = 8 << 20
	// handshakeChannelID is the negotiated data channel carrying Noise.
	handshakeChannelID = 0
)

// New returns a transport authenticating as key. cert is the listener's
// DTLS certificate; keep it with the host key (Certificate.MarshalPEM) so
// that the listen addresses' certhash survives restarts. Dialing uses a
// fresh certificate per connection. cfg may be nil.
func New(key crypto.PrivKey, cert *Certificate, cfg *Config) (*Transport, error) {
	if key == nil {
		return nil, errors.New("webrtc: nil host key")
	}
	if cert == nil {
		return nil, errors.New("webrtc: nil certificate")
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("webrtc: deriving peer ID: %w", err)
	}
	t := &Transport{key: key, local: id, cert: cert}
	if cfg != nil {
		t.cfg = *cfg
	}
	if t.cfg.MaxInFlight <= 0 {
		t.cfg.MaxInFlight = 128
	}
	if t.cfg.HandshakeTimeout <= 0 {
		t.cfg.HandshakeTimeout = 10 * time.Second
	}
	t.cfg.Log = logs.Or(t.cfg.Log)
	return t, nil
}

// Name returns "webrtc-direct".
func (t *Transport) Name() string { return "webrtc-direct" }

// CanDial reports whether addr is a WebRTC-direct address with a SHA-256
// certhash.
func (t *Transport) CanDial(addr ma.Multiaddr) bool {
	_, _, err := parseDialAddr(addr)
	return err == nil
}

// CanListen accepts /ip4|ip6/…/udp/N/webrtc-direct without a certhash (the
// listener's certificate gives it), port 0 included.
func (t *Transport) CanListen(addr ma.Multiaddr) bool {
	_, err := parseListenAddr(addr)
	return err == nil
}

// settingEngine holds what dialer and listener share: detached channels,
// no mDNS, loopback allowed, big SCTP window.
func settingEngine(v6 bool) pion.SettingEngine {
	var se pion.SettingEngine
	se.DetachDataChannels()
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetSCTPMaxReceiveBufferSize(sctpReceiveBuffer)
	se.SetICETimeouts(20*time.Second, 30*time.Second, 15*time.Second)
	if v6 {
		se.SetNetworkTypes([]pion.NetworkType{pion.NetworkTypeUDP6})
	} else {
		se.SetNetworkTypes([]pion.NetworkType{pion.NetworkTypeUDP4})
	}
	return se
}

// peerSetup is a PeerConnection with its Conn and handshake channel.
type peerSetup struct {
	pc        *pion.PeerConnection
	conn      *Conn
	handshake chan handshakeChan
}

type handshakeChan struct {
	dc  *pion.DataChannel
	err error
	s   *stream
}

// managed says a resource manager will admit the connection (see
// Conn.admit).
func newPeer(se pion.SettingEngine, cert *Certificate, dir network.Direction, managed bool, log *slog.Logger) (*peerSetup, error) {
	api := pion.NewAPI(pion.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(pion.Configuration{Certificates: []pion.Certificate{cert.pion()}})
	if err != nil {
		return nil, fmt.Errorf("webrtc: creating peer connection: %w", err)
	}
	c := newConn(pc, dir, managed, false, log)
	p := &peerSetup{pc: pc, conn: c, handshake: make(chan handshakeChan, 1)}
	// The dialer, the Noise responder, creates the handshake channel now,
	// so that it exists before the listener's first message arrives. The
	// listener creates it only once SCTP is up (see handshakeStream).
	if dir == network.DirOutbound {
		if err := p.createHandshakeChannel(); err != nil {
			c.Close()
			return nil, err
		}
	}
	return p, nil
}

// createHandshakeChannel creates the negotiated channel carrying Noise; it
// reports on p.handshake when the channel opens.
func (p *peerSetup) createHandshakeChannel() error {
	negotiated, id := true, uint16(handshakeChannelID)
	dc, err := p.pc.CreateDataChannel("", &pion.DataChannelInit{Negotiated: &negotiated, ID: &id})
	if err != nil {
		return fmt.Errorf("webrtc: creating handshake channel: %w", err)
	}
	c := p.conn
	dc.OnOpen(func() {
		rwc, err := dc.Detach()
		if err != nil {
			p.handshake <- handshakeChan{err: err}
			return
		}
		s, ok := c.addStream(dc, rwc, false, nil)
		if !ok {
			p.handshake <- handshakeChan{err: ErrConnClosed}
			return
		}
		p.handshake <- handshakeChan{dc: dc, s: s}
	})
	return nil
}

// waitSCTP waits until the SCTP association is up.
//
// pion's SCTPTransport.Start snapshots the data channels that exist at that
// moment, and its accept loop then ignores every incoming SCTP stream whose
// id is one of theirs, for the life of the association, even after that
// channel was closed. js-libp2p reuses id 0 for a later stream once the
// Noise channel is closed, so on the listener the handshake channel must
// not be in that snapshot: it is created after Start. Start sets the state
// to connected under the same lock as it takes the snapshot.
//
// pion has no callback for it, so this polls: from 100 us, doubling up to
// 2 ms, since on a fast path the association is up within a millisecond
// (a fixed 2 ms tick cost about 1 ms of every loopback connection).
func (p *peerSetup) waitSCTP(ctx context.Context) error {
	wait := 100 * time.Microsecond
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for p.pc.SCTP().State() != pion.SCTPTransportStateConnected {
		select {
		case <-timer.C:
			wait = min(2*wait, 2*time.Millisecond)
			timer.Reset(wait)
		case <-p.conn.failed:
			return errors.New("connection failed before SCTP started")
		case <-ctx.Done():
			return fmt.Errorf("waiting for SCTP: %w", ctx.Err())
		}
	}
	return nil
}

// closeHandshake ends our half of the Noise channel after the handshake
// and leaves the channel to close when the peer has finished its half (its
// FIN, and its FIN_ACK for ours), not at once. Closing the channel resets
// its SCTP stream; a peer that is still writing its own FIN then can send
// it behind the reset (libdatachannel, js-libp2p in Node, queues a write
// that raced the reset and sends it once the reset completes). Ours, pion,
// takes such data for a new stream on the id, and its accept loop ends on
// a stream whose first message is not a DCEP open: no further stream of
// the connection could be accepted. A peer that never finishes its half
// gets the old behaviour after drainWait.
func closeHandshake(hs *stream, listener bool) {
	if h := testBeforeHandshakeClose; h != nil {
		h(listener, hs)
	}
	_ = hs.CloseWrite()
	time.AfterFunc(drainWait(), func() { _ = hs.CloseRead() })
}

// testBeforeHandshakeClose, set by a test, runs before a side half-closes
// its handshake channel.
var testBeforeHandshakeClose func(listener bool, hs *stream)

// handshakeStream waits for the connection and its handshake channel.
func (p *peerSetup) handshakeStream(ctx context.Context) (*stream, error) {
	select {
	case <-p.conn.connected:
	case <-p.conn.failed:
		return nil, errors.New("ICE or DTLS failed")
	case <-ctx.Done():
		return nil, fmt.Errorf("connecting: %w", ctx.Err())
	}
	if p.conn.dir == network.DirInbound {
		// The listener is the Noise initiator: the dialer sends nothing on
		// the handshake channel before it, so creating it late is safe.
		if err := p.waitSCTP(ctx); err != nil {
			return nil, err
		}
		if err := p.createHandshakeChannel(); err != nil {
			return nil, err
		}
	}
	select {
	case h := <-p.handshake:
		if h.err != nil {
			return nil, fmt.Errorf("opening handshake channel: %w", h.err)
		}
		return h.s, nil
	case <-p.conn.failed:
		return nil, errors.New("connection failed before the handshake channel opened")
	case <-ctx.Done():
		return nil, fmt.Errorf("opening handshake channel: %w", ctx.Err())
	}
}

// remoteFingerprint is the SHA-256 of the certificate the peer used in DTLS.
func (p *peerSetup) remoteFingerprint() ([]byte, error) { return remoteCertFingerprint(p.pc) }

// Dial connects to the listener at addr, which must prove it is p.
func (t *Transport) Dial(ctx context.Context, addr ma.Multiaddr, p peer.ID) (network.TransportConn, error) {
	end := traceHandshake(t.cfg.Tracer)
	c, err := t.dial(ctx, addr, p)
	end()
	if err != nil {
		return nil, fmt.Errorf("webrtc: dial %s: %w", addr, err)
	}
	return c, nil
}

func (t *Transport) dial(ctx context.Context, addr ma.Multiaddr, p peer.ID) (_ *Conn, err error) {
	if p == "" {
		return nil, errors.New("the remote peer ID is required")
	}
	raddr, fp, err := parseDialAddr(addr)
	if err != nil {
		return nil, err
	}
	cert, err := GenerateCertificate()
	if err != nil {
		return nil, err
	}
	v6 := raddr.IP.To4() == nil
	ufrag := randomUfrag()
	se := settingEngine(v6)
	se.SetICECredentials(ufrag, ufrag)
	se.SetPrflxAcceptanceMinWait(0)
	// pion's controlling agent nominates only after its check succeeded and
	// a later check tick, which costs a round trip before DTLS may start.
	// The listener answers our check and sends its own in the same flight;
	// once that arrives and our check has been answered (so the listener is
	// reachable and knew our credentials), use the pair at once. The
	// listener still gets its USE-CANDIDATE: pion sends it from the same
	// request handler, but only for the best available pair, so this is
	// sound only with one pair: the listener's answer has one candidate,
	// and the dialer gathers exactly one, on the socket below.
	var selected atomic.Bool
	se.SetICEBindingRequestHandler(func(_ *stun.Message, _, _ ice.Candidate, pair *ice.CandidatePair) bool {
		return pair != nil && pair.ResponsesReceived() > 0 && selected.CompareAndSwap(false, true)
	})
	// One socket on the address the route to the listener leaves from: one
	// host candidate, and nothing sent from other interfaces (a loopback
	// dial sends nothing off the host). pion would also not gather on ::1
	// by itself (it mistakes it for an IPv4-compatible address).
	nw := "udp4"
	if v6 {
		nw = "udp6"
	}
	src, err := sourceIP(nw, raddr)
	if err != nil {
		return nil, err
	}
	sock, err := net.ListenUDP(nw, &net.UDPAddr{IP: src})
	if err != nil {
		return nil, fmt.Errorf("binding a UDP socket on %s: %w", src, err)
	}
	// As the listener's: the default buffer holds a fraction of what a
	// stream keeps in flight.
	_ = sock.SetReadBuffer(4 << 20)
	_ = sock.SetWriteBuffer(4 << 20)
	mux := ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: sock})
	se.SetICEUDPMux(mux)
	se.SetIPFilter(func(ip net.IP) bool { return ip.Equal(src) })

	ps, err := newPeer(se, cert, network.DirOutbound, t.cfg.Resources != nil, t.cfg.Log.With("remote", raddr))
	if err != nil {
		mux.Close()
		return nil, err
	}
	ps.conn.setOnDone(func() { mux.Close() })
	defer func() {
		if err != nil {
			ps.conn.Close()
		}
	}()
	offer, err := ps.pc.CreateOffer(nil)
	if err != nil {
		return nil, fmt.Errorf("creating offer: %w", err)
	}
	if err := ps.pc.SetLocalDescription(offer); err != nil {
		return nil, fmt.Errorf("setting offer: %w", err)
	}
	answer := pion.SessionDescription{Type: pion.SDPTypeAnswer, SDP: serverAnswer(raddr, ufrag, fp)}
	if err := ps.pc.SetRemoteDescription(answer); err != nil {
		return nil, fmt.Errorf("setting answer: %w", err)
	}
	hs, err := ps.handshakeStream(ctx)
	if err != nil {
		traceICE(t.cfg.Tracer, ps.pc)
		return nil, err
	}
	remoteFP, err := ps.remoteFingerprint()
	if err != nil {
		return nil, err
	}
	if string(remoteFP) != string(fp) {
		return nil, errors.New("DTLS certificate does not match the certhash")
	}
	local := cert.Fingerprint()
	nt, err := noise.New(t.key, &noise.Config{Prologue: noisePrologue(local[:], fp)})
	if err != nil {
		return nil, err
	}
	sc, err := nt.SecureInbound(ctx, handshakeConn{stream: hs}, p)
	if err != nil {
		return nil, err
	}
	closeHandshake(hs, false)

	c := ps.conn
	c.local, c.remote, c.remoteKey = t.local, sc.RemotePeer(), sc.RemotePublicKey()
	c.raddr, _ = udpMultiaddr(raddr)
	c.laddr = c.raddr
	if pair, err := ps.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair(); err == nil && pair != nil {
		if la, err := udpMultiaddr(&net.UDPAddr{IP: net.ParseIP(pair.Local.Address), Port: int(pair.Local.Port)}); err == nil {
			c.laddr = la
		}
	}
	if err := c.openConn(t.cfg.Resources); err != nil {
		return nil, err
	}
	return c, nil
}

// sourceIP is the local address the kernel would send from to reach raddr
// (a connected UDP socket learns it from the routing table; nothing is
// sent).
func sourceIP(network string, raddr *net.UDPAddr) (net.IP, error) {
	if raddr.IP.IsLoopback() {
		return raddr.IP, nil
	}
	probe, err := net.DialUDP(network, nil, raddr)
	if err != nil {
		return nil, fmt.Errorf("finding the route to %s: %w", raddr, err)
	}
	defer probe.Close()
	return probe.LocalAddr().(*net.UDPAddr).IP, nil
}
