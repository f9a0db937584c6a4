package websocket_test

import (
	"net"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/internal/logs/logtest"
	"github.com/tachyon-p2p/tachyon/muxer/yamux"
	"github.com/tachyon-p2p/tachyon/security/noise"
	"github.com/tachyon-p2p/tachyon/transport/websocket"
	"github.com/tachyon-p2p/tachyon/upgrader"
)

// TestLogFailedHTTPUpgrade: an inbound connection whose HTTP request is no
// WebSocket upgrade is refused, and the logger gets a Debug record naming
// the remote address.
func TestLogFailedHTTPUpgrade(t *testing.T) {
	leakcheck.Check(t)
	k, _ := crypto.GenerateEd25519Key(nil)
	sec, err := noise.New(k, nil)
	if err != nil {
		t.Fatal(err)
	}
	up := &upgrader.Upgrader{
		Security:  []network.SecureTransport{sec},
		Muxers:    []network.Multiplexer{&yamux.Transport{}},
		Transport: "websocket",
	}
	log, buf := logtest.New()
	tr := websocket.New(up, &websocket.Config{Log: log, HandshakeTimeout: 2 * time.Second})
	l, err := tr.Listen(ma.StringCast("/ip4/127.0.0.1/tcp/0/ws"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, hostport, err := manet.DialArgs(l.Multiaddrs()[0][:2])
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", hostport)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	t.Log(buf.WaitLine(t, 5*time.Second, "level=DEBUG", "inbound connection failed before its upgrade", "remote="+c.LocalAddr().String(), "err="))
}
