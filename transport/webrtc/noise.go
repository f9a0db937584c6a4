package webrtc

import (
	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/peer"
)

// noisePrologue is "libp2p-webrtc-noise:" ‖ mh(dialer fingerprint) ‖
// mh(listener fingerprint) (webrtc-direct.md, "Connection Security"). Both
// sides mix it into the handshake, so a man in the middle of DTLS, who must
// present other fingerprints, fails the Noise handshake.
func noisePrologue(dialerFP, listenerFP []byte) []byte {
	p := []byte("libp2p-webrtc-noise:")
	p = append(p, fingerprintMultihash(dialerFP)...)
	return append(p, fingerprintMultihash(listenerFP)...)
}

func peerIDFromKey(k crypto.PubKey) (peer.ID, error) { return peer.IDFromPublicKey(k) }
