package autonatv1

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"reflect"
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

func addrs(ss ...string) []ma.Multiaddr {
	out := make([]ma.Multiaddr, len(ss))
	for i, s := range ss {
		out[i] = ma.StringCast(s)
	}
	return out
}

// sameMessage compares decoded messages, multiaddrs by their bytes.
func sameMessage(a, b *Message) bool {
	return bytes.Equal(a.Marshal(), b.Marshal()) && (a.Dial == nil) == (b.Dial == nil) && (a.DialResponse == nil) == (b.DialResponse == nil)
}

// Encodings built by hand from the proto definition (field keys: type 08,
// dial 12, dialResponse 1a; in Dial: peer 0a; in PeerInfo: id 0a, addrs
// 12; in DialResponse: status 08, statusText 12, addr 1a).
// /ip4/1.2.3.4/tcp/4001 is 04 01020304 06 0fa1 (8 bytes);
// /ip6/::1/udp/1/quic-v1 is 29 <16> 91 02 0001 cd 03 (23 bytes).
const (
	hexTCP  = "04 01020304 06 0fa1"
	hexQUIC = "29 00000000000000000000000000000001 9102 0001 cd03"
)

func TestMarshalGolden(t *testing.T) {
	tests := []struct {
		name string
		m    Message
		want string
	}{
		{"DIAL", Message{Type: TypeDial, Dial: &Dial{Peer: &PeerInfo{ID: []byte{0, 3, 1, 2, 3},
			Addrs: addrs("/ip4/1.2.3.4/tcp/4001", "/ip6/::1/udp/1/quic-v1")}}},
			// peer = 2+5 + 2+8 + 2+23 = 42 (2a); dial = 2+42 = 44 (2c)
			"08 00  12 2c  0a 2a  0a 05 0003010203  12 08 " + hexTCP + "  12 17 " + hexQUIC},
		{"DIAL without addresses", Message{Type: TypeDial, Dial: &Dial{Peer: &PeerInfo{ID: []byte{0, 1, 9}}}},
			"08 00 12 07 0a 05 0a 03 000109"},
		{"DIAL with an empty peer", Message{Type: TypeDial, Dial: &Dial{Peer: &PeerInfo{}}}, "08 00 12 02 0a 00"},
		{"DIAL without peer", Message{Type: TypeDial, Dial: &Dial{}}, "08 00 12 00"},
		{"type only", Message{Type: TypeDialResponse}, "08 01"},
		{"OK", Message{Type: TypeDialResponse, DialResponse: &DialResponse{Status: StatusOK, Addr: ma.StringCast("/ip4/1.2.3.4/tcp/4001")}},
			// response = 2 + 2+8 = 12 (0c)
			"08 01 1a 0c 08 00 1a 08 " + hexTCP},
		{"E_DIAL_ERROR", Message{Type: TypeDialResponse, DialResponse: &DialResponse{Status: StatusDialError, StatusText: "dial failed"}},
			// response = 2 + 2+11 = 15 (0f)
			"08 01 1a 0f 08 64 12 0b 6469616c206661696c6564"},
		{"E_DIAL_REFUSED", Message{Type: TypeDialResponse, DialResponse: &DialResponse{Status: StatusDialRefused}}, "08 01 1a 02 08 65"},
		{"E_BAD_REQUEST", Message{Type: TypeDialResponse, DialResponse: &DialResponse{Status: StatusBadRequest}}, "08 01 1a 03 08 c8 01"},
		{"E_INTERNAL_ERROR", Message{Type: TypeDialResponse, DialResponse: &DialResponse{Status: StatusInternalError}}, "08 01 1a 03 08 ac 02"},
		// proto2 encodes a negative enum as a 10-byte varint.
		{"negative status", Message{Type: TypeDialResponse, DialResponse: &DialResponse{Status: -1}},
			"08 01 1a 0b 08 ffffffffffffffffff01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := unhex(t, tt.want)
			if got := tt.m.Marshal(); !bytes.Equal(got, want) {
				t.Fatalf("Marshal = % x\nwant      % x", got, want)
			}
			m, err := Unmarshal(want)
			if err != nil {
				t.Fatal(err)
			}
			if !sameMessage(m, &tt.m) {
				t.Fatalf("Unmarshal = %+v, want %+v", m, tt.m)
			}
			if tt.m.Dial != nil && tt.m.Dial.Peer != nil && !reflect.DeepEqual(m.Dial.Peer.ID, tt.m.Dial.Peer.ID) {
				t.Fatalf("ID = %x, want %x", m.Dial.Peer.ID, tt.m.Dial.Peer.ID)
			}
		})
	}
}

func TestUnmarshal(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		check func(t *testing.T, m *Message)
	}{
		{"empty is a DIAL without dial (proto2 defaults)", "", func(t *testing.T, m *Message) {
			if m.Type != TypeDial || m.Dial != nil || m.DialResponse != nil {
				t.Fatalf("got %+v", m)
			}
		}},
		{"missing status reads as OK", "08 01 1a 00", func(t *testing.T, m *Message) {
			if m.DialResponse == nil || m.DialResponse.Status != StatusOK || m.DialResponse.Addr != nil {
				t.Fatalf("got %+v", m.DialResponse)
			}
		}},
		{"unknown type kept as is", "08 07", func(t *testing.T, m *Message) {
			if m.Type != 7 {
				t.Fatalf("type %v", m.Type)
			}
		}},
		{"unknown status kept as is", "08 01 1a 02 08 05", func(t *testing.T, m *Message) {
			if m.DialResponse.Status != 5 {
				t.Fatalf("status %v", m.DialResponse.Status)
			}
		}},
		{"unknown fields skipped at every level", "08 00 20 05 12 0d 10 01 0a 09 18 01 12 05 04 01020304 2a 00", func(t *testing.T, m *Message) {
			if m.Dial == nil || m.Dial.Peer == nil || m.Dial.Peer.ID != nil || len(m.Dial.Peer.Addrs) != 1 ||
				m.Dial.Peer.Addrs[0].String() != "/ip4/1.2.3.4" {
				t.Fatalf("got %+v", m.Dial)
			}
		}},
		{"undecodable address dropped", "08 00 12 0d 0a 0b 12 02 ffff 12 05 04 01020304", func(t *testing.T, m *Message) {
			if got := m.Dial.Peer.Addrs; len(got) != 1 || got[0].String() != "/ip4/1.2.3.4" {
				t.Fatalf("addrs %v", got)
			}
		}},
		{"repeated sub-messages merge", "08 00 12 09 0a 07 0a 01 aa 12 02 0400 12 09 0a 07 0a 01 bb 12 02 0401", func(t *testing.T, m *Message) {
			p := m.Dial.Peer
			// 04 00 and 04 01 are too short for /ip4 and are dropped; the
			// later ID wins.
			if !bytes.Equal(p.ID, []byte{0xbb}) || len(p.Addrs) != 0 {
				t.Fatalf("got %+v", p)
			}
		}},
		{"repeated sub-messages merge addresses", "08 00 12 0c 0a 0a 12 08 " + hexTCP + " 12 0c 0a 0a 12 08 04 05060708 06 0050", func(t *testing.T, m *Message) {
			if got := m.Dial.Peer.Addrs; len(got) != 2 || got[0].String() != "/ip4/1.2.3.4/tcp/4001" || got[1].String() != "/ip4/5.6.7.8/tcp/80" {
				t.Fatalf("addrs %v", got)
			}
		}},
		{"empty ID is present", "08 00 12 04 0a 02 0a 00", func(t *testing.T, m *Message) {
			if m.Dial.Peer.ID == nil || len(m.Dial.Peer.ID) != 0 {
				t.Fatalf("ID %#v", m.Dial.Peer.ID)
			}
		}},
		{"last type wins", "08 01 08 00", func(t *testing.T, m *Message) {
			if m.Type != TypeDial {
				t.Fatalf("type %v", m.Type)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Unmarshal(unhex(t, tt.in))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, m)
		})
	}
}

func TestUnmarshalMalformed(t *testing.T) {
	for _, tt := range []struct{ name, in string }{
		{"type as bytes", "0a 00"},
		{"dial as varint", "10 00"},
		{"dialResponse as varint", "18 00"},
		{"peer as varint", "12 02 08 00"},
		{"id as varint", "12 04 0a 02 08 00"},
		{"addrs as varint", "12 04 0a 02 10 00"},
		{"status as bytes", "1a 02 0a 00"},
		{"statusText as varint", "1a 02 10 00"},
		{"addr as varint", "1a 02 18 00"},
		{"undecodable response address", "1a 04 1a 02 ffff"},
		{"truncated", "08"},
		{"length past the end", "12 05 0a 00"},
		{"truncated inside peer", "12 03 0a 01 0a"},
		{"field number zero", "00 00"},
		{"group wire type", "0b"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if m, err := Unmarshal(unhex(t, tt.in)); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Unmarshal = %+v, %v; want ErrMalformed", m, err)
			}
		})
	}
}

func TestReadWrite(t *testing.T) {
	m := &Message{Type: TypeDial, Dial: &Dial{Peer: &PeerInfo{ID: []byte{0, 1, 2}, Addrs: addrs("/ip4/1.2.3.4/tcp/4001")}}}
	var buf bytes.Buffer
	if err := Write(&buf, m); err != nil {
		t.Fatal(err)
	}
	want := append([]byte{byte(len(m.Marshal()))}, m.Marshal()...)
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("Write = % x, want % x", buf.Bytes(), want)
	}
	buf.WriteString("next layer")
	got, err := Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !sameMessage(got, m) {
		t.Fatalf("Read = %+v", got)
	}
	if buf.String() != "next layer" {
		t.Fatalf("Read consumed past its message: %q left", buf.String())
	}

	t.Run("limit", func(t *testing.T) {
		// Exactly MaxMessageSize passes, one more byte does not, both ways.
		pad := func(n int) *Message {
			// 08 00 12 L 0a L' 0a L'' <id>: 2 + 3 + 3 + 3 = 11 bytes of framing for ids of 128..
			return &Message{Type: TypeDial, Dial: &Dial{Peer: &PeerInfo{ID: make([]byte, n)}}}
		}
		n := MaxMessageSize - (len(pad(200).Marshal()) - 200)
		if l := len(pad(n).Marshal()); l != MaxMessageSize {
			t.Fatalf("padding arithmetic: %d bytes", l)
		}
		var buf bytes.Buffer
		if err := Write(&buf, pad(n)); err != nil {
			t.Fatal(err)
		}
		if _, err := Read(&buf); err != nil {
			t.Fatal(err)
		}
		if err := Write(&buf, pad(n+1)); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Write of %d bytes = %v, want ErrTooLarge", MaxMessageSize+1, err)
		}
		buf.Reset()
		lp.WriteMsg(&buf, pad(n+1).Marshal())
		if _, err := Read(&buf); !errors.Is(err, lp.ErrTooLarge) {
			t.Fatalf("Read of %d bytes = %v, want lp.ErrTooLarge", MaxMessageSize+1, err)
		}
	})
	t.Run("EOF", func(t *testing.T) {
		if _, err := Read(bytes.NewReader(nil)); err != io.EOF {
			t.Fatalf("Read of nothing = %v, want io.EOF", err)
		}
		if _, err := Read(bytes.NewReader([]byte{5, 8})); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("Read of a short message = %v, want io.ErrUnexpectedEOF", err)
		}
	})
}

func TestStrings(t *testing.T) {
	for v, want := range map[interface{ String() string }]string{
		TypeDial: "DIAL", TypeDialResponse: "DIAL_RESPONSE", Type(9): "Type(9)",
		StatusOK: "OK", StatusDialError: "E_DIAL_ERROR", StatusDialRefused: "E_DIAL_REFUSED",
		StatusBadRequest: "E_BAD_REQUEST", StatusInternalError: "E_INTERNAL_ERROR", Status(7): "Status(7)",
	} {
		if got := v.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", v, got, want)
		}
	}
}

func FuzzUnmarshalMessage(f *testing.F) {
	f.Add([]byte{})
	for _, m := range []Message{
		{Type: TypeDial, Dial: &Dial{Peer: &PeerInfo{ID: []byte{0, 3, 1, 2, 3},
			Addrs: addrs("/ip4/1.2.3.4/tcp/4001", "/ip6/::1/udp/1/quic-v1", "/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit")}}},
		{Type: TypeDialResponse, DialResponse: &DialResponse{Status: StatusOK, Addr: ma.StringCast("/ip4/1.2.3.4/udp/4001/quic-v1")}},
		{Type: TypeDialResponse, DialResponse: &DialResponse{Status: StatusDialError, StatusText: "dial failed"}},
	} {
		f.Add(m.Marshal())
	}
	f.Add([]byte{0x08, 0x00, 0x12, 0x0b, 0x0a, 0x09, 0x12, 0x02, 0xff, 0xff, 0x12, 0x03, 0x04, 0x01, 0x02})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Unmarshal(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		out := m.Marshal()
		m2, err := Unmarshal(out)
		if err != nil {
			t.Fatalf("re-decode of % x: %v", out, err)
		}
		if !bytes.Equal(m2.Marshal(), out) {
			t.Fatal("re-encode differs")
		}
	})
}
