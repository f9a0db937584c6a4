package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/pion/webrtc/v4"
)

type dialResult struct {
	Event          string       `json:"event"`
	OK             bool         `json:"ok"`
	Self           string       `json:"self"` // our own peer ID
	Peer           string       `json:"peer"` // the peer dialed
	ConnectMillis  float64      `json:"connectMillis"`
	PingRTTsMillis []float64    `json:"pingRTTsMillis"`
	Identify       identifyInfo `json:"identify"`
	EchoBytes      int          `json:"echoBytes"`
	EchoMillis     float64      `json:"echoMillis"`
	Security       string       `json:"security"`
	Muxer          string       `json:"muxer"`
}

func cmdDial(args []string) int {
	var c stackConfig
	fs := newFlagSet("dial", &c)
	pings := fs.Int("pings", 10, "number of pings to run")
	echoBytes := fs.Int("echo-bytes", 1<<20, "bytes to send through the echo protocol, on each stream")
	echoStreams := fs.Int("echo-streams", 1, "concurrent echo streams")
	timeout := fs.Duration("timeout", 30*time.Second, "limit for the whole run")
	pos, err := parseArgs(fs, args, 1)
	if err != nil {
		return fail(err)
	}
	if err := checkStack(&c); err != nil {
		return fail(err)
	}
	if *pings < 0 || *echoBytes < 0 || *echoStreams < 1 || *timeout <= 0 {
		return fail(usagef("--pings and --echo-bytes must be >= 0, --echo-streams >= 1, --timeout > 0"))
	}
	ai, err := parseTarget(pos[0])
	if err != nil {
		return fail(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	res, err := dial(ctx, &c, ai, *pings, *echoBytes, *echoStreams)
	if err != nil {
		return fail(err)
	}
	emit(res)
	return exitOK
}

// parseTarget parses a multiaddr that must end in /p2p/<id>.
func parseTarget(s string) (*peer.AddrInfo, error) {
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		return nil, usagef("bad multiaddr %q: %v", s, err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(m)
	if err != nil {
		return nil, usagef("multiaddr %q must end in /p2p/<peer id>: %v", s, err)
	}
	return ai, nil
}

func dial(ctx context.Context, c *stackConfig, ai *peer.AddrInfo, pings, echoBytes, echoStreams int) (*dialResult, error) {
	h, err := newHost(c)
	if err != nil {
		return nil, fmt.Errorf("start host: %w", err)
	}
	defer closeHost(h)

	// Subscribe before connecting so that the identify event cannot be missed.
	sub, err := h.EventBus().Subscribe(
		[]any{new(event.EvtPeerIdentificationCompleted), new(event.EvtPeerIdentificationFailed)},
		eventbus.BufSize(64))
	if err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	defer sub.Close()

	res := &dialResult{Event: "result", Self: h.ID().String(), Peer: ai.ID.String(), PingRTTsMillis: []float64{}}

	start := time.Now()
	if err := h.Connect(ctx, *ai); err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	res.ConnectMillis = millis(time.Since(start))
	log.Printf("connected to %s in %.3f ms", ai.ID, res.ConnectMillis)

	idEv, err := waitIdentify(ctx, sub, ai.ID)
	if err != nil {
		return nil, err
	}
	res.Identify = identifyFromEvent(idEv)
	state := idEv.Conn.ConnState()
	res.Security = string(state.Security)
	res.Muxer = string(state.StreamMultiplexer)
	log.Printf("identified %s: agent %q, security %s, muxer %s", ai.ID, res.Identify.AgentVersion, res.Security, res.Muxer)

	if pings > 0 {
		rtts, err := runPings(ctx, h, ai.ID, pings)
		if err != nil {
			return nil, err
		}
		res.PingRTTsMillis = rtts
	}

	// Every stream echoes echoBytes at the same time; the time is the
	// slowest stream's.
	echoStart := time.Now()
	errs := make(chan error, echoStreams)
	for i := 0; i < echoStreams; i++ {
		go func() {
			_, err := runEcho(ctx, h, ai.ID, echoBytes)
			errs <- err
		}()
	}
	for i := 0; i < echoStreams; i++ {
		if err := <-errs; err != nil {
			return nil, err
		}
	}
	res.EchoBytes = echoBytes * echoStreams
	res.EchoMillis = millis(time.Since(echoStart))

	conns := h.Network().ConnsToPeer(ai.ID)
	for _, c := range conns {
		log.Printf("closing %s connection %s -> %s%s", c.ConnState().Transport, c.LocalMultiaddr(), c.RemoteMultiaddr(), peerConnState(c))
	}
	closeStart := time.Now()
	if err := h.Network().ClosePeer(ai.ID); err != nil {
		return nil, fmt.Errorf("close connection: %w", err)
	}
	for _, c := range conns {
		log.Printf("closed %s connection in %.3f ms%s", c.ConnState().Transport, millis(time.Since(closeStart)), peerConnState(c))
	}
	res.OK = true
	return res, nil
}

func waitIdentify(ctx context.Context, sub event.Subscription, p peer.ID) (event.EvtPeerIdentificationCompleted, error) {
	for {
		select {
		case ev, ok := <-sub.Out():
			if !ok {
				return event.EvtPeerIdentificationCompleted{}, errors.New("identify: event subscription closed")
			}
			switch e := ev.(type) {
			case event.EvtPeerIdentificationCompleted:
				if e.Peer == p {
					return e, nil
				}
			case event.EvtPeerIdentificationFailed:
				if e.Peer == p {
					return event.EvtPeerIdentificationCompleted{}, fmt.Errorf("identify failed: %v", e.Reason)
				}
			}
		case <-ctx.Done():
			return event.EvtPeerIdentificationCompleted{}, fmt.Errorf("waiting for identify: %w", ctx.Err())
		}
	}
}

// runPings runs n pings on one ping stream and returns each RTT.
func runPings(ctx context.Context, h host.Host, p peer.ID, n int) ([]float64, error) {
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make([]float64, 0, n)
	results := ping.Ping(pctx, h, p)
	for len(out) < n {
		select {
		case r, ok := <-results:
			if !ok {
				return nil, fmt.Errorf("ping %d: stream ended: %v", len(out)+1, ctx.Err())
			}
			if r.Error != nil {
				return nil, fmt.Errorf("ping %d: %w", len(out)+1, r.Error)
			}
			out = append(out, millis(r.RTT))
		case <-ctx.Done():
			return nil, fmt.Errorf("ping %d: %w", len(out)+1, ctx.Err())
		}
	}
	return out, nil
}

// runEcho sends n random bytes over the echo protocol while reading the
// reply concurrently, half-closes, reads until EOF and checks that exactly
// the same bytes came back. The duration runs from opening the stream to EOF.
func runEcho(ctx context.Context, h host.Host, p peer.ID, n int) (time.Duration, error) {
	payload := make([]byte, n)
	if _, err := rand.Read(payload); err != nil {
		return 0, err
	}
	start := time.Now()
	s, err := h.NewStream(ctx, p, EchoProtocol)
	if err != nil {
		return 0, fmt.Errorf("echo: open stream: %w", err)
	}
	// Abort blocked reads and writes when the context ends.
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()

	werr := make(chan error, 1)
	go func() {
		if _, err := s.Write(payload); err != nil {
			werr <- fmt.Errorf("echo: write: %w", err)
			return
		}
		if err := s.CloseWrite(); err != nil {
			werr <- fmt.Errorf("echo: close write: %w", err)
			return
		}
		werr <- nil
	}()

	got, rerr := io.ReadAll(s)
	elapsed := time.Since(start)
	if err := <-werr; err != nil {
		_ = s.Reset()
		return 0, err
	}
	if rerr != nil {
		_ = s.Reset()
		if ctx.Err() != nil {
			return 0, fmt.Errorf("echo: read after %d bytes: %w", len(got), ctx.Err())
		}
		return 0, fmt.Errorf("echo: read after %d bytes: %w", len(got), rerr)
	}
	_ = s.Close()
	if len(got) != n {
		return 0, fmt.Errorf("echo: sent %d bytes, got %d back", n, len(got))
	}
	if !bytes.Equal(got, payload) {
		return 0, fmt.Errorf("echo: %d bytes came back but differ from what was sent", n)
	}
	return elapsed, nil
}

// peerConnState describes a WebRTC connection's PeerConnection (state and
// the ICE pair in use), so that a close the other side missed can be told
// apart from one never sent; "" for other transports.
func peerConnState(c network.Conn) string {
	var pc *webrtc.PeerConnection
	if !c.As(&pc) || pc == nil {
		return ""
	}
	pair, dtlsState := "none", "none"
	if dtls := pc.SCTP().Transport(); dtls != nil {
		dtlsState = dtls.State().String()
		if p, err := dtls.ICETransport().GetSelectedCandidatePair(); err == nil && p != nil {
			pair = fmt.Sprintf("%s:%d -> %s:%d", p.Local.Address, p.Local.Port, p.Remote.Address, p.Remote.Port)
		}
	}
	return fmt.Sprintf(" (peer connection %s, ICE %s, DTLS %s, SCTP %s, pair %s)",
		pc.ConnectionState(), pc.ICEConnectionState(), dtlsState, pc.SCTP().State(), pair)
}
