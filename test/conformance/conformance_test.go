// Package conformance runs tachyon against a libp2p peer written from the
// specs alone (package peer), in both roles, over every transport and
// security protocol, with the peer strict (each message alone, waiting for
// what the spec says comes next), pipelining everything it may, or
// splitting every message into 1-byte writes (issue 10).
package conformance

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/core/network"
	corepeer "github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/protocol/perf"
	"github.com/tachyon-p2p/tachyon/test/conformance/peer"
)

const (
	tachyonAgent = "tachyon-conformance"
	// pushedID is announced by the peer in an identify push.
	pushedID = "/conformance/pushed/1.0.0"
	// lateID is registered on tachyon after connecting, which makes
	// tachyon push its identify to the peer.
	lateID protocol.ID = "/conformance/late/1.0.0"
	// caseTimeout bounds one case; each step is bounded by it too.
	caseTimeout = 20 * time.Second
	bulkSize    = 1 << 20
)

// transport says how each side listens and how the peer dials.
type transport struct {
	name          string
	tachyonListen string
	// isTachyonAddr picks the address of tachyon's the peer dials.
	isTachyonAddr func(ma.Multiaddr) bool
	peerListen    func(p *peer.Peer) (ma.Multiaddr, error)
	peerDial      func(ctx context.Context, p *peer.Peer, a ma.Multiaddr, id string) (*peer.Conn, error)
	// muxed: the transport has no stream muxer of its own (yamux runs).
	muxed bool
}

func hostPort(a ma.Multiaddr) (string, error) {
	var host, port string
	for _, c := range a {
		switch c.Code() {
		case ma.P_IP4, ma.P_IP6:
			host = c.Value()
		case ma.P_TCP, ma.P_UDP:
			port = c.Value()
		}
	}
	if host == "" || port == "" {
		return "", fmt.Errorf("%s has no IP address and port", a)
	}
	if len(a) > 0 && a[0].Code() == ma.P_IP6 {
		host = "[" + host + "]"
	}
	return host + ":" + port, nil
}

// codes lists the protocol codes of a.
func codes(a ma.Multiaddr) []int {
	var out []int
	for _, c := range a {
		out = append(out, c.Code())
	}
	return out
}

var tcpTransport = transport{
	name:          "tcp",
	tachyonListen: "/ip4/127.0.0.1/tcp/0",
	isTachyonAddr: func(a ma.Multiaddr) bool { return slices.Equal(codes(a), []int{ma.P_IP4, ma.P_TCP}) },
	peerListen:    func(p *peer.Peer) (ma.Multiaddr, error) { return p.ListenTCP("127.0.0.1:0") },
	peerDial: func(ctx context.Context, p *peer.Peer, a ma.Multiaddr, id string) (*peer.Conn, error) {
		hp, err := hostPort(a)
		if err != nil {
			return nil, err
		}
		return p.DialTCP(ctx, hp, id)
	},
	muxed: true,
}

var wsTransport = transport{
	name:          "ws",
	tachyonListen: "/ip4/127.0.0.1/tcp/0/ws",
	isTachyonAddr: func(a ma.Multiaddr) bool {
		return slices.Equal(codes(a), []int{ma.P_IP4, ma.P_TCP, ma.P_WS})
	},
	peerListen: func(p *peer.Peer) (ma.Multiaddr, error) { return p.ListenWS("127.0.0.1:0") },
	peerDial: func(ctx context.Context, p *peer.Peer, a ma.Multiaddr, id string) (*peer.Conn, error) {
		hp, err := hostPort(a)
		if err != nil {
			return nil, err
		}
		return p.DialWS(ctx, hp, id)
	},
	muxed: true,
}

var quicTransport = transport{
	name:          "quic",
	tachyonListen: "/ip4/127.0.0.1/udp/0/quic-v1",
	isTachyonAddr: func(a ma.Multiaddr) bool {
		return slices.Equal(codes(a), []int{ma.P_IP4, ma.P_UDP, ma.P_QUIC_V1})
	},
	peerListen: func(p *peer.Peer) (ma.Multiaddr, error) { return p.ListenQUIC("127.0.0.1:0") },
	peerDial: func(ctx context.Context, p *peer.Peer, a ma.Multiaddr, id string) (*peer.Conn, error) {
		hp, err := hostPort(a)
		if err != nil {
			return nil, err
		}
		return p.DialQUIC(ctx, hp, id)
	},
}

// transports is every transport the cases run on.
var transports = []transport{tcpTransport, wsTransport, quicTransport}

type testCase struct {
	tr         transport
	sec        string
	mode       peer.Mode
	peerDials  bool
	earlyMuxer bool
}

func (tc testCase) name() string {
	role := "tachyon-dials"
	if tc.peerDials {
		role = "peer-dials"
	}
	n := fmt.Sprintf("%s/%s/%s/%s", tc.tr.name, secName(tc.sec), tc.mode, role)
	if tc.earlyMuxer {
		n += "/early-muxer"
	}
	return n
}

func secName(s string) string {
	switch s {
	case peer.SecNoise:
		return "noise"
	case peer.SecTLS:
		return "tls"
	}
	return "quic-tls"
}

func cases() []testCase {
	var out []testCase
	for _, tr := range transports {
		secs := []string{peer.SecNoise, peer.SecTLS}
		if !tr.muxed {
			secs = []string{""} // QUIC secures itself with TLS
		}
		for _, sec := range secs {
			for _, mode := range []peer.Mode{peer.Strict, peer.Pipelined, peer.Split} {
				for _, dials := range []bool{true, false} {
					out = append(out, testCase{tr: tr, sec: sec, mode: mode, peerDials: dials})
				}
			}
		}
	}
	// Early muxer negotiation (Noise extensions, TLS ALPN), once each way.
	out = append(out,
		testCase{tr: tcpTransport, sec: peer.SecNoise, mode: peer.Strict, peerDials: true, earlyMuxer: true},
		testCase{tr: tcpTransport, sec: peer.SecNoise, mode: peer.Pipelined, peerDials: false, earlyMuxer: true},
		testCase{tr: tcpTransport, sec: peer.SecTLS, mode: peer.Pipelined, peerDials: true, earlyMuxer: true},
		testCase{tr: tcpTransport, sec: peer.SecTLS, mode: peer.Strict, peerDials: false, earlyMuxer: true},
	)
	return out
}

func TestConformance(t *testing.T) {
	for _, tc := range cases() {
		t.Run(tc.name(), func(t *testing.T) { runCase(t, tc) })
	}
}

// echoHandler is tachyon's echo: until EOF, then close.
func echoHandler(s network.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(caseTimeout))
	if _, err := io.Copy(s, s); err != nil {
		s.Reset()
	}
}

func runCase(t *testing.T, tc testCase) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
	defer cancel()

	h, err := tachyon.New(tachyon.ListenAddrStrings(tc.tr.tachyonListen), tachyon.UserAgent(tachyonAgent))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	h.SetStreamHandler(protocol.ID(peer.EchoID), echoHandler)
	h.SetStreamHandler(perf.ID, perf.Handle)

	cfg := peer.Config{Mode: tc.mode, Security: tc.sec, EarlyMuxer: tc.earlyMuxer}
	if tc.mode != peer.Pipelined {
		// Strict and Split make tachyon refuse a proposal during the
		// upgrade first (a Pipelined dialer puts its only proposal in
		// front of the handshake).
		cfg.ProposeFirst = "/conformance/nope/1.0.0"
	}
	p, err := peer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		p.Close()
		for _, v := range p.Violations() {
			t.Errorf("tachyon broke a spec: %v", v)
		}
		if t.Failed() {
			for _, e := range p.HandlerErrors() {
				t.Logf("peer handler: %v", e)
			}
		}
	}()
	pid, err := corepeer.Decode(p.ID())
	if err != nil {
		t.Fatal(err)
	}

	// Connect.
	var c *peer.Conn
	if tc.peerDials {
		var addr ma.Multiaddr
		for _, a := range h.Addrs() {
			if tc.tr.isTachyonAddr(a) {
				addr = a
			}
		}
		if addr == nil {
			t.Fatalf("tachyon has no %s address in %v", tc.tr.name, h.Addrs())
		}
		if c, err = tc.tr.peerDial(ctx, p, addr, h.ID().String()); err != nil {
			t.Fatalf("peer dialing tachyon: %v", err)
		}
		// A Pipelined dialer writes first (its handshake may wait on it).
		if err := c.Ping(ctx, 1); err != nil {
			t.Fatalf("peer pinging tachyon: %v", err)
		}
	} else {
		addr, err := tc.tr.peerListen(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Connect(ctx, corepeer.AddrInfo{ID: pid, Addrs: []ma.Multiaddr{addr}}); err != nil {
			t.Fatalf("tachyon dialing the peer: %v", err)
		}
		if c, err = p.Accept(ctx); err != nil {
			t.Fatal(err)
		}
	}
	defer c.Close()
	if tc.earlyMuxer && !c.EarlyMuxer {
		t.Errorf("tachyon did not agree on yamux in the %s handshake", secName(tc.sec))
	}

	step := func(name string, f func() error) {
		t.Helper()
		if t.Failed() {
			return
		}
		if err := f(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}

	step("peer pings tachyon", func() error { return c.Ping(ctx, 3) })
	step("tachyon pings the peer", func() error {
		return h.Ping(ctx, pid, 3, 0, 5*time.Second, nil)
	})
	step("peer identifies tachyon", func() error {
		m, err := c.Identify(ctx)
		if err != nil {
			return err
		}
		if m.AgentVersion != tachyonAgent {
			return fmt.Errorf("agent %q, want %q", m.AgentVersion, tachyonAgent)
		}
		if m.PublicKey == nil {
			return fmt.Errorf("no public key")
		}
		for _, want := range []string{peer.IdentifyID, peer.IdentifyPushID, peer.PingID, peer.PerfID, peer.EchoID} {
			if !slices.Contains(m.Protocols, want) {
				return fmt.Errorf("protocols %v lack %s", m.Protocols, want)
			}
		}
		return nil
	})
	step("tachyon identifies the peer", func() error {
		res, err := h.IdentifyWait(ctx, pid)
		if err != nil {
			return err
		}
		if res.Message.AgentVersion != "conformance-peer/"+tc.mode.String() {
			return fmt.Errorf("tachyon saw agent %q", res.Message.AgentVersion)
		}
		if _, ok := h.Peerstore().SupportsProtocol(pid, protocol.ID(peer.EchoID)); !ok {
			return fmt.Errorf("tachyon's peerstore lacks %s: %v", peer.EchoID, h.Peerstore().Protocols(pid))
		}
		return nil
	})
	step("peer pushes identify to tachyon", func() error {
		p.AddProtocol(pushedID)
		if err := c.Push(ctx); err != nil {
			return err
		}
		for {
			if _, ok := h.Peerstore().SupportsProtocol(pid, pushedID); ok {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("tachyon's peerstore never showed %s: %v", pushedID, h.Peerstore().Protocols(pid))
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
	step("tachyon pushes identify to the peer", func() error {
		h.SetStreamHandler(lateID, echoHandler)
		for {
			select {
			case m := <-c.Pushes():
				if slices.Contains(m.Protocols, string(lateID)) {
					return nil
				}
			case <-ctx.Done():
				return fmt.Errorf("no push announcing %s", lateID)
			}
		}
	})

	data := make([]byte, bulkSize)
	rand.Read(data)
	step("peer echoes 1 MiB through tachyon", func() error { return c.Echo(ctx, data) })
	step("tachyon echoes 1 MiB through the peer", func() error {
		s, err := h.NewStream(ctx, pid, protocol.ID(peer.EchoID))
		if err != nil {
			return err
		}
		return tachyonEcho(ctx, s, data)
	})
	step("perf: peer uploads and downloads 1 MiB", func() error { return c.Perf(ctx, bulkSize, bulkSize) })
	step("peer: na and retry", func() error {
		s, proto, err := c.NewStream(ctx, "/conformance/nope/1.0.0", peer.EchoID)
		if err != nil {
			return err
		}
		if proto != peer.EchoID {
			return fmt.Errorf("negotiated %s", proto)
		}
		return peer.EchoStream(s, []byte("after na"))
	})
	step("tachyon: na and retry", func() error {
		// The peer does not announce EchoUnlistedID, so tachyon has to
		// negotiate; the peer refuses the first proposal.
		s, err := h.NewStream(ctx, pid, "/conformance/nope/1.0.0", protocol.ID(peer.EchoUnlistedID))
		if err != nil {
			return err
		}
		if s.Protocol() != protocol.ID(peer.EchoUnlistedID) {
			return fmt.Errorf("negotiated %s", s.Protocol())
		}
		return tachyonEcho(ctx, s, []byte("after na"))
	})
	step("peer: stream opened and half-closed without data", func() error {
		return c.Echo(ctx, nil)
	})
	step("peer resets a stream", func() error {
		s, _, err := c.NewStream(ctx, peer.EchoID)
		if err != nil {
			return err
		}
		if _, err := s.Write([]byte("reset me")); err != nil {
			return err
		}
		buf := make([]byte, 8)
		if _, err := io.ReadFull(s, buf); err != nil {
			return fmt.Errorf("reading the echo before the reset: %w", err)
		}
		if err := s.Reset(); err != nil {
			return err
		}
		// The connection lives on.
		return c.Echo(ctx, []byte("after reset"))
	})
	step("tachyon resets a stream", func() error {
		s, err := h.NewStream(ctx, pid, protocol.ID(peer.EchoID))
		if err != nil {
			return err
		}
		if _, err := s.Write([]byte("reset me")); err != nil {
			return err
		}
		buf := make([]byte, 8)
		if _, err := io.ReadFull(s, buf); err != nil {
			return fmt.Errorf("reading the echo before the reset: %w", err)
		}
		s.Reset()
		return c.Echo(ctx, []byte("after reset"))
	})
	if y := c.Yamux(); y != nil {
		step("yamux ping", func() error { return y.Ping(ctx) })
	}
	step("close", func() error {
		if tc.peerDials {
			// The peer closes with GoAway; tachyon drops the connection.
			c.Close()
			for len(h.Network().ConnsToPeer(pid)) > 0 {
				select {
				case <-ctx.Done():
					return fmt.Errorf("tachyon kept the connection after the peer closed it")
				case <-time.After(10 * time.Millisecond):
				}
			}
			return nil
		}
		// Tachyon closes: the peer sees the session end, with GoAway.
		if err := h.Network().ClosePeer(pid); err != nil {
			return err
		}
		done := c.Done()
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("the peer's session outlived tachyon closing it")
		}
		if y := c.Yamux(); y != nil {
			if ok, code := y.GoAway(); !ok || code != 0 {
				return fmt.Errorf("tachyon closed without GoAway(normal): got GoAway %v, code %d (yamux/README.md, Session termination)", ok, code)
			}
		}
		return nil
	})
}

// tachyonEcho sends data on a tachyon stream while reading the echo back.
func tachyonEcho(ctx context.Context, s network.Stream, data []byte) error {
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	errc := make(chan error, 1)
	go func() {
		_, err := s.Write(data)
		if err == nil {
			err = s.CloseWrite()
		}
		errc <- err
	}()
	got, rerr := io.ReadAll(s)
	if rerr != nil {
		s.Reset()
	}
	if werr := <-errc; werr != nil {
		return fmt.Errorf("sending: %w", werr)
	}
	if rerr != nil {
		return fmt.Errorf("reading the echo: %w", rerr)
	}
	if !bytes.Equal(got, data) {
		return fmt.Errorf("echo of %d bytes differs from the %d sent", len(got), len(data))
	}
	return s.Close()
}
