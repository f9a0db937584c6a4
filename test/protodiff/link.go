package protodiff

import (
	"github.com/tachyon-p2p/tachyon/core/record"
	// The packages whose unexported codecs are linked below must be part of
	// the binary.
	_ "github.com/tachyon-p2p/tachyon/security/noise"
	_ "github.com/tachyon-p2p/tachyon/transport/webrtc"

	_ "unsafe" // go:linkname
)

// Some codecs are unexported: they are reached only through a handshake or a
// data channel, where fuzzing their bytes directly is impractical. The test
// module links to them by name instead of adding test hooks to the library.
// The mirror types must match the library's field for field; the round-trip
// tests (TestLinkedCodecs) fail if they drift.

// NoisePayload mirrors security/noise.payload.
type NoisePayload struct {
	IdentityKey []byte
	IdentitySig []byte
	CertHashes  [][]byte
	Muxers      []string
}

//go:linkname NoiseParsePayload github.com/tachyon-p2p/tachyon/security/noise.parsePayload
func NoiseParsePayload(b []byte) (NoisePayload, error)

//go:linkname NoiseAppendPayload github.com/tachyon-p2p/tachyon/security/noise.appendPayload
func NoiseAppendPayload(b []byte, p *NoisePayload) []byte

// WebRTCMsg mirrors transport/webrtc.message; Flag -1 means no flag.
type WebRTCMsg struct {
	Flag    int32
	Payload []byte
}

//go:linkname WebRTCParseMessage github.com/tachyon-p2p/tachyon/transport/webrtc.parseMessage
func WebRTCParseMessage(b []byte) (WebRTCMsg, error)

//go:linkname WebRTCAppendMessage github.com/tachyon-p2p/tachyon/transport/webrtc.appendMessage
func WebRTCAppendMessage(b []byte, flag int32, payload []byte) []byte

// UnmarshalEnvelope is record.unmarshalEnvelope: the decoding that
// ConsumeEnvelope does before it verifies the signature.
//
//go:linkname UnmarshalEnvelope github.com/tachyon-p2p/tachyon/core/record.unmarshalEnvelope
func UnmarshalEnvelope(data []byte) (*record.Envelope, error)
