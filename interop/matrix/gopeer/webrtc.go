package main

import (
	"github.com/libp2p/go-libp2p"
	libp2pwebrtc "github.com/libp2p/go-libp2p/p2p/transport/webrtc"
)

// WebRTC-direct exists from go-libp2p v0.33; the runner leaves this file
// out of the modules of older versions.
func init() {
	transports["webrtc-direct"] = transport{libp2p.Transport(libp2pwebrtc.New), "/ip4/%s/udp/0/webrtc-direct", true}
}
