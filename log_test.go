package tachyon_test

import (
	"net"
	"strconv"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/internal/logs/logtest"
)

// TestLoggerReachesTransports: the Logger option reaches the transports. A
// TCP connection that sends garbage to a port shared by TCP and WebSocket
// leaves a Debug record of the TCP transport naming the remote address.
func TestLoggerReachesTransports(t *testing.T) {
	leakcheck.Check(t)
	log, buf := logtest.New()
	h, err := tachyon.New(
		tachyon.Logger(log),
		tachyon.ListenAddrStrings("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0/ws"),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var hostport string
	for _, a := range h.Addrs() {
		if len(a) == 2 && a[1].Code() == ma.P_TCP {
			hostport = net.JoinHostPort(a[0].Value(), a[1].Value())
		}
	}
	if hostport == "" {
		t.Fatalf("no TCP address in %v", h.Addrs())
	}
	c, err := net.Dial("tcp", hostport)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Garbage, then EOF: the upgrade fails at once.
	if _, err := c.Write([]byte("garbage, not libp2p\n")); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	port := strconv.Itoa(c.LocalAddr().(*net.TCPAddr).Port)
	buf.WaitLine(t, 10*time.Second, "level=DEBUG", "component=tcp", "inbound upgrade failed", "remote=/ip4/127.0.0.1/tcp/"+port+" ", "err=")
	buf.WaitLine(t, time.Second, "level=INFO", "host started") // the host's own records still come
}
