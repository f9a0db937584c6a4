package upgrader

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/muxer/yamux"
)

// recordingTracer keeps the handshakes it hears of.
type recordingTracer struct {
	mu  sync.Mutex
	got []Handshake
}

func (r *recordingTracer) HandshakeDone(h Handshake) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, h)
}

// TestTracer: each side reports one handshake, with what it chose, or how
// far it got when it failed.
func TestTracer(t *testing.T) {
	k, _ := crypto.GenerateEd25519Key(nil)
	stranger, _ := peer.IDFromPrivateKey(k)
	for _, tc := range []struct {
		name      string
		sec       protocol.ID
		dialWrong bool // dial another peer ID than the server's
		want      Handshake
	}{
		{"noise", NoiseID, false, Handshake{Dir: network.DirOutbound, Transport: "tcp", Security: NoiseID, Muxer: yamux.ID, EarlyMuxer: true}},
		{"tls", TLSID, false, Handshake{Dir: network.DirOutbound, Transport: "tcp", Security: TLSID, Muxer: yamux.ID, EarlyMuxer: true}},
		{"wrong peer", NoiseID, true, Handshake{Dir: network.DirOutbound, Transport: "tcp", Security: NoiseID}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cu, _ := newUpgrader(t, tc.sec)
			su, sid := newUpgrader(t, tc.sec)
			ct, st := &recordingTracer{}, &recordingTracer{}
			cu.Tracer, su.Tracer = ct, st
			cc, sc := tcpPair(t)
			addr := ma.StringCast("/ip4/127.0.0.1/tcp/1")
			srv := upgradeInbound(ctx, su, sc, addr)
			dial := sid
			if tc.dialWrong {
				dial = stranger
			}
			c, err := cu.Upgrade(ctx, cc, network.DirOutbound, dial, addr, addr)
			if err == nil {
				if c.ConnState().EarlyMuxer != tc.want.EarlyMuxer {
					t.Errorf("ConnState().EarlyMuxer = %v", c.ConnState().EarlyMuxer)
				}
				c.Close()
			}
			<-srv
			if len(ct.got) != 1 || len(st.got) != 1 {
				t.Fatalf("%d client and %d server handshakes reported, want 1 each", len(ct.got), len(st.got))
			}
			h := ct.got[0]
			if (h.Err == nil) == tc.dialWrong || tc.dialWrong && !errors.As(h.Err, new(*network.PeerIDMismatchError)) {
				t.Errorf("client handshake error %v", h.Err)
			}
			if h.Took <= 0 || h.Start.IsZero() {
				t.Errorf("client handshake took %v from %v", h.Took, h.Start)
			}
			w := tc.want
			if h.Dir != w.Dir || h.Transport != w.Transport || h.Security != w.Security || h.Muxer != w.Muxer || h.EarlyMuxer != w.EarlyMuxer {
				t.Errorf("client reported %+v, want %+v", h, w)
			}
			if s := st.got[0]; s.Dir != network.DirInbound || s.Security != tc.sec {
				t.Errorf("server reported %+v", s)
			}
		})
	}
}
