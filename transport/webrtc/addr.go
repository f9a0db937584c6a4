package webrtc

import (
	"errors"
	"fmt"
	"net"

	ma "github.com/multiformats/go-multiaddr"
	mb "github.com/multiformats/go-multibase"
	mh "github.com/multiformats/go-multihash"
)

// parseDialAddr splits /ip4|ip6/<ip>/udp/<port>/webrtc-direct/certhash/<mh>
// (more certhashes allowed) into the UDP address and the first SHA-256
// fingerprint.
func parseDialAddr(addr ma.Multiaddr) (*net.UDPAddr, []byte, error) {
	ua, rest, err := parseUDPPrefix(addr)
	if err != nil {
		return nil, nil, err
	}
	if len(rest) < 2 || rest[0].Code() != ma.P_WEBRTC_DIRECT {
		return nil, nil, errors.New("want /webrtc-direct/certhash/<hash> after /udp")
	}
	var fp []byte
	for _, c := range rest[1:] {
		if c.Code() != ma.P_CERTHASH {
			return nil, nil, fmt.Errorf("unexpected /%s after /webrtc-direct", c.Protocol().Name)
		}
		d, err := mh.Decode(c.RawValue())
		if err != nil {
			return nil, nil, fmt.Errorf("bad certhash: %w", err)
		}
		if fp == nil && d.Code == mh.SHA2_256 && len(d.Digest) == 32 {
			fp = d.Digest
		}
	}
	if fp == nil {
		return nil, nil, errors.New("no sha2-256 certhash")
	}
	return ua, fp, nil
}

// parseListenAddr reads /ip4|ip6/<ip>/udp/<port>/webrtc-direct, without a
// certhash (the listener's certificate gives it).
func parseListenAddr(addr ma.Multiaddr) (*net.UDPAddr, error) {
	ua, rest, err := parseUDPPrefix(addr)
	if err != nil {
		return nil, err
	}
	if len(rest) != 1 || rest[0].Code() != ma.P_WEBRTC_DIRECT {
		return nil, errors.New("want /ip4|ip6/<ip>/udp/<port>/webrtc-direct")
	}
	return ua, nil
}

// parseUDPPrefix reads /ip4|ip6/<ip>/udp/<port> and returns the rest.
func parseUDPPrefix(addr ma.Multiaddr) (*net.UDPAddr, []ma.Component, error) {
	if len(addr) < 3 {
		return nil, nil, errors.New("too short")
	}
	var ip net.IP
	switch addr[0].Code() {
	case ma.P_IP4, ma.P_IP6:
		ip = net.IP(addr[0].RawValue())
	default:
		return nil, nil, errors.New("want /ip4 or /ip6 first")
	}
	if addr[1].Code() != ma.P_UDP {
		return nil, nil, errors.New("want /udp after the IP")
	}
	raw := addr[1].RawValue()
	port := int(raw[0])<<8 | int(raw[1])
	return &net.UDPAddr{IP: ip, Port: port}, addr[2:], nil
}

// udpMultiaddr is /ip4|ip6/<ip>/udp/<port>/webrtc-direct.
func udpMultiaddr(a *net.UDPAddr) (ma.Multiaddr, error) {
	family := "ip6"
	ip := a.IP
	if ip4 := ip.To4(); ip4 != nil {
		family, ip = "ip4", ip4
	}
	return ma.NewMultiaddr(fmt.Sprintf("/%s/%s/udp/%d/webrtc-direct", family, ip, a.Port))
}

// certhashComponent is /certhash/<base64url multihash>, the encoding go and
// rust emit.
func certhashComponent(h []byte) (ma.Multiaddr, error) {
	s, err := mb.Encode(mb.Base64url, h)
	if err != nil {
		return nil, err
	}
	return ma.NewMultiaddr("/certhash/" + s)
}
