package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/event"
	"github.com/tachyon-p2p/tachyon/swarm"
)

// punchEvent is one hole-punch attempt as `tachyon punch` prints it (the
// go-libp2p interop peer's holepunch-dial prints the same).
type punchEvent struct {
	Attempt    int      `json:"attempt"`
	Side       string   `json:"side"`
	Success    bool     `json:"success"`
	Reason     string   `json:"reason,omitempty"`
	TookMillis float64  `json:"tookMillis"`
	RTTMillis  float64  `json:"rttMillis,omitempty"`
	Addrs      []string `json:"addrs,omitempty"`
}

// punchLine is what `tachyon punch` prints: times in milliseconds from the
// start of the dial through the relay.
type punchLine struct {
	Event string `json:"event"`
	OK    bool   `json:"ok"`
	Self  string `json:"self"`
	Peer  string `json:"peer"`
	// RelayMillis is the connection to the relay and its identify, made
	// before the clock starts: it tells us the address our NAT gave us.
	RelayMillis float64 `json:"relayMillis"`
	// RelayedMillis is when the relayed connection to the peer was
	// established.
	RelayedMillis float64 `json:"relayedMillis"`
	DirectMillis  float64 `json:"directMillis,omitempty"`
	ReplyMillis   float64 `json:"replyMillis,omitempty"`
	// Transport and Remote are the direct connection's.
	Transport   string       `json:"transport,omitempty"`
	Remote      string       `json:"remote,omitempty"`
	HolePunches []punchEvent `json:"holePunches"`
	// RelayedFallback says whether the relayed connection still carried a
	// ping after hole punching failed.
	RelayedFallback bool   `json:"relayedFallback,omitempty"`
	Error           string `json:"error,omitempty"`
}

// cmdPunch is A's side of DCUtR as a diagnostic: connect to B through a
// relay, wait for the direct connection B's hole punch makes, and time an
// echo over it.
func cmdPunch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("punch", flag.ContinueOnError)
	var listen multiFlag
	fl.Var(&listen, "listen", "`MADDR` to listen on (repeatable; default: TCP and QUIC on 0.0.0.0 port 0). Dials to B leave from these ports, which is what lets a NAT map them")
	timeout := fl.Duration("timeout", time.Minute, "limit for the whole run")
	hpPrivate := fl.Bool("holepunch-private-addrs", false, "exchange private (RFC 1918, ULA) addresses for hole punching too (LANs, emulated networks)")
	hpPublic := fl.String("holepunch-public-prefixes", "", "comma-separated `CIDRs` that count as public for hole punching (emulated networks whose Internet is private address space)")
	transport := fl.String("transport", "", "`NAME`, tcp or quic-v1: the only direct transport to listen and dial on (default: both)")
	logLvl := addLogLevel(fl)
	pos, err := parseInterspersed(fl, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("expected one multiaddr <relay>/p2p-circuit/p2p/<peer>, got %d arguments", len(pos))
	}
	if *timeout <= 0 {
		return usagef("--timeout must be positive")
	}
	full, err := ma.NewMultiaddr(pos[0])
	if err != nil {
		return usagef("bad multiaddr %q: %w", pos[0], err)
	}
	relayInfo, b, err := splitCircuit(full)
	if err != nil {
		return usageError{error: err}
	}
	ts := []tachyon.TransportID{tachyon.TCP, tachyon.QUIC}
	switch *transport {
	case "":
	case "tcp":
		ts = []tachyon.TransportID{tachyon.TCP}
	case "quic-v1":
		ts = []tachyon.TransportID{tachyon.QUIC}
	default:
		return usagef("--transport %q: want tcp or quic-v1", *transport)
	}
	if len(listen) == 0 {
		for _, t := range ts {
			if t == tachyon.TCP {
				listen = append(listen, "/ip4/0.0.0.0/tcp/0")
			} else {
				listen = append(listen, "/ip4/0.0.0.0/udp/0/quic-v1")
			}
		}
	}
	if relayInfo.Addrs, err = resolveAddrs(ctx, relayInfo.Addrs); err != nil {
		return err
	}
	hpCfg, err := holePunchConfig(*hpPrivate, *hpPublic)
	if err != nil {
		return err
	}

	line := punchLine{Event: "punch", Peer: b.String(), HolePunches: []punchEvent{}}
	print := func(err error) error {
		if err != nil {
			line.Error = oneLine(err)
		}
		line.OK = err == nil
		out, _ := json.Marshal(line)
		stdout.Write(append(out, '\n'))
		return err
	}
	h, err := tachyon.New(
		tachyon.ListenAddrStrings(listen...),
		tachyon.Transports(ts...),
		tachyon.HolePunching(hpCfg),
		tachyon.DialTimeout(*timeout),
		logLvl.option(stderr),
	)
	if err != nil {
		return print(listenHint(err))
	}
	defer h.Close()
	line.Self = h.ID().String()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	p := punch{h: h, b: b}
	p.watch()
	defer p.stop()

	// The relay first, with its identify: it tells us the address our NAT
	// gave us, which DCUtR sends to B.
	t0 := time.Now()
	if err := h.Connect(ctx, relayInfo); err != nil {
		return print(explainDial(dialTarget{shown: pos[0], info: relayInfo, elapsed: time.Since(t0)}, err))
	}
	if _, err := h.IdentifyWait(ctx, relayInfo.ID); err != nil {
		return print(fmt.Errorf("identify of the relay: %w", err))
	}
	line.RelayMillis = ms(time.Since(t0))

	start := time.Now()
	err = h.Connect(ctx, peer.AddrInfo{ID: b, Addrs: []ma.Multiaddr{full.Decapsulate(ma.StringCast("/p2p/" + b.String()))}})
	if err != nil {
		return print(fmt.Errorf("connecting through the relay: %w", err))
	}
	select {
	case c := <-p.relayed:
		line.RelayedMillis = ms(c.Opened.Sub(start))
	case <-ctx.Done():
		return print(errors.New("connected to the peer, but not through the relay"))
	}

	direct, err := p.waitDirect(ctx)
	line.HolePunches = p.events()
	if err != nil {
		line.RelayedFallback = p.fallback(ctx)
		if !line.RelayedFallback {
			err = fmt.Errorf("%w; the relayed connection does not answer pings either", err)
		}
		return print(err)
	}
	line.DirectMillis = ms(direct.Opened.Sub(start))
	line.Transport = direct.State.Transport
	line.Remote = direct.RemoteAddr.String()

	s, err := h.NewStream(ctx, b, echoProtocol)
	if err != nil {
		return print(notServed(fmt.Errorf("echo: open stream: %w", err), echoProtocol, "--echo"))
	}
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	if swarm.IsRelayAddr(s.Conn().RemoteMultiaddr()) {
		s.Reset()
		return print(errors.New("echo: the stream went over the relayed connection"))
	}
	if _, err := s.Write([]byte{0x2a}); err != nil {
		return print(fmt.Errorf("echo: write: %w", err))
	}
	var buf [1]byte
	if _, err := io.ReadFull(s, buf[:]); err != nil {
		return print(notServed(fmt.Errorf("echo: read: %w", err), echoProtocol, "--echo"))
	}
	line.ReplyMillis = ms(time.Since(start))
	line.HolePunches = p.events()
	s.CloseWrite()
	io.Copy(io.Discard, s)
	s.Close()
	return print(nil)
}

// splitCircuit splits <relay>/p2p-circuit/p2p/<B> into the relay and B.
func splitCircuit(a ma.Multiaddr) (peer.AddrInfo, peer.ID, error) {
	i := slices.IndexFunc(a, func(c ma.Component) bool { return c.Code() == ma.P_CIRCUIT })
	if i < 0 || len(a) != i+2 || a[i+1].Code() != ma.P_P2P {
		return peer.AddrInfo{}, "", fmt.Errorf("%s: want <relay>/p2p-circuit/p2p/<peer>", a)
	}
	b, err := peer.Decode(a[i+1].Value())
	if err != nil {
		return peer.AddrInfo{}, "", fmt.Errorf("%s: %w", a, err)
	}
	r, err := peer.AddrInfoFromP2pAddr(a[:i])
	if err != nil {
		return peer.AddrInfo{}, "", fmt.Errorf("relay part of %s: %w", a, err)
	}
	return *r, b, nil
}

// punch watches the host's events about B: hole-punch attempts and the
// direct connection.
type punch struct {
	h *tachyon.Host
	b peer.ID

	sub     *event.Subscription
	wg      sync.WaitGroup
	direct  chan event.ConnInfo
	relayed chan event.ConnInfo
	failed  chan int // attempt numbers of failed rounds

	mu  sync.Mutex
	evs []punchEvent
}

func (p *punch) watch() {
	p.direct = make(chan event.ConnInfo, 1)
	p.relayed = make(chan event.ConnInfo, 1)
	p.failed = make(chan int, 16)
	p.sub = p.h.EventBus().Subscribe(64, event.EvtConnOpened{}, event.EvtHolePunch{})
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for ev := range p.sub.Out() {
			switch e := ev.(type) {
			case event.EvtConnOpened:
				if e.Conn.Peer != p.b {
					continue
				}
				ch := p.direct
				if swarm.IsRelayAddr(e.Conn.RemoteAddr) {
					ch = p.relayed
				}
				select {
				case ch <- e.Conn:
				default:
				}
			case event.EvtHolePunch:
				if e.Peer != p.b {
					continue
				}
				pe := punchEvent{Attempt: e.Attempt, Side: e.Side, Success: e.Success, Reason: e.Reason,
					TookMillis: ms(e.Took), RTTMillis: ms(e.RTT)}
				if e.Err != nil {
					pe.Reason += ": " + e.Err.Error()
				}
				for _, a := range e.Addrs {
					pe.Addrs = append(pe.Addrs, a.String())
				}
				p.mu.Lock()
				p.evs = append(p.evs, pe)
				p.mu.Unlock()
				if !e.Success {
					select {
					case p.failed <- e.Attempt:
					default:
					}
				}
			}
		}
	}()
}

func (p *punch) stop() {
	p.sub.Close()
	p.wg.Wait()
}

func (p *punch) events() []punchEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.evs)
}

// punchRounds is how many rounds B tries before it gives up (the spec's 3).
const punchRounds = 3

// waitDirect waits for a direct connection to B, until ctx ends or B's
// last round failed.
func (p *punch) waitDirect(ctx context.Context) (event.ConnInfo, error) {
	for {
		select {
		case c := <-p.direct:
			return c, nil
		case n := <-p.failed:
			if n < punchRounds {
				continue
			}
			// A success of the same round may still be on its way.
			select {
			case c := <-p.direct:
				return c, nil
			case <-time.After(time.Second):
			}
			return event.ConnInfo{}, fmt.Errorf("no direct connection: all %d hole-punch rounds failed", punchRounds)
		case <-ctx.Done():
			return event.ConnInfo{}, fmt.Errorf("no direct connection: %w", ctx.Err())
		}
	}
}

// fallback reports whether the relayed connection still answers a ping.
func (p *punch) fallback(ctx context.Context) bool {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return p.h.Ping(network.WithAllowLimitedConn(pctx, "fallback"), p.b, 1, 0, 5*time.Second, nil) == nil
}
