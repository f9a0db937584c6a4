package webrtc

import (
	"net"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/internal/logs/logtest"
)

// TestLogFailedInbound: an attempt over MaxInFlight is dropped with an Info
// record, and one whose ICE never completes fails at HandshakeTimeout with
// a Debug record naming its address.
func TestLogFailedInbound(t *testing.T) {
	leakcheck.Check(t)
	log, buf := logtest.New()
	b, _ := newTransport(t)
	b.cfg.MaxInFlight = 1
	b.cfg.HandshakeTimeout = 300 * time.Millisecond
	b.cfg.Log = log
	l := listen(t, b, "/ip4/127.0.0.1/udp/0/webrtc-direct").(*listener)
	var socks []*net.UDPConn
	for i := range 2 {
		c, err := net.DialUDP("udp4", nil, l.mux.local)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(halfOpenRequest(t, i))
		socks = append(socks, c)
		time.Sleep(50 * time.Millisecond) // the first is in flight before the second comes
	}
	buf.WaitLine(t, 5*time.Second, "level=INFO", "too many in flight", "remote="+socks[1].LocalAddr().String())
	buf.WaitLine(t, 5*time.Second, "level=DEBUG", "inbound connection failed", "remote="+socks[0].LocalAddr().String(), "err=")
}
