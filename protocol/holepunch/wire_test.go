package holepunch

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/internal/lp"
	"github.com/tachyon-p2p/tachyon/internal/pb"
	"github.com/tachyon-p2p/tachyon/internal/varint"
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

func sameAddrs(a, b []ma.Multiaddr) bool {
	return slices.EqualFunc(a, b, func(x, y ma.Multiaddr) bool { return x.Equal(y) })
}

// The bytes go-libp2p's generated code produces for the same messages.
func TestMarshalGolden(t *testing.T) {
	tests := []struct {
		name string
		m    Message
		want string
	}{
		{"CONNECT", Message{Type: Connect}, "08 64"},
		{"SYNC", Message{Type: Sync}, "08 ac 02"},
		{"CONNECT with addrs", Message{Type: Connect, ObsAddrs: addrs("/ip4/1.2.3.4/tcp/80", "/ip6/::1/udp/1/quic-v1")},
			"08 64 12 08 04 01020304 06 0050 12 17 29 00000000000000000000000000000001 91 02 0001 cd 03"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := unhex(t, tt.want)
			if got := tt.m.Marshal(); !bytes.Equal(got, want) {
				t.Fatalf("Marshal = % x, want % x", got, want)
			}
			m, err := Unmarshal(want)
			if err != nil {
				t.Fatal(err)
			}
			if m.Type != tt.m.Type || !sameAddrs(m.ObsAddrs, tt.m.ObsAddrs) {
				t.Fatalf("Unmarshal = %v %v, want %v %v", m.Type, m.ObsAddrs, tt.m.Type, tt.m.ObsAddrs)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	for _, m := range []Message{
		{Type: Connect},
		{Type: Sync},
		{Type: Connect, ObsAddrs: addrs("/ip4/198.51.100.7/tcp/4001", "/ip4/198.51.100.7/udp/4001/quic-v1",
			"/dns4/example.com/tcp/443/wss", "/ip6/2001:db8::1/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA")},
		// Nothing stops a peer sending SYNC with addresses; they are kept.
		{Type: Sync, ObsAddrs: addrs("/ip4/203.0.113.1/tcp/1")},
	} {
		var buf bytes.Buffer
		if err := Write(&buf, &m); err != nil {
			t.Fatal(err)
		}
		got, err := Read(&buf)
		if err != nil {
			t.Fatalf("%v: %v", m.Type, err)
		}
		if got.Type != m.Type || !sameAddrs(got.ObsAddrs, m.ObsAddrs) {
			t.Fatalf("round trip of %v %v = %v %v", m.Type, m.ObsAddrs, got.Type, got.ObsAddrs)
		}
		if buf.Len() != 0 {
			t.Fatalf("%d bytes left", buf.Len())
		}
	}
}

func TestUnmarshal(t *testing.T) {
	good := ma.StringCast("/ip4/1.2.3.4/tcp/80")
	tests := []struct {
		name     string
		in       string
		wantType Type
		wantAddr int // number of addresses; -1: malformed
	}{
		{"empty: no type", "", 0, -1},
		{"addresses but no type", "12 08 04 01020304 06 0050", 0, -1},
		{"unknown type only", "08 07", 0, -1},
		{"type zero only", "08 00", 0, -1},
		{"negative type", "08 ffffffffffffffffff01", 0, -1},
		// proto2 keeps an unknown enum value aside: the valid one stands.
		{"valid then unknown type", "08 64 08 07", Connect, 0},
		{"unknown then valid type", "08 07 08 ac 02", Sync, 0},
		{"last valid type wins", "08 64 08 ac 02", Sync, 0},
		// Enums are int32 on the wire: protobuf truncates wider varints.
		{"type wider than 32 bits", "08 e4 80 80 80 10", Connect, 0},
		{"type as fixed32", "0d 64000000", 0, -1},
		{"type as bytes", "0a 01 64", 0, -1},
		{"type as fixed64", "09 6400000000000000", 0, -1},
		{"ObsAddrs as varint", "08 64 10 01", 0, -1},
		{"ObsAddrs as fixed32", "08 64 15 01020304", 0, -1},
		{"unknown fields skipped", "08 64 18 01 22 02 abcd 29 0102030405060708", Connect, 0},
		{"undecodable address dropped", "08 64 12 02 ffff 12 08" + hex.EncodeToString(good.Bytes()) + " 12 00", Connect, 1},
		{"truncated tag", "08", 0, -1},
		{"truncated type", "08 ac", 0, -1},
		{"truncated address length", "08 64 12", 0, -1},
		{"truncated address", "08 64 12 08 04 01", 0, -1},
		{"group wire type", "08 64 13", 0, -1},
		{"field zero", "00 00 08 64", 0, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Unmarshal(unhex(t, tt.in))
			if tt.wantAddr < 0 {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("Unmarshal = %v, %v; want ErrMalformed", m, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.Type != tt.wantType || len(m.ObsAddrs) != tt.wantAddr {
				t.Fatalf("Unmarshal = %v with %v, want %v with %d addresses", m.Type, m.ObsAddrs, tt.wantType, tt.wantAddr)
			}
			if tt.wantAddr == 1 && !m.ObsAddrs[0].Equal(good) {
				t.Fatalf("address %v, want %v", m.ObsAddrs[0], good)
			}
		})
	}
}

// Every proper prefix of a message that ends inside a field is malformed;
// one that ends between fields decodes to a prefix of the message.
func TestUnmarshalTruncated(t *testing.T) {
	full := (&Message{Type: Sync, ObsAddrs: addrs("/ip4/1.2.3.4/tcp/80", "/ip6/2001:db8::1/udp/1/quic-v1")}).Marshal()
	boundaries := map[int]int{3: 0, 3 + 2 + 8: 1} // prefix length -> addresses in it
	for n := 0; n < len(full); n++ {
		m, err := Unmarshal(full[:n])
		want, ok := boundaries[n]
		if !ok {
			if err == nil {
				t.Errorf("prefix of %d bytes decoded: %v %v", n, m.Type, m.ObsAddrs)
			}
			continue
		}
		if err != nil || m.Type != Sync || len(m.ObsAddrs) != want {
			t.Errorf("prefix of %d bytes = %v, %v; want SYNC with %d addresses", n, m, err, want)
		}
	}
}

func TestRead(t *testing.T) {
	// A message of exactly MaxMessageSize bytes: CONNECT padded with an
	// unknown bytes field.
	pad := MaxMessageSize - 2 - 1 - 2
	atLimit := pb.AppendBytes(pb.AppendVarint(nil, fType, uint64(Connect)), 3, make([]byte, pad))
	if len(atLimit) != MaxMessageSize {
		t.Fatalf("built %d bytes", len(atLimit))
	}
	overLimit := append(bytes.Clone(atLimit), 0x18, 0x01)

	tests := []struct {
		name    string
		in      []byte
		wantErr error // nil: a CONNECT
	}{
		{"at the limit", lp.Append(nil, atLimit), nil},
		{"over the limit", lp.Append(nil, overLimit), lp.ErrTooLarge},
		// Refused from the prefix alone, before any body arrives.
		{"huge length announced", varint.Append(nil, 1<<40), lp.ErrTooLarge},
		{"empty stream", nil, io.EOF},
		{"truncated length", []byte{0x80}, io.ErrUnexpectedEOF},
		{"truncated body", []byte{0x03, 0x08, 0x64}, io.ErrUnexpectedEOF},
		{"malformed body", []byte{0x02, 0x08, 0x07}, ErrMalformed},
		{"empty body", []byte{0x00}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Read(bytes.NewReader(tt.in))
			if tt.wantErr == nil {
				if err != nil || m.Type != Connect {
					t.Fatalf("Read = %v, %v; want CONNECT", m, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Read = %v, %v; want %v", m, err, tt.wantErr)
			}
		})
	}
}

// Read takes one message and not a byte more: what follows is the next one.
func TestReadOneAtATime(t *testing.T) {
	var buf bytes.Buffer
	_ = Write(&buf, &Message{Type: Connect, ObsAddrs: addrs("/ip4/1.2.3.4/tcp/80")})
	_ = Write(&buf, &Message{Type: Sync})
	r := io.MultiReader(bytes.NewReader(buf.Bytes())) // hides the buffer's extra methods
	for _, want := range []Type{Connect, Sync} {
		m, err := Read(r)
		if err != nil || m.Type != want {
			t.Fatalf("Read = %v, %v; want %v", m, err, want)
		}
	}
	if _, err := Read(r); err != io.EOF {
		t.Fatalf("after the last message: %v, want EOF", err)
	}
}

func FuzzUnmarshal(f *testing.F) {
	f.Add([]byte{})
	f.Add((&Message{Type: Connect}).Marshal())
	f.Add((&Message{Type: Sync}).Marshal())
	f.Add((&Message{Type: Connect, ObsAddrs: addrs("/ip4/1.2.3.4/tcp/80", "/ip6/::1/udp/1/quic-v1",
		"/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit")}).Marshal())
	f.Add([]byte{0x08, 0x64, 0x12, 0x02, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Unmarshal(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if m.Type != Connect && m.Type != Sync {
			t.Fatalf("decoded type %v", m.Type)
		}
		out := m.Marshal()
		m2, err := Unmarshal(out)
		if err != nil {
			t.Fatalf("re-decode of % x: %v", out, err)
		}
		if m2.Type != m.Type || !sameAddrs(m2.ObsAddrs, m.ObsAddrs) {
			t.Fatalf("re-decode = %v %v, want %v %v", m2.Type, m2.ObsAddrs, m.Type, m.ObsAddrs)
		}
		if !bytes.Equal(m2.Marshal(), out) {
			t.Fatal("re-encode differs")
		}
	})
}
