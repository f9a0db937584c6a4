package interop

// This file tests tachyon to tachyon over /webrtc through a go-libp2p
// v0.51 circuit relay (interop/golibp2p `relay`, go's default relay
// resources: 2 min and 128 KiB per circuit). The go relay cannot do WebRTC
// itself; it only carries the signalling circuit. Both tachyon hosts are
// in-process and gather ICE candidates on 127.0.0.1 only (pion connects
// over loopback when told to, unlike Chromium), so no network namespace is
// needed.

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	tevent "github.com/tachyon-p2p/tachyon/event"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/internal/logs/logtest"
	"github.com/tachyon-p2p/tachyon/swarm"
)

// goRelay is a running go-libp2p relay process.
type goRelay struct {
	cmd    *exec.Cmd
	stderr logtest.Buffer
	addrs  []ma.Multiaddr // as printed, each ending in /p2p/<relay>
}

// startGoRelay runs the go relay on loopback TCP and QUIC until the test
// ends.
func startGoRelay(t *testing.T) *goRelay {
	t.Helper()
	bin := goPeer(t)
	ctx, cancel := context.WithCancel(context.Background())
	r := &goRelay{}
	r.cmd = exec.CommandContext(ctx, bin, "relay", "--no-conn-rate-limit",
		"--listen", "/ip4/127.0.0.1/tcp/0", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1")
	r.cmd.Stderr = &r.stderr
	r.cmd.WaitDelay = 5 * time.Second
	stdout, err := r.cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting the go relay: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		r.cmd.Wait()
	})
	// The relay prints its addresses, then READY; a relay that never does
	// is killed, which ends the scan.
	ready := time.AfterFunc(30*time.Second, cancel)
	defer ready.Stop()
	lines := bufio.NewScanner(stdout)
	for lines.Scan() && lines.Text() != "READY" {
		a, err := ma.NewMultiaddr(lines.Text())
		if err != nil {
			t.Fatalf("go relay printed %q: %v", lines.Text(), err)
		}
		r.addrs = append(r.addrs, a)
	}
	if len(r.addrs) == 0 {
		t.Fatalf("go relay printed no address; stderr:\n%s", r.stderr.String())
	}
	return r
}

// addr returns the relay's address on the transport whose protocol code
// is code (ma.P_TCP, ma.P_QUIC_V1).
func (r *goRelay) addr(t *testing.T, code int) ma.Multiaddr {
	t.Helper()
	for _, a := range r.addrs {
		if _, err := a.ValueForProtocol(code); err == nil {
			return a
		}
	}
	t.Fatalf("go relay has no address with protocol %d: %v", code, r.addrs)
	return nil
}

// startWebRTCHost starts a tachyon host listening on /webrtc through
// relay (reached over tpt) and waits for its /webrtc relay address.
func startWebRTCHost(ctx context.Context, t *testing.T, tpt tachyon.TransportID, relay ma.Multiaddr) (*tachyon.Host, ma.Multiaddr, *logtest.Buffer) {
	t.Helper()
	loopback := netip.MustParseAddr("127.0.0.1")
	log, logs := logtest.New()
	h, err := tachyon.New(
		tachyon.ListenAddrStrings("/webrtc"),
		tachyon.Transports(tpt, tachyon.WebRTC),
		tachyon.StaticRelays(relay),
		tachyon.ForceReachability(network.ReachabilityPrivate),
		tachyon.WebRTCICEFilter(func(a netip.Addr) bool { return a == loopback }),
		tachyon.Logger(log),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	h.SetStreamHandler(echoID, echo)
	for {
		for _, a := range h.FullAddrs() {
			if swarm.IsRelayAddr(a) && a[len(a)-2].Code() == ma.P_WEBRTC {
				return h, a, logs
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no /webrtc address through the go relay: %v (%v)\nlog:\n%s", h.FullAddrs(), ctx.Err(), logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestB2BGoRelay: two tachyon hosts reserve on a go-libp2p relay; one
// dials the other's <go relay>/p2p-circuit/webrtc/p2p/<id>. The signalling
// crosses the go relay's limited circuit, and the test asserts a direct,
// unlimited /webrtc connection on both sides, 3 pings and 1 MiB echoed
// byte for byte over it, and that both sides close the relayed connection
// afterwards (tachyon retires it 3 s after the direct one is up). Each row
// reaches the relay over one of its transports.
func TestB2BGoRelay(t *testing.T) {
	r := startGoRelay(t)
	for _, tc := range []struct {
		name string
		tpt  tachyon.TransportID
		code int
	}{
		{"tcp", tachyon.TCP, ma.P_TCP},
		{"quic-v1", tachyon.QUIC, ma.P_QUIC_V1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			relay := r.addr(t, tc.code)
			a, _, alog := startWebRTCHost(ctx, t, tc.tpt, relay)
			b, bAddr, blog := startWebRTCHost(ctx, t, tc.tpt, relay)
			wantPrefix := relay.String() + "/p2p-circuit/webrtc/p2p/"
			if bAddr.String() != wantPrefix+b.ID().String() {
				t.Fatalf("listener's /webrtc address %s, want %s<%s>", bAddr, wantPrefix, b.ID())
			}
			defer func() {
				if t.Failed() {
					t.Logf("dialer log:\n%s\nlistener log:\n%s\ngo relay stderr:\n%s", alog.String(), blog.String(), r.stderr.String())
				}
			}()

			opened := tevent.Subscribe[tevent.EvtConnOpened](a.EventBus(), 16)
			defer opened.Close()
			start := time.Now()
			if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: []ma.Multiaddr{bAddr}}); err != nil {
				t.Fatalf("dial %s: %v", bAddr, err)
			}
			took := time.Since(start)
			// The signalling went over a limited circuit through the go relay.
			var circuit ma.Multiaddr
		drain:
			for {
				select {
				case ev := <-opened.Out():
					if ev.Conn.Peer == b.ID() && ev.Conn.State.Limited {
						circuit = ev.Conn.RemoteAddr
					}
				default:
					break drain
				}
			}
			if circuit == nil || !strings.HasPrefix(circuit.String(), relay.String()+"/p2p-circuit") {
				t.Fatalf("dialer's signalling connection %v, want a limited one through %s", circuit, relay)
			}
			direct := goRelayDirect(t, "dialer", a, b.ID())
			goRelayDirect(t, "listener", b, a.ID())

			var rtts []time.Duration
			err := a.Ping(ctx, b.ID(), 3, 0, 5*time.Second, func(_ int, rtt time.Duration) { rtts = append(rtts, rtt) })
			if err != nil || len(rtts) != 3 {
				t.Fatalf("pings over /webrtc: %d of 3 answered: %v", len(rtts), err)
			}
			if err := echoOnce(ctx, a, b.ID(), jsEchoSize); err != nil {
				t.Fatalf("1 MiB over /webrtc: %v", err)
			}
			if direct.IsClosed() {
				t.Fatal("the /webrtc connection closed during the pings and the echo")
			}

			// The relayed connection goes on both sides, the direct one stays.
			onlyDirect := func(h *tachyon.Host, p peer.ID) func() bool {
				return func() bool {
					cs := h.Network().ConnsToPeer(p)
					return len(cs) == 1 && cs[0].ConnState().Transport == "webrtc"
				}
			}
			if !eventually(10*time.Second, onlyDirect(a, b.ID())) || !eventually(5*time.Second, onlyDirect(b, a.ID())) {
				t.Fatalf("connections 10 s after the dial: dialer %v, listener %v; want the /webrtc one only",
					connStrings(a.Network().ConnsToPeer(b.ID())), connStrings(b.Network().ConnsToPeer(a.ID())))
			}
			t.Logf("%s: /webrtc through the go relay in %s; pings %v", tc.name, took.Round(time.Microsecond), rtts)
		})
	}
}

// goRelayDirect returns h's /webrtc connection to p, waiting up to 5 s
// for it, and checks it is
// direct: unlimited, on a loopback ICE path, not through the relay.
func goRelayDirect(t *testing.T, side string, h *tachyon.Host, p peer.ID) network.Conn {
	t.Helper()
	var direct network.Conn
	// The listener's swarm adds the connection a moment after the dialer's
	// returns.
	eventually(5*time.Second, func() bool {
		for _, c := range h.Network().ConnsToPeer(p) {
			if c.ConnState().Transport == "webrtc" {
				direct = c
			}
		}
		return direct != nil
	})
	if direct == nil {
		t.Fatalf("%s: no /webrtc connection to %s: %v", side, p, connStrings(h.Network().ConnsToPeer(p)))
	}
	ra := direct.RemoteMultiaddr()
	if direct.ConnState().Limited || swarm.IsRelayAddr(ra) || !strings.HasPrefix(ra.String(), "/ip4/127.0.0.1/udp/") {
		t.Fatalf("%s: /webrtc connection %s (limited %v), want a direct one on 127.0.0.1", side, ra, direct.ConnState().Limited)
	}
	return direct
}

func connStrings(cs []network.Conn) []string {
	var out []string
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%s %s limited=%v closed=%v", c.ConnState().Transport, c.RemoteMultiaddr(), c.ConnState().Limited, c.IsClosed()))
	}
	return out
}
