package webrtc

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/internal/lp"
	"github.com/tachyon-p2p/tachyon/internal/streamtest"
)

// testOffer returns a real offer of a PeerConnection that never gathers,
// and its ufrag. The PeerConnection is closed at cleanup.
func testOffer(t *testing.T) (sdp, ufrag string) {
	t.Helper()
	tr := newPrivate(t, "offerer", PrivateConfig{})
	c, err := tr.newPeer(network.DirOutbound, tr.cfg.Log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.pc.CreateDataChannel(initChannelLabel, nil); err != nil {
		t.Fatal(err)
	}
	offer, err := c.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := parseRemoteSDP(offer.SDP)
	if err != nil {
		t.Fatal(err)
	}
	return offer.SDP, r.ufrags[0]
}

var fingerprintLine = regexp.MustCompile(`a=fingerprint:sha-256 [0-9A-F:]+`)

// otherFingerprint rewrites every sha-256 fingerprint of sdp to that of
// a certificate nobody uses.
func otherFingerprint(t *testing.T, sdp string) string {
	t.Helper()
	cert, err := GenerateCertificate()
	if err != nil {
		t.Fatal(err)
	}
	fp := cert.Fingerprint()
	out := fingerprintLine.ReplaceAllString(sdp, "a=fingerprint:sha-256 "+hexColons(fp[:]))
	if out == sdp {
		t.Fatal("no fingerprint to rewrite")
	}
	return out
}

func writeSig(s io.Writer, typ signalType, data string) {
	_ = writeSignal(s, signalMessage{typ: typ, data: data})
}

// TestPrivateMalformedInbound: a listener given bad signalling resets the
// stream, at once unless it must wait for a peer that says nothing, and
// leaves no PeerConnection behind (leakcheck sees pion's goroutines).
func TestPrivateMalformedInbound(t *testing.T) {
	const timeout = 3 * time.Second
	for _, tc := range []struct {
		name string
		// play writes what the dialer sends; offer is a real one.
		play func(t *testing.T, s *streamtest.Stream, offer, ufrag string)
		// slow: the listener can only give up at the timeout.
		slow bool
	}{
		{name: "silent peer", slow: true, play: func(*testing.T, *streamtest.Stream, string, string) {}},
		{name: "EOF before the offer", play: func(_ *testing.T, s *streamtest.Stream, _, _ string) { s.CloseWrite() }},
		{name: "not SDP", play: func(_ *testing.T, s *streamtest.Stream, _, _ string) { writeSig(s, sigOffer, "hello") }},
		{name: "SDP without fingerprint", play: func(_ *testing.T, s *streamtest.Stream, offer, _ string) {
			writeSig(s, sigOffer, fingerprintLine.ReplaceAllString(offer, "a=x:y"))
		}},
		{name: "SDP without data channel", play: func(_ *testing.T, s *streamtest.Stream, offer, _ string) {
			writeSig(s, sigOffer, strings.ReplaceAll(offer, "m=application", "m=audio"))
		}},
		{name: "SDP pion refuses", play: func(_ *testing.T, s *streamtest.Stream, offer, _ string) {
			writeSig(s, sigOffer, strings.ReplaceAll(offer, "m=application 9 ", "m=application nine "))
		}},
		{name: "unknown type", play: func(_ *testing.T, s *streamtest.Stream, offer, _ string) { writeSig(s, 7, offer) }},
		{name: "answer first", play: func(_ *testing.T, s *streamtest.Stream, offer, _ string) { writeSig(s, sigAnswer, offer) }},
		{name: "candidate first", play: func(_ *testing.T, s *streamtest.Stream, _, _ string) { writeSig(s, sigCandidate, "null") }},
		{name: "oversized message", play: func(_ *testing.T, s *streamtest.Stream, _, _ string) {
			_ = lp.WriteMsg(s, make([]byte, maxSignalMessage+1))
		}},
		{name: "not protobuf", play: func(_ *testing.T, s *streamtest.Stream, _, _ string) { _ = lp.WriteMsg(s, []byte{0xff, 0xff}) }},
		{name: "data not UTF-8", play: func(_ *testing.T, s *streamtest.Stream, _, _ string) {
			_ = lp.WriteMsg(s, []byte{0x08, 0x00, 0x12, 0x02, 0xc3, 0x28})
		}},
		{name: "offer then silence", slow: true, play: func(_ *testing.T, s *streamtest.Stream, offer, _ string) {
			writeSig(s, sigOffer, offer)
		}},
		{name: "offer then EOF", slow: true, play: func(_ *testing.T, s *streamtest.Stream, offer, _ string) {
			writeSig(s, sigOffer, offer)
			s.CloseWrite()
		}},
		{name: "second offer", play: func(_ *testing.T, s *streamtest.Stream, offer, _ string) {
			writeSig(s, sigOffer, offer)
			writeSig(s, sigOffer, offer)
		}},
		{name: "candidate not JSON", play: func(_ *testing.T, s *streamtest.Stream, offer, _ string) {
			writeSig(s, sigOffer, offer)
			writeSig(s, sigCandidate, "{")
		}},
		{name: "unparsable candidate", play: func(_ *testing.T, s *streamtest.Stream, offer, _ string) {
			writeSig(s, sigOffer, offer)
			writeSig(s, sigCandidate, `{"candidate":"candidate:garbage","sdpMid":"0","sdpMLineIndex":0}`)
		}},
		{name: "candidate of another session", play: func(_ *testing.T, s *streamtest.Stream, offer, _ string) {
			writeSig(s, sigOffer, offer)
			writeSig(s, sigCandidate, `{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"someoneElse"}`)
		}},
		{name: "too many candidates", play: func(_ *testing.T, s *streamtest.Stream, offer, ufrag string) {
			writeSig(s, sigOffer, offer)
			for range maxSignalCandidates + 1 {
				writeSig(s, sigCandidate, "null")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			offer, ufrag := testOffer(t)
			b := newPrivate(t, "b", PrivateConfig{HandshakeTimeout: timeout})
			l, err := b.Listen(ma.StringCast("/webrtc"))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			as, bs := streamtest.Pair(streamtest.Config{Protocol: SignalingProtocol,
				A: streamtest.PeerID(t, "a"), B: streamtest.PeerID(t, "b")})
			done := make(chan struct{})
			start := time.Now()
			go func() {
				defer close(done)
				b.HandleSignaling(bs)
			}()
			tc.play(t, as, offer, ufrag)
			select {
			case <-done:
			case <-time.After(timeout + 5*time.Second):
				t.Fatal("HandleSignaling did not return")
			}
			took := time.Since(start)
			if how := bs.Ended(); how != "reset" {
				t.Fatalf("listener's end: %q, want reset", how)
			}
			if !tc.slow && took > timeout/2 {
				t.Errorf("reset after %s: the listener waited for the timeout", took)
			}
			if tc.slow && took < timeout/2 {
				t.Errorf("reset after %s, before the timeout", took)
			}
			b.mu.Lock()
			inbound, peers := b.inbound, len(b.perPeer)
			b.mu.Unlock()
			if inbound != 0 || peers != 0 {
				t.Fatalf("in flight after the session: %d (%d peers)", inbound, peers)
			}
		})
	}
}

// proxy stands between A's signalling stream and B's handler, passing
// every message through edit (nil: unchanged), which may also add
// messages; toA says the direction. When one side closes its write half
// the proxy calls atEOF with the other side's stream to let it inject
// something, then closes that side too.
type proxy struct {
	b      *PrivateTransport
	edit   func(toA bool, m signalMessage) []signalMessage
	atEOF  func(toA bool, other network.Stream)
	bEnd   *streamtest.Stream // B's end of the inner pair
	ready  chan struct{}
	copies chan struct{}
}

func newProxy(b *PrivateTransport) *proxy {
	return &proxy{b: b, ready: make(chan struct{}), copies: make(chan struct{}, 2)}
}

func (p *proxy) handle(aSide network.Stream) {
	x, y := streamtest.Pair(streamtest.Config{Protocol: SignalingProtocol, A: aSide.Conn().RemotePeer(), B: aSide.Conn().LocalPeer(),
		State: network.ConnState{Transport: "tcp", Limited: true}})
	p.bEnd = y
	close(p.ready)
	handled := make(chan struct{})
	go func() {
		defer close(handled)
		p.b.HandleSignaling(y)
	}()
	// ended[0] closes when A's side ended, ended[1] B's.
	ended := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
	pipe := func(from, to network.Stream, toA bool, mine, other chan struct{}) {
		defer func() { p.copies <- struct{}{} }()
		closeMine := sync.OnceFunc(func() { close(mine) })
		defer closeMine()
		for {
			m, err := readSignal(from)
			if err != nil {
				closeMine()
				if !errors.Is(err, io.EOF) {
					_ = to.Reset()
					return
				}
				// Both sides are connected once both closed: inject
				// only then, so that the session is decided.
				<-other
				if p.atEOF != nil {
					p.atEOF(toA, to)
				}
				_ = to.CloseWrite()
				return
			}
			out := []signalMessage{m}
			if p.edit != nil {
				out = p.edit(toA, m)
			}
			for _, o := range out {
				if writeSignal(to, o) != nil {
					return
				}
			}
		}
	}
	go pipe(aSide, x, false, ended[0], ended[1])
	go pipe(x, aSide, true, ended[1], ended[0])
	<-p.copies
	<-p.copies
	<-handled
}

// TestPrivateMalformedOutbound: a dialer given bad signalling, or a peer
// whose DTLS certificate is not the one its SDP names, fails the dial
// and resets the stream, leaving nothing behind.
func TestPrivateMalformedOutbound(t *testing.T) {
	const timeout = 3 * time.Second
	for _, tc := range []struct {
		name string
		// handler plays B on the stream A opened; nil uses a proxy to
		// the real B with edit.
		handler func(t *testing.T, s network.Stream)
		edit    func(t *testing.T, toA bool, m signalMessage) []signalMessage
		slow    bool
		// mayAccept: the listener may see the connection up before the
		// dialer refuses it (the DTLS client finishes last); it must
		// then see it closed.
		mayAccept bool
	}{
		{name: "never answers", slow: true, handler: func(_ *testing.T, s network.Stream) { io.Copy(io.Discard, s) }},
		{name: "EOF instead of answer", handler: func(_ *testing.T, s network.Stream) {
			readSignal(s)
			s.CloseWrite()
			io.Copy(io.Discard, s)
		}},
		{name: "answer not SDP", handler: func(_ *testing.T, s network.Stream) {
			readSignal(s)
			writeSig(s, sigAnswer, "v=0 hello")
			io.Copy(io.Discard, s)
		}},
		{name: "offer instead of answer", handler: func(_ *testing.T, s network.Stream) {
			m, _ := readSignal(s)
			writeSig(s, sigOffer, m.data)
			io.Copy(io.Discard, s)
		}},
		{name: "unknown type", handler: func(_ *testing.T, s network.Stream) {
			readSignal(s)
			writeSig(s, 3, "")
			io.Copy(io.Discard, s)
		}},
		{name: "oversized answer", handler: func(_ *testing.T, s network.Stream) {
			readSignal(s)
			_ = lp.WriteMsg(s, make([]byte, maxSignalMessage+1))
			io.Copy(io.Discard, s)
		}},
		{name: "answer fingerprint is not the certificate's", mayAccept: true, edit: func(t *testing.T, toA bool, m signalMessage) []signalMessage {
			if toA && m.typ == sigAnswer {
				m.data = otherFingerprint(t, m.data)
			}
			return []signalMessage{m}
		}},
		{name: "bad candidate after the answer", edit: func(t *testing.T, toA bool, m signalMessage) []signalMessage {
			if toA && m.typ == sigAnswer {
				return []signalMessage{m, {typ: sigCandidate, data: "["}}
			}
			return []signalMessage{m}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			s := newPrivateSetup(t, PrivateConfig{HandshakeTimeout: timeout}, PrivateConfig{HandshakeTimeout: timeout})
			if tc.handler != nil {
				s.sig.handler = func(st network.Stream) { tc.handler(t, st) }
			} else {
				p := newProxy(s.b)
				p.edit = func(toA bool, m signalMessage) []signalMessage { return tc.edit(t, toA, m) }
				s.sig.handler = p.handle
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout+5*time.Second)
			defer cancel()
			start := time.Now()
			c, err := s.a.Dial(ctx, privateAddr(t, s.bID), s.bID)
			took := time.Since(start)
			if err == nil {
				c.Close()
				t.Fatal("dial succeeded")
			}
			t.Logf("dial error: %v", err)
			if how := s.sig.last()[0].Ended(); how != "reset" {
				t.Fatalf("dialer's end: %q, want reset", how)
			}
			if !tc.slow && took > timeout/2 {
				t.Errorf("failed after %s: the dialer waited for the timeout", took)
			}
			select {
			case r := <-s.accept:
				if r.c == nil {
					break
				}
				if !tc.mayAccept {
					r.c.Close()
					t.Fatal("the listener accepted a connection")
				}
				waitUntil(t, "the listener's connection to close", r.c.IsClosed)
			default:
			}
		})
	}
}

// TestPrivateOfferFingerprintMismatch: a listener given an offer whose
// fingerprint is not the dialer's certificate refuses the connection.
// The dialer, which checks the listener's certificate against a true
// answer, may see it up first (the DTLS server finishes first), and then
// sees it closed.
func TestPrivateOfferFingerprintMismatch(t *testing.T) {
	leakcheck.Check(t)
	s := newPrivateSetup(t, PrivateConfig{HandshakeTimeout: 5 * time.Second}, PrivateConfig{HandshakeTimeout: 5 * time.Second})
	p := newProxy(s.b)
	p.edit = func(toA bool, m signalMessage) []signalMessage {
		if !toA && m.typ == sigOffer {
			m.data = otherFingerprint(t, m.data)
		}
		return []signalMessage{m}
	}
	s.sig.handler = p.handle
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := s.a.Dial(ctx, privateAddr(t, s.bID), s.bID)
	if err == nil {
		waitUntil(t, "the dialer's connection to close", c.IsClosed)
	}
	<-p.ready
	if how := p.bEnd.WaitEnded(t, 10*time.Second); how != "reset" {
		t.Fatalf("listener's end: %q, want reset", how)
	}
	select {
	case r := <-s.accept:
		if r.c != nil {
			r.c.Close()
			t.Fatal("the listener accepted a connection")
		}
	default:
	}
}

// TestPrivateMessageAfterConnected: a signalling message other than a
// late candidate, once the connection is up, resets the stream of the
// side that receives it; the connection is not affected.
func TestPrivateMessageAfterConnected(t *testing.T) {
	for _, toA := range []bool{true, false} {
		name := map[bool]string{true: "to dialer", false: "to listener"}[toA]
		t.Run(name, func(t *testing.T) {
			leakcheck.Check(t)
			s := newPrivateSetup(t, PrivateConfig{}, PrivateConfig{})
			p := newProxy(s.b)
			// A side closes its write half once it is connected: send
			// it, or B, a stray message then.
			p.atEOF = func(towardA bool, other network.Stream) {
				if towardA == toA {
					writeSig(other, sigCandidate, "null") // a late candidate is fine
					writeSig(other, sigAnswer, "v=0")
				}
			}
			s.sig.handler = p.handle
			c, srv := s.connect(t)
			<-p.ready
			end := s.sig.last()[0] // A's
			if !toA {
				end = p.bEnd
			}
			if how := end.WaitEnded(t, 5*time.Second); how != "reset" {
				t.Fatalf("receiving end: %q, want reset", how)
			}
			echoOnce(t, c, srv)
			echoOnce(t, srv, c)
		})
	}
}

// TestPrivateInboundLimits: sessions over MaxInFlight, or over
// MaxInFlightPerPeer for one peer, are reset at once; Close ends the
// others.
func TestPrivateInboundLimits(t *testing.T) {
	leakcheck.Check(t)
	b := newPrivate(t, "b", PrivateConfig{MaxInFlight: 2, MaxInFlightPerPeer: 1, HandshakeTimeout: time.Minute})
	l, err := b.Listen(ma.StringCast("/webrtc"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	bID := streamtest.PeerID(t, "b")
	open := func(from string) *streamtest.Stream {
		_, bs := streamtest.Pair(streamtest.Config{Protocol: SignalingProtocol, A: streamtest.PeerID(t, from), B: bID})
		return bs
	}
	inFlight := func() int {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.inbound
	}
	done := make(chan struct{}, 2)
	stall := func(from string) *streamtest.Stream {
		bs := open(from)
		go func() {
			b.HandleSignaling(bs)
			done <- struct{}{}
		}()
		return bs
	}
	refused := func(from string) {
		t.Helper()
		bs := open(from)
		b.HandleSignaling(bs) // returns at once
		if how := bs.Ended(); how != "reset" {
			t.Fatalf("stream from %s over the limit: %q, want reset", from, how)
		}
	}
	s1 := stall("p1")
	waitUntil(t, "one session", func() bool { return inFlight() == 1 })
	refused("p1") // per peer
	s2 := stall("p2")
	waitUntil(t, "two sessions", func() bool { return inFlight() == 2 })
	refused("p3") // in all
	if s1.Ended() != "" || s2.Ended() != "" {
		t.Fatal("a session in progress was ended by a refusal")
	}
	b.Close()
	for range 2 {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not end the sessions in progress")
		}
	}
	if s1.Ended() != "reset" || s2.Ended() != "reset" {
		t.Fatalf("after Close: %q %q, want reset", s1.Ended(), s2.Ended())
	}
	if inFlight() != 0 {
		t.Fatalf("%d in flight after Close", inFlight())
	}
	refused("p4") // closed
}

func TestPrivateNotListening(t *testing.T) {
	leakcheck.Check(t)
	b := newPrivate(t, "b", PrivateConfig{})
	_, bs := streamtest.Pair(streamtest.Config{Protocol: SignalingProtocol, A: streamtest.PeerID(t, "a"), B: streamtest.PeerID(t, "b")})
	b.HandleSignaling(bs)
	if how := bs.Ended(); how != "reset" {
		t.Fatalf("without a listener: %q, want reset", how)
	}
	l, err := b.Listen(ma.StringCast("/webrtc"))
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if _, err := l.Accept(); !errors.Is(err, ErrListenerClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	_, bs = streamtest.Pair(streamtest.Config{Protocol: SignalingProtocol, A: streamtest.PeerID(t, "a"), B: streamtest.PeerID(t, "b")})
	b.HandleSignaling(bs)
	if how := bs.Ended(); how != "reset" {
		t.Fatalf("after the listener closed: %q, want reset", how)
	}
}

// wrongPeerSignaller returns streams to another peer than asked.
type wrongPeerSignaller struct{ other peer.ID }

func (w wrongPeerSignaller) Signal(_ context.Context, _ ma.Multiaddr, _ peer.ID) (network.Stream, error) {
	a, _ := streamtest.Pair(streamtest.Config{Protocol: SignalingProtocol, A: "x", B: w.other})
	return a, nil
}

// blockingSignaller blocks until the dial's context ends.
type blockingSignaller struct{ entered chan struct{} }

func (b blockingSignaller) Signal(ctx context.Context, _ ma.Multiaddr, _ peer.ID) (network.Stream, error) {
	b.entered <- struct{}{}
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestPrivateDialRefusals(t *testing.T) {
	leakcheck.Check(t)
	bID := streamtest.PeerID(t, "b")
	ctx := context.Background()
	a := newPrivate(t, "a", PrivateConfig{MaxInFlight: 1})
	if _, err := a.Dial(ctx, privateAddr(t, bID), bID); !errors.Is(err, ErrNoSignaller) {
		t.Fatalf("without a Signaller: %v", err)
	}
	if _, err := a.Dial(ctx, privateAddr(t, bID), streamtest.PeerID(t, "c")); err == nil {
		t.Fatal("dialed a peer the address does not name")
	}
	a.SetSignaller(wrongPeerSignaller{other: streamtest.PeerID(t, "c")})
	if _, err := a.Dial(ctx, privateAddr(t, bID), bID); err == nil || !strings.Contains(err.Error(), "not "+bID.String()) {
		t.Fatalf("signalling stream to the wrong peer: %v", err)
	}
	// MaxInFlight dials: the next one fails at once.
	sig := blockingSignaller{entered: make(chan struct{}, 1)}
	a.SetSignaller(sig)
	first, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := a.Dial(first, privateAddr(t, bID), bID)
		errc <- err
	}()
	<-sig.entered
	if _, err := a.Dial(ctx, privateAddr(t, bID), bID); !errors.Is(err, errSessionLimit) {
		t.Fatalf("dial over MaxInFlight: %v", err)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("first dial: %v", err)
	}
	a.Close()
	if _, err := a.Dial(ctx, privateAddr(t, bID), bID); !errors.Is(err, ErrTransportClosed) {
		t.Fatalf("dial after Close: %v", err)
	}
}

// TestPrivateResources: both sides open a connection scope once the
// peer is known, streams are accounted in it and it closes with the
// connection; a refused connection fails the dial.
func TestPrivateResources(t *testing.T) {
	leakcheck.Check(t)
	t.Run("admitted", func(t *testing.T) {
		mA, mB := newTestManager(), newTestManager()
		s := newPrivateSetup(t, PrivateConfig{Resources: mA}, PrivateConfig{Resources: mB})
		c, srv := s.connect(t)
		echoOnce(t, c, srv)
		for _, m := range []*testManager{mA, mB} {
			scopes := m.allScopes()
			if len(scopes) != 1 {
				t.Fatalf("%d scopes", len(scopes))
			}
			scopes[0].check(t)
		}
		if mA.allScopes()[0].dir != network.DirOutbound || mB.allScopes()[0].dir != network.DirInbound {
			t.Fatal("scope directions")
		}
		c.Close()
		srv.Close()
		for _, m := range []*testManager{mA, mB} {
			if _, streams, closes := m.allScopes()[0].snapshot(); closes != 1 || streams != 0 {
				t.Fatalf("after close: %d streams, %d closes", streams, closes)
			}
		}
	})
	t.Run("refused", func(t *testing.T) {
		m := newTestManager()
		m.refuseConns = true
		s := newPrivateSetup(t, PrivateConfig{Resources: m}, PrivateConfig{})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := s.a.Dial(ctx, privateAddr(t, s.bID), s.bID); !errors.Is(err, errRefused) {
			t.Fatalf("dial with the connection refused: %v", err)
		}
	})
}

// The offer a pion dialer sends carries no candidate (they are trickled)
// and an application section; js's do too.
func TestPrivateOfferShape(t *testing.T) {
	offer, _ := testOffer(t)
	if strings.Contains(offer, "a=candidate") {
		t.Error("offer carries candidates")
	}
	if !strings.Contains(offer, "m=application") || !strings.Contains(offer, "a=setup:actpass") {
		t.Errorf("offer:\n%s", offer)
	}
}

// TestPrivateWireShape: what each side sends is what js expects: the
// dialer's offer first, the listener's answer first, then only
// candidates, each the JSON of an RTCIceCandidateInit a browser accepts
// (a "candidate:" line with sdpMid and sdpMLineIndex).
func TestPrivateWireShape(t *testing.T) {
	leakcheck.Check(t)
	s := newPrivateSetup(t, PrivateConfig{}, PrivateConfig{})
	p := newProxy(s.b)
	var mu sync.Mutex
	sent := map[bool][]signalMessage{}
	p.edit = func(toA bool, m signalMessage) []signalMessage {
		mu.Lock()
		sent[toA] = append(sent[toA], m)
		mu.Unlock()
		return []signalMessage{m}
	}
	s.sig.handler = p.handle
	c, srv := s.connect(t)
	echoOnce(t, c, srv)
	s.sig.wg.Wait() // the proxy has seen both sides end
	mu.Lock()
	defer mu.Unlock()
	for _, toA := range []bool{false, true} {
		msgs := sent[toA]
		first := map[bool]signalType{false: sigOffer, true: sigAnswer}[toA]
		if len(msgs) < 2 || msgs[0].typ != first {
			t.Fatalf("toward A %v: %d messages, first %v", toA, len(msgs), msgs)
		}
		for _, m := range msgs[1:] {
			if m.typ != sigCandidate {
				t.Fatalf("toward A %v: %s after the SDP", toA, m.typ)
			}
			var init struct {
				Candidate     string  `json:"candidate"`
				SDPMid        *string `json:"sdpMid"`
				SDPMLineIndex *int    `json:"sdpMLineIndex"`
			}
			if err := json.Unmarshal([]byte(m.data), &init); err != nil {
				t.Fatalf("candidate %q: %v", m.data, err)
			}
			if !strings.HasPrefix(init.Candidate, "candidate:") || init.SDPMid == nil || *init.SDPMid == "" || init.SDPMLineIndex == nil {
				t.Fatalf("candidate %s", m.data)
			}
		}
	}
}
