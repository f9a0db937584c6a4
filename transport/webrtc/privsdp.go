package webrtc

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	pion "github.com/pion/webrtc/v4"
)

// remoteSDP is what a /webrtc peer's offer or answer must carry, checked
// before pion sees it: ICE credentials (to match trickled candidates
// against), a data channel section, and a SHA-256 DTLS fingerprint, which
// pion then holds the peer's certificate to and which is all that ties the
// DTLS session to the peer authenticated on the signalling connection.
type remoteSDP struct {
	ufrags      []string
	fingerprint []byte // SHA-256
}

// parseRemoteSDP checks an SDP offer or answer from the signalling stream.
// pion parses it fully afterwards; this reads only the lines the transport
// relies on.
func parseRemoteSDP(s string) (remoteSDP, error) {
	var r remoteSDP
	if !strings.HasPrefix(s, "v=0") {
		return r, errors.New("SDP does not start with v=0")
	}
	application := false
	for line := range strings.Lines(s) {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(line, "m=application "):
			application = true
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			r.ufrags = append(r.ufrags, strings.TrimPrefix(line, "a=ice-ufrag:"))
		case strings.HasPrefix(line, "a=fingerprint:"):
			alg, value, ok := strings.Cut(strings.TrimPrefix(line, "a=fingerprint:"), " ")
			if !ok || !strings.EqualFold(alg, "sha-256") {
				continue
			}
			fp, err := parseHexColons(value)
			if err != nil {
				return r, fmt.Errorf("bad sha-256 fingerprint: %w", err)
			}
			if r.fingerprint != nil && string(r.fingerprint) != string(fp) {
				return r, errors.New("SDP has two different sha-256 fingerprints")
			}
			r.fingerprint = fp
		}
	}
	switch {
	case !application:
		return r, errors.New("SDP has no data channel (m=application) section")
	case r.fingerprint == nil:
		return r, errors.New("SDP has no sha-256 fingerprint")
	case len(r.ufrags) == 0:
		return r, errors.New("SDP has no ICE ufrag")
	}
	return r, nil
}

// parseHexColons reads a fingerprint written the SDP way, 32 hex pairs
// joined by ':'.
func parseHexColons(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) != 32*3-1 {
		return nil, fmt.Errorf("%d characters, want %d", len(s), 32*3-1)
	}
	out := make([]byte, 0, 32)
	for i := 0; i < len(s); i += 3 {
		if i > 0 && s[i-1] != ':' {
			return nil, errors.New("pairs not separated by ':'")
		}
		b, err := hex.DecodeString(s[i : i+2])
		if err != nil {
			return nil, err
		}
		out = append(out, b[0])
	}
	return out, nil
}

// hasUfrag reports whether u is one of the SDP's ICE ufrags.
func (r remoteSDP) hasUfrag(u string) bool {
	for _, x := range r.ufrags {
		if x == u {
			return true
		}
	}
	return false
}

// parseCandidate reads an ICE_CANDIDATE message's data, the JSON of
// RTCIceCandidate.toJSON(). end reports js's end-of-candidates forms,
// JSON null and "" (js sends neither today but accepts both). A candidate
// naming another ufrag than the session's belongs to another session.
func parseCandidate(data string, remote remoteSDP) (c pion.ICECandidateInit, end bool, err error) {
	trimmed := strings.TrimSpace(data)
	if trimmed == "null" || trimmed == `""` {
		return c, true, nil
	}
	if err := json.Unmarshal([]byte(data), &c); err != nil {
		return c, false, fmt.Errorf("candidate is not RTCIceCandidateInit JSON: %w", err)
	}
	if c.Candidate == "" {
		return c, true, nil
	}
	// js-libp2p in Node (node-datachannel) sends the SDP attribute line,
	// "a=candidate:...", where browsers send "candidate:...".
	c.Candidate = strings.TrimPrefix(c.Candidate, "a=")
	if c.UsernameFragment != nil && *c.UsernameFragment != "" && !remote.hasUfrag(*c.UsernameFragment) {
		return c, false, fmt.Errorf("candidate for ufrag %q, not this session's", *c.UsernameFragment)
	}
	return c, false, nil
}
