package noise

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"
)

func validPayload() []byte {
	return appendPayload(nil, &payload{
		identityKey: []byte{8, 1, 18, 32, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32},
		identitySig: bytes.Repeat([]byte{7}, 64),
		certHashes:  [][]byte{{0x12, 0x20, 9}},
		muxers:      []string{"/yamux/1.0.0", "/mplex/6.7.0"},
	})
}

func TestPayloadRoundTripAndTruncation(t *testing.T) {
	b := validPayload()
	p, err := parsePayload(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.identityKey) != 36 || len(p.identitySig) != 64 || len(p.certHashes) != 1 || len(p.muxers) != 2 || p.muxers[0] != "/yamux/1.0.0" {
		t.Fatalf("parsed %+v", p)
	}
	if again := appendPayload(nil, &p); !bytes.Equal(again, b) {
		t.Fatal("re-encoding differs")
	}
	// Every strict prefix that cuts a field is an error, never a panic.
	fails := 0
	for i := range b {
		if _, err := parsePayload(b[:i]); err != nil {
			fails++
		}
	}
	if fails == 0 {
		t.Fatal("no truncation detected")
	}
	// Wrong wire type for a known field.
	if _, err := parsePayload([]byte{0x08, 0x01}); err == nil {
		t.Fatal("varint identity_key accepted")
	}
	// Unknown fields are skipped (field 3 is unused).
	if _, err := parsePayload(append([]byte{0x1a, 0x01, 0x00}, b...)); err != nil {
		t.Fatal(err)
	}
	// Too many muxers.
	var ext []byte
	for i := 0; i <= maxMuxers; i++ {
		ext = append(ext, 0x12, 0x01, 'm')
	}
	if _, err := parsePayload(append([]byte{0x22, byte(len(ext))}, ext...)); err == nil {
		t.Fatal("muxer cap not enforced")
	}
}

// FuzzNoisePayload: the payload parser never panics, and what it accepts
// re-encodes to something it parses identically.
func FuzzNoisePayload(f *testing.F) {
	f.Add(validPayload())
	f.Add(appendPayload(nil, &payload{identityKey: []byte{1}, identitySig: []byte{2}}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parsePayload(b)
		if err != nil {
			return
		}
		q, err := parsePayload(appendPayload(nil, &p))
		if err != nil {
			t.Fatalf("re-encoded payload rejected: %v", err)
		}
		if !bytes.Equal(p.identityKey, q.identityKey) || !bytes.Equal(p.identitySig, q.identitySig) || len(p.muxers) != len(q.muxers) || len(p.certHashes) != len(q.certHashes) {
			t.Fatal("round trip changed the payload")
		}
	})
}

// FuzzNoiseResponder feeds arbitrary bytes to a responder: it must fail
// cleanly, with a "noise: " error, without hanging or panicking.
func FuzzNoiseResponder(f *testing.F) {
	tr := newTransport(f, nil, nil)
	ini := newTransport(f, nil, nil)
	// Seed with a real message 1 and a plausible message 3 prefix.
	var hs handshakeState
	e, _ := newEphemeral(nil)
	hs.init(true, nil, ini.static, e)
	m1, _ := hs.writeMsg1([]byte{0, 32}, nil)
	f.Add(m1)
	f.Add(append(append([]byte{}, m1...), 0, 100, 1, 2, 3))
	f.Add([]byte{0, 0})
	f.Add([]byte{0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		a, b := net.Pipe()
		go func() {
			a.Write(in)
			a.Close() // EOF after the input
		}()
		go drain(a)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := tr.SecureInbound(ctx, b, "")
		if err == nil {
			c.Close()
			t.Fatal("handshake succeeded on arbitrary input")
		}
		if ctx.Err() != nil {
			t.Fatalf("handshake hung: %v", err)
		}
		if !bytes.HasPrefix([]byte(err.Error()), []byte("noise: ")) || bytes.Count([]byte(err.Error()), []byte("noise: ")) != 1 {
			t.Fatalf("error without prefix, or repeating it: %v", err)
		}
	})
}

// drain drains what the responder writes until the pipe closes.
func drain(c net.Conn) {
	buf := make([]byte, 1024)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}
