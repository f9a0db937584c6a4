package autonatv2

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/internal/lp"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The encodings the spec's proto3 schema gives, written out by hand.
func TestEncodingsByteExact(t *testing.T) {
	addr := ma.StringCast("/ip4/1.2.3.4/tcp/4001").Bytes() // 04 01020304 06 0fa1
	const nonce = 0x0807060504030201
	cases := []struct {
		name string
		m    Marshaler
		want string
	}{
		// The nonce is fixed64: tag 0x11 (field 2, wire type 1), then 8
		// bytes little-endian.
		{"DialRequest", &Message{DialRequest: &DialRequest{Addrs: [][]byte{addr}, Nonce: nonce}},
			"0a 13 0a 08 0401020304060fa1 11 0102030405060708"},
		{"DialRequest zero nonce", &Message{DialRequest: &DialRequest{Addrs: [][]byte{addr}}},
			"0a 0a 0a 08 0401020304060fa1"},
		{"DialResponse OK", &Message{DialResponse: &DialResponse{Status: StatusOK, AddrIdx: 1, DialStatus: DialStatusOK}},
			"12 08 08 c801 10 01 18 c801"},
		// proto3: E_INTERNAL_ERROR, addrIdx 0 and UNUSED vanish.
		{"DialResponse internal error", &Message{DialResponse: &DialResponse{}}, "12 00"},
		{"DialResponse refused", &Message{DialResponse: &DialResponse{Status: StatusDialRefused}}, "12 02 08 65"},
		{"DialResponse dial error", &Message{DialResponse: &DialResponse{Status: StatusOK, DialStatus: DialStatusDialError}},
			"12 05 08 c801 18 64"},
		{"DialDataRequest", &Message{DialDataRequest: &DialDataRequest{AddrIdx: 2, NumBytes: 30000}},
			"1a 06 08 02 10 b0ea01"},
		{"DialDataResponse", &Message{DialDataResponse: &DialDataResponse{Data: []byte{0, 0, 0}}}, "22 05 0a 03 000000"},
		{"DialBack", &DialBack{Nonce: nonce}, "09 0102030405060708"},
		// DialBackResponse{OK} is the empty message.
		{"DialBackResponse OK", &DialBackResponse{}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := c.m.Marshal()
			if want := unhex(t, c.want); !bytes.Equal(got, want) {
				t.Fatalf("encoding\n got % x\nwant % x", got, want)
			}
			var buf bytes.Buffer
			if err := Write(&buf, c.m); err != nil {
				t.Fatal(err)
			}
			if want := lp.Append(nil, got); !bytes.Equal(buf.Bytes(), want) {
				t.Fatalf("framed % x, want % x", buf.Bytes(), want)
			}
		})
	}
	// On the wire, the OK acknowledgement is a single zero byte.
	var buf bytes.Buffer
	Write(&buf, &DialBackResponse{Status: DialBackStatusOK})
	if !bytes.Equal(buf.Bytes(), []byte{0}) {
		t.Fatalf("DialBackResponse OK framed as % x", buf.Bytes())
	}
}

func TestRoundTrip(t *testing.T) {
	msgs := []*Message{
		{DialRequest: &DialRequest{Addrs: [][]byte{ma.StringCast("/ip6/2001:db8::1/udp/4001/quic-v1").Bytes(), {0xff, 0xff}}, Nonce: 1<<64 - 1}},
		{DialResponse: &DialResponse{Status: StatusRequestRejected}},
		{DialResponse: &DialResponse{Status: -5, AddrIdx: 1<<32 - 1, DialStatus: 7}},
		{DialDataRequest: &DialDataRequest{AddrIdx: 49, NumBytes: 100000}},
		{DialDataResponse: &DialDataResponse{Data: bytes.Repeat([]byte{1}, MaxDataChunk)}},
		{},
	}
	for _, m := range msgs {
		b := m.Marshal()
		got, err := UnmarshalMessage(b)
		if err != nil {
			t.Fatalf("%s: %v", m.kind(), err)
		}
		if !bytes.Equal(got.Marshal(), b) || got.kind() != m.kind() {
			t.Fatalf("%s: re-encoded % x, want % x", m.kind(), got.Marshal(), b)
		}
		if !bytes.Equal(lp.Append(nil, b), frame(t, m)) {
			t.Fatal("Write differs from lp.Append(Marshal)")
		}
		if rd, err := ReadMessage(bytes.NewReader(frame(t, m))); err != nil || !bytes.Equal(rd.Marshal(), b) {
			t.Fatalf("ReadMessage: %v", err)
		}
	}
	r, err := UnmarshalMessage((&Message{DialResponse: &DialResponse{Status: -5, DialStatus: 7}}).Marshal())
	if err != nil || r.DialResponse.Status != -5 || r.DialResponse.DialStatus != 7 {
		t.Fatalf("open enums: %+v, %v", r.DialResponse, err)
	}
	if s := r.DialResponse.Status.String(); s != "ResponseStatus(-5)" {
		t.Fatalf("unknown status String() = %q", s)
	}
	if s := r.DialResponse.DialStatus.String(); s != "DialStatus(7)" {
		t.Fatalf("unknown dial status String() = %q", s)
	}
	d, err := UnmarshalDialBack((&DialBack{Nonce: 42}).Marshal())
	if err != nil || d.Nonce != 42 {
		t.Fatalf("DialBack: %+v, %v", d, err)
	}
	dr, err := UnmarshalDialBackResponse((&DialBackResponse{Status: 3}).Marshal())
	if err != nil || dr.Status != 3 || dr.Status.String() != "DialBackStatus(3)" {
		t.Fatalf("DialBackResponse: %+v, %v", dr, err)
	}
}

func frame(t testing.TB, m Marshaler) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, m); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// protobuf's rules for a oneof: the last member on the wire wins, and a
// member repeated without another in between merges.
func TestOneofLastWins(t *testing.T) {
	a1 := ma.StringCast("/ip4/1.2.3.4/tcp/1").Bytes()
	a2 := ma.StringCast("/ip4/5.6.7.8/tcp/2").Bytes()
	req1 := (&Message{DialRequest: &DialRequest{Addrs: [][]byte{a1}, Nonce: 1}}).Marshal()
	req2 := (&Message{DialRequest: &DialRequest{Addrs: [][]byte{a2}, Nonce: 2}}).Marshal()
	resp := (&Message{DialResponse: &DialResponse{Status: StatusOK, DialStatus: DialStatusOK}}).Marshal()
	data := (&Message{DialDataResponse: &DialDataResponse{Data: []byte("x")}}).Marshal()
	data2 := (&Message{DialDataResponse: &DialDataResponse{Data: []byte("yy")}}).Marshal()
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

	m, err := UnmarshalMessage(cat(req1, resp))
	if err != nil || m.DialRequest != nil || m.DialResponse == nil || m.DialResponse.Status != StatusOK {
		t.Fatalf("request then response: %+v, %v", m, err)
	}
	m, err = UnmarshalMessage(cat(req1, req2))
	if err != nil || m.DialRequest == nil || len(m.DialRequest.Addrs) != 2 || m.DialRequest.Nonce != 2 {
		t.Fatalf("request twice should merge: %+v, %v", m.DialRequest, err)
	}
	m, err = UnmarshalMessage(cat(req1, resp, req2))
	if err != nil || m.DialResponse != nil || len(m.DialRequest.Addrs) != 1 || m.DialRequest.Nonce != 2 {
		t.Fatalf("request, response, request: %+v, %v", m, err)
	}
	m, err = UnmarshalMessage(cat(data, data2))
	if err != nil || string(m.DialDataResponse.Data) != "yy" {
		t.Fatalf("data twice: %+v, %v", m, err)
	}
	// Unknown fields, here 5 (varint) and 15 (bytes), are skipped.
	m, err = UnmarshalMessage(cat([]byte{0x28, 0x01}, resp, []byte{0x7a, 0x01, 0xff}))
	if err != nil || m.DialResponse == nil {
		t.Fatalf("unknown fields: %+v, %v", m, err)
	}
	// An empty message is valid protobuf with no member set.
	m, err = UnmarshalMessage(nil)
	if err != nil || m.kind() != "an empty Message" {
		t.Fatalf("empty: %+v, %v", m, err)
	}
}

func TestMalformed(t *testing.T) {
	cases := []struct {
		name   string
		decode func([]byte) error
		in     string
	}{
		{"Message member as varint", msgErr, "08 01"},
		{"nonce as varint", msgErr, "0a 02 10 01"},
		{"addrs as varint", msgErr, "0a 02 08 01"},
		{"status as bytes", msgErr, "12 02 0a 00"},
		{"numBytes as fixed64", msgErr, "1a 09 11 0000000000000000"},
		{"data as varint", msgErr, "22 02 08 01"},
		{"truncated member", msgErr, "0a 05 0a 01"},
		{"truncated nonce", msgErr, "0a 05 11 01020304"},
		{"overlong varint", msgErr, "12 0b 08 ffffffffffffffffff7f"},
		{"field zero", msgErr, "00 00"},
		{"DialBack nonce as varint", func(b []byte) error { _, err := UnmarshalDialBack(b); return err }, "08 01"},
		{"DialBack truncated", func(b []byte) error { _, err := UnmarshalDialBack(b); return err }, "09 0102"},
		{"DialBackResponse status as bytes", func(b []byte) error { _, err := UnmarshalDialBackResponse(b); return err }, "0a 00"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.decode(unhex(t, c.in)); !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v, want ErrMalformed", err)
			}
		})
	}
	// Every strict prefix of a message is malformed: the member's length
	// (or the nonce's 8 bytes) runs past the end.
	full := (&Message{DialRequest: &DialRequest{Addrs: [][]byte{{1, 2, 3}}, Nonce: 9}}).Marshal()
	for i := 1; i < len(full); i++ {
		if err := msgErr(full[:i]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("prefix of %d bytes: %v", i, err)
		}
	}
	back := (&DialBack{Nonce: 9}).Marshal()
	for i := 1; i < len(back); i++ {
		if _, err := UnmarshalDialBack(back[:i]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("DialBack prefix of %d bytes: %v", i, err)
		}
	}
}

func msgErr(b []byte) error {
	_, err := UnmarshalMessage(b)
	return err
}

func TestReadLimits(t *testing.T) {
	big := lp.Append(nil, make([]byte, MaxMessageSize+1))
	if _, err := ReadMessage(bytes.NewReader(big)); !errors.Is(err, lp.ErrTooLarge) {
		t.Fatalf("message of %d bytes: %v", MaxMessageSize+1, err)
	}
	max := (&Message{DialDataResponse: &DialDataResponse{Data: make([]byte, MaxMessageSize-6)}}).Marshal()
	if len(max) != MaxMessageSize {
		t.Fatalf("test message is %d bytes", len(max))
	}
	if _, err := ReadMessage(bytes.NewReader(lp.Append(nil, max))); err != nil {
		t.Fatalf("message of exactly %d bytes: %v", MaxMessageSize, err)
	}
	if _, err := ReadDialBack(bytes.NewReader(lp.Append(nil, make([]byte, MaxDialBackMessageSize+1)))); !errors.Is(err, lp.ErrTooLarge) {
		t.Fatalf("large DialBack: %v", err)
	}
	// The zero-length DialBackResponse must be accepted.
	r, err := ReadDialBackResponse(bytes.NewReader([]byte{0}))
	if err != nil || r.Status != DialBackStatusOK {
		t.Fatalf("empty DialBackResponse: %+v, %v", r, err)
	}
	// Reading stops at the end of the message.
	rd := bytes.NewReader(append(frame(t, &DialBack{Nonce: 5}), 0xaa))
	if d, err := ReadDialBack(rd); err != nil || d.Nonce != 5 || rd.Len() != 1 {
		t.Fatalf("ReadDialBack: %+v, %v, %d bytes left", d, err, rd.Len())
	}
}

func FuzzUnmarshalMessage(f *testing.F) {
	a := ma.StringCast("/ip4/1.2.3.4/tcp/4001").Bytes()
	for _, m := range []*Message{
		{DialRequest: &DialRequest{Addrs: [][]byte{a, ma.StringCast("/ip6/::1/udp/1/quic-v1").Bytes()}, Nonce: 0x0102030405060708}},
		{DialResponse: &DialResponse{Status: StatusOK, AddrIdx: 1, DialStatus: DialStatusOK}},
		{DialResponse: &DialResponse{Status: StatusDialRefused}},
		{DialDataRequest: &DialDataRequest{AddrIdx: 0, NumBytes: 30000}},
		{DialDataResponse: &DialDataResponse{Data: make([]byte, 64)}},
	} {
		f.Add(m.Marshal())
	}
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x02, 0x08, 0x01, 0x12, 0x00, 0x0a, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := UnmarshalMessage(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		set := 0
		for _, p := range []bool{m.DialRequest != nil, m.DialResponse != nil, m.DialDataRequest != nil, m.DialDataResponse != nil} {
			if p {
				set++
			}
		}
		if set > 1 {
			t.Fatalf("%d oneof members set", set)
		}
		out := m.Marshal()
		m2, err := UnmarshalMessage(out)
		if err != nil {
			t.Fatalf("re-decode of % x: %v", out, err)
		}
		if m2.kind() != m.kind() || !bytes.Equal(m2.Marshal(), out) {
			t.Fatalf("re-encode of % x differs", out)
		}
	})
}

// FuzzUnmarshalDialBack covers both messages of the dial-back stream.
func FuzzUnmarshalDialBack(f *testing.F) {
	f.Add((&DialBack{Nonce: 0x0102030405060708}).Marshal())
	f.Add((&DialBackResponse{Status: 1}).Marshal())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, err := UnmarshalDialBack(b); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("DialBack error %v does not wrap ErrMalformed", err)
			}
		} else if d2, err := UnmarshalDialBack(d.Marshal()); err != nil || d2.Nonce != d.Nonce {
			t.Fatalf("DialBack re-decode: %+v, %v", d2, err)
		}
		if r, err := UnmarshalDialBackResponse(b); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("DialBackResponse error %v does not wrap ErrMalformed", err)
			}
		} else if r2, err := UnmarshalDialBackResponse(r.Marshal()); err != nil || r2.Status != r.Status {
			t.Fatalf("DialBackResponse re-decode: %+v, %v", r2, err)
		}
	})
}
