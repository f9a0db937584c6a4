package dialing

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"
	"time"
)

var (
	me4   = netip.MustParseAddr("11.1.0.2")
	me6   = netip.MustParseAddr("2a0c:1::2")
	peer4 = netip.MustParseAddr("11.2.0.2")
	peer6 = netip.MustParseAddr("2a0c:2::2")
)

// frame builds an Ethernet frame: IPv4 or IPv6 (by src), then TCP (flags)
// or UDP (payload).
func frame(src, dst netip.AddrPort, tcpFlags byte, udp []byte) []byte {
	var l4 []byte
	proto := byte(17)
	if udp == nil {
		proto = 6
		l4 = make([]byte, 20)
		l4[12] = 5 << 4
		l4[13] = tcpFlags
	} else {
		l4 = append(make([]byte, 8), udp...)
		binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
	}
	binary.BigEndian.PutUint16(l4, src.Port())
	binary.BigEndian.PutUint16(l4[2:], dst.Port())
	eth := make([]byte, 14)
	var ip []byte
	if src.Addr().Is4() {
		binary.BigEndian.PutUint16(eth[12:], 0x0800)
		ip = make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
		ip[8] = 64
		ip[9] = proto
		s, d := src.Addr().As4(), dst.Addr().As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
	} else {
		binary.BigEndian.PutUint16(eth[12:], 0x86dd)
		ip = make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(len(l4)))
		ip[6] = proto
		ip[7] = 64
		s, d := src.Addr().As16(), dst.Addr().As16()
		copy(ip[8:], s[:])
		copy(ip[24:], d[:])
	}
	return slices.Concat(eth, ip, l4)
}

// pcapOf writes frames as a nanosecond pcap, 1 ms apart.
func pcapOf(frames ...[]byte) []byte {
	h := make([]byte, 24)
	binary.LittleEndian.PutUint32(h, 0xa1b23c4d)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], 256)
	binary.LittleEndian.PutUint32(h[20:], 1)
	out := h
	for i, f := range frames {
		r := make([]byte, 16)
		binary.LittleEndian.PutUint32(r, 1_700_000_000)
		binary.LittleEndian.PutUint32(r[4:], uint32(i)*1_000_000)
		binary.LittleEndian.PutUint32(r[8:], uint32(len(f)))
		binary.LittleEndian.PutUint32(r[12:], uint32(len(f)))
		out = append(append(out, r...), f...)
	}
	return out
}

// quicLong is a QUIC v1 long-header packet of type typ (0 Initial, 2
// Handshake) with the given connection IDs and some payload.
func quicLong(typ byte, dcid, scid string) []byte {
	b := []byte{0xc0 | typ<<4, 0, 0, 0, 1, byte(len(dcid))}
	b = append(b, dcid...)
	b = append(b, byte(len(scid)))
	b = append(b, scid...)
	return append(b, make([]byte, 40)...)
}

// stun is a STUN message of type typ with a USERNAME attribute (none if
// user is "").
func stun(typ uint16, user string) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b, typ)
	binary.BigEndian.PutUint32(b[4:], 0x2112a442)
	if user != "" {
		a := make([]byte, 4, 4+len(user)+3)
		binary.BigEndian.PutUint16(a, 0x0006)
		binary.BigEndian.PutUint16(a[2:], uint16(len(user)))
		a = append(a, user...)
		for len(a)%4 != 0 {
			a = append(a, 0)
		}
		b = append(b, a...)
	}
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)-20))
	return b
}

func ap(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }

func TestFlows(t *testing.T) {
	const syn, synAck, ack = 0x02, 0x12, 0x10
	mine := map[netip.Addr]bool{me4: true, me6: true}
	tests := []struct {
		name   string
		frames [][]byte
		want   []string // attempts as kind src->dst
		other  int      // flows that are not attempts
	}{
		{
			name: "TCP SYN retransmitted, answered, acked: one attempt",
			frames: [][]byte{
				frame(ap(me4, 40000), ap(peer4, 4001), syn, nil),
				frame(ap(me4, 40000), ap(peer4, 4001), syn, nil),
				frame(ap(peer4, 4001), ap(me4, 40000), synAck, nil),
				frame(ap(me4, 40000), ap(peer4, 4001), ack, nil),
			},
			want: []string{"tcp 11.1.0.2:40000->11.2.0.2:4001"},
		},
		{
			name: "TCP over IPv6 and IPv4: two attempts",
			frames: [][]byte{
				frame(ap(me6, 40000), ap(peer6, 4001), syn, nil),
				frame(ap(me4, 40001), ap(peer4, 4001), syn, nil),
			},
			want: []string{"tcp [2a0c:1::2]:40000->[2a0c:2::2]:4001", "tcp 11.1.0.2:40001->11.2.0.2:4001"},
		},
		{
			name: "inbound SYN is not ours",
			frames: [][]byte{
				frame(ap(peer4, 50000), ap(me4, 4001), syn, nil),
			},
		},
		{
			name: "QUIC: the client's ID stays, the destination changes: one attempt",
			frames: [][]byte{
				frame(ap(me4, 50000), ap(peer4, 4001), 0, quicLong(0, "origdcid", "cli1")),
				frame(ap(peer4, 4001), ap(me4, 50000), 0, quicLong(0, "cli1", "srv1")),
				frame(ap(me4, 50000), ap(peer4, 4001), 0, quicLong(0, "other", "cli1")),
				frame(ap(me4, 50000), ap(peer4, 4001), 0, quicLong(2, "other", "cli1")),
				frame(ap(me4, 50000), ap(peer4, 4001), 0, []byte{0x40, 1, 2, 3, 4, 5, 6, 7, 8}), // short header
			},
			want: []string{"quic 11.1.0.2:50000->11.2.0.2:4001"},
		},
		{
			name: "QUIC and WebTransport from one socket to one port: two attempts",
			frames: [][]byte{
				frame(ap(me6, 50000), ap(peer6, 4001), 0, quicLong(0, "d1", "cli1")),
				frame(ap(me6, 50000), ap(peer6, 4001), 0, quicLong(0, "d2", "cli2")),
			},
			want: []string{"quic [2a0c:1::2]:50000->[2a0c:2::2]:4001", "quic [2a0c:1::2]:50000->[2a0c:2::2]:4001"},
		},
		{
			name: "QUIC client with empty IDs: by the first destination",
			frames: [][]byte{
				frame(ap(me4, 50000), ap(peer4, 4001), 0, quicLong(0, "d1", "")),
				frame(ap(me4, 50000), ap(peer4, 4001), 0, quicLong(0, "d1", "")),
			},
			want: []string{"quic 11.1.0.2:50000->11.2.0.2:4001"},
		},
		{
			name: "a 1-byte unreachable probe beside a QUIC dial is no attempt",
			frames: [][]byte{
				frame(ap(me4, 50001), ap(peer4, 4001), 0, []byte{0x40}),
				frame(ap(me4, 50000), ap(peer4, 4001), 0, quicLong(0, "d1", "cli1")),
				frame(ap(me4, 50001), ap(peer4, 4001), 0, []byte{0x40}),
			},
			want:  []string{"quic 11.1.0.2:50000->11.2.0.2:4001"},
			other: 1,
		},
		{
			name: "STUN: requests per username, responses are no attempt",
			frames: [][]byte{
				frame(ap(me4, 50002), ap(peer4, 4002), 0, stun(0x0001, "srv:cli1")),
				frame(ap(me4, 50002), ap(peer4, 4002), 0, stun(0x0001, "srv:cli1")),
				frame(ap(me4, 50002), ap(peer4, 4002), 0, stun(0x0101, "")),
				frame(ap(me4, 50002), ap(peer4, 4002), 0, []byte{22, 0xfe, 0xfd, 0, 0}), // DTLS after ICE
				frame(ap(me4, 50002), ap(peer4, 4002), 0, stun(0x0001, "srv:cli2")),
			},
			want: []string{"stun 11.1.0.2:50002->11.2.0.2:4002", "stun 11.1.0.2:50002->11.2.0.2:4002"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pkts, err := readPcap(pcapOf(tc.frames...))
			if err != nil {
				t.Fatal(err)
			}
			if len(pkts) != len(tc.frames) {
				t.Fatalf("read %d packets, want %d", len(pkts), len(tc.frames))
			}
			all := flows(pkts, mine)
			var got []string
			for _, f := range attempts(all) {
				got = append(got, f.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("attempts %q, want %q", got, tc.want)
			}
			if o := len(all) - len(got); o != tc.other {
				t.Errorf("%d other flows, want %d", o, tc.other)
			}
		})
	}
}

func TestReadPcap(t *testing.T) {
	f := frame(ap(me4, 1), ap(peer4, 2), 0x02, nil)
	good := pcapOf(f, f)
	tests := []struct {
		name    string
		in      []byte
		packets int
		err     bool
	}{
		{"two frames", good, 2, false},
		{"last record cut off", good[:len(good)-3], 1, false},
		{"header only", good[:24], 0, false},
		{"short header", good[:10], 0, true},
		{"bad magic", append([]byte{1, 2, 3, 4}, good[4:]...), 0, true},
		{"not Ethernet", func() []byte {
			b := slices.Clone(good)
			binary.LittleEndian.PutUint32(b[20:], 101)
			return b
		}(), 0, true},
		{"ARP is skipped", pcapOf(append(make([]byte, 12), 0x08, 0x06, 0, 1)), 0, false},
		{"IPv4 later fragment is skipped", func() []byte {
			g := slices.Clone(f)
			binary.BigEndian.PutUint16(g[14+6:], 100)
			return pcapOf(g)
		}(), 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pkts, err := readPcap(tc.in)
			if (err != nil) != tc.err {
				t.Fatalf("error %v, want error: %v", err, tc.err)
			}
			if len(pkts) != tc.packets {
				t.Fatalf("%d packets, want %d", len(pkts), tc.packets)
			}
			for _, p := range pkts {
				if want := time.Unix(1_700_000_000, 0); p.at.Before(want) {
					t.Errorf("stamp %v before %v", p.at, want)
				}
			}
		})
	}
}

// FuzzReadPcap: any capture file is read without a panic, and every
// attempt found comes from one of our addresses.
func FuzzReadPcap(f *testing.F) {
	f.Add(pcapOf(
		frame(ap(me4, 40000), ap(peer4, 4001), 0x02, nil),
		frame(ap(me6, 50000), ap(peer6, 4001), 0, quicLong(0, "d1", "cli1")),
		frame(ap(peer6, 4001), ap(me6, 50000), 0, quicLong(0, "cli1", "srv1")),
		frame(ap(me4, 50002), ap(peer4, 4002), 0, stun(0x0001, "srv:cli1")),
		frame(ap(me4, 50001), ap(peer4, 4001), 0, []byte{0x40}),
	))
	mine := map[netip.Addr]bool{me4: true, me6: true}
	f.Fuzz(func(t *testing.T, b []byte) {
		pkts, err := readPcap(b)
		if err != nil {
			return
		}
		for _, fl := range flows(pkts, mine) {
			if !mine[fl.src.Addr()] {
				t.Fatalf("flow %s is not from our addresses", fl)
			}
		}
	})
}

func TestShortAddr(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/ip4/11.2.0.2/udp/4001/quic-v1/p2p/12D3KooWA", "/ip4/11.2.0.2/udp/4001/quic-v1"},
		{"/ip4/11.2.0.2/udp/4001/quic-v1/webtransport/certhash/uEiA/certhash/uEiB/p2p/12D3KooWA", "/ip4/11.2.0.2/udp/4001/quic-v1/webtransport"},
		{"/ip6/2a0c:5::2/tcp/4001/p2p/12D3KooWR/p2p-circuit/p2p/12D3KooWN", "/ip6/2a0c:5::2/tcp/4001/p2p-circuit"},
		{"/ip4/11.2.0.2/tcp/4001", "/ip4/11.2.0.2/tcp/4001"},
	}
	for _, tc := range tests {
		if got := shortAddr(tc.in); got != tc.want {
			t.Errorf("shortAddr(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
