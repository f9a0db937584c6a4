package webrtc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

func TestPrologueVector(t *testing.T) {
	f, err := os.Open("testdata/prologue.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v := map[string][]byte{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, val, ok := strings.Cut(sc.Text(), " = ")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		b, err := hex.DecodeString(val)
		if err != nil {
			t.Fatal(err)
		}
		v[k] = b
	}
	got := noisePrologue(v["client_fingerprint"], v["server_fingerprint"])
	if len(v["prologue"]) == 0 || !bytes.Equal(got, v["prologue"]) {
		t.Fatalf("prologue\n got %x\nwant %x", got, v["prologue"])
	}
}

func TestMessageRoundTrip(t *testing.T) {
	if b := appendMessage(nil, flagFIN, nil); !bytes.Equal(b, []byte{2, 8, 0}) {
		t.Fatalf("FIN = %x, want 020800", b)
	}
	full := appendMessage(nil, noFlag, make([]byte, maxPayload))
	if len(full) != maxMessageSize {
		t.Fatalf("full message is %d bytes", len(full))
	}
	m, n, err := parseFrame(full)
	if err != nil || n != len(full) || len(m.payload) != maxPayload || m.flag != noFlag {
		t.Fatalf("parse full: %v %d %d", err, n, len(m.payload))
	}
	if _, _, err := parseFrame(append([]byte{0x81, 0x80, 0x01}, make([]byte, 16385)...)); !errors.Is(err, errOversized) {
		t.Fatalf("oversized: %v", err)
	}
	if _, _, err := parseFrame(full[:100]); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("partial: %v", err)
	}
	if _, _, err := parseFrame([]byte{2, 8, 9}); err == nil {
		t.Fatal("unknown flag accepted")
	}
}

func FuzzParseFrame(f *testing.F) {
	f.Add(appendMessage(nil, flagFIN, nil))
	f.Add(appendMessage(nil, noFlag, []byte("hello")))
	f.Add(appendMessage(nil, flagReset, []byte{1}))
	f.Add([]byte{0xff, 0xff, 0x03})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, n, err := parseFrame(b)
		if err != nil {
			return
		}
		if n > len(b) || n > maxMessageSize || len(m.payload) > maxMessageSize {
			t.Fatalf("bad result n=%d payload=%d", n, len(m.payload))
		}
		// Re-encoding what we understood parses back to the same thing.
		re := appendMessage(nil, m.flag, m.payload)
		m2, _, err := parseFrame(re)
		if err != nil || m2.flag != m.flag || !bytes.Equal(m2.payload, m.payload) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func TestParseSTUNUsername(t *testing.T) {
	pwd := strings.Repeat("p", 22)
	for _, tc := range []struct {
		in      string
		ok      bool
		pwdWant string
	}{
		{"libp2p+webrtc+v1/abcd:libp2p+webrtc+v1/abcd", true, "libp2p+webrtc+v1/abcd"},
		{"libp2p+webrtc+v2/" + pwd + ":clientufrag", true, pwd},
		{"libp2p+webrtc+v2/short:clientufrag", false, ""},
		{"libp2p+webrtc+v3/abcd:abcd", false, ""},
		{"abcd:abcd", false, ""},
		{"libp2p+webrtc+v1/abcd", false, ""},
		{"libp2p+webrtc+v1/ab\r\nx:abcd", false, ""},
		{"libp2p+webrtc+v1/abcd:ab", false, ""},
	} {
		c, err := parseSTUNUsername(tc.in)
		if (err == nil) != tc.ok || (tc.ok && c.clientPwd != tc.pwdWant) {
			t.Errorf("%q: %+v %v", tc.in, c, err)
		}
	}
}

func FuzzParseSTUNUsername(f *testing.F) {
	f.Add("libp2p+webrtc+v1/abcd:libp2p+webrtc+v1/abcd")
	f.Add("libp2p+webrtc+v2/" + strings.Repeat("p", 22) + ":x1y2")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseSTUNUsername(s)
		if err != nil {
			return
		}
		// Whatever is accepted is safe to put into SDP.
		for _, v := range []string{c.serverUfrag, c.clientUfrag, c.clientPwd} {
			if !isICEString(v, 4) {
				t.Fatalf("accepted %q", v)
			}
		}
		if !strings.Contains(clientOffer(nil4(), c), "a=ice-ufrag:"+c.clientUfrag+"\r\n") {
			t.Fatal("offer lacks the ufrag")
		}
	})
}

func TestCertificatePersistence(t *testing.T) {
	leakcheck.Check(t)
	cert, err := GenerateCertificate()
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := cert.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseCertificatePEM(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.CertHash(), cert.CertHash()) {
		t.Fatal("certhash changed across marshal/unmarshal")
	}
	// A "restarted" listener with the loaded certificate advertises the same
	// certhash, and a dialer holding the old address connects.
	a, _ := newTransport(t)
	b1, bID := newTransport(t)
	b1.cert = cert
	l1 := listen(t, b1, "/ip4/127.0.0.1/udp/0/webrtc-direct")
	old := l1.Multiaddrs()[0]
	port, _ := old.ValueForProtocol(ma.P_UDP)
	l1.Close()
	b2, err := New(b1.key, again, nil)
	if err != nil {
		t.Fatal(err)
	}
	l2 := listen(t, b2, "/ip4/127.0.0.1/udp/"+port+"/webrtc-direct")
	if !l2.Multiaddrs()[0].Equal(old) {
		t.Fatalf("address changed: %s vs %s", l2.Multiaddrs()[0], old)
	}
	c, _ := connect(t, a, l2, bID)
	c.Close()

	// Bad PEM input.
	if _, err := ParseCertificatePEM([]byte("junk")); err == nil {
		t.Fatal("junk accepted")
	}
	other, _ := GenerateCertificate()
	op, _ := other.MarshalPEM()
	mixed := append(pemBytes[:bytes.Index(pemBytes, []byte("-----BEGIN PRIVATE KEY"))], op[bytes.Index(op, []byte("-----BEGIN PRIVATE KEY")):]...)
	if _, err := ParseCertificatePEM(mixed); err == nil {
		t.Fatal("mismatched key accepted")
	}
}

func TestWrongPeerID(t *testing.T) {
	leakcheck.Check(t)
	a, _ := newTransport(t)
	b, _ := newTransport(t)
	_, other := newTransport(t)
	l := listen(t, b, "/ip4/127.0.0.1/udp/0/webrtc-direct")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := a.Dial(ctx, l.Multiaddrs()[0], other)
	if err == nil {
		c.Close()
		t.Fatal("dial succeeded with the wrong peer ID")
	}
	if !strings.Contains(err.Error(), "peer ID mismatch") {
		t.Fatalf("unexpected error: %v", err)
	}
}

func TestMismatchedCerthash(t *testing.T) {
	leakcheck.Check(t)
	a, _ := newTransport(t)
	b, bID := newTransport(t)
	l := listen(t, b, "/ip4/127.0.0.1/udp/0/webrtc-direct")
	other, _ := GenerateCertificate()
	ch, _ := certhashComponent(other.CertHash())
	base := l.Multiaddrs()[0].Decapsulate(ma.StringCast("/certhash/" + strings.Split(l.Multiaddrs()[0].String(), "/certhash/")[1]))
	bad := base.Encapsulate(ch)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	c, err := a.Dial(ctx, bad, bID)
	if err == nil {
		c.Close()
		t.Fatal("dial succeeded with the wrong certhash")
	}
	t.Logf("failed after %v: %v", time.Since(start), err)
}

func TestBadAddresses(t *testing.T) {
	leakcheck.Check(t)
	a, bID := newTransport(t)
	for _, s := range []string{
		"/ip4/127.0.0.1/udp/1234/webrtc-direct",
		"/ip4/127.0.0.1/tcp/1234/webrtc-direct/certhash/uEiDs2N8NEGfmGCKM5lQ3iMdZmL7pszOnK4iJiYt2Vh5PQQ",
		"/ip4/127.0.0.1/udp/1234/quic-v1",
		"/ip4/127.0.0.1/udp/1234/webrtc-direct/certhash/mEiDs2N8NEGfmGCKM5lQ3iMdZmL7pszOnK4iJiYt2Vh5PQQ/p2p/" + bID.String(),
	} {
		addr := ma.StringCast(s)
		if a.CanDial(addr) {
			t.Errorf("CanDial(%s)", s)
		}
		if _, err := a.Dial(context.Background(), addr, bID); err == nil {
			t.Errorf("Dial(%s) succeeded", s)
		}
	}
	for _, s := range []string{"/ip4/127.0.0.1/udp/0", "/ip4/127.0.0.1/udp/0/webrtc-direct/certhash/uEiDs2N8NEGfmGCKM5lQ3iMdZmL7pszOnK4iJiYt2Vh5PQQ", "/ip4/127.0.0.1/tcp/0/webrtc-direct"} {
		if l, err := a.Listen(ma.StringCast(s)); err == nil {
			l.Close()
			t.Errorf("Listen(%s) succeeded", s)
		}
	}
	if !a.CanDial(ma.StringCast("/ip6/::1/udp/1/webrtc-direct/certhash/uEiDs2N8NEGfmGCKM5lQ3iMdZmL7pszOnK4iJiYt2Vh5PQQ")) {
		t.Error("CanDial rejects a good address")
	}
}

func nil4() *net.UDPAddr { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
