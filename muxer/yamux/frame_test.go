package yamux

import (
	"bytes"
	"errors"
	"testing"
)

func TestHeaderRoundTrip(t *testing.T) {
	tests := []header{
		{typ: typeData, stream: 1, length: 65536},
		{typ: typeWindowUpdate, flags: flagSYN, stream: 1},
		{typ: typeWindowUpdate, flags: flagACK | flagFIN, stream: 2, length: 1 << 20},
		{typ: typeWindowUpdate, flags: flagRST, stream: 0xffffffff, length: 7},
		{typ: typePing, flags: flagSYN, length: 0xdeadbeef},
		{typ: typeGoAway, length: GoAwayInternalError},
	}
	for _, h := range tests {
		b := appendHeader(nil, h)
		if len(b) != headerSize {
			t.Fatalf("%v: encoded %d bytes", h, len(b))
		}
		var p [headerSize]byte
		putHeader(p[:], h)
		if !bytes.Equal(p[:], b) {
			t.Fatalf("%v: putHeader %x != appendHeader %x", h, p, b)
		}
		got, err := parseHeader(b)
		if err != nil || got != h {
			t.Fatalf("%v: parsed %v, %v", h, got, err)
		}
		for i := range headerSize {
			if _, err := parseHeader(b[:i]); !errors.Is(err, errShortHeader) {
				t.Fatalf("%v truncated to %d: err %v", h, i, err)
			}
		}
	}
}

// The spec's example: opening stream 1 with WindowUpdate|SYN and no delta.
func TestSYNVector(t *testing.T) {
	want := []byte{0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00}
	got := appendHeader(nil, header{typ: typeWindowUpdate, flags: flagSYN, stream: 1})
	if !bytes.Equal(got, want) {
		t.Fatalf("SYN = % x, want % x", got, want)
	}
}

func TestParseHeaderRejects(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
	}{
		{"version 1", []byte{1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}},
		{"unknown type", []byte{0, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}},
		{"data on session", []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}},
		{"window update on session", []byte{0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"ping on stream", []byte{0, 2, 0, 1, 0, 0, 0, 3, 0, 0, 0, 0}},
		{"goaway on stream", []byte{0, 3, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseHeader(tt.b); !errors.Is(err, ErrProtocol) {
				t.Fatalf("err = %v, want ErrProtocol", err)
			}
		})
	}
}

func FuzzParseHeader(f *testing.F) {
	for _, h := range []header{
		{typ: typeData, stream: 1, length: 5},
		{typ: typeData, flags: flagFIN, stream: 2},
		{typ: typeWindowUpdate, flags: flagSYN, stream: 1},
		{typ: typeWindowUpdate, flags: flagACK, stream: 2, length: 1 << 20},
		{typ: typeWindowUpdate, flags: flagRST, stream: 3, length: 1},
		{typ: typePing, flags: flagSYN, length: 1},
		{typ: typePing, flags: flagACK, length: 1},
		{typ: typeGoAway, length: GoAwayProtocolError},
	} {
		f.Add(appendHeader(nil, h))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHeader(b)
		if err != nil {
			return
		}
		if !bytes.Equal(appendHeader(nil, h), b[:headerSize]) {
			t.Fatalf("re-encoding %v gives %x, input %x", h, appendHeader(nil, h), b[:headerSize])
		}
	})
}
