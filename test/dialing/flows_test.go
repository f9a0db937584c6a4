package dialing

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Dial attempts are counted on the wire, the same way for both
// implementations, from a pcap that tcpdump writes in the dialer's
// namespace. An attempt is a flow the dialer opens:
//
//   - TCP: a SYN without ACK, per 4-tuple (retransmissions are one);
//   - QUIC (and WebTransport, which is QUIC): a client long-header packet
//     with a new Source Connection ID on its 5-tuple. A client keeps its
//     ID through the handshake while the Destination ID changes (to the
//     server's choice, and not always the one in the server's first
//     Initial), so QUIC and WebTransport dials from one socket to one port
//     count twice and one dial's later Initials and Handshakes do not; a
//     client with empty IDs is counted by its first Destination ID;
//   - WebRTC-direct: a STUN request per 5-tuple and USERNAME (the ICE
//     ufrags, new for every dial).
//
// Other UDP 5-tuples (flowOther) are kept for the record but are not
// attempts: they carry no handshake, e.g. tachyon's 1-byte datagram from a
// connected socket beside each QUIC dial that listens for ICMP "port
// unreachable" (transport/quic's probeUnreachable).

// packet is one captured IP packet, as far as flow counting needs.
type packet struct {
	at       time.Time
	src, dst netip.AddrPort
	tcp      bool
	syn      bool   // TCP SYN without ACK
	payload  []byte // UDP payload (as much as was captured)
	captured int    // bytes of the frame in the capture
}

var errPcap = errors.New("not a pcap tcpdump writes")

// readPcap parses a classic pcap file (micro- or nanosecond stamps, either
// byte order) of Ethernet or Linux cooked frames. Frames that are not
// IPv4/IPv6 TCP or UDP are skipped; a truncated last record ends the
// list (tcpdump was stopped while writing).
func readPcap(b []byte) ([]packet, error) {
	if len(b) < 24 {
		return nil, fmt.Errorf("%w: %d bytes", errPcap, len(b))
	}
	var bo binary.ByteOrder = binary.LittleEndian
	var nano bool
	switch binary.LittleEndian.Uint32(b) {
	case 0xa1b2c3d4:
	case 0xa1b23c4d:
		nano = true
	default:
		bo = binary.BigEndian
		switch binary.BigEndian.Uint32(b) {
		case 0xa1b2c3d4:
		case 0xa1b23c4d:
			nano = true
		default:
			return nil, fmt.Errorf("%w: magic %x", errPcap, b[:4])
		}
	}
	link := bo.Uint32(b[20:])
	if link != 1 && link != 113 {
		return nil, fmt.Errorf("%w: link type %d (want Ethernet or Linux cooked)", errPcap, link)
	}
	var out []packet
	for rest := b[24:]; len(rest) >= 16; {
		sec, frac, incl := bo.Uint32(rest), bo.Uint32(rest[4:]), bo.Uint32(rest[8:])
		if uint64(incl) > uint64(len(rest)-16) {
			break
		}
		frame := rest[16 : 16+incl]
		rest = rest[16+incl:]
		ns := int64(frac)
		if !nano {
			ns *= 1000
		}
		p, ok := parseFrame(frame, link)
		if !ok {
			continue
		}
		p.at = time.Unix(int64(sec), ns)
		p.captured = len(frame)
		out = append(out, p)
	}
	return out, nil
}

// parseFrame decodes the IP, TCP or UDP headers of one frame.
func parseFrame(f []byte, link uint32) (packet, bool) {
	var p packet
	hdr := 14
	if link == 113 {
		hdr = 16
	}
	if len(f) < hdr {
		return p, false
	}
	etype := binary.BigEndian.Uint16(f[hdr-2:])
	ip := f[hdr:]
	var proto byte
	var src, dst netip.Addr
	var l4 []byte
	switch etype {
	case 0x0800:
		if len(ip) < 20 || ip[0]>>4 != 4 {
			return p, false
		}
		ihl := int(ip[0]&0xf) * 4
		if ihl < 20 || len(ip) < ihl || binary.BigEndian.Uint16(ip[6:])&0x1fff != 0 {
			return p, false // bad header, or a later fragment
		}
		proto = ip[9]
		src, dst = netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
		l4 = ip[ihl:]
	case 0x86dd:
		if len(ip) < 40 || ip[0]>>4 != 6 {
			return p, false
		}
		proto = ip[6] // extension headers: not sent by the dialers
		src, dst = netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
		l4 = ip[40:]
	default:
		return p, false
	}
	switch proto {
	case 6:
		if len(l4) < 14 {
			return p, false
		}
		p.tcp = true
		flags := l4[13]
		p.syn = flags&0x02 != 0 && flags&0x10 == 0
	case 17:
		if len(l4) < 8 {
			return p, false
		}
		p.payload = l4[8:]
	default:
		return p, false
	}
	p.src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(l4))
	p.dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(l4[2:]))
	return p, true
}

// Kinds of flow.
const (
	flowTCP   = "tcp"
	flowQUIC  = "quic"
	flowSTUN  = "stun"
	flowOther = "udp"
)

// flow is one dial attempt seen on the wire.
type flow struct {
	kind     string
	src, dst netip.AddrPort
	id       string // QUIC: the first Destination Connection ID; STUN: USERNAME
	at       time.Time
}

func (f flow) udp() bool { return f.kind != flowTCP }

func (f flow) String() string {
	return fmt.Sprintf("%s %s->%s", f.kind, f.src, f.dst)
}

// flows returns the flows that hosts with addresses in from opened, in
// capture order; attempts are those that are not flowOther.
func flows(pkts []packet, from map[netip.Addr]bool) []flow {
	type tuple struct {
		tcp      bool
		src, dst netip.AddrPort
	}
	seen := map[tuple]bool{}           // 5-tuples with a flow
	ids := map[tuple]map[string]bool{} // per UDP 5-tuple: QUIC client IDs and STUN usernames seen
	var out []flow
	for _, p := range pkts {
		if !from[p.src.Addr()] {
			continue
		}
		k := tuple{tcp: p.tcp, src: p.src, dst: p.dst}
		if p.tcp {
			if p.syn && !seen[k] {
				seen[k] = true
				out = append(out, flow{kind: flowTCP, src: p.src, dst: p.dst, at: p.at})
			}
			continue
		}
		kind, id := flowOther, ""
		if dcid, scid, ok := quicLongIDs(p.payload); ok {
			kind, id = flowQUIC, "quic:"+scid
			if scid == "" {
				id = "quic-dcid:" + dcid
			}
		} else if user, ok := stunUsername(p.payload); ok {
			kind, id = flowSTUN, "stun:"+user
		}
		if ids[k] == nil {
			ids[k] = map[string]bool{}
		}
		if kind == flowOther && seen[k] || id != "" && ids[k][id] {
			continue // a later packet of a known flow
		}
		seen[k] = true
		if id != "" {
			ids[k][id] = true
		}
		out = append(out, flow{kind: kind, src: p.src, dst: p.dst, id: id, at: p.at})
	}
	return out
}

// attempts are the flows that are dial attempts.
func attempts(fs []flow) []flow {
	return slices.DeleteFunc(slices.Clone(fs), func(f flow) bool { return f.kind == flowOther })
}

// quicLongIDs returns the Destination and Source Connection IDs of a
// QUIC long-header packet (not a Version Negotiation).
func quicLongIDs(b []byte) (dcid, scid string, ok bool) {
	if len(b) < 7 || b[0]&0x80 == 0 || binary.BigEndian.Uint32(b[1:]) == 0 {
		return "", "", false
	}
	dl := int(b[5])
	if dl > 20 || len(b) < 6+dl+1 {
		return "", "", false
	}
	sl := int(b[6+dl])
	if sl > 20 || len(b) < 7+dl+sl {
		return "", "", false
	}
	return string(b[6 : 6+dl]), string(b[7+dl : 7+dl+sl]), true
}

// stunUsername returns the USERNAME attribute of a STUN request ("" if
// it has none, or it was cut off in the capture). Responses are not
// attempts: the dialer answers the listener's checks.
func stunUsername(b []byte) (string, bool) {
	if len(b) < 20 || b[0]&0xc0 != 0 || binary.BigEndian.Uint32(b[4:]) != 0x2112a442 {
		return "", false
	}
	if binary.BigEndian.Uint16(b)&0x0110 != 0 {
		return "", false // an indication or a response
	}
	for a := b[20:]; len(a) >= 4; {
		typ, n := binary.BigEndian.Uint16(a), int(binary.BigEndian.Uint16(a[2:]))
		if len(a) < 4+n {
			break
		}
		if typ == 0x0006 {
			return string(a[4 : 4+n]), true
		}
		n = (n + 3) &^ 3
		if len(a) < 4+n {
			break
		}
		a = a[4+n:]
	}
	return "", true
}
