package websocket

import (
	"bytes"
	"errors"
	"testing"
)

func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []header{
		{fin: true, op: opBinary, length: 0},
		{fin: true, op: opBinary, length: 125},
		{fin: false, op: opText, length: 126},
		{fin: true, op: opContinuation, length: 0xffff},
		{fin: true, op: opBinary, length: 0x10000, masked: true, mask: [4]byte{1, 2, 3, 4}},
		{fin: true, op: opBinary, length: MaxFrameSize},
		{fin: true, op: opPing, length: 125, masked: true, mask: [4]byte{9, 8, 7, 6}},
		{fin: true, op: opClose, length: 2},
	} {
		b := appendHeader(nil, h)
		if len(b) != headerLen(b[1]) {
			t.Fatalf("%+v: header is %d bytes, headerLen says %d", h, len(b), headerLen(b[1]))
		}
		got, n, err := parseHeader(append(b, 0xaa)) // trailing payload byte is not read
		if err != nil || n != len(b) || got != h {
			t.Fatalf("%+v: parsed %+v, %d, %v", h, got, n, err)
		}
		for i := range b {
			if _, _, err := parseHeader(b[:i]); err != errShortHeader {
				t.Fatalf("%+v truncated to %d: %v", h, i, err)
			}
		}
	}
}

// The RFC 6455 §5.7 examples.
func TestHeaderRFCExamples(t *testing.T) {
	unmasked := []byte{0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}
	h, n, err := parseHeader(unmasked)
	if err != nil || n != 2 || h.op != opText || !h.fin || h.length != 5 || h.masked {
		t.Fatalf("unmasked: %+v %d %v", h, n, err)
	}
	masked := []byte{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}
	h, n, err = parseHeader(masked)
	if err != nil || n != 6 || !h.masked || h.length != 5 {
		t.Fatalf("masked: %+v %d %v", h, n, err)
	}
	p := bytes.Clone(masked[n:])
	maskBytes(h.mask, 0, p)
	if string(p) != "Hello" {
		t.Fatalf("unmasked payload %q", p)
	}
	if b := appendHeader(nil, header{fin: true, op: opBinary, length: 256}); !bytes.Equal(b, []byte{0x82, 0x7e, 0x01, 0x00}) {
		t.Fatalf("256-byte header % x", b)
	}
	if b := appendHeader(nil, header{fin: true, op: opBinary, length: 65536}); !bytes.Equal(b, []byte{0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0}) {
		t.Fatalf("64 KiB header % x", b)
	}
}

func TestHeaderRejects(t *testing.T) {
	for name, b := range map[string][]byte{
		"rsv1":               {0xc2, 0x00},
		"rsv3":               {0x92, 0x00},
		"opcode 3":           {0x83, 0x00},
		"opcode 0xb":         {0x8b, 0x00},
		"fragmented ping":    {0x09, 0x00},
		"126-byte ping":      {0x89, 0x7e, 0x00, 0x7e},
		"too big":            {0x82, 0x7f, 0, 0, 0, 0, 0x04, 0, 0, 1},
		"64-bit length, msb": {0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0},
	} {
		if _, _, err := parseHeader(b); err == nil || err == errShortHeader {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, _, err := parseHeader([]byte{0x82, 0x7f, 0, 0, 0, 0, 0x04, 0, 0, 1}); !errors.Is(err, errFrameTooBig) {
		t.Errorf("too big: %v", err)
	}
}

func TestMaskBytes(t *testing.T) {
	key := [4]byte{0x11, 0x22, 0x33, 0x44}
	data := make([]byte, 1000)
	for i := range data {
		data[i] = byte(i)
	}
	want := bytes.Clone(data)
	for i := range want {
		want[i] ^= key[i%4]
	}
	// Any split of the payload must give the same result.
	for _, split := range []int{0, 1, 3, 7, 8, 9, 500, 999, 1000} {
		got := bytes.Clone(data)
		pos := maskBytes(key, 0, got[:split])
		if pos != split%4 {
			t.Fatalf("split %d: pos %d", split, pos)
		}
		maskBytes(key, pos, got[split:])
		if !bytes.Equal(got, want) {
			t.Fatalf("split %d: wrong mask", split)
		}
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add([]byte{0x82, 0x05})
	f.Add([]byte{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d})
	f.Add([]byte{0x82, 0xfe, 0x01, 0x00, 1, 2, 3, 4})
	f.Add([]byte{0x02, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0})
	f.Add([]byte{0x88, 0x02, 0x03, 0xe8})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := parseHeader(b)
		if err != nil {
			return
		}
		if n > len(b) || n > maxHeaderLen {
			t.Fatalf("header length %d of %d bytes", n, len(b))
		}
		// A valid header re-encodes (shortest form) to one that parses the same.
		re := appendHeader(nil, h)
		h2, n2, err := parseHeader(re)
		if err != nil || n2 != len(re) || h2 != h {
			t.Fatalf("%+v re-encoded as % x parses as %+v, %v", h, re, h2, err)
		}
	})
}
