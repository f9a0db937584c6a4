package webtransport

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/netip"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/multiformats/go-multibase"
	mh "github.com/multiformats/go-multihash"

	"github.com/tachyon-p2p/tachyon/transport/quic"
)

// ParseAddr parses /ip4|ip6/<ip>/udp/<port>/quic-v1/webtransport followed by
// zero or more /certhash/<multibase multihash> components and nothing else.
// It returns the UDP address and each certhash as binary multihash bytes
// (the multibase, which differs between implementations, is dropped).
func ParseAddr(addr ma.Multiaddr) (netip.AddrPort, [][]byte, error) {
	ap, rest, err := quic.ParseAddr(addr)
	if err != nil {
		return netip.AddrPort{}, nil, fmt.Errorf("webtransport: %w", err)
	}
	if len(rest) == 0 || rest[0].Code() != ma.P_WEBTRANSPORT {
		return netip.AddrPort{}, nil, fmt.Errorf("webtransport: %q has no /webtransport after /quic-v1", addr)
	}
	var hashes [][]byte
	for _, c := range rest[1:] {
		if c.Code() != ma.P_CERTHASH {
			return netip.AddrPort{}, nil, fmt.Errorf("webtransport: unexpected /%s in %q", c.Protocol().Name, addr)
		}
		// The binary form of a certhash component is the multihash itself.
		raw := c.RawValue()
		if _, err := mh.Decode(raw); err != nil {
			return netip.AddrPort{}, nil, fmt.Errorf("webtransport: bad certhash in %q: %w", addr, err)
		}
		hashes = append(hashes, bytes.Clone(raw))
	}
	return ap, hashes, nil
}

// FormatAddr returns the WebTransport address for ap with one /certhash
// per hash. go-multiaddr stores the binary multihash and prints it in
// base64url ("u…"); parsing accepts every multibase.
func FormatAddr(ap netip.AddrPort, hashes [][]byte) ma.Multiaddr {
	out := append(quic.FormatAddr(ap), *must(ma.NewComponent("webtransport", "")))
	for _, h := range hashes {
		s, err := multibase.Encode(multibase.Base58BTC, h)
		if err != nil {
			panic(err) // Base58BTC is always a valid encoding
		}
		out = append(out, *must(ma.NewComponent("certhash", s)))
	}
	return out
}

func must(c *ma.Component, err error) *ma.Component {
	if err != nil {
		panic(err)
	}
	return c
}

// certHash returns the sha2-256 multihash of a DER certificate.
func certHash(der []byte) []byte {
	sum := sha256.Sum256(der)
	h, _ := mh.Encode(sum[:], mh.SHA2_256)
	return h
}

// errNoCertHash is returned when dialing an address without /certhash.
var errNoCertHash = errors.New("webtransport: refusing to dial without a /certhash")

// matchCertHash checks a server certificate against the dialed hashes.
// Only sha2-256 can be computed; other hash functions never match.
func matchCertHash(der []byte, hashes [][]byte) error {
	got := certHash(der)
	for _, h := range hashes {
		if bytes.Equal(h, got) {
			return nil
		}
	}
	return fmt.Errorf("webtransport: server certificate matches none of the %d dialed certhashes", len(hashes))
}

type quicAddr = netip.AddrPort

func addrPortOf(a net.Addr) netip.AddrPort {
	if u, ok := a.(*net.UDPAddr); ok {
		ap := u.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}
