package interop

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	tevent "github.com/tachyon-p2p/tachyon/event"
	"github.com/tachyon-p2p/tachyon/swarm"
)

// b2bTachyonEndpoint is an in-process tachyon host with the /webrtc
// transport, the relay client (over WebSocket, which the relay serves) and
// the echo handler, restricted to the namespace's address for ICE.
var b2bTachyonEndpoint = b2bImpl{name: "tachyon", start: func(t *testing.T) b2bEndpoint {
	return &b2bHost{}
}}

type b2bHost struct {
	h    *tachyon.Host
	mu   sync.Mutex
	log  bytes.Buffer
	echo []echoed // per echo stream
}

type echoed struct {
	n   int
	err string
}

func (e *b2bHost) Start(ctx context.Context, relay string) (b2bListening, error) {
	ra, err := ma.NewMultiaddr(relay)
	if err != nil {
		return b2bListening{}, err
	}
	veth := netip.MustParseAddr(b2bVethIP)
	h, err := tachyon.New(
		tachyon.ListenAddrStrings("/webrtc"),
		tachyon.Transports(tachyon.WebSocket, tachyon.WebRTC),
		tachyon.StaticRelays(ra),
		tachyon.ForceReachability(network.ReachabilityPrivate),
		tachyon.WebRTCICEFilter(func(a netip.Addr) bool { return a == veth }),
		tachyon.Logger(slog.New(slog.NewTextHandler(&lockedWriter{mu: &e.mu, w: &e.log}, &slog.HandlerOptions{Level: slog.LevelDebug}))),
	)
	if err != nil {
		return b2bListening{}, err
	}
	e.h = h
	h.SetStreamHandler(echoID, e.serveEcho)
	for {
		for _, a := range h.FullAddrs() {
			if swarm.IsRelayAddr(a) && a[len(a)-2].Code() == ma.P_WEBRTC {
				var all []string
				for _, x := range h.FullAddrs() {
					all = append(all, x.String())
				}
				return b2bListening{Peer: h.ID().String(), WebRTC: a.String(), Addrs: all}, nil
			}
		}
		select {
		case <-ctx.Done():
			return b2bListening{}, fmt.Errorf("no /webrtc address through the relay: %v (%w)", h.FullAddrs(), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (e *b2bHost) serveEcho(s network.Stream) {
	n, err := io.Copy(s, s)
	rec := echoed{n: int(n)}
	if err != nil {
		rec.err = err.Error()
	}
	e.mu.Lock()
	e.echo = append(e.echo, rec)
	e.mu.Unlock()
	if err != nil {
		s.Reset()
		return
	}
	s.Close()
}

// connOf describes c as the js endpoints describe theirs.
func connOf(c network.Conn) b2bConn {
	return b2bConn{
		RemoteAddr: c.RemoteMultiaddr().String() + "/p2p/" + c.RemotePeer().String(),
		Direct:     !c.ConnState().Limited && !swarm.IsRelayAddr(c.RemoteMultiaddr()),
		Limited:    c.ConnState().Limited,
		Status:     "open",
		Direction:  c.Direction().String(),
	}
}

// pathOf is the ICE path of a /webrtc connection as its addresses show it
// (/ip4/A/udp/P/webrtc at each end); tachyon does not expose the candidate
// types, so Type says "addr".
func pathOf(c network.Conn) []b2bPath {
	end := func(a ma.Multiaddr) b2bCandidate {
		ip, _ := a.ValueForProtocol(ma.P_IP4)
		port, _ := a.ValueForProtocol(ma.P_UDP)
		n, _ := strconv.Atoi(port)
		return b2bCandidate{Type: "addr", Address: ip, Port: n}
	}
	return []b2bPath{{Local: end(c.LocalMultiaddr()), Remote: end(c.RemoteMultiaddr())}}
}

func (e *b2bHost) Dial(ctx context.Context, target string) (b2bResult, error) {
	ta, err := ma.NewMultiaddr(target)
	if err != nil {
		return b2bResult{}, err
	}
	ai, err := peer.AddrInfoFromP2pAddr(ta)
	if err != nil {
		return b2bResult{}, err
	}
	res := b2bResult{Peer: e.h.ID().String(), Target: target}
	sub := tevent.Subscribe[tevent.EvtConnOpened](e.h.EventBus(), 16)
	defer sub.Close()
	start := time.Now()
	ms := func(t time.Time) float64 { return float64(t.Sub(start).Microseconds()) / 1000 }
	err = e.h.Connect(ctx, *ai)
	res.DialMs = ms(time.Now())
	if err != nil {
		res.Error = err.Error()
		return res, nil
	}
	var relayedAt, directAt time.Time
	var direct network.Conn
	for _, c := range e.h.Network().ConnsToPeer(ai.ID) {
		if c.ConnState().Transport == "webrtc" {
			direct = c
		}
	}
drain:
	for {
		select {
		case ev := <-sub.Out():
			switch {
			case ev.Conn.State.Limited && relayedAt.IsZero():
				relayedAt = ev.Conn.Opened
				res.RelayedAddr = ev.Conn.RemoteAddr.String() + "/p2p/" + ai.ID.String()
				res.RelayedLimited = true
			case ev.Conn.State.Transport == "webrtc":
				directAt = ev.Conn.Opened
			}
		default:
			break drain
		}
	}
	if direct == nil || relayedAt.IsZero() || directAt.IsZero() {
		res.Error = fmt.Sprintf("connected, but not over a relayed then a direct /webrtc connection: %v", e.h.Network().ConnsToPeer(ai.ID))
		return res, nil
	}
	res.Connected = true
	res.b2bConn = connOf(direct)
	res.RelayedAtMs = ms(relayedAt)
	res.RelayToDirectMs = float64(directAt.Sub(relayedAt).Microseconds()) / 1000
	res.Pairs = pathOf(direct)

	// The first reply: 18 bytes echoed on a new stream.
	if err := echoOnce(ctx, e.h, ai.ID, 18); err != nil {
		res.FirstEchoError = err.Error()
	}
	res.FirstEchoMs = ms(time.Now())
	res.RelayToFirstEchoMs = float64(time.Since(relayedAt).Microseconds()) / 1000
	err = e.h.Ping(ctx, ai.ID, 3, 0, 5*time.Second, func(_ int, rtt time.Duration) {
		res.PingMs = append(res.PingMs, float64(rtt.Microseconds())/1000)
	})
	if err != nil {
		res.PingErrors = append(res.PingErrors, err.Error())
	}
	t0 := time.Now()
	if err := echoOnce(ctx, e.h, ai.ID, jsEchoSize); err != nil {
		res.EchoError = err.Error()
	} else {
		res.EchoBytes = jsEchoSize
	}
	res.EchoMs = float64(time.Since(t0).Microseconds()) / 1000
	for _, c := range e.h.Network().ConnsToPeer(ai.ID) {
		res.Conns = append(res.Conns, connOf(c))
	}
	return res, nil
}

func (e *b2bHost) Report(ctx context.Context) (b2bReport, error) {
	var rep b2bReport
	// The echo handler may still be closing its stream.
	deadline := time.Now().Add(5 * time.Second)
	for {
		e.mu.Lock()
		done := false
		for _, r := range e.echo {
			done = done || r.n == jsEchoSize
		}
		e.mu.Unlock()
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range e.h.Network().Conns() {
		if c.ConnState().Transport == "webrtc" {
			rep.Opened = append(rep.Opened, connOf(c))
			rep.Pairs = append(rep.Pairs, pathOf(c)...)
		}
		rep.Conns = append(rep.Conns, connOf(c))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.echo {
		rep.Echoed = append(rep.Echoed, struct {
			Bytes int    `json:"bytes"`
			Error string `json:"error"`
		}{r.n, r.err})
	}
	return rep, nil
}

func (e *b2bHost) Close() string {
	if e.h != nil {
		e.h.Close()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.log.String()
}
