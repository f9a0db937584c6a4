package websocket

// The opening handshake, RFC 6455 §4. The client sends
//
//	GET <path> HTTP/1.1
//	Host: <host>
//	Upgrade: websocket
//	Connection: Upgrade
//	Sec-WebSocket-Key: <base64 of 16 random bytes>
//	Sec-WebSocket-Version: 13
//
// and the server answers 101 Switching Protocols with
// Sec-WebSocket-Accept = base64(SHA-1(key ‖ wsGUID)). No subprotocol and no
// extension (permessage-deflate) is negotiated, as in go-libp2p and js-libp2p.

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// maxHandshakeBytes bounds an HTTP request or response head.
const maxHandshakeBytes = 8 << 10

var errHandshakeTooLarge = errors.New("websocket: handshake larger than 8 KiB")

// limitReader bounds the bytes read during the handshake; setting n to -1
// lifts the bound for the frames that follow.
type limitReader struct {
	r io.Reader
	n int
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n < 0 {
		return l.r.Read(p)
	}
	if l.n == 0 {
		return 0, errHandshakeTooLarge
	}
	if len(p) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= n
	return n, err
}

func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// hasToken reports whether a comma-separated header has token, ignoring case.
func hasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// handshakeError is a rejected upgrade request, with the HTTP status to
// answer.
type handshakeError struct {
	status int
	msg    string
}

func (e *handshakeError) Error() string { return "websocket: bad upgrade request: " + e.msg }

// readUpgradeRequest reads an HTTP upgrade request from br and returns its
// Sec-WebSocket-Key. Any path and Host are accepted.
func readUpgradeRequest(br *bufio.Reader) (string, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return "", fmt.Errorf("websocket: reading upgrade request: %w", err)
	}
	switch {
	case req.Method != http.MethodGet:
		return "", &handshakeError{http.StatusMethodNotAllowed, "method " + req.Method}
	case !req.ProtoAtLeast(1, 1):
		return "", &handshakeError{http.StatusBadRequest, "protocol " + req.Proto}
	case req.ContentLength != 0 || len(req.TransferEncoding) > 0:
		return "", &handshakeError{http.StatusBadRequest, "request has a body"}
	case !hasToken(req.Header, "Upgrade", "websocket"):
		return "", &handshakeError{http.StatusUpgradeRequired, "no Upgrade: websocket"}
	case !hasToken(req.Header, "Connection", "upgrade"):
		return "", &handshakeError{http.StatusBadRequest, "no Connection: upgrade"}
	case req.Header.Get("Sec-WebSocket-Version") != "13":
		return "", &handshakeError{http.StatusUpgradeRequired, "version " + req.Header.Get("Sec-WebSocket-Version")}
	}
	key := req.Header.Get("Sec-WebSocket-Key")
	if b, err := base64.StdEncoding.DecodeString(key); err != nil || len(b) != 16 {
		return "", &handshakeError{http.StatusBadRequest, "bad Sec-WebSocket-Key"}
	}
	return key, nil
}

func appendUpgradeResponse(b []byte, key string) []byte {
	b = append(b, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	b = append(b, acceptKey(key)...)
	return append(b, "\r\n\r\n"...)
}

func appendErrorResponse(b []byte, status int) []byte {
	b = fmt.Appendf(b, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
	if status == http.StatusUpgradeRequired {
		b = append(b, "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"...)
	}
	return append(b, "Connection: close\r\nContent-Length: 0\r\n\r\n"...)
}

// newKey returns a fresh Sec-WebSocket-Key.
func newKey() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

func appendUpgradeRequest(b []byte, host, path, key string) []byte {
	b = fmt.Appendf(b, "GET %s HTTP/1.1\r\nHost: %s\r\n", path, host)
	b = append(b, "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "...)
	b = append(b, key...)
	return append(b, "\r\n\r\n"...)
}

// readUpgradeResponse reads the server's answer to an upgrade request sent
// with key and checks that it accepted.
func readUpgradeResponse(br *bufio.Reader, key string) error {
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fmt.Errorf("websocket: reading upgrade response: %w", err)
	}
	// A 101 has no body; do not read one of another status either.
	switch {
	case resp.StatusCode != http.StatusSwitchingProtocols:
		return fmt.Errorf("websocket: server answered %q", resp.Status)
	case !hasToken(resp.Header, "Upgrade", "websocket"):
		return errors.New("websocket: response has no Upgrade: websocket")
	case !hasToken(resp.Header, "Connection", "upgrade"):
		return errors.New("websocket: response has no Connection: upgrade")
	case resp.Header.Get("Sec-WebSocket-Accept") != acceptKey(key):
		return errors.New("websocket: bad Sec-WebSocket-Accept")
	case resp.Header.Get("Sec-WebSocket-Extensions") != "":
		return errors.New("websocket: server chose an extension that was not offered")
	}
	return nil
}
