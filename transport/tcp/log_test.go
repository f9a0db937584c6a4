package tcp_test

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
	"github.com/tachyon-p2p/tachyon/transport/tcp"
	"github.com/tachyon-p2p/tachyon/upgrader"
)

// TestLogFailedUpgrade: an inbound connection that sends garbage fails its
// upgrade, and the transport's logger gets a Debug record naming the remote
// address; the listener keeps going.
func TestLogFailedUpgrade(t *testing.T) {
	leakcheck.Check(t)
	k, _ := crypto.GenerateEd25519Key(nil)
	sec, err := noise.New(k, nil)
	if err != nil {
		t.Fatal(err)
	}
	up := &upgrader.Upgrader{
		Security:         []network.SecureTransport{sec},
		Muxers:           []network.Multiplexer{&yamux.Transport{}},
		HandshakeTimeout: 2 * time.Second,
		Transport:        "tcp",
	}
	log, buf := logtest.New()
	tr := tcp.New(up, &tcp.Config{Log: log})
	l, err := tr.Listen(ma.StringCast("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, hostport, err := manet.DialArgs(l.Multiaddrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", hostport)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("\x13not multistream at all\n")); err != nil {
		t.Fatal(err)
	}
	remote, err := manet.FromNetAddr(c.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	line := buf.WaitLine(t, 5*time.Second, "level=DEBUG", "inbound upgrade failed", "remote="+remote.String(), "err=")
	t.Log(line)
}

// TestLogSniffTimeout: on a shared port, a connection that sends nothing
// is dropped after SniffTimeout with a Debug record.
func TestLogSniffTimeout(t *testing.T) {
	leakcheck.Check(t)
	log, buf := logtest.New()
	m := tcp.NewPortMux(&tcp.PortMuxConfig{SniffTimeout: 100 * time.Millisecond, Log: log})
	l1, err := m.Listen("tcp4", "127.0.0.1:0", tcp.KindMultistream)
	if err != nil {
		t.Fatal(err)
	}
	defer l1.Close()
	l2, err := m.Listen("tcp4", "127.0.0.1:0", tcp.KindHTTP)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	c, err := net.Dial("tcp", l1.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf.WaitLine(t, 5*time.Second, "level=DEBUG", "first bytes did not come", "remote="+c.LocalAddr().String())
}
