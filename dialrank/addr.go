package dialrank

import (
	"encoding/binary"
	"net/netip"

	ma "github.com/multiformats/go-multiaddr"
)

// Transport is the kind of connection an address leads to, as far as
// ranking cares: how many round trips its handshake costs and where it
// goes in the order.
type Transport uint8

const (
	TransportOther  Transport = iota // an IP address no rule knows; dialed last among direct ones
	QUIC                             // /udp/P/quic-v1
	TCPTLS                           // /tcp/P/tls: TLS starts right after the TCP handshake
	TCPNoise                         // /tcp/P/noise: Noise starts right after the TCP handshake
	TCP                              // /tcp/P: multistream-select picks the security protocol
	WebTransport                     // /udp/P/quic-v1/webtransport/...
	WebSocket                        // /tcp/P/ws
	WebSocketSecure                  // /tcp/P/wss, /tcp/P/tls/ws, /tcp/P/tls/sni/H/ws
	WebRTCDirect                     // /udp/P/webrtc-direct/...
	Relay                            // .../p2p-circuit
)

var transportNames = [...]string{
	TransportOther:  "other",
	QUIC:            "quic",
	TCPTLS:          "tcp/tls",
	TCPNoise:        "tcp/noise",
	TCP:             "tcp",
	WebTransport:    "webtransport",
	WebSocket:       "ws",
	WebSocketSecure: "wss",
	WebRTCDirect:    "webrtc-direct",
	Relay:           "relay",
}

func (t Transport) String() string {
	if int(t) < len(transportNames) {
		return transportNames[t]
	}
	return "transport?"
}

// Rounds is the number of round trips the dialer waits, from its first
// packet, until the connection is secured and muxed (docs/handshakes.md):
//
//	quic 1 (QUIC and TLS 1.3 together)
//	tcp/tls, tcp/noise 2 (TCP, then TLS 1.3 or Noise XX, which the
//	    initiator finishes by sending its last message)
//	tcp 3 (TCP, multistream-select, security)
//	webtransport 3 (QUIC, HTTP/3 CONNECT, Noise)
//	ws 4 (TCP, HTTP upgrade, multistream-select, Noise); wss 5 (plus TLS)
//	webrtc-direct 5 (STUN, DTLS 2, SCTP, Noise; the data channel open
//	    travels with Noise's first message)
//	relay 4 (the relay's HOP and STOP exchange, then an upgrade over the
//	    circuit, counted in round trips to the relay)
func (t Transport) Rounds() int {
	switch t {
	case QUIC:
		return 1
	case TCPTLS, TCPNoise:
		return 2
	case TCP, WebTransport, TransportOther:
		return 3
	case WebSocket, Relay:
		return 4
	case WebSocketSecure, WebRTCDirect:
		return 5
	}
	return 3
}

// tier orders transports with equal expected connect times: the fewer
// round trips first, and among equals the one that is the more
// independent of what was tried before (TCP after QUIC gives a path that
// does not depend on UDP).
func (t Transport) tier() int {
	switch t {
	case QUIC:
		return 0
	case TCPTLS:
		return 1
	case TCPNoise:
		return 2
	case TCP:
		return 3
	case WebTransport:
		return 4
	case WebSocket:
		return 5
	case WebSocketSecure:
		return 6
	case WebRTCDirect:
		return 7
	case TransportOther:
		return 8
	}
	return 9
}

// udp reports whether t runs over UDP, for the black-hole classes.
func (t Transport) udp() bool {
	return t == QUIC || t == WebTransport || t == WebRTCDirect
}

// scope says where an IP address is reachable from.
type scope uint8

const (
	public   scope = iota
	private        // RFC 1918, RFC 6598 (CGNAT), ULA, link-local
	loopback       // 127/8, ::1
)

// cgnat is RFC 6598's shared address space: behind a carrier's NAT, as
// private as RFC 1918 from everywhere else.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

func scopeOf(ip netip.Addr) scope {
	switch {
	case ip.IsLoopback():
		return loopback
	case ip.IsPrivate(), ip.IsLinkLocalUnicast(), cgnat.Contains(ip):
		return private
	}
	return public
}

// info is what ranking needs to know of one address.
type info struct {
	ip    netip.Addr // the peer's IP, or the relay's for a relay address (may be invalid for a relay)
	port  uint16
	kind  Transport
	scope scope
	sock  string // the TCP socket the plain, /tls and /noise forms share; "" for other kinds
	// For a relay address: the transport to the relay, and the relay
	// itself (its peer ID, or its address without one).
	via   Transport
	relay string
}

// family returns 6 or 4.
func (i *info) family() int {
	if i.ip.Is4() {
		return 4
	}
	return 6
}

// class is the black-hole class of a direct public address.
func (i *info) class() Class {
	if i.kind == Relay || i.scope != public || !i.ip.IsValid() {
		return NoClass
	}
	switch {
	case i.kind.udp() && i.ip.Is4():
		return UDP4
	case i.kind.udp():
		return UDP6
	case i.ip.Is4():
		return TCP4
	}
	return TCP6
}

// parse classifies a. It reports false for an address that has no IP to
// dial (a DNS name not resolved yet, a unix socket, an unspecified IP).
// A trailing /p2p/<peer> is ignored.
func parse(a ma.Multiaddr) (info, bool) {
	if n := len(a); n > 0 && a[n-1].Code() == ma.P_P2P {
		a = a[:n-1]
	}
	for i, c := range a {
		if c.Code() == ma.P_CIRCUIT {
			// The relay's own address decides scope (a relay on a private
			// address is only reachable from its network) and its RTT.
			in, ok := parseDirect(a[:i])
			if !ok {
				in = info{}
			}
			relay := a[:i].String()
			if j := i - 1; j >= 0 && a[j].Code() == ma.P_P2P {
				relay = a[j].Value()
			}
			// A relay part without an IP (/p2p/<relay>, a name) is the
			// relay transport's to resolve: dialable, of unknown RTT.
			return info{ip: in.ip, port: in.port, kind: Relay, scope: in.scope, via: in.kind, relay: relay}, ok || i > 0
		}
	}
	return parseDirect(a)
}

func parseDirect(a ma.Multiaddr) (info, bool) {
	if n := len(a); n > 0 && a[n-1].Code() == ma.P_P2P {
		a = a[:n-1]
	}
	if len(a) > 0 && a[0].Code() == ma.P_IP6ZONE {
		a = a[1:]
	}
	if len(a) < 2 {
		return info{}, false
	}
	var in info
	switch a[0].Code() {
	case ma.P_IP4, ma.P_IP6:
		ip, ok := netip.AddrFromSlice(a[0].RawValue())
		if !ok || ip.IsUnspecified() {
			return info{}, false
		}
		in.ip = ip.Unmap()
	default:
		return info{}, false
	}
	in.scope = scopeOf(in.ip)
	pv := a[1].RawValue()
	if len(pv) != 2 {
		return info{}, false
	}
	in.port = binary.BigEndian.Uint16(pv)
	rest := a[2:]
	switch a[1].Code() {
	case ma.P_TCP:
		in.kind = tcpKind(rest)
		switch in.kind {
		case TCP, TCPTLS, TCPNoise:
			in.sock = string(a[0].Bytes()) + string(a[1].Bytes())
		}
	case ma.P_UDP:
		in.kind = udpKind(rest)
	default:
		return info{}, false
	}
	return in, true
}

func tcpKind(rest ma.Multiaddr) Transport {
	codes := make([]int, 0, 3)
	for _, c := range rest {
		codes = append(codes, c.Code())
	}
	switch {
	case len(codes) == 0:
		return TCP
	case len(codes) == 1 && codes[0] == ma.P_TLS:
		return TCPTLS
	case len(codes) == 1 && codes[0] == ma.P_NOISE:
		return TCPNoise
	case len(codes) == 1 && codes[0] == ma.P_WS:
		return WebSocket
	case len(codes) == 1 && codes[0] == ma.P_WSS,
		len(codes) == 2 && codes[0] == ma.P_TLS && codes[1] == ma.P_WS,
		len(codes) == 3 && codes[0] == ma.P_TLS && codes[1] == ma.P_SNI && codes[2] == ma.P_WS:
		return WebSocketSecure
	}
	return TransportOther
}

func udpKind(rest ma.Multiaddr) Transport {
	if len(rest) == 0 {
		return TransportOther
	}
	onlyCerthashes := func(r ma.Multiaddr) bool {
		for _, c := range r {
			if c.Code() != ma.P_CERTHASH {
				return false
			}
		}
		return true
	}
	switch rest[0].Code() {
	case ma.P_QUIC_V1:
		switch {
		case len(rest) == 1:
			return QUIC
		case rest[1].Code() == ma.P_WEBTRANSPORT && onlyCerthashes(rest[2:]):
			return WebTransport
		}
	case ma.P_WEBRTC_DIRECT:
		if onlyCerthashes(rest[1:]) {
			return WebRTCDirect
		}
	}
	return TransportOther
}

// TransportOf returns the transport kind of a, and false when a has no IP
// to dial (names must be resolved first).
func TransportOf(a ma.Multiaddr) (Transport, bool) {
	in, ok := parse(a)
	return in.kind, ok
}
