package circuit

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/peer"
)

func testID(t testing.TB) (peer.ID, crypto.PrivKey) {
	t.Helper()
	k, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(k.GetPublic())
	if err != nil {
		t.Fatal(err)
	}
	return id, k
}

// The type is encoded even when it is the zero value: go and js read a
// missing type as "not set" and refuse the message.
func TestZeroTypeIsEncoded(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  []byte
		want string
	}{
		{"hop reserve", (&HopMessage{Type: HopReserve}).Marshal(), "0800"},
		{"stop connect", (&StopMessage{Type: StopConnect}).Marshal(), "0800"},
		{"hop status ok", (&HopMessage{Type: HopStatus, Status: StatusOK}).Marshal(), "08022864"},
		{"stop status", (&StopMessage{Type: StopStatus, Status: StatusNoReservation}).Marshal(), "080120cc01"},
		{"limit", (&HopMessage{Type: HopStatus, Limit: &Limit{Duration: 120, Data: 1 << 17}}).Marshal(), "08022206087810808008"},
		{"empty limit means present", (&HopMessage{Type: HopStatus, Limit: &Limit{}}).Marshal(), "08022200"},
	} {
		if h := hex.EncodeToString(tc.got); h != tc.want {
			t.Errorf("%s: encoded %s, want %s", tc.name, h, tc.want)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	id, _ := testID(t)
	a := ma.StringCast("/ip4/1.2.3.4/tcp/4001/p2p/" + id.String())
	hops := []*HopMessage{
		{Type: HopReserve},
		{Type: HopConnect, Peer: &Peer{ID: id}},
		{Type: HopStatus, Status: StatusOK, Reservation: &Reservation{Expire: uint64(time.Now().Unix()), Addrs: []ma.Multiaddr{a}, Voucher: []byte{1, 2}}, Limit: &Limit{Duration: 120, Data: 131072}},
		{Type: HopStatus, Status: StatusResourceLimitExceeded},
	}
	for _, m := range hops {
		got, err := UnmarshalHop(m.Marshal())
		if err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip: got %+v, want %+v", got, m)
		}
	}
	stops := []*StopMessage{
		{Type: StopConnect, Peer: &Peer{ID: id, Addrs: []ma.Multiaddr{a}}, Limit: &Limit{Data: 5}},
		{Type: StopStatus, Status: StatusOK},
	}
	for _, m := range stops {
		got, err := UnmarshalStop(m.Marshal())
		if err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip: got %+v, want %+v", got, m)
		}
	}
}

func TestMalformed(t *testing.T) {
	for _, tc := range []struct {
		name string
		hex  string
	}{
		{"no type", ""},
		{"only status", "2864"},
		{"type as bytes", "0a00"},
		{"truncated", "08"},
		{"peer as varint", "080110"},
		{"bad peer id", "080112040a021205"},
		{"limit data as bytes", "08022202120a"},
	} {
		b, _ := hex.DecodeString(tc.hex)
		if _, err := UnmarshalHop(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("hop %s: err %v, want ErrMalformed", tc.name, err)
		}
		if _, err := UnmarshalStop(b); !errors.Is(err, ErrMalformed) && tc.name != "limit data as bytes" && tc.name != "peer as varint" {
			t.Errorf("stop %s: err %v, want ErrMalformed", tc.name, err)
		}
	}
}

// Repeated occurrences of an embedded message merge, as protobuf says:
// scalars last-wins, repeated fields appended.
func TestEmbeddedMessagesMerge(t *testing.T) {
	m1 := (&HopMessage{Type: HopStatus, Limit: &Limit{Duration: 1}}).Marshal()
	m2 := (&HopMessage{Type: HopStatus, Limit: &Limit{Data: 7}}).Marshal()
	got, err := UnmarshalHop(append(m1, m2...))
	if err != nil {
		t.Fatal(err)
	}
	if *got.Limit != (Limit{Duration: 1, Data: 7}) {
		t.Errorf("merged limit %+v", *got.Limit)
	}
}

func TestReadDoesNotOverread(t *testing.T) {
	var buf bytes.Buffer
	WriteHop(&buf, &HopMessage{Type: HopStatus, Status: StatusOK})
	buf.WriteString("/multistream/1.0.0\n")
	m, err := ReadHop(&onlyReader{&buf})
	if err != nil || m.Status != StatusOK {
		t.Fatalf("ReadHop: %+v %v", m, err)
	}
	if buf.String() != "/multistream/1.0.0\n" {
		t.Errorf("left %q", buf.String())
	}
}

type onlyReader struct{ r *bytes.Buffer }

func (o *onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func TestVoucher(t *testing.T) {
	relay, key := testID(t)
	client, other := testID(t)
	v := &Voucher{Relay: relay, Peer: client, Expiration: 1234567}
	data, err := SealVoucher(v, key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenVoucher(data)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *v {
		t.Errorf("got %+v, want %+v", got, v)
	}
	// Signed by someone other than the relay it names.
	forged, err := SealVoucher(v, other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenVoucher(forged); err == nil {
		t.Error("a voucher signed by another key was accepted")
	}
	data[len(data)-1] ^= 1
	if _, err := OpenVoucher(data); err == nil {
		t.Error("a tampered voucher was accepted")
	}
}

func FuzzUnmarshalHop(f *testing.F) {
	id, _ := testID(f)
	f.Add((&HopMessage{Type: HopConnect, Peer: &Peer{ID: id}}).Marshal())
	f.Add((&HopMessage{Type: HopStatus, Status: StatusOK, Reservation: &Reservation{Expire: 9, Addrs: []ma.Multiaddr{ma.StringCast("/ip4/1.2.3.4/tcp/1")}}, Limit: &Limit{Duration: 1}}).Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := UnmarshalHop(b)
		if err != nil {
			return
		}
		// What decodes re-encodes to something that decodes the same.
		m2, err := UnmarshalHop(m.Marshal())
		if err != nil {
			t.Fatalf("re-encoding of %+v does not decode: %v", m, err)
		}
		if !reflect.DeepEqual(normHop(m), normHop(m2)) {
			t.Fatalf("round trip changed %+v into %+v", m, m2)
		}
	})
}

func FuzzUnmarshalStop(f *testing.F) {
	id, _ := testID(f)
	f.Add((&StopMessage{Type: StopConnect, Peer: &Peer{ID: id}, Limit: &Limit{Data: 1}}).Marshal())
	f.Add((&StopMessage{Type: StopStatus, Status: StatusOK}).Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := UnmarshalStop(b)
		if err != nil {
			return
		}
		m2, err := UnmarshalStop(m.Marshal())
		if err != nil {
			t.Fatalf("re-encoding of %+v does not decode: %v", m, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip changed %+v into %+v", m, m2)
		}
	})
}

// normHop maps an empty voucher to nil: Marshal leaves out an empty one.
func normHop(m *HopMessage) *HopMessage {
	c := *m
	if c.Reservation != nil && len(c.Reservation.Voucher) == 0 {
		r := *c.Reservation
		r.Voucher = nil
		c.Reservation = &r
	}
	return &c
}
