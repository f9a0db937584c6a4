package pb

import (
	"bytes"
	"errors"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	var b []byte
	b = AppendVarint(b, 1, 0)
	b = AppendBytes(b, 2, []byte("hello"))
	b = AppendString(b, 3, "")
	b = AppendFixed64(b, 4, 0x0102030405060708)
	b = AppendVarint(b, 300, 1<<40)
	want := []Field{
		{Num: 1, Wire: WireVarint},
		{Num: 2, Wire: WireBytes, Bytes: []byte("hello")},
		{Num: 3, Wire: WireBytes, Bytes: []byte{}},
		{Num: 4, Wire: WireFixed64, Varint: 0x0102030405060708},
		{Num: 300, Wire: WireVarint, Varint: 1 << 40},
	}
	var got []Field
	if err := ForEach(b, func(f Field) error { got = append(got, f); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d fields, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Num != w.Num || g.Wire != w.Wire || g.Varint != w.Varint || !bytes.Equal(g.Bytes, w.Bytes) {
			t.Errorf("field %d: got %+v want %+v", i, g, w)
		}
	}
	// Known bytes: field 1 varint 0 is 08 00 (the FIN flag of WebRTC messages).
	if !bytes.Equal(AppendVarint(nil, 1, 0), []byte{0x08, 0x00}) {
		t.Fatal("08 00 encoding")
	}
}

func TestTruncation(t *testing.T) {
	var b []byte
	b = AppendBytes(b, 2, []byte("hello"))
	b = AppendFixed64(b, 4, 7)
	for i := 1; i < len(b); i++ {
		err := ForEach(b[:i], func(Field) error { return nil })
		if i == 7 { // exactly the first field
			continue
		}
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("truncated at %d: err %v", i, err)
		}
	}
	if err := ForEach([]byte{0x0b}, func(Field) error { return nil }); !errors.Is(err, ErrMalformed) {
		t.Errorf("group wire type accepted: %v", err)
	}
	if err := ForEach([]byte{0x00, 0x00}, func(Field) error { return nil }); !errors.Is(err, ErrMalformed) {
		t.Errorf("field 0 accepted: %v", err)
	}
}

func FuzzNext(f *testing.F) {
	f.Add(AppendBytes(AppendVarint(nil, 1, 5), 2, []byte("x")))
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = ForEach(b, func(f Field) error {
			if f.Wire == WireBytes && len(f.Bytes) > len(b) {
				t.Fatal("field longer than input")
			}
			return nil
		})
	})
}
