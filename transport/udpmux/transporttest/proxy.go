package transporttest

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
)

// UDPProxy relays datagrams between one client and a target it can
// switch; only the current target's datagrams reach the client. Switching
// makes the former target's answers vanish: enough for a test to make a
// server forget a connection without its peer hearing of it, or to stand
// in for a server that restarted behind the same address.
type UDPProxy struct {
	front, back *net.UDPConn
	target      atomic.Pointer[netip.AddrPort]
	client      atomic.Pointer[netip.AddrPort]
	wg          sync.WaitGroup
}

// NewUDPProxy starts a proxy on a loopback port relaying to target; it
// stops when the test ends.
func NewUDPProxy(t testing.TB, target netip.AddrPort) *UDPProxy {
	t.Helper()
	p := &UDPProxy{}
	lo := net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0"))
	var err error
	if p.front, err = net.ListenUDP("udp", lo); err != nil {
		t.Fatal(err)
	}
	if p.back, err = net.ListenUDP("udp", lo); err != nil {
		p.front.Close()
		t.Fatal(err)
	}
	p.target.Store(&target)
	p.wg.Add(2)
	go p.relay(p.front, p.back, func(from netip.AddrPort) *netip.AddrPort {
		p.client.Store(&from)
		return p.target.Load()
	})
	go p.relay(p.back, p.front, func(from netip.AddrPort) *netip.AddrPort {
		if from != *p.target.Load() {
			return nil // a former target
		}
		return p.client.Load()
	})
	t.Cleanup(func() {
		p.front.Close()
		p.back.Close()
		p.wg.Wait()
	})
	return p
}

func (p *UDPProxy) relay(in, out *net.UDPConn, to func(from netip.AddrPort) *netip.AddrPort) {
	defer p.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, from, err := in.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if dst := to(from); dst != nil && dst.IsValid() {
			out.WriteToUDPAddrPort(buf[:n], *dst)
		}
	}
}

// Addr is where the client sends.
func (p *UDPProxy) Addr() netip.AddrPort { return p.front.LocalAddr().(*net.UDPAddr).AddrPort() }

// SetTarget relays the client's datagrams to target from now on, and only
// target's datagrams back; the zero AddrPort drops everything.
func (p *UDPProxy) SetTarget(target netip.AddrPort) { p.target.Store(&target) }
