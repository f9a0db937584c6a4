package webrtc

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/tachyon-p2p/tachyon/internal/lp"
)

// A candidate as js sends it: JSON.stringify(RTCIceCandidate.toJSON()).
const jsCandidate = `{"candidate":"candidate:3 1 udp 2122260223 192.168.1.10 54321 typ host generation 0 ufrag abcd network-id 1","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}`

func TestSignalCodec(t *testing.T) {
	for _, tc := range []struct {
		name string
		hex  string // body, without the length prefix
		want signalMessage
		err  bool
	}{
		{"offer with type", "08001203763d30", signalMessage{sigOffer, "v=0"}, false},
		{"offer, type left off (proto3 zero)", "1203763d30", signalMessage{sigOffer, "v=0"}, false},
		{"answer", "08011203763d30", signalMessage{sigAnswer, "v=0"}, false},
		{"candidate null", "080212046e756c6c", signalMessage{sigCandidate, "null"}, false},
		{"empty", "", signalMessage{sigOffer, ""}, false},
		{"unknown type kept", "0807", signalMessage{7, ""}, false},
		{"unknown field skipped", "0801180512017a", signalMessage{sigAnswer, "z"}, false},
		{"type as bytes", "0a0100", signalMessage{}, true},
		{"data as varint", "1001", signalMessage{}, true},
		{"data not UTF-8", "1202c328", signalMessage{}, true},
		{"truncated", "1205763d", signalMessage{}, true},
	} {
		b, _ := hex.DecodeString(tc.hex)
		got, err := unmarshalSignal(b)
		if (err != nil) != tc.err {
			t.Errorf("%s: err %v", tc.name, err)
			continue
		}
		if err != nil {
			if !errors.Is(err, errBadSignal) {
				t.Errorf("%s: %v does not wrap errBadSignal", tc.name, err)
			}
			continue
		}
		if got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
	// Encoding always carries the type, SDP_OFFER's 0 included, as js
	// writes it, and round-trips.
	if got := hex.EncodeToString(marshalSignal(signalMessage{sigOffer, "v=0"})); got != "08001203763d30" {
		t.Errorf("offer encodes as %s", got)
	}
	var buf bytes.Buffer
	for _, m := range []signalMessage{{sigOffer, "v=0\r\n"}, {sigAnswer, ""}, {sigCandidate, jsCandidate}} {
		if err := writeSignal(&buf, m); err != nil {
			t.Fatal(err)
		}
		got, err := readSignal(&buf)
		if err != nil || got != m {
			t.Fatalf("round trip of %+v: %+v, %v", m, got, err)
		}
	}
	// Over the size limit: refused before the body is read.
	buf.Reset()
	_ = lp.WriteMsg(&buf, make([]byte, maxSignalMessage+1))
	if _, err := readSignal(&buf); !errors.Is(err, lp.ErrTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
}

func TestParseCandidate(t *testing.T) {
	remote := remoteSDP{ufrags: []string{"abcd"}}
	for _, tc := range []struct {
		name, data string
		end, err   bool
	}{
		{"js candidate", jsCandidate, false, false},
		{"node-datachannel candidate (SDP attribute line)", `{"candidate":"a=candidate:1 1 UDP 2114977791 198.18.0.1 50747 typ host","sdpMid":"0"}`, false, false},
		{"pion candidate (no ufrag)", `{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":null}`, false, false},
		{"null", "null", true, false},
		{"empty string", `""`, true, false},
		{"empty candidate", `{"candidate":"","sdpMid":"0"}`, true, false},
		{"other ufrag", `{"candidate":"candidate:1 1 udp 1 1.2.3.4 5 typ host","usernameFragment":"wxyz"}`, false, true},
		{"not JSON", "{", false, true},
		{"JSON of another shape", `[1,2]`, false, true},
	} {
		c, end, err := parseCandidate(tc.data, remote)
		if end != tc.end || (err != nil) != tc.err {
			t.Errorf("%s: end %v, err %v", tc.name, end, err)
		}
		if err == nil && !end && !strings.HasPrefix(c.Candidate, "candidate:") {
			t.Errorf("%s: candidate %q, want it to start with candidate:", tc.name, c.Candidate)
		}
	}
}

func TestParseRemoteSDP(t *testing.T) {
	fp := "AB:" + string(bytes.Repeat([]byte("01:"), 30)) + "FF"
	good := "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=fingerprint:sha-256 " + fp + "\r\n" +
		"m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:x\r\n"
	r, err := parseRemoteSDP(good)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.fingerprint) != 32 || r.fingerprint[0] != 0xab || r.fingerprint[31] != 0xff || !r.hasUfrag("abcd") || r.hasUfrag("x") {
		t.Fatalf("parsed %+v", r)
	}
	for _, tc := range []struct{ name, sdp string }{
		{"not SDP", "hello"},
		{"no fingerprint", "v=0\r\nm=application 9 x\r\na=ice-ufrag:a\r\n"},
		{"sha-1 only", "v=0\r\na=fingerprint:sha-1 AB:CD\r\nm=application 9 x\r\na=ice-ufrag:a\r\n"},
		{"short fingerprint", "v=0\r\na=fingerprint:sha-256 AB:CD\r\nm=application 9 x\r\na=ice-ufrag:a\r\n"},
		{"bad hex", "v=0\r\na=fingerprint:sha-256 " + "ZZ" + fp[2:] + "\r\nm=application 9 x\r\na=ice-ufrag:a\r\n"},
		{"two fingerprints", good + "a=fingerprint:sha-256 CD" + fp[2:] + "\r\n"},
		{"no ufrag", "v=0\r\na=fingerprint:sha-256 " + fp + "\r\nm=application 9 x\r\n"},
		{"no application", "v=0\r\na=fingerprint:sha-256 " + fp + "\r\nm=audio 9 x\r\na=ice-ufrag:a\r\n"},
	} {
		if _, err := parseRemoteSDP(tc.sdp); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

// FuzzSignalMessage: the signalling decoder never panics, and what it
// accepts re-encodes to a message that decodes the same.
func FuzzSignalMessage(f *testing.F) {
	for _, m := range []signalMessage{{sigOffer, "v=0\r\n"}, {sigAnswer, "v=0"}, {sigCandidate, jsCandidate}, {sigCandidate, "null"}} {
		f.Add(marshalSignal(m))
	}
	f.Add([]byte{0x12, 0x03, 'v', '=', '0'})
	f.Add([]byte{0x08, 0x07})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := unmarshalSignal(b)
		if err != nil {
			return
		}
		again, err := unmarshalSignal(marshalSignal(m))
		if err != nil || again != m {
			t.Fatalf("re-encoding %+v gave %+v, %v", m, again, err)
		}
	})
}

// FuzzParseRemoteSDP: the SDP and candidate checks never panic, and an
// accepted SDP has a 32-byte fingerprint and a ufrag.
func FuzzParseRemoteSDP(f *testing.F) {
	fp := "AB:" + string(bytes.Repeat([]byte("01:"), 30)) + "FF"
	f.Add("v=0\r\na=fingerprint:sha-256 "+fp+"\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=ice-ufrag:abcd\r\n", jsCandidate)
	f.Add("v=0\n", "null")
	f.Fuzz(func(t *testing.T, sdp, cand string) {
		r, err := parseRemoteSDP(sdp)
		if err != nil {
			return
		}
		if len(r.fingerprint) != 32 || len(r.ufrags) == 0 {
			t.Fatalf("accepted %+v", r)
		}
		_, _, _ = parseCandidate(cand, r)
	})
}
