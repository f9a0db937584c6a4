package webrtc

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// opaqueAddr is an address of no net type, as a shared socket might report.
type opaqueAddr string

func (a opaqueAddr) Network() string { return "udp" }
func (a opaqueAddr) String() string  { return string(a) }

// hiddenConn hides the *net.UDPConn behind net.PacketConn and reports
// opaque addresses, so that the listener can rely on nothing more.
type hiddenConn struct {
	pc net.PacketConn
	// raw passes the socket's source addresses through unchanged.
	raw    bool
	closed atomic.Bool
}

func (h *hiddenConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, a, err := h.pc.ReadFrom(p)
	if a != nil && !h.raw {
		a = opaqueAddr(a.String())
	}
	return n, a, err
}

func (h *hiddenConn) WriteTo(p []byte, a net.Addr) (int, error) {
	ua, err := net.ResolveUDPAddr("udp", a.String())
	if err != nil {
		return 0, err
	}
	return h.pc.WriteTo(p, ua)
}

func (h *hiddenConn) Close() error {
	h.closed.Store(true)
	return h.pc.Close()
}

func (h *hiddenConn) LocalAddr() net.Addr { return opaqueAddr(h.pc.LocalAddr().String()) }
func (h *hiddenConn) SetDeadline(t time.Time) error {
	return h.pc.SetDeadline(t)
}
func (h *hiddenConn) SetReadDeadline(t time.Time) error  { return h.pc.SetReadDeadline(t) }
func (h *hiddenConn) SetWriteDeadline(t time.Time) error { return h.pc.SetWriteDeadline(t) }

func TestListenPacketHook(t *testing.T) {
	leakcheck.Check(t)
	for _, tc := range []struct {
		addr string
		// dualStack binds the hook's socket on [::], as a socket shared
		// with QUIC may be, so IPv4 peers arrive as ::ffff:a.b.c.d.
		dualStack bool
	}{
		{"/ip4/127.0.0.1/udp/0/webrtc-direct", false},
		{"/ip6/::1/udp/0/webrtc-direct", false},
		{"/ip4/127.0.0.1/udp/0/webrtc-direct", true},
	} {
		addr := tc.addr
		t.Run(fmt.Sprintf("%s dual-stack=%v", addr, tc.dualStack), func(t *testing.T) {
			a, _ := newTransport(t)
			b, bID := newTransport(t)
			var conns []*hiddenConn
			var asked []netip.AddrPort
			b.cfg.ListenPacket = func(laddr netip.AddrPort) (net.PacketConn, error) {
				asked = append(asked, laddr)
				bind := net.UDPAddrFromAddrPort(laddr)
				if tc.dualStack {
					bind = &net.UDPAddr{IP: net.IPv6unspecified}
				}
				pc, err := net.ListenUDP("udp", bind)
				if err != nil {
					return nil, err
				}
				h := &hiddenConn{pc: pc, raw: tc.dualStack}
				conns = append(conns, h)
				return h, nil
			}
			l, err := b.Listen(ma.StringCast(addr))
			if err != nil {
				t.Fatal(err)
			}
			if len(conns) != 1 || asked[0].Port() != 0 || asked[0].Addr().Is4In6() {
				t.Fatalf("hook called %d times with %v", len(conns), asked)
			}
			port, err := l.Multiaddrs()[0].ValueForProtocol(ma.P_UDP)
			if err != nil || port != fmt.Sprint(conns[0].pc.LocalAddr().(*net.UDPAddr).Port) {
				t.Fatalf("listen address %s does not carry the hook's port %s", l.Multiaddrs()[0], conns[0].pc.LocalAddr())
			}
			c, s := connect(t, a, l, bID)
			echoOnce(t, c, s)
			echoOnce(t, s, c)
			c.Close()
			s.Close()
			if conns[0].closed.Load() {
				t.Fatal("the hook's conn was closed before the listener")
			}
			l.Close()
			if !conns[0].closed.Load() {
				t.Fatal("closing the listener left the hook's conn open")
			}
		})
	}
}

func TestListenPacketHookError(t *testing.T) {
	b, _ := newTransport(t)
	boom := errors.New("port taken by someone else")
	b.cfg.ListenPacket = func(netip.AddrPort) (net.PacketConn, error) { return nil, boom }
	_, err := b.Listen(ma.StringCast("/ip4/127.0.0.1/udp/0/webrtc-direct"))
	if !errors.Is(err, boom) {
		t.Fatalf("Listen returned %v, want the hook's error", err)
	}
}
