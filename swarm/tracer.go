package swarm

import (
	"errors"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/dialrank"
)

// Tracer hears what the swarm does with connections and dials, for metrics
// (package metrics) and trace spans. Nil (Config.Tracer unset) costs one
// nil check per event. Methods run on the swarm's goroutines: they must not
// block, and must not keep the addresses of their arguments.
//
// Events of one dial come in this order once the dial ended: AddrSkipped
// for each address ranked out, DialAttemptEnded for each attempt started,
// then DialEnded; ConnOpened for the winner came before all of them.
type Tracer interface {
	// ConnOpened: a connection joined the swarm (the gater let it in).
	ConnOpened(ConnInfo)
	// ConnClosed: a connection left the swarm; open is how long it was in.
	ConnClosed(c ConnInfo, open time.Duration)
	// DialAttemptEnded: one address of a dial was tried, with this outcome.
	DialAttemptEnded(DialAttempt)
	// DialEnded: a whole dial ended (DialPeer's shared dial, DialDirect,
	// DialVia).
	DialEnded(DialEnd)
	// AddrSkipped: the ranking left an address of a dial out.
	AddrSkipped(reason dialrank.Reason)
	// BlackHoleChanged: a dial's outcome changed the black-hole verdict of
	// a class of addresses (Open or Blocked).
	BlackHoleChanged(class dialrank.Class, v dialrank.Verdict)
}

// ConnInfo describes a connection to a Tracer.
type ConnInfo struct {
	ID    uint64
	Peer  peer.ID // for traces; never a metric label
	Dir   network.Direction
	State network.ConnState
	// IPVersion is 4 or 6 from the remote address's first component, 0
	// when it has none (a relayed address counts as its relay's).
	IPVersion int
	Opened    time.Time
	// Handshake is how long the transport took to secure and mux the
	// connection, when the swarm knows it (OwnHandshake transports, see
	// SelfSecured), else 0.
	Handshake time.Duration
}

// DialAttempt is one address of a dial, ended.
type DialAttempt struct {
	Peer      peer.ID      // for traces
	Addr      ma.Multiaddr // for traces; never a metric label
	Transport dialrank.Transport
	IPVersion int // 4, 6, or 0
	Outcome   dialrank.Outcome
	Err       error // nil when Outcome is Connected
	Start     time.Time
	Took      time.Duration
	// SelfSecured: the transport secures and muxes connections itself
	// (QUIC, WebTransport, WebRTC-direct: no upgrader), so Took of a
	// Connected attempt is its whole handshake.
	SelfSecured bool
}

// ErrAllFailed is DialEnd.Err for a dial that failed because every
// address it tried failed (DialError.Errors has why).
var ErrAllFailed = errors.New("swarm: every address failed")

// DialEnd is a whole dial, ended.
type DialEnd struct {
	Peer     peer.ID
	Start    time.Time
	Took     time.Duration
	Attempts int   // addresses tried
	Err      error // nil: connected
}

// IPVersion returns 4 or 6 from a's first component, 0 if it is not an
// IP address.
func IPVersion(a ma.Multiaddr) int {
	if len(a) == 0 {
		return 0
	}
	switch a[0].Code() {
	case ma.P_IP4:
		return 4
	case ma.P_IP6:
		return 6
	}
	return 0
}

// SelfSecured reports whether connections of transport t (a
// network.ConnState.Transport name) are secured and muxed by the transport
// itself rather than by package upgrader, whose Tracer reports its own
// handshakes.
func SelfSecured(transport string) bool {
	switch transport {
	case "quic-v1", "webtransport", "webrtc-direct", "webrtc":
		return true
	}
	return false
}

// selfSecuredDial is SelfSecured for a dialrank transport.
func selfSecuredDial(t dialrank.Transport) bool {
	switch t {
	case dialrank.QUIC, dialrank.WebTransport, dialrank.WebRTCDirect:
		return true
	}
	return false
}

// HandshakeTimer is implemented by connections of transports that secure
// themselves and know how long their handshake took; the swarm reports it
// in ConnInfo.Handshake for inbound connections.
type HandshakeTimer interface {
	HandshakeDuration() time.Duration
}

func (c *Conn) info() ConnInfo {
	st := c.tc.ConnState()
	ci := ConnInfo{
		ID: c.id, Peer: c.tc.RemotePeer(), Dir: c.tc.Direction(), State: st,
		IPVersion: IPVersion(c.tc.RemoteMultiaddr()), Opened: c.opened,
	}
	ci.Handshake = c.HandshakeDuration()
	return ci
}

// HandshakeDuration is how long the handshake of an inbound connection of a
// self-securing transport (QUIC, WebTransport, WebRTC-direct) took, as the
// transport timed it; 0 for other connections (the upgrader times those,
// and a dial attempt its own outbound connection).
func (c *Conn) HandshakeDuration() time.Duration {
	if ht, ok := c.tc.(HandshakeTimer); ok {
		return ht.HandshakeDuration()
	}
	return 0
}

// traceDial reports a finished dial to the tracer: its skipped addresses,
// its attempts, the dial, and the black-hole changes its outcome caused
// (before is the view taken before BlackHoles.Learn).
func (s *Swarm) traceDial(t Tracer, tr *dialrank.Trace, before dialrank.BlackHoleView) {
	for _, sk := range tr.Ranking.Skipped {
		t.AddrSkipped(sk.Reason)
	}
	started := 0
	for i := range tr.Attempts {
		a := &tr.Attempts[i]
		if a.Outcome == dialrank.NotStarted || a.Start.IsZero() {
			continue
		}
		started++
		t.DialAttemptEnded(DialAttempt{
			Peer: tr.Peer, Addr: a.Dial.Addr, Transport: a.Dial.Transport, IPVersion: IPVersion(a.Dial.Addr),
			Outcome: a.Outcome, Err: a.Err, Start: a.Start, Took: a.Took(), SelfSecured: selfSecuredDial(a.Dial.Transport),
		})
	}
	err := tr.Err
	if err == nil && tr.Winner() == nil {
		err = ErrAllFailed // the dial ran out of addresses: no cause as a whole
	}
	t.DialEnded(DialEnd{Peer: tr.Peer, Start: tr.Begin, Took: tr.End.Sub(tr.Begin), Attempts: started, Err: err})
	after := s.cfg.BlackHoles.View()
	for c := dialrank.UDP4; c <= dialrank.TCP6; c++ {
		if before.Of(c) != after.Of(c) {
			t.BlackHoleChanged(c, after.Of(c))
		}
	}
}

// StreamMeter counts the bytes of one stream and hears of its end. It must
// not block.
type StreamMeter interface {
	// AddBytes adds bytes read (in) and written (out) since the last call.
	AddBytes(in, out uint64)
	// StreamClosed: the stream was closed or reset, or its inbound
	// handler returned. Called once.
	StreamClosed()
}

// meterFlush is how many bytes a stream counts in its own fields before
// it hands them to its StreamMeter: Read and Write cost a plain addition,
// not a shared atomic.
const meterFlush = 64 << 10

// StreamTracer counts streams by protocol (Config.Streams). A stream is
// opened in the tracer when its protocol is set (Stream.SetProtocol), or
// when it ends without one, with protocol "" after a NegotiationFailed.
// The implementation bounds the protocols it uses as labels.
type StreamTracer interface {
	StreamOpened(dir network.Direction, p protocol.ID) StreamMeter
	// NegotiationFailed: a stream ended without a protocol.
	NegotiationFailed(dir network.Direction)
}
