package varint

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 300, 16383, 16384, 1<<32 - 1, 1<<63 - 1} {
		b := Append(nil, v)
		if len(b) != Len(v) {
			t.Fatalf("Len(%d)=%d, encoded %d bytes", v, Len(v), len(b))
		}
		got, n, err := Decode(b)
		if err != nil || got != v || n != len(b) {
			t.Fatalf("Decode(%x) = %d, %d, %v; want %d", b, got, n, err, v)
		}
		got, err = Read(bytes.NewReader(b))
		if err != nil || got != v {
			t.Fatalf("Read(%x) = %d, %v", b, got, err)
		}
	}
}

func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want error
	}{
		{[]byte{}, io.ErrUnexpectedEOF},
		{[]byte{0x80}, io.ErrUnexpectedEOF},
		{[]byte{0x80, 0x00}, ErrNotMinimal},
		{[]byte{0xff, 0x80, 0x00}, ErrNotMinimal},
		{bytes.Repeat([]byte{0xff}, 10), ErrOverflow},
	} {
		if _, _, err := Decode(tc.in); !errors.Is(err, tc.want) {
			t.Errorf("Decode(%x): %v, want %v", tc.in, err, tc.want)
		}
	}
	if _, err := Read(bytes.NewReader(nil)); err != io.EOF {
		t.Errorf("Read(empty) = %v, want io.EOF", err)
	}
	if _, err := Read(bytes.NewReader([]byte{0x81})); err != io.ErrUnexpectedEOF {
		t.Errorf("Read(truncated) = %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte{0x00})
	f.Add([]byte{0xac, 0x02})
	f.Add(bytes.Repeat([]byte{0xff}, 9))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, n, err := Decode(b)
		if err != nil {
			return
		}
		if !bytes.Equal(Append(nil, v), b[:n]) {
			t.Fatalf("accepted %x but re-encodes as %x", b[:n], Append(nil, v))
		}
		v2, err := Read(bytes.NewReader(b))
		if err != nil || v2 != v {
			t.Fatalf("Read disagrees with Decode: %d %v", v2, err)
		}
	})
}
