package upgrader

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/muxer/yamux"
	"github.com/tachyon-p2p/tachyon/upgrader/rmtest"
)

// failingMuxer is yamux by name, but cannot start.
type failingMuxer struct{}

func (failingMuxer) ID() protocol.ID { return yamux.ID }
func (failingMuxer) NewConn(net.Conn, bool, network.ConnScope) (network.MuxedConn, error) {
	return nil, errors.New("muxer broken")
}

// The upgrader admits each connection once its peer is known, both ways,
// and its scope is released whatever becomes of the connection.
func TestUpgradeResources(t *testing.T) {
	for _, tc := range []struct {
		name          string
		clientConns   int  // cap of the dialer's manager; 0 none, -1 refuse all
		serverConns   int  // same for the listener
		serverBroken  bool // the listener's muxer fails to start
		wantClientErr bool
		wantServerErr bool
		serverMayFail bool // it may fail or see the conn closed
	}{
		{name: "admitted"},
		{name: "dialer refuses", clientConns: -1, wantClientErr: true, serverMayFail: true},
		{name: "listener refuses", serverConns: -1, wantServerErr: true},
		{name: "muxer fails after admission", serverBroken: true, wantServerErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cu, _ := newUpgrader(t, NoiseID)
			su, sid := newUpgrader(t, NoiseID)
			crm, srm := manager(tc.clientConns), manager(tc.serverConns)
			cu.Resources, su.Resources = crm, srm
			if tc.serverBroken {
				su.Muxers = []network.Multiplexer{failingMuxer{}}
			}
			cc, sc := tcpPair(t)
			addr := ma.StringCast("/ip4/127.0.0.1/tcp/1")
			type res struct {
				tc  network.TransportConn
				err error
			}
			srv := make(chan res, 1)
			go func() {
				c, err := su.Upgrade(ctx, sc, network.DirInbound, "", addr, addr)
				srv <- res{c, err}
			}()
			c, cerr := cu.Upgrade(ctx, cc, network.DirOutbound, sid, addr, addr)
			if cerr == nil && tc.wantServerErr {
				// The listener closed it; the dialer learns when it reads.
				if _, err := c.AcceptStream(); err == nil {
					t.Error("dialer's conn still accepts streams after the listener dropped it")
				}
			}
			if cerr == nil {
				c.Close()
			}
			r := <-srv
			if r.err == nil {
				if cerr != nil {
					if _, err := r.tc.AcceptStream(); err == nil {
						t.Error("listener's conn still accepts streams after the dialer dropped it")
					}
				}
				r.tc.Close()
			}
			if (cerr != nil) != tc.wantClientErr || (r.err != nil) != tc.wantServerErr && !tc.serverMayFail {
				t.Fatalf("dialer: %v; listener: %v", cerr, r.err)
			}
			for side, err := range map[string]error{"dialer": cerr, "listener": r.err} {
				m := crm
				if side == "listener" {
					m = srm
				}
				refused := (side == "dialer" && tc.clientConns < 0) || (side == "listener" && tc.serverConns < 0)
				if refused {
					var le *rmtest.LimitError
					if !errors.Is(err, ErrRefused) || !errors.As(err, &le) {
						t.Errorf("%s: refusal %v does not wrap ErrRefused and the limit", side, err)
					}
					if err != nil && !strings.Contains(err.Error(), "12D3") {
						t.Errorf("%s: refusal %q does not name the peer", side, err)
					}
				}
				st := m.Stats()
				if st.Conns != 0 || len(st.Misuse) != 0 {
					t.Errorf("%s: %d scopes still open, misuse %v", side, st.Conns, st.Misuse)
				}
				for _, s := range m.Scopes() {
					if !s.Closed() {
						t.Errorf("%s: scope of %s not closed", side, s.Peer)
					}
				}
			}
		})
	}
}

func manager(conns int) *rmtest.Manager {
	if conns < 0 {
		return &rmtest.Manager{RefuseConns: true}
	}
	return &rmtest.Manager{Conns: conns}
}
