package webrtc

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	pion "github.com/pion/webrtc/v4"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/testbed"
)

// wanPair connects a dialer on one testbed host to a listener on another,
// each host on a link of 15.75 ms one way (63 ms RTT, as p2pbench's WAN
// row); it skips without a testbed (root, ip, ethtool).
func wanPair(tb testing.TB) (client, server network.TransportConn, links func() string) {
	tb.Helper()
	n, err := testbed.New()
	if err != nil {
		tb.Skipf("no testbed: %v", err)
	}
	tb.Cleanup(func() { n.Close() })
	link := testbed.LinkConfig{Delay: 15750 * time.Microsecond, Rate: 1e9}
	srvHost, err := n.AddHost("srv", link)
	if err != nil {
		tb.Fatal(err)
	}
	cliHost, err := n.AddHost("cli", link)
	if err != nil {
		tb.Fatal(err)
	}
	srv, srvID := newTransport(tb)
	srv.cfg.ListenPacket = func(laddr netip.AddrPort) (net.PacketConn, error) {
		pc, err := srvHost.ListenPacket(context.Background(), "udp4", laddr.String())
		if err == nil {
			// As Listen's own socket.
			_ = pc.(*net.UDPConn).SetReadBuffer(4 << 20)
			_ = pc.(*net.UDPConn).SetWriteBuffer(4 << 20)
		}
		return pc, err
	}
	l := listen(tb, srv, "/ip4/"+srvHost.IPv4().String()+"/udp/0/webrtc-direct")
	cli, _ := newTransport(tb)
	var c network.TransportConn
	accepted := make(chan network.TransportConn, 1)
	go func() {
		s, _ := l.Accept()
		accepted <- s
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cliHost.Run(func() error {
		var err error
		c, err = cli.Dial(ctx, l.Multiaddrs()[0], srvID)
		return err
	}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	var s network.TransportConn
	select {
	case s = <-accepted:
	case <-ctx.Done():
		tb.Fatal("no inbound connection")
	}
	if s == nil {
		tb.Fatal("accept failed")
	}
	tb.Cleanup(func() { s.Close() })
	udp := func(h *testbed.Host) string {
		var out string
		_ = h.Run(func() error {
			b, err := os.ReadFile("/proc/thread-self/net/snmp")
			for _, l := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(l, "Udp:") {
					out += l + "\n"
				}
			}
			return err
		})
		return out
	}
	links = func() string {
		return fmt.Sprintf("client link %+v\nserver link %+v\nclient %sserver %s", cliHost.Link().Stats(), srvHost.Link().Stats(), udp(cliHost), udp(srvHost))
	}
	return c, s, links
}

// sctpStats is the association's view of the path, for the logs.
func sctpStats(c network.TransportConn) (srtt time.Duration, cwnd, rwnd uint32) {
	for _, st := range c.(*Conn).pc.GetStats() {
		if s, ok := st.(pion.SCTPTransportStats); ok {
			return time.Duration(s.SmoothedRoundTripTime * float64(time.Second)), s.CongestionWindow, s.ReceiverWindow
		}
	}
	return 0, 0, 0
}

// BenchmarkWANUpload uploads over one stream from the dialer to the
// listener across the emulated 63 ms path, after a 16 MiB warm-up, and
// logs the sender's SCTP state and both hosts' link and UDP counters
// (RcvbufErrors: datagrams the kernel dropped). pion's own drops show
// with PION_LOG_INFO=all ("endpoint buffer is full") and the sender's
// retransmissions with PION_LOG_DEBUG=sctp (nFastRetrans, nT3Timeouts,
// when the association closes).
func BenchmarkWANUpload(b *testing.B) {
	c, s, links := wanPair(b)
	upload := func(size int64) {
		done := make(chan int64, 1)
		go func() {
			st, err := s.AcceptStream()
			if err != nil {
				done <- -1
				return
			}
			n, _ := io.Copy(io.Discard, st)
			st.Close()
			done <- n
		}()
		st, err := c.OpenStream(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		buf := make([]byte, 256<<10)
		for sent := int64(0); sent < size; sent += int64(len(buf)) {
			if _, err := st.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		st.CloseWrite()
		if n := <-done; n != size {
			b.Fatalf("received %d of %d", n, size)
		}
	}
	upload(16 << 20)
	b.SetBytes(256 << 10)
	b.ResetTimer()
	upload(int64(b.N) * 256 << 10)
	b.StopTimer()
	srtt, cwnd, rwnd := sctpStats(c)
	l := s.(*Conn)
	_ = l
	b.Logf("sender: srtt %v cwnd %d rwnd %d\n%s", srtt, cwnd, rwnd, links())
}
