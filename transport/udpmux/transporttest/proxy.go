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
//
// Each target gets a socket of its own on the proxy's side: a datagram the
// former target sent just before the switch, still queued in the proxy's
// socket, must not reach the client as the new target's when both have
// the same address (a restarted server).
type UDPProxy struct {
	t      testing.TB
	front  *net.UDPConn
	back   atomic.Pointer[net.UDPConn] // towards the current target; nil: drop
	client atomic.Pointer[netip.AddrPort]
	mu     sync.Mutex // orders SetTarget calls
	wg     sync.WaitGroup
}

var loopback = net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0"))

// NewUDPProxy starts a proxy on a loopback port relaying to target; it
// stops when the test ends.
func NewUDPProxy(t testing.TB, target netip.AddrPort) *UDPProxy {
	t.Helper()
	p := &UDPProxy{t: t}
	var err error
	if p.front, err = net.ListenUDP("udp", loopback); err != nil {
		t.Fatal(err)
	}
	p.wg.Add(1)
	go p.relay(p.front, func(from netip.AddrPort, b []byte) {
		p.client.Store(&from)
		if back := p.back.Load(); back != nil {
			back.Write(b)
		}
	})
	t.Cleanup(func() {
		p.front.Close()
		p.SetTarget(netip.AddrPort{})
		p.wg.Wait()
	})
	p.SetTarget(target)
	return p
}

// relay passes each datagram in gets to send, until in is closed.
func (p *UDPProxy) relay(in *net.UDPConn, send func(from netip.AddrPort, b []byte)) {
	defer p.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, from, err := in.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		send(from, buf[:n])
	}
}

// Addr is where the client sends.
func (p *UDPProxy) Addr() netip.AddrPort { return p.front.LocalAddr().(*net.UDPAddr).AddrPort() }

// SetTarget relays the client's datagrams to target from now on, from a new
// socket, and only what target sends to that socket back; the zero AddrPort
// drops everything.
func (p *UDPProxy) SetTarget(target netip.AddrPort) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var back *net.UDPConn
	if target.IsValid() {
		var err error
		// Connected, so that the kernel itself drops what another
		// address sends to it.
		if back, err = net.DialUDP("udp", loopback, net.UDPAddrFromAddrPort(target)); err != nil {
			p.t.Errorf("udp proxy: socket towards %s: %v", target, err)
			back = nil
		}
	}
	if old := p.back.Swap(back); old != nil {
		old.Close() // what the former target sent is dropped with it
	}
	if back == nil {
		return
	}
	p.wg.Add(1)
	go p.relay(back, func(_ netip.AddrPort, b []byte) {
		if c := p.client.Load(); c != nil {
			p.front.WriteToUDPAddrPort(b, *c)
		}
	})
}
