package udpmux_test

import (
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/internal/logs/logtest"
	"github.com/tachyon-p2p/tachyon/transport/udpmux"
)

// TestLogFailedHandshakes: a client offering no served ALPN, and one that
// fails the listener's client certificate check, each leave a Debug record
// with their address.
func TestLogFailedHandshakes(t *testing.T) {
	leakcheck.Check(t)
	log, buf := logtest.New()
	server := udpmux.New(&udpmux.Config{Log: log})
	client := udpmux.New(nil)
	conf := serverTLS(t)
	conf.ClientAuth = tls.RequireAnyClientCert
	l, err := server.Listen(loopback, udpmux.ALPNLibp2p, conf)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c, err := client.Dial(ctx, l.Addr(), clientTLS("nope")); err == nil {
		c.CloseWithError(0, "")
		t.Fatal("dial with an unserved ALPN succeeded")
	}
	buf.WaitLine(t, 5*time.Second, "level=DEBUG", "inbound QUIC handshake refused", "remote=127.0.0.1:", "nope")

	// No client certificate: the server fails the handshake after its own
	// flight, when the client's arrives.
	if c, err := client.Dial(ctx, l.Addr(), clientTLS(udpmux.ALPNLibp2p)); err == nil {
		la := c.LocalAddr().(*net.UDPAddr)
		buf.WaitLine(t, 5*time.Second, "level=DEBUG", "inbound QUIC handshake failed", "remote=127.0.0.1:"+strconv.Itoa(la.Port), "alpn=libp2p", "err=")
		c.CloseWithError(0, "")
	} else {
		buf.WaitLine(t, 5*time.Second, "level=DEBUG", "inbound QUIC handshake failed", "alpn=libp2p", "err=")
	}
	waitSockets(t, client, 0)
}
