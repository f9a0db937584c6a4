package peer

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// WebSocket (RFC 6455) carrying libp2p's byte stream in binary frames, as
// websockets/README.md uses it: plain ws over TCP, no subprotocol, no
// extensions.

const (
	wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
	// wsMaxFrame caps a frame's declared length: past it the remote is
	// broken or hostile, not framing a libp2p stream.
	wsMaxFrame = 16 << 20
	// wsMaxWrite splits large Writes into frames of at most this size.
	wsMaxWrite = 1 << 20

	wsOpContinuation = 0x0
	wsOpText         = 0x1
	wsOpBinary       = 0x2
	wsOpClose        = 0x8
	wsOpPing         = 0x9
	wsOpPong         = 0xa

	wsCloseNormal = 1000
)

func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// wsHeaderHas reports whether a comma-separated header holds token,
// ignoring case (RFC 6455 4.1: Upgrade and Connection are token lists).
func wsHeaderHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// DialWS connects to ws://addr/ (addr is "host:port") and returns the byte
// stream. Its CloseWrite fails (WebSocket has no half-close); Close sends a
// close frame, then closes TCP.
func DialWS(ctx context.Context, addr string) (net.Conn, error) {
	ctx, cancel := secBounded(ctx)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ws: dialing %s: %w", addr, err)
	}
	done := secArmDeadline(ctx, raw)
	c, err := wsClientHandshake(raw, addr)
	if err = done(err); err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}

func wsClientHandshake(raw net.Conn, addr string) (*wsConn, error) {
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("ws: key: %w", err)
	}
	key := base64.StdEncoding.EncodeToString(nonce)
	req := "GET / HTTP/1.1\r\n" +
		"Host: " + addr + "\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\n" +
		"Sec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(raw, req); err != nil {
		return nil, fmt.Errorf("ws: sending upgrade request: %w", err)
	}
	br := bufio.NewReader(raw)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		return nil, fmt.Errorf("ws: reading upgrade response: %w", err)
	}
	// A 101 has no body; frames may follow at once and br keeps them.
	switch {
	case resp.StatusCode != http.StatusSwitchingProtocols:
		return nil, fmt.Errorf("ws: upgrade answered %q, want 101", resp.Status)
	case !wsHeaderHas(resp.Header, "Upgrade", "websocket"):
		return nil, fmt.Errorf("ws: upgrade response has Upgrade %q", resp.Header.Get("Upgrade"))
	case !wsHeaderHas(resp.Header, "Connection", "upgrade"):
		return nil, fmt.Errorf("ws: upgrade response has Connection %q", resp.Header.Get("Connection"))
	case resp.Header.Get("Sec-WebSocket-Accept") != wsAccept(key):
		return nil, fmt.Errorf("ws: Sec-WebSocket-Accept %q, want %q", resp.Header.Get("Sec-WebSocket-Accept"), wsAccept(key))
	case resp.Header.Get("Sec-WebSocket-Extensions") != "":
		// RFC 6455 4.1: extensions the client did not ask for fail the connection.
		return nil, fmt.Errorf("ws: server chose extensions %q that were not offered", resp.Header.Get("Sec-WebSocket-Extensions"))
	case resp.Header.Get("Sec-WebSocket-Protocol") != "":
		return nil, fmt.Errorf("ws: server chose subprotocol %q that was not offered", resp.Header.Get("Sec-WebSocket-Protocol"))
	}
	return &wsConn{raw: raw, br: br, client: true}, nil
}

// WSListener accepts WebSocket connections. Upgrades run one at a time in
// Accept, each bounded by DefaultTimeout.
type WSListener struct {
	ln net.Listener
}

// ListenWS listens on addr ("127.0.0.1:0").
func ListenWS(addr string) (*WSListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ws: listening on %s: %w", addr, err)
	}
	return &WSListener{ln: ln}, nil
}

// Accept returns the next upgraded connection. A bad upgrade request is
// answered with 400 (426 for an unknown version), closed and skipped.
func (l *WSListener) Accept() (net.Conn, error) {
	for {
		raw, err := l.ln.Accept()
		if err != nil {
			return nil, fmt.Errorf("ws: accepting: %w", err)
		}
		_ = raw.SetDeadline(time.Now().Add(DefaultTimeout))
		c, err := wsServerHandshake(raw)
		if err != nil {
			raw.Close()
			continue
		}
		_ = raw.SetDeadline(time.Time{})
		return c, nil
	}
}

func (l *WSListener) Addr() net.Addr { return l.ln.Addr() }
func (l *WSListener) Close() error   { return l.ln.Close() }

func wsServerHandshake(raw net.Conn) (*wsConn, error) {
	br := bufio.NewReader(raw)
	req, err := http.ReadRequest(br)
	if err != nil {
		wsReject(raw, http.StatusBadRequest, "")
		return nil, fmt.Errorf("ws: reading upgrade request: %w", err)
	}
	if req.Body != nil {
		req.Body.Close()
	}
	bad := ""
	switch {
	case req.Method != http.MethodGet:
		bad = "method " + req.Method
	case !req.ProtoAtLeast(1, 1):
		bad = "protocol " + req.Proto
	case req.Host == "":
		bad = "no Host"
	case !wsHeaderHas(req.Header, "Upgrade", "websocket"):
		bad = "Upgrade " + req.Header.Get("Upgrade")
	case !wsHeaderHas(req.Header, "Connection", "upgrade"):
		bad = "Connection " + req.Header.Get("Connection")
	case req.Header.Get("Sec-WebSocket-Version") != "13":
		wsReject(raw, http.StatusUpgradeRequired, "Sec-WebSocket-Version: 13\r\n")
		return nil, fmt.Errorf("ws: Sec-WebSocket-Version %q", req.Header.Get("Sec-WebSocket-Version"))
	}
	key := req.Header.Get("Sec-WebSocket-Key")
	if k, err := base64.StdEncoding.DecodeString(key); bad == "" && (err != nil || len(k) != 16) {
		bad = "Sec-WebSocket-Key " + key
	}
	if bad != "" {
		wsReject(raw, http.StatusBadRequest, "")
		return nil, fmt.Errorf("ws: bad upgrade request: %s", bad)
	}
	resp := "HTTP/1.1 101 Switching Protocols\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + wsAccept(key) + "\r\n\r\n"
	if _, err := io.WriteString(raw, resp); err != nil {
		return nil, fmt.Errorf("ws: sending upgrade response: %w", err)
	}
	// br may already hold frames sent before our 101: they are kept.
	return &wsConn{raw: raw, br: br}, nil
}

func wsReject(raw net.Conn, code int, extra string) {
	_, _ = fmt.Fprintf(raw, "HTTP/1.1 %d %s\r\n%sContent-Length: 0\r\nConnection: close\r\n\r\n", code, http.StatusText(code), extra)
}

// wsConn is the byte stream over an upgraded connection.
type wsConn struct {
	raw    net.Conn
	br     *bufio.Reader
	client bool // clients mask what they send and must get unmasked frames

	rmu       sync.Mutex
	left      int64   // bytes of the current data frame still unread
	mask      [4]byte // its masking key, if masked
	masked    bool
	maskPos   int
	inMessage bool // a fragmented message awaits continuation frames
	rerr      error

	wmu        sync.Mutex
	closeSent  bool
	closedConn bool
}

func (c *wsConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for c.left == 0 {
		if c.rerr != nil {
			return 0, c.rerr
		}
		// A timeout before a frame starts leaves the framing intact.
		if _, err := c.br.Peek(1); errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, err
		}
		if err := c.nextFrame(); err != nil {
			c.rerr = err
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.br.Read(p)
	if c.masked {
		for i := range n {
			p[i] ^= c.mask[(c.maskPos+i)&3]
		}
		c.maskPos = (c.maskPos + n) & 3
	}
	c.left -= int64(n)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		// Mid-frame, even a timeout leaves the framing lost.
		c.rerr = fmt.Errorf("ws: reading frame payload: %w", err)
		if n > 0 {
			return n, nil
		}
		return 0, c.rerr
	}
	return n, nil
}

// nextFrame reads frame headers, answering control frames, until a data
// frame with a payload starts (c.left > 0) or the stream ends. A close
// frame ends it with io.EOF.
func (c *wsConn) nextFrame() error {
	var hdr [2]byte
	if n, err := io.ReadFull(c.br, hdr[:]); err != nil {
		if n == 0 && errors.Is(err, io.EOF) {
			return fmt.Errorf("ws: connection ended without a close frame: %w", io.ErrUnexpectedEOF)
		}
		return fmt.Errorf("ws: reading frame header: %w", err)
	}
	fin, op := hdr[0]&0x80 != 0, hdr[0]&0x0f
	if rsv := hdr[0] & 0x70; rsv != 0 {
		return fmt.Errorf("ws: reserved bits %#x set without a negotiated extension", rsv)
	}
	masked := hdr[1]&0x80 != 0
	if masked == c.client {
		if c.client {
			return errors.New("ws: server sent a masked frame")
		}
		return errors.New("ws: client sent an unmasked frame")
	}
	length := uint64(hdr[1] & 0x7f)
	switch length {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(c.br, b[:]); err != nil {
			return fmt.Errorf("ws: reading 16-bit length: %w", err)
		}
		length = uint64(binary.BigEndian.Uint16(b[:]))
		if length < 126 {
			return fmt.Errorf("ws: length %d not minimally encoded", length)
		}
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(c.br, b[:]); err != nil {
			return fmt.Errorf("ws: reading 64-bit length: %w", err)
		}
		length = binary.BigEndian.Uint64(b[:])
		if length>>63 != 0 {
			return errors.New("ws: 64-bit length has its top bit set")
		}
		if length <= 0xffff {
			return fmt.Errorf("ws: length %d not minimally encoded", length)
		}
	}
	if length > wsMaxFrame {
		return fmt.Errorf("ws: frame of %d bytes exceeds our %d-byte cap", length, wsMaxFrame)
	}
	var mask [4]byte
	if masked {
		if _, err := io.ReadFull(c.br, mask[:]); err != nil {
			return fmt.Errorf("ws: reading masking key: %w", err)
		}
	}

	if op >= 0x8 { // control frame
		if !fin {
			return fmt.Errorf("ws: fragmented control frame (opcode %#x)", op)
		}
		if length > 125 {
			return fmt.Errorf("ws: control frame of %d bytes exceeds 125", length)
		}
		payload := make([]byte, length)
		if _, err := io.ReadFull(c.br, payload); err != nil {
			return fmt.Errorf("ws: reading control frame: %w", err)
		}
		if masked {
			for i := range payload {
				payload[i] ^= mask[i&3]
			}
		}
		switch op {
		case wsOpPing:
			// After our close frame no pong may follow (RFC 6455 5.5.1).
			if err := c.writeFrame(wsOpPong, payload); err != nil && !errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("ws: answering ping: %w", err)
			}
			return nil
		case wsOpPong:
			return nil
		case wsOpClose:
			if length == 1 {
				return errors.New("ws: close frame with a 1-byte payload")
			}
			// Echo the status code, as RFC 6455 5.5.1 asks, unless we
			// already sent our own close.
			var echo []byte
			if length >= 2 {
				echo = payload[:2]
			}
			_ = c.writeClose(echo)
			return io.EOF
		}
		return fmt.Errorf("ws: reserved control opcode %#x", op)
	}

	switch op {
	case wsOpContinuation:
		if !c.inMessage {
			return errors.New("ws: continuation frame outside a fragmented message")
		}
	case wsOpBinary:
		if c.inMessage {
			return errors.New("ws: new data frame inside an unfinished fragmented message")
		}
	case wsOpText:
		// Text frames must carry UTF-8; libp2p's byte stream is binary.
		return errors.New("ws: text frame; libp2p streams use binary frames")
	default:
		return fmt.Errorf("ws: reserved data opcode %#x", op)
	}
	c.inMessage = !fin
	c.left, c.mask, c.masked, c.maskPos = int64(length), mask, masked, 0
	return nil // a zero-length frame leaves c.left 0: Read reads on
}

// Write sends p as binary frames (masked by a client), split at wsMaxWrite.
func (c *wsConn) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		chunk := p[n:min(len(p), n+wsMaxWrite)]
		if err := c.writeFrame(wsOpBinary, chunk); err != nil {
			return n, err
		}
		n += len(chunk)
	}
	return n, nil
}

// writeFrame sends one unfragmented frame in a single Write.
func (c *wsConn) writeFrame(op byte, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return fmt.Errorf("ws: write after close: %w", net.ErrClosed)
	}
	return c.writeFrameLocked(op, payload)
}

func (c *wsConn) writeFrameLocked(op byte, payload []byte) error {
	buf := make([]byte, 0, 14+len(payload))
	buf = append(buf, 0x80|op)
	var maskBit byte
	if c.client {
		maskBit = 0x80
	}
	switch l := len(payload); {
	case l < 126:
		buf = append(buf, maskBit|byte(l))
	case l <= 0xffff:
		buf = append(buf, maskBit|126)
		buf = binary.BigEndian.AppendUint16(buf, uint16(l))
	default:
		buf = append(buf, maskBit|127)
		buf = binary.BigEndian.AppendUint64(buf, uint64(l))
	}
	if c.client {
		// RFC 6455 5.3: a fresh, unpredictable key for every frame.
		var mask [4]byte
		if _, err := rand.Read(mask[:]); err != nil {
			return fmt.Errorf("ws: masking key: %w", err)
		}
		buf = append(buf, mask[:]...)
		start := len(buf)
		buf = append(buf, payload...)
		for i := range payload {
			buf[start+i] ^= mask[i&3]
		}
	} else {
		buf = append(buf, payload...)
	}
	if _, err := c.raw.Write(buf); err != nil {
		return fmt.Errorf("ws: writing frame: %w", err)
	}
	return nil
}

// writeClose sends a close frame once, with status (2 bytes) or the
// normal-closure code when status is nil.
func (c *wsConn) writeClose(status []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return nil
	}
	c.closeSent = true
	if status == nil {
		status = binary.BigEndian.AppendUint16(nil, wsCloseNormal)
	}
	return c.writeFrameLocked(wsOpClose, status)
}

// CloseWrite fails: libp2p over WebSocket has no half-close.
func (c *wsConn) CloseWrite() error {
	return fmt.Errorf("ws: half-close: %w", errors.ErrUnsupported)
}

// Close sends a close frame (bounded in time: the remote may not be
// reading), then closes TCP.
func (c *wsConn) Close() error {
	_ = c.raw.SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.writeClose(nil)
	return c.raw.Close()
}

func (c *wsConn) LocalAddr() net.Addr                { return c.raw.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr               { return c.raw.RemoteAddr() }
func (c *wsConn) SetDeadline(t time.Time) error      { return c.raw.SetDeadline(t) }
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.raw.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.raw.SetWriteDeadline(t) }
