package webrtc

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strings"
)

// ICE credentials of WebRTC-direct (webrtc/webrtc-direct.md). There is no
// signalling channel, so the dialer picks every credential and the listener
// learns them from the first STUN binding request, whose USERNAME is
// "<server ufrag>:<client ufrag>".
//
//   - v1: the dialer uses one random string, prefixed "libp2p+webrtc+v1/",
//     as its ufrag and password and as the server's ufrag and password.
//   - v2: the dialer keeps its own random ufrag and password and sends
//     "libp2p+webrtc+v2/<client password>" as the server ufrag, so a browser
//     need not munge its offer.
const (
	ufragPrefixV1 = "libp2p+webrtc+v1/"
	ufragPrefixV2 = "libp2p+webrtc+v2/"
)

// iceCredentials is what the listener recovers from a STUN USERNAME.
type iceCredentials struct {
	serverUfrag string // also the server's password
	clientUfrag string
	clientPwd   string
}

// parseSTUNUsername validates a USERNAME attribute and recovers the
// credentials. Both halves come from an unauthenticated packet and end up in
// SDP, so they must be ice-char strings (RFC 8839 5.4).
func parseSTUNUsername(username string) (iceCredentials, error) {
	server, client, ok := strings.Cut(username, ":")
	if !ok {
		return iceCredentials{}, errors.New("webrtc: STUN username has no ':'")
	}
	if !isICEString(server, 4) || !isICEString(client, 4) {
		return iceCredentials{}, fmt.Errorf("webrtc: STUN username %q is not two ICE ufrags", username)
	}
	switch {
	case strings.HasPrefix(server, ufragPrefixV1):
		return iceCredentials{serverUfrag: server, clientUfrag: client, clientPwd: client}, nil
	case strings.HasPrefix(server, ufragPrefixV2):
		pwd := server[len(ufragPrefixV2):]
		if !isICEString(pwd, 22) {
			return iceCredentials{}, fmt.Errorf("webrtc: v2 ufrag %q does not hold an ICE password", server)
		}
		return iceCredentials{serverUfrag: server, clientUfrag: client, clientPwd: pwd}, nil
	default:
		return iceCredentials{}, fmt.Errorf("webrtc: unsupported ufrag version in %q", server)
	}
}

// isICEString reports whether s is min..256 ice-chars (ALPHA, DIGIT, '+', '/').
func isICEString(s string, min int) bool {
	if len(s) < min || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}

// randomUfrag returns a fresh v1 ufrag: the prefix and 32 alphanumerics.
func randomUfrag() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 32)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return ufragPrefixV1 + string(b)
}

// dummyFingerprint stands in for the client's certificate fingerprint in the
// offer the listener fakes; fingerprint checking is off on that side.
const dummyFingerprint = "sha-256 " +
	"00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF"

// clientOffer is the offer the listener pretends the dialer sent.
func clientOffer(addr *net.UDPAddr, c iceCredentials) string {
	ipv, ip := sdpAddr(addr)
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=- 0 0 IN %s %s\r\ns=-\r\nc=IN %s %s\r\nt=0 0\r\n", ipv, ip, ipv, ip)
	fmt.Fprintf(&b, "m=application %d UDP/DTLS/SCTP webrtc-datachannel\r\n", addr.Port)
	fmt.Fprintf(&b, "a=mid:0\r\na=ice-options:ice2\r\na=ice-ufrag:%s\r\na=ice-pwd:%s\r\n", c.clientUfrag, c.clientPwd)
	fmt.Fprintf(&b, "a=fingerprint:%s\r\na=setup:actpass\r\na=sctp-port:5000\r\na=max-message-size:%d\r\n", dummyFingerprint, maxMessageSize)
	return b.String()
}

// answerMaxMessageSize is the largest message the dialer's pion may send:
// the spec's 16 KiB. A variable only so that a test can play a peer that
// sends more.
var answerMaxMessageSize = maxMessageSize

// serverAnswer is the answer the dialer builds from the listener's address:
// an ICE-lite DTLS server with one host candidate and the certhash as its
// fingerprint.
func serverAnswer(addr *net.UDPAddr, ufrag string, fingerprint []byte) string {
	ipv, ip := sdpAddr(addr)
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=- 0 0 IN %s %s\r\ns=-\r\nt=0 0\r\na=ice-lite\r\n", ipv, ip)
	fmt.Fprintf(&b, "m=application %d UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN %s %s\r\n", addr.Port, ipv, ip)
	fmt.Fprintf(&b, "a=mid:0\r\na=ice-options:ice2\r\na=ice-ufrag:%s\r\na=ice-pwd:%s\r\n", ufrag, ufrag)
	fmt.Fprintf(&b, "a=fingerprint:sha-256 %s\r\na=setup:passive\r\na=sctp-port:5000\r\na=max-message-size:%d\r\n", hexColons(fingerprint), answerMaxMessageSize)
	fmt.Fprintf(&b, "a=candidate:1 1 UDP 1 %s %d typ host\r\na=end-of-candidates\r\n", ip, addr.Port)
	return b.String()
}

func sdpAddr(addr *net.UDPAddr) (string, string) {
	if ip4 := addr.IP.To4(); ip4 != nil {
		return "IP4", ip4.String()
	}
	return "IP6", addr.IP.String()
}

// hexColons formats a fingerprint the SDP way: upper-case hex pairs joined
// by ':'.
func hexColons(b []byte) string {
	const digits = "0123456789ABCDEF"
	out := make([]byte, 0, 3*len(b))
	for i, c := range b {
		if i > 0 {
			out = append(out, ':')
		}
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}
