package lp

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestReadWrite(t *testing.T) {
	var buf bytes.Buffer
	for _, m := range [][]byte{{}, []byte("a"), bytes.Repeat([]byte{7}, 300)} {
		if err := WriteMsg(&buf, m); err != nil {
			t.Fatal(err)
		}
	}
	buf.WriteString("tail")
	r := io.MultiReader(&buf) // hides ByteReader: exercise the one-byte path
	for _, want := range []int{0, 1, 300} {
		m, err := ReadMsg(r, 1024)
		if err != nil || len(m) != want {
			t.Fatalf("ReadMsg = %d bytes, %v; want %d", len(m), err, want)
		}
	}
	rest, _ := io.ReadAll(r)
	if string(rest) != "tail" {
		t.Fatalf("ReadMsg consumed bytes past the message: left %q", rest)
	}
}

func TestLimits(t *testing.T) {
	msg := Append(nil, make([]byte, 100))
	if _, err := ReadMsg(bytes.NewReader(msg), 99); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
	if _, err := ReadMsg(bytes.NewReader(msg[:50]), 100); err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated: %v", err)
	}
	if _, err := ReadMsg(bytes.NewReader(nil), 100); err != io.EOF {
		t.Fatalf("empty: %v", err)
	}
}

func FuzzReadMsg(f *testing.F) {
	f.Add(Append(nil, []byte("/multistream/1.0.0\n")))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ReadMsg(bytes.NewReader(b), 1024)
		if err == nil && len(m) > 1024 {
			t.Fatal("limit ignored")
		}
	})
}
