package peer

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// TestNoiseVector replays the Noise_XX_25519_ChaChaPoly_SHA256 vector of the
// cacophony suite (testdata/, copied from vectors/cacophony.txt) through both
// roles: every ciphertext must match byte for byte.
func TestNoiseVector(t *testing.T) {
	raw, err := os.ReadFile("testdata/noise_xx_25519_chachapoly_sha256.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		InitPrologue  string `json:"init_prologue"`
		InitStatic    string `json:"init_static"`
		InitEphemeral string `json:"init_ephemeral"`
		RespPrologue  string `json:"resp_prologue"`
		RespStatic    string `json:"resp_static"`
		RespEphemeral string `json:"resp_ephemeral"`
		HandshakeHash string `json:"handshake_hash"`
		Messages      []struct{ Payload, Ciphertext string }
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	key := func(s string) *ecdh.PrivateKey {
		k, err := ecdh.X25519().NewPrivateKey(mustHex(t, s))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	ini := newNoiseHandshake(true, mustHex(t, v.InitPrologue), key(v.InitStatic), key(v.InitEphemeral))
	res := newNoiseHandshake(false, mustHex(t, v.RespPrologue), key(v.RespStatic), key(v.RespEphemeral))
	var iSend, iRecv, rSend, rRecv *noiseCipherState
	for i, m := range v.Messages {
		pt, ct := mustHex(t, m.Payload), mustHex(t, m.Ciphertext)
		fromInitiator := i%2 == 0
		var got, back []byte
		var err error
		switch {
		case i < 3:
			w, r := ini, res
			if !fromInitiator {
				w, r = res, ini
			}
			if got, err = w.writeMessage(pt); err != nil {
				t.Fatalf("message %d: write: %v", i, err)
			}
			if back, err = r.readMessage(ct); err != nil {
				t.Fatalf("message %d: read: %v", i, err)
			}
			if i == 2 {
				if hex.EncodeToString(ini.h) != v.HandshakeHash || hex.EncodeToString(res.h) != v.HandshakeHash {
					t.Fatalf("handshake hash = %x / %x, want %s", ini.h, res.h, v.HandshakeHash)
				}
				if iSend, iRecv, err = ini.split(); err != nil {
					t.Fatal(err)
				}
				if rSend, rRecv, err = res.split(); err != nil {
					t.Fatal(err)
				}
			}
		default:
			w, r := iSend, rRecv
			if !fromInitiator {
				w, r = rSend, iRecv
			}
			if got, err = w.encrypt(nil, nil, pt); err != nil {
				t.Fatal(err)
			}
			if back, err = r.decrypt(nil, nil, ct); err != nil {
				t.Fatalf("message %d: decrypt: %v", i, err)
			}
		}
		if !bytes.Equal(got, ct) {
			t.Fatalf("message %d: ciphertext\n got %x\nwant %x", i, got, ct)
		}
		if !bytes.Equal(back, pt) {
			t.Fatalf("message %d: payload %x, want %x", i, back, pt)
		}
	}
}

// secTCPPair returns both ends of a loopback TCP connection.
func secTCPPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		ch <- result{c, err}
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		client.Close()
		t.Fatal(r.err)
	}
	t.Cleanup(func() { client.Close(); r.c.Close() })
	return client, r.c
}

// secWriteLog records the size of every Write that reaches the wire.
type secWriteLog struct {
	net.Conn
	mu     sync.Mutex
	writes []int
	data   bytes.Buffer
}

func (c *secWriteLog) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, len(p))
	c.data.Write(p)
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *secWriteLog) CloseWrite() error { return c.Conn.(*net.TCPConn).CloseWrite() }

func (c *secWriteLog) sizes() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.writes...)
}

// secNoisePair runs both handshake sides concurrently.
func secNoisePair(t *testing.T, ic, rc net.Conn, iMode, rMode Mode, iMux, rMux []string) (ini, res *NoiseResult, iID, rID *Identity) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	if iID, err = NewIdentity(); err != nil {
		t.Fatal(err)
	}
	if rID, err = NewIdentity(); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		var err error
		res, err = Noise(ctx, rc, rID, false, "", rMux, rMode)
		errc <- err
	}()
	ini, err = Noise(ctx, ic, iID, true, rID.ID, iMux, iMode)
	if err != nil {
		t.Fatalf("initiator: %v", err)
	}
	if iMode == Pipelined {
		// The responder waits for message 3, which the first write carries.
		go func() { _, _ = ini.Conn.Write([]byte("ping")) }()
	}
	if err := <-errc; err != nil {
		t.Fatalf("responder: %v", err)
	}
	return ini, res, iID, rID
}

func TestNoiseModes(t *testing.T) {
	for _, iMode := range []Mode{Strict, Pipelined, Split} {
		for _, rMode := range []Mode{Strict, Pipelined, Split} {
			t.Run(fmt.Sprintf("%v-%v", iMode, rMode), func(t *testing.T) {
				c, s := secTCPPair(t)
				log := &secWriteLog{Conn: c}
				ini, res, iID, rID := secNoisePair(t, log, s, iMode, rMode, []string{"/yamux/1.0.0"}, []string{"/yamux/1.0.0", "/mplex/6.7.0"})
				if ini.RemoteID != rID.ID || res.RemoteID != iID.ID {
					t.Fatalf("remote IDs %s, %s; want %s, %s", ini.RemoteID, res.RemoteID, rID.ID, iID.ID)
				}
				if fmt.Sprint(ini.RemoteMuxers) != "[/yamux/1.0.0 /mplex/6.7.0]" || fmt.Sprint(res.RemoteMuxers) != "[/yamux/1.0.0]" {
					t.Fatalf("muxers: initiator got %q, responder got %q", ini.RemoteMuxers, res.RemoteMuxers)
				}
				if iMode != Pipelined {
					if _, err := ini.Conn.Write([]byte("ping")); err != nil {
						t.Fatal(err)
					}
				}
				secExpectRead(t, res.Conn, "ping")
				if _, err := res.Conn.Write([]byte("pong")); err != nil {
					t.Fatal(err)
				}
				secExpectRead(t, ini.Conn, "pong")

				sizes := log.sizes()
				const m1, data = 2 + 32, 2 + 4 + 16
				switch iMode {
				case Strict:
					if len(sizes) != 3 || sizes[0] != m1 || sizes[2] != data {
						t.Fatalf("strict initiator writes %v, want [%d <msg3> %d]", sizes, m1, data)
					}
				case Pipelined:
					if len(sizes) != 2 || sizes[0] != m1 || sizes[1] <= data {
						t.Fatalf("pipelined initiator writes %v, want [%d <msg3+data>]", sizes, m1)
					}
				case Split:
					for _, n := range sizes {
						if n != 1 {
							t.Fatalf("split initiator wrote %d bytes at once", n)
						}
					}
				}
				// Half-close passes through: the responder reads EOF.
				if err := ini.Conn.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
					t.Fatal(err)
				}
				if n, err := res.Conn.Read(make([]byte, 1)); n != 0 || err != io.EOF {
					t.Fatalf("after CloseWrite: read %d, %v; want EOF", n, err)
				}
			})
		}
	}
}

func secExpectRead(t *testing.T, c net.Conn, want string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading %q: %v", want, err)
	}
	if string(got) != want {
		t.Fatalf("read %q, want %q", got, want)
	}
	_ = c.SetReadDeadline(time.Time{})
}

// TestNoisePipelinedClose: with nothing written, CloseWrite still sends the
// held-back message 3 so the responder completes.
func TestNoisePipelinedClose(t *testing.T) {
	c, s := secTCPPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	iID, _ := NewIdentity()
	rID, _ := NewIdentity()
	errc := make(chan error, 1)
	go func() {
		res, err := Noise(ctx, s, rID, false, "", nil, Strict)
		if err == nil {
			_, err = res.Conn.Read(make([]byte, 1))
			if err == io.EOF {
				err = nil
			}
		}
		errc <- err
	}()
	ini, err := Noise(ctx, c, iID, true, "", nil, Pipelined)
	if err != nil {
		t.Fatal(err)
	}
	if err := ini.Conn.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("responder: %v", err)
	}
}

// TestNoiseLarge sends 1 MiB each way at once and checks the initiator's
// frames on the wire never exceed 65535 bytes.
func TestNoiseLarge(t *testing.T) {
	c, s := secTCPPair(t)
	log := &secWriteLog{Conn: c}
	ini, res, _, _ := secNoisePair(t, log, s, Strict, Strict, nil, nil)
	payload := make([]byte, 1<<20)
	rand.Read(payload)

	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for _, pair := range [][2]net.Conn{{ini.Conn, res.Conn}, {res.Conn, ini.Conn}} {
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
				return
			}
			if !bytes.Equal(got, payload) {
				errs <- errors.New("payload corrupted")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	log.mu.Lock()
	wire := log.data.Bytes()
	log.mu.Unlock()
	var frames []int
	for len(wire) >= 2 {
		n := int(binary.BigEndian.Uint16(wire))
		frames = append(frames, n)
		wire = wire[2+n:]
	}
	// msg1, msg3, then data frames: full ones of 65535, the rest smaller.
	if len(frames) != 2+17 || frames[2] != 65535 || frames[len(frames)-1] != (1<<20)%noiseMaxPlain+noiseTagLen {
		t.Fatalf("initiator frames %v", frames)
	}
}

// TestNoiseSplitPeer talks to a peer that writes one byte at a time.
func TestNoiseSplitPeer(t *testing.T) {
	for _, splitInitiator := range []bool{true, false} {
		c, s := secTCPPair(t)
		iMode, rMode := Strict, Split
		if splitInitiator {
			iMode, rMode = Split, Strict
		}
		ini, res, _, _ := secNoisePair(t, c, s, iMode, rMode, nil, []string{"/yamux/1.0.0"})
		msg := bytes.Repeat([]byte("0123456789"), 1000)
		go func() { _, _ = ini.Conn.Write(msg) }()
		secExpectRead(t, res.Conn, string(msg))
		go func() { _, _ = res.Conn.Write(msg) }()
		secExpectRead(t, ini.Conn, string(msg))
	}
}

func TestNoiseWrongPeer(t *testing.T) {
	c, s := secTCPPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	iID, _ := NewIdentity()
	rID, _ := NewIdentity()
	other, _ := NewIdentity()
	go func() {
		_, _ = Noise(ctx, s, rID, false, "", nil, Strict)
		s.Close()
	}()
	if _, err := Noise(ctx, c, iID, true, other.ID, nil, Strict); err == nil {
		t.Fatal("handshake with the wrong peer succeeded")
	}
}

// secRawInitiator drives the initiator side by hand so tests can break it.
func secRawInitiator(t *testing.T, conn net.Conn, m1Payload []byte, payload func(static []byte) []byte) error {
	t.Helper()
	s, _ := ecdh.X25519().GenerateKey(rand.Reader)
	e, _ := ecdh.X25519().GenerateKey(rand.Reader)
	hs := newNoiseHandshake(true, nil, s, e)
	m1, _ := hs.writeMessage(m1Payload)
	if _, err := conn.Write(noiseFrame(nil, m1)); err != nil {
		return err
	}
	m2, err := readNoiseFrame(conn, nil)
	if err != nil {
		return err
	}
	if _, err := hs.readMessage(m2); err != nil {
		return err
	}
	m3, _ := hs.writeMessage(payload(s.PublicKey().Bytes()))
	_, err = conn.Write(noiseFrame(nil, m3))
	return err
}

func TestNoiseResponderChecks(t *testing.T) {
	id, _ := NewIdentity()
	good := func(static []byte) []byte {
		return encodeNoisePayload(id.PubKeyPB, id.Sign(append([]byte(noiseSigPrefix), static...)), nil)
	}
	cases := []struct {
		name      string
		m1Payload []byte
		payload   func([]byte) []byte
	}{
		{"payload in msg1", []byte{0x0a, 0x00}, good},
		{"bad signature", nil, func(static []byte) []byte {
			return encodeNoisePayload(id.PubKeyPB, id.Sign([]byte("noise-libp2p-static-key:wrong")), nil)
		}},
		{"no identity_sig", nil, func([]byte) []byte { return secAppendBytesField(nil, 1, id.PubKeyPB) }},
		{"garbage payload", nil, func([]byte) []byte { return []byte{0xff, 0xff, 0xff} }},
		{"unknown fields are fine", nil, func(static []byte) []byte {
			return secAppendVarintField(secAppendBytesField(good(static), 9, []byte("x")), 10, 7)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, s := secTCPPair(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			rID, _ := NewIdentity()
			go func() { _ = secRawInitiator(t, c, tc.m1Payload, tc.payload) }()
			res, err := Noise(ctx, s, rID, false, "", nil, Strict)
			if tc.name == "unknown fields are fine" {
				if err != nil || res.RemoteID != id.ID {
					t.Fatalf("lenient parse: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("handshake succeeded")
			}
			t.Log(err)
		})
	}
}

// TestNoiseBadFrames: short, corrupt and truncated input fails cleanly.
func TestNoiseBadFrames(t *testing.T) {
	t.Run("short msg1", func(t *testing.T) {
		c, s := secTCPPair(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		id, _ := NewIdentity()
		go c.Write([]byte{0, 5, 1, 2, 3, 4, 5})
		if _, err := Noise(ctx, s, id, false, "", nil, Strict); err == nil {
			t.Fatal("accepted a 5-byte message 1")
		}
	})
	t.Run("truncated", func(t *testing.T) {
		c, s := secTCPPair(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		id, _ := NewIdentity()
		go func() { c.Write([]byte{0, 32, 1, 2}); c.Close() }()
		if _, err := Noise(ctx, s, id, false, "", nil, Strict); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("err = %v, want unexpected EOF", err)
		}
	})
	t.Run("corrupt transport frame", func(t *testing.T) {
		c, s := secTCPPair(t)
		ini, res, _, _ := secNoisePair(t, c, s, Strict, Strict, nil, nil)
		if _, err := c.Write([]byte{0, 17, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}); err != nil {
			t.Fatal(err)
		}
		_ = res.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := res.Conn.Read(make([]byte, 10)); err == nil {
			t.Fatal("read a forged frame")
		}
		if _, err := res.Conn.Read(make([]byte, 10)); err == nil {
			t.Fatal("the stream recovered after a forged frame")
		}
		_ = ini
	})
	t.Run("short transport frame", func(t *testing.T) {
		c, s := secTCPPair(t)
		_, res, _, _ := secNoisePair(t, c, s, Strict, Strict, nil, nil)
		c.Write([]byte{0, 3, 1, 2, 3})
		_ = res.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := res.Conn.Read(make([]byte, 10)); err == nil {
			t.Fatal("read a frame shorter than its tag")
		}
	})
}

func TestNoiseContext(t *testing.T) {
	_, s := secTCPPair(t)
	id, _ := NewIdentity()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := Noise(ctx, s, id, false, "", nil, Strict)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancellation took %v", d)
	}
}
