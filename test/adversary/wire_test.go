package adversary

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/mss"
	"github.com/tachyon-p2p/tachyon/security/noise"
	"github.com/tachyon-p2p/tachyon/testbed"
)

// src is one address an attacker sends from: a testbed host and one of its
// IPs (the host's own or one added to its interface).
type src struct {
	h  *testbed.Host
	ip netip.Addr
}

// dialTCP connects from s to dst; the socket lives in s's namespace.
func (s src) dialTCP(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	var c net.Conn
	err := s.h.Run(func() (err error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: s.ip.AsSlice()}, Timeout: 5 * time.Second}
		c, err = d.DialContext(ctx, "tcp", dst.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dialing %s from %s: %w", dst, s.ip, err)
	}
	return c, nil
}

// listenUDP opens a UDP socket on s (any port).
func (s src) listenUDP() (*net.UDPConn, error) {
	var c *net.UDPConn
	err := s.h.Run(func() (err error) {
		c, err = net.ListenUDP("udp", &net.UDPAddr{IP: s.ip.AsSlice()})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("opening a UDP socket on %s: %w", s.ip, err)
	}
	return c, nil
}

// Raw byte builders, written from the specs so that malformed variants are
// one edit away.

func uvarint(n uint64) []byte { return binary.AppendUvarint(nil, n) }

// mssToken is one multistream-select message: varint length, text, '\n'.
func mssToken(s string) []byte { return append(uvarint(uint64(len(s)+1)), s+"\n"...) }

// mssPropose is the dialer's header and proposal in one write.
func mssPropose(p string) []byte { return append(mssToken(mss.ProtocolID), mssToken(p)...) }

// Yamux frame types and flags (yamux spec, "Framing").
const (
	yData, yWindow, yPing, yGoAway = 0, 1, 2, 3
	fSYN, fACK, fFIN, fRST         = 1, 2, 4, 8
	yamuxWindow                    = 256 << 10
)

// yframe is a yamux header (version 0) followed by body; length is the
// body's length for data frames, else the value given.
func yframe(typ byte, flags uint16, id, length uint32, body []byte) []byte {
	b := make([]byte, 12, 12+len(body))
	b[1] = typ
	binary.BigEndian.PutUint16(b[2:], flags)
	binary.BigEndian.PutUint32(b[4:], id)
	binary.BigEndian.PutUint32(b[8:], length)
	return append(b, body...)
}

func ydata(flags uint16, id uint32, body []byte) []byte {
	return yframe(yData, flags, id, uint32(len(body)), body)
}

// newKey is a fresh Ed25519 identity: a new peer ID.
func newKey() crypto.PrivKey {
	k, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return k
}

// secure runs multistream-select and the Noise handshake as the dialer on
// c, then selects yamux: what a peer does before its first stream. The
// returned conn carries raw yamux frames.
func secure(ctx context.Context, c net.Conn, nt *noise.Transport, remote peer.ID) (net.Conn, error) {
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Now().Add(10 * time.Second))
	}
	defer c.SetDeadline(time.Time{})
	if err := mss.SelectProto(c, noise.ID); err != nil {
		return nil, fmt.Errorf("selecting noise with %s: %w", remote, err)
	}
	sc, err := nt.SecureOutbound(ctx, c, remote)
	if err != nil {
		return nil, fmt.Errorf("noise handshake with %s: %w", remote, err)
	}
	if err := mss.SelectProto(sc, "/yamux/1.0.0"); err != nil {
		sc.Close()
		return nil, fmt.Errorf("selecting yamux with %s: %w", remote, err)
	}
	return sc, nil
}

// noiseFor is a Noise transport for k (the victim sees k's peer ID).
func noiseFor(k crypto.PrivKey) *noise.Transport {
	nt, err := noise.New(k, nil)
	if err != nil {
		panic(err) // only a nil key fails
	}
	return nt
}

// drain reads c until it fails, so that the victim's writes (identify,
// pongs) never block on us; it closes c when done.
func drain(c net.Conn) {
	io.Copy(io.Discard, c)
	c.Close()
}

// yamuxReader parses the frames the victim sends and calls fn for each
// header with its data-frame body (nil for other frames). It returns when c
// fails or fn returns an error.
func yamuxReader(c net.Conn, fn func(typ byte, flags uint16, id, length uint32, body []byte) error) error {
	hdr := make([]byte, 12)
	var body []byte
	for {
		if _, err := io.ReadFull(c, hdr); err != nil {
			return err
		}
		typ, flags := hdr[1], binary.BigEndian.Uint16(hdr[2:])
		id, length := binary.BigEndian.Uint32(hdr[4:]), binary.BigEndian.Uint32(hdr[8:])
		body = body[:0]
		if typ == yData {
			if length > 16<<20 {
				return fmt.Errorf("victim sent a %d-byte data frame", length)
			}
			body = append(body, make([]byte, length)...)
			if _, err := io.ReadFull(c, body); err != nil {
				return err
			}
		}
		if err := fn(typ, flags, id, length, body); err != nil {
			return err
		}
	}
}
