package peer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// secWSPair dials a fresh listener and returns both ends.
func secWSPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := ListenWS("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	client, err = DialWS(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { client.Close(); r.c.Close() })
	return client, r.c
}

// secWSFrame builds one frame, masked with a fixed key when mask is set.
func secWSFrame(fin bool, op byte, mask bool, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	var m byte
	if mask {
		m = 0x80
	}
	switch l := len(payload); {
	case l < 126:
		b = append(b, m|byte(l))
	case l <= 0xffff:
		b = append(b, m|126)
		b = binary.BigEndian.AppendUint16(b, uint16(l))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(l))
	}
	if !mask {
		return append(b, payload...)
	}
	key := []byte{0x11, 0x22, 0x33, 0x44}
	b = append(b, key...)
	for i, c := range payload {
		b = append(b, c^key[i&3])
	}
	return b
}

// secWSRawClient upgrades a plain TCP connection by hand.
func secWSRawClient(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	key := "dGhlIHNhbXBsZSBub25jZQ==" // RFC 6455 1.3's example
	io.WriteString(c, "GET /x HTTP/1.1\r\nHost: h\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: "+key+"\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("upgrade response %s, accept %q", resp.Status, resp.Header.Get("Sec-WebSocket-Accept"))
	}
	return c, br
}

func TestWSRoundTrip(t *testing.T) {
	client, server := secWSPair(t)
	payload := make([]byte, 1<<20)
	rand.Read(payload)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for _, pair := range [][2]net.Conn{{client, server}, {server, client}} {
		w, r := pair[0], pair[1]
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := w.Write(payload); err != nil {
				errs <- err
			}
		}()
		go func() {
			defer wg.Done()
			_ = r.SetReadDeadline(time.Now().Add(20 * time.Second))
			got := make([]byte, len(payload))
			if _, err := io.ReadFull(r, got); err != nil {
				errs <- err
			} else if !bytes.Equal(got, payload) {
				errs <- errors.New("payload corrupted")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// One-byte frames, as a Split peer sends them.
	go func() { _, _ = PacedConn(client, Split).Write([]byte("split into frames")) }()
	secExpectRead(t, server, "split into frames")

	if err := client.(interface{ CloseWrite() error }).CloseWrite(); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("CloseWrite: %v", err)
	}
	// Close sends a close frame: the other side reads EOF.
	client.Close()
	_ = server.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := server.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after Close: %v, want EOF", err)
	}
}

// TestWSServerReads feeds a server conn hand-made frames: headers split over
// writes, a fragmented message with a ping and an empty frame inside, and a
// close that must be echoed.
func TestWSServerReads(t *testing.T) {
	ln, err := ListenWS("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	raw, br := secWSRawClient(t, ln.Addr().String())
	server, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	defer server.Close()

	big := bytes.Repeat([]byte{0xab}, 300) // 16-bit length
	var wire []byte
	wire = append(wire, secWSFrame(false, wsOpBinary, true, []byte("hel"))...)
	wire = append(wire, secWSFrame(true, wsOpPing, true, []byte("pp"))...)
	wire = append(wire, secWSFrame(false, wsOpContinuation, true, nil)...)
	wire = append(wire, secWSFrame(true, wsOpContinuation, true, []byte("lo"))...)
	wire = append(wire, secWSFrame(true, wsOpBinary, true, big)...)
	wire = append(wire, secWSFrame(true, wsOpClose, true, []byte{0x03, 0xe8, 'b', 'y', 'e'})...)
	go func() {
		for i := range wire {
			if _, err := raw.Write(wire[i : i+1]); err != nil {
				return
			}
		}
	}()
	_ = server.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(server)
	if err != nil {
		t.Fatal(err)
	}
	if want := append([]byte("hello"), big...); !bytes.Equal(got, want) {
		t.Fatalf("read %q", got)
	}
	// The server answered the ping with a pong, then echoed the close code.
	want := append(secWSFrame(true, wsOpPong, false, []byte("pp")), secWSFrame(true, wsOpClose, false, []byte{0x03, 0xe8})...)
	reply := make([]byte, len(want))
	if _, err := io.ReadFull(br, reply); err != nil || !bytes.Equal(reply, want) {
		t.Fatalf("server replied %x (%v), want %x", reply, err, want)
	}
}

// TestWSProtocolErrors: frames a reader MUST refuse.
func TestWSProtocolErrors(t *testing.T) {
	cases := map[string][]byte{
		"unmasked client frame":        secWSFrame(true, wsOpBinary, false, []byte("x")),
		"fragmented ping":              secWSFrame(false, wsOpPing, true, nil),
		"stray continuation":           secWSFrame(true, wsOpContinuation, true, []byte("x")),
		"reserved bit":                 append([]byte{0x80 | 0x40 | wsOpBinary}, secWSFrame(true, wsOpBinary, true, []byte("x"))[1:]...),
		"reserved opcode":              secWSFrame(true, 0x3, true, []byte("x")),
		"oversized":                    {0x82, 0x80 | 127, 0, 0, 0, 0, 0x10, 0, 0, 0, 1, 2, 3, 4},
		"non-minimal length":           {0x82, 0x80 | 126, 0, 5, 1, 2, 3, 4, 'a', 'b', 'c', 'd', 'e'},
		"new message inside fragments": append(secWSFrame(false, wsOpBinary, true, []byte("a")), secWSFrame(true, wsOpBinary, true, []byte("b"))...),
	}
	for name, wire := range cases {
		t.Run(name, func(t *testing.T) {
			ln, err := ListenWS("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			accepted := make(chan net.Conn, 1)
			go func() {
				c, _ := ln.Accept()
				accepted <- c
			}()
			raw, _ := secWSRawClient(t, ln.Addr().String())
			server := <-accepted
			if server == nil {
				t.Fatal("accept failed")
			}
			defer server.Close()
			raw.Write(wire)
			_ = server.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = io.ReadAll(server)
			if err == nil || errors.Is(err, io.EOF) {
				t.Fatalf("read ended with %v, want a protocol error", err)
			}
			t.Log(err)
		})
	}
}

// TestWSClientRejectsMasked: a server must not mask its frames.
func TestWSClientRejectsMasked(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "+
			wsAccept(req.Header.Get("Sec-WebSocket-Key"))+"\r\n\r\n")
		c.Write(secWSFrame(true, wsOpBinary, true, []byte("masked")))
		io.Copy(io.Discard, c)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := DialWS(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(make([]byte, 10)); err == nil {
		t.Fatal("client read a masked frame")
	}
}

// TestWSBadUpgrade: a bad request gets a 400 and Accept moves on.
func TestWSBadUpgrade(t *testing.T) {
	ln, err := ListenWS("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(raw, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(raw), nil)
	if err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("response %v, %v; want 400", resp, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := DialWS(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server := <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	defer server.Close()
	go func() { _, _ = client.Write([]byte("ok")) }()
	secExpectRead(t, server, "ok")
}

// TestWSNoise runs Noise over WebSocket with a one-byte-split responder, so
// every handshake byte travels in a frame of its own.
func TestWSNoise(t *testing.T) {
	client, server := secWSPair(t)
	ini, res, _, _ := secNoisePair(t, client, server, Pipelined, Split, nil, nil)
	secExpectRead(t, res.Conn, "ping") // the pipelined initiator's first write
	go func() { _, _ = res.Conn.Write([]byte("pong")) }()
	secExpectRead(t, ini.Conn, "pong")
}
