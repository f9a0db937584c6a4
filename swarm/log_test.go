package swarm

import (
	"context"
	"errors"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/internal/logs/logtest"
)

// refuseSecured refuses every connection once it is secured.
type refuseSecured struct{}

func (refuseSecured) InterceptPeerDial(peer.ID) bool                  { return true }
func (refuseSecured) InterceptAddrDial(peer.ID, ma.Multiaddr) bool    { return true }
func (refuseSecured) InterceptAccept(ma.Multiaddr, ma.Multiaddr) bool { return true }
func (refuseSecured) InterceptSecured(network.Direction, peer.ID, ma.Multiaddr, ma.Multiaddr) bool {
	return false
}

// TestLogGatedAndFailedDials: the listener's gater refuses a connection and
// logs it at Debug with the peer; the dialer logs its failed address.
func TestLogGatedAndFailedDials(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	blog, bbuf := logtest.New()
	alog, abuf := logtest.New()
	a, b := newSwarm(t, false), newSwarm(t, false)
	a.cfg.Log = alog
	b.cfg.Log, b.cfg.Gater = blog, refuseSecured{}
	if err := b.Listen(ma.StringCast("/ip4/127.0.0.1/tcp/0")); err != nil {
		t.Fatal(err)
	}
	// A closed port first: its dial fails at once, with a line of its own.
	dead := ma.StringCast("/ip4/127.0.0.1/tcp/1")
	a.Peerstore().AddAddrs(b.LocalPeer(), append([]ma.Multiaddr{dead}, b.ListenAddrs()...), time.Hour)
	// The dial itself may succeed: the dialer's upgrade can finish before
	// the listener refuses the connection.
	if c, err := a.DialPeer(ctx, b.LocalPeer()); err == nil {
		c.Close()
	} else if errors.Is(err, ErrGated) {
		t.Fatalf("the dialer's own gate refused: %v", err)
	}
	bbuf.WaitLine(t, 5*time.Second, "level=DEBUG", "connection refused by the gater", "peer="+a.LocalPeer().String(), "direction=", "transport=tcp")
	abuf.WaitLine(t, 5*time.Second, "level=DEBUG", "dial failed", "peer="+b.LocalPeer().String(), "addr="+dead.String(), "err=")
}
