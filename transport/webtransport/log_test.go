package webtransport_test

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
	tt "github.com/tachyon-p2p/tachyon/transport/udpmux/transporttest"
	"github.com/tachyon-p2p/tachyon/transport/webtransport"
)

// TestLogHalfOpen: a QUIC connection with ALPN h3 that never sends CONNECT
// is closed at the handshake timeout with a Debug record naming it.
func TestLogHalfOpen(t *testing.T) {
	leakcheck.Check(t)
	tt.CheckQUICGoroutines(t)
	log, buf := logtest.New()
	a, _, _ := newPeer(t, nil, &webtransport.Config{HandshakeTimeout: 200 * time.Millisecond, Log: log})
	la := tt.Listen(t, a, "/ip4/127.0.0.1/udp/0/quic-v1/webtransport")
	ap, _, _ := webtransport.ParseAddr(la.Multiaddrs()[0])
	mux := udpmux.New(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	qc, err := mux.Dial(ctx, ap, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h3"}})
	if err != nil {
		t.Fatal(err)
	}
	defer qc.CloseWithError(0, "")
	port := strconv.Itoa(qc.LocalAddr().(*net.UDPAddr).Port)
	buf.WaitLine(t, 5*time.Second, "level=DEBUG", "inbound session not established in time", "remote=127.0.0.1:"+port)
}
