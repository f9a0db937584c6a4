package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/host/observedaddrs"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/libp2p/go-libp2p/x/rate"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/prometheus/client_golang/prometheus"
)

// The hole-punching commands (relay, holepunch-listen, holepunch-dial) run
// a default go-libp2p host as a user would configure it for NAT traversal:
// TCP and QUIC, TLS and Noise, yamux, the relay client, DCUtR. They are
// what test/holepunch measures tachyon against. README.md lists the knobs
// they turn and why.

// hpConfig is what the three commands share.
type hpConfig struct {
	listen         multiFlag
	transport      string // "tcp", "quic-v1" or "" (both)
	keySeed        string
	publicPrefixes string
	noRateLimit    bool
	obsThreshold   int
}

func hpFlags(name string, c *hpConfig) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(&c.listen, "listen", "multiaddr to listen on, repeatable (default: 0.0.0.0 port 0 on the chosen transports)")
	fs.StringVar(&c.transport, "transport", "", "tcp or quic-v1: the only transport of the host (default: both)")
	fs.StringVar(&c.keySeed, "key-seed", "", "32-byte ed25519 seed as 64 hex characters (default: random identity)")
	fs.StringVar(&c.publicPrefixes, "public-prefixes", "",
		"comma-separated CIDRs inside private ranges to treat as public, such as the testbed's core links, which stand for the Internet (see README.md)")
	fs.BoolVar(&c.noRateLimit, "no-conn-rate-limit", false,
		"turn off the resource manager's rate limit of new connections per IP (0.2/s, burst 16 per IPv4 /32), which a test repeating attempts from one address runs into (see README.md)")
	fs.IntVar(&c.obsThreshold, "observed-addr-threshold", 0,
		"observers needed before identify advertises an observed address (go-libp2p's observedaddrs.ActivationThresh, default 4)")
	return fs
}

func (c *hpConfig) check() error {
	switch c.transport {
	case "", "tcp", "quic-v1":
	default:
		return usagef("--transport %q: want tcp or quic-v1", c.transport)
	}
	if c.keySeed != "" {
		if _, err := seedKey(c.keySeed); err != nil {
			return usagef("%v", err)
		}
	}
	if _, err := parsePrefixes(c.publicPrefixes); err != nil {
		return usagef("--public-prefixes: %v", err)
	}
	if len(c.listen) == 0 {
		if c.transport != "quic-v1" {
			c.listen = append(c.listen, "/ip4/0.0.0.0/tcp/0")
		}
		if c.transport != "tcp" {
			c.listen = append(c.listen, "/ip4/0.0.0.0/udp/0/quic-v1")
		}
	}
	return nil
}

// applyKnobs changes go-libp2p's package-level settings before any host
// exists.
func (c *hpConfig) applyKnobs() {
	if ps, _ := parsePrefixes(c.publicPrefixes); len(ps) > 0 {
		makePublic(ps)
	}
	if c.obsThreshold > 0 {
		observedaddrs.ActivationThresh = c.obsThreshold
	}
}

func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// makePublic carves the given prefixes out of go-multiaddr's private
// ranges (manet.Private4, manet.Private6), so that manet.IsPublicAddr holds
// for them and for nothing else it did not hold for before. go-libp2p
// decides with IsPublicAddr which addresses a relay puts in a reservation,
// which relay addresses autorelay advertises, which own addresses DCUtR
// sends (and whether the DCUtR service starts at all), and whether B first
// tries a plain dial of A (connection reversal); none of these has an
// option of its own.
func makePublic(public []netip.Prefix) {
	carve := func(nets []*net.IPNet) []*net.IPNet {
		var out []*net.IPNet
		for _, n := range nets {
			a, _ := netip.AddrFromSlice(n.IP)
			ones, _ := n.Mask.Size()
			rest := []netip.Prefix{netip.PrefixFrom(a.Unmap(), ones)}
			for _, p := range public {
				var next []netip.Prefix
				for _, r := range rest {
					next = append(next, subtract(r, p)...)
				}
				rest = next
			}
			for _, r := range rest {
				out = append(out, &net.IPNet{IP: r.Addr().AsSlice(), Mask: net.CIDRMask(r.Bits(), r.Addr().BitLen())})
			}
		}
		return out
	}
	manet.Private4 = carve(manet.Private4)
	manet.Private6 = carve(manet.Private6)
}

// subtract returns r without p, as prefixes.
func subtract(r, p netip.Prefix) []netip.Prefix {
	switch {
	case !r.Overlaps(p):
		return []netip.Prefix{r}
	case p.Bits() <= r.Bits(): // p covers r
		return nil
	}
	// Split r in halves and keep what p does not cover.
	lo := netip.PrefixFrom(r.Addr(), r.Bits()+1)
	hiAddr := r.Addr().AsSlice()
	bit := r.Bits()
	hiAddr[bit/8] |= 0x80 >> (bit % 8)
	ha, _ := netip.AddrFromSlice(hiAddr)
	hi := netip.PrefixFrom(ha, r.Bits()+1)
	return append(subtract(lo, p), subtract(hi, p)...)
}

// hpHostOptions are the options of a NAT-traversal host on c's transports.
func (c *hpConfig) hostOptions() ([]libp2p.Option, error) {
	opts := []libp2p.Option{
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.UserAgent(AgentVersion),
		libp2p.Ping(true),
		libp2p.DisableMetrics(),
		libp2p.ListenAddrStrings(c.listen...),
	}
	if c.transport != "quic-v1" {
		opts = append(opts, libp2p.Transport(tcp.NewTCPTransport))
	}
	if c.transport != "tcp" {
		opts = append(opts, libp2p.Transport(libp2pquic.NewTransport))
	}
	if c.keySeed != "" {
		sk, err := seedKey(c.keySeed)
		if err != nil {
			return nil, err
		}
		opts = append(opts, libp2p.Identity(sk))
	}
	if c.noRateLimit {
		// go-libp2p's default resource manager (defaults.go
		// DefaultResourceManager) without its connection rate limiter.
		limits := rcmgr.DefaultLimits
		libp2p.SetDefaultServiceLimits(&limits)
		rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()), rcmgr.WithConnRateLimiters(&rate.Limiter{}))
		if err != nil {
			return nil, err
		}
		opts = append(opts, libp2p.ResourceManager(rm))
	}
	return opts, nil
}

// printListenAddrs prints the host's listen addresses with /p2p/, then
// READY.
func printListenAddrs(h host.Host) error {
	addrs, err := h.Network().InterfaceListenAddresses()
	if err != nil {
		return fmt.Errorf("listen addresses: %w", err)
	}
	for _, a := range addrs {
		printLine(fmt.Sprintf("%s/p2p/%s", a, h.ID()))
	}
	printLine("READY")
	return nil
}

// waitSignal waits for SIGINT or SIGTERM on sigs, then closes h.
func waitSignal(sigs chan os.Signal, h host.Host) int {
	s := <-sigs
	log.Printf("got %v, shutting down", s)
	closeHost(h)
	emit(closedEvent{Event: "closed"})
	return exitOK
}

// cmdRelay runs a circuit relay v2 service with go-libp2p's default
// resources (2 min and 128 KiB per circuit, 128 reservations).
func cmdRelay(args []string) int {
	var c hpConfig
	fs := hpFlags("relay", &c)
	if _, err := parseArgs(fs, args, 0); err != nil {
		return fail(err)
	}
	if err := c.check(); err != nil {
		return fail(err)
	}
	c.applyKnobs()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	opts, err := c.hostOptions()
	if err != nil {
		return fail(err)
	}
	opts = append(opts,
		libp2p.EnableRelayService(relay.WithResources(relay.DefaultResources())),
		libp2p.ForceReachabilityPublic(),
		libp2p.DisableRelay(), // no client: a relay does not reserve on others
	)
	h, err := libp2p.New(opts...)
	if err != nil {
		return fail(fmt.Errorf("start host: %w", err))
	}
	if err := printListenAddrs(h); err != nil {
		closeHost(h)
		return fail(err)
	}
	log.Printf("relay %s", h.ID())
	return waitSignal(sigs, h)
}

// hpEvent is one hole-punch event, printed by holepunch-listen and
// collected by holepunch-dial; the same shape as `tachyon punch`'s.
type hpEvent struct {
	Attempt    int      `json:"attempt"`
	Side       string   `json:"side"`
	Success    bool     `json:"success"`
	Reason     string   `json:"reason,omitempty"`
	TookMillis float64  `json:"tookMillis"`
	RTTMillis  float64  `json:"rttMillis,omitempty"`
	Addrs      []string `json:"addrs,omitempty"`
}

// hpTracer turns go-libp2p's hole-punch trace into hpEvents. side is what
// this host does in DCUtR: "initiator" (B) or "responder" (A).
type hpTracer struct {
	side string
	out  func(peer.ID, hpEvent)

	mu      sync.Mutex
	attempt map[peer.ID]int
	rtt     map[peer.ID]time.Duration
	addrs   map[peer.ID][]string
}

func newHPTracer(side string, out func(peer.ID, hpEvent)) *hpTracer {
	return &hpTracer{side: side, out: out, attempt: map[peer.ID]int{}, rtt: map[peer.ID]time.Duration{}, addrs: map[peer.ID][]string{}}
}

func (t *hpTracer) Trace(e *holepunch.Event) {
	t.mu.Lock()
	var ev *hpEvent
	switch x := e.Evt.(type) {
	case *holepunch.DirectDialEvt:
		// The dial B makes of A's public addresses before any punching.
		ev = &hpEvent{Attempt: 0, Side: t.side, Success: x.Success, Reason: x.Error, TookMillis: millis(x.EllapsedTime)}
	case *holepunch.ProtocolErrorEvt:
		ev = &hpEvent{Attempt: t.attempt[e.Remote] + 1, Side: t.side, Reason: "protocol error: " + x.Error}
	case *holepunch.StartHolePunchEvt:
		t.rtt[e.Remote] = x.RTT
		t.addrs[e.Remote] = x.RemoteAddrs
	case *holepunch.HolePunchAttemptEvt:
		t.attempt[e.Remote] = x.Attempt
	case *holepunch.EndHolePunchEvt:
		ev = &hpEvent{Attempt: t.attempt[e.Remote], Side: t.side, Success: x.Success, Reason: x.Error,
			TookMillis: millis(x.EllapsedTime), RTTMillis: millis(t.rtt[e.Remote]), Addrs: t.addrs[e.Remote]}
	}
	t.mu.Unlock()
	if ev != nil {
		t.out(e.Remote, *ev)
	}
}

// cmdHolePunchListen is B: it keeps a reservation on a static relay
// (autorelay), punches holes to peers that reach it through the relay, and
// serves the echo protocol.
func cmdHolePunchListen(args []string) int {
	var c hpConfig
	fs := hpFlags("holepunch-listen", &c)
	var relays multiFlag
	fs.Var(&relays, "relay", "relay multiaddr ending in /p2p/<id> to keep a reservation on (repeatable, at least one)")
	if _, err := parseArgs(fs, args, 0); err != nil {
		return fail(err)
	}
	if err := c.check(); err != nil {
		return fail(err)
	}
	if len(relays) == 0 {
		return fail(usagef("holepunch-listen: at least one --relay is needed"))
	}
	var static []peer.AddrInfo
	for _, r := range relays {
		ai, err := parseTarget(r)
		if err != nil {
			return fail(err)
		}
		static = append(static, *ai)
	}
	c.applyKnobs()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	opts, err := c.hostOptions()
	if err != nil {
		return fail(err)
	}
	tr := newHPTracer("initiator", func(p peer.ID, e hpEvent) {
		emit(struct {
			Event string `json:"event"`
			Peer  string `json:"peer"`
			hpEvent
		}{"holepunch", p.String(), e})
	})
	rsv := newRsvTracer()
	opts = append(opts,
		libp2p.EnableRelay(),
		libp2p.ForceReachabilityPrivate(),
		libp2p.EnableAutoRelayWithStaticRelays(static, autorelay.WithMetricsTracer(rsv)),
		libp2p.EnableHolePunching(holepunch.WithTracer(tr)),
	)
	h, err := libp2p.New(opts...)
	if err != nil {
		return fail(fmt.Errorf("start host: %w", err))
	}
	h.SetStreamHandler(EchoProtocol, echoHandler)
	if err := printListenAddrs(h); err != nil {
		closeHost(h)
		return fail(err)
	}
	// autorelay advertises relay addresses only for public relay addresses
	// (cleanupAddressSet); print the addresses through our relays as soon
	// as a reservation is held, whatever they are.
	go func() {
		select {
		case <-rsv.ok:
		case <-time.After(time.Minute):
			log.Printf("no relay reservation after a minute")
			return
		}
		for _, r := range static {
			for _, a := range r.Addrs {
				printLine(fmt.Sprintf("relay address: %s/p2p/%s/p2p-circuit/p2p/%s", a, r.ID, h.ID()))
			}
		}
	}()
	log.Printf("holepunch-listen %s", h.ID())
	return waitSignal(sigs, h)
}

// rsvTracer is autorelay's metrics tracer (on a private Prometheus
// registry), used to learn when the first reservation is held. The
// interface has methods on unexported types, so it embeds the real one.
type rsvTracer struct {
	autorelay.MetricsTracer
	once sync.Once
	ok   chan struct{}
}

func newRsvTracer() *rsvTracer {
	return &rsvTracer{
		MetricsTracer: autorelay.NewMetricsTracer(autorelay.WithRegisterer(prometheus.NewRegistry())),
		ok:            make(chan struct{}),
	}
}

func (r *rsvTracer) ReservationRequestFinished(refresh bool, err error) {
	r.MetricsTracer.ReservationRequestFinished(refresh, err)
	if err != nil {
		log.Printf("relay reservation: %v", err)
		return
	}
	r.once.Do(func() { close(r.ok) })
}

// punchResult is what holepunch-dial (and `tachyon punch`) print. Times
// are milliseconds from the start of the dial through the relay.
type punchResult struct {
	Event string `json:"event"`
	OK    bool   `json:"ok"`
	Self  string `json:"self"`
	Peer  string `json:"peer"`
	// RelayMillis is the connection to the relay and its identify, before
	// the clock starts.
	RelayMillis float64 `json:"relayMillis"`
	// RelayedMillis is when the relayed connection to B was established
	// (before its identify, which go-libp2p's Connect waits for).
	RelayedMillis float64 `json:"relayedMillis"`
	DirectMillis  float64 `json:"directMillis,omitempty"`
	ReplyMillis   float64 `json:"replyMillis,omitempty"`
	// Transport and Remote are the direct connection's.
	Transport   string    `json:"transport,omitempty"`
	Remote      string    `json:"remote,omitempty"`
	HolePunches []hpEvent `json:"holePunches"`
	// RelayedFallback says whether the relayed connection still carried
	// a ping after the hole punch failed.
	RelayedFallback bool   `json:"relayedFallback,omitempty"`
	Error           string `json:"error,omitempty"`
}

// cmdHolePunchDial is A: it connects to B through the relay, waits for the
// direct connection DCUtR makes, and times an echo over it.
func cmdHolePunchDial(args []string) int {
	var c hpConfig
	fs := hpFlags("holepunch-dial", &c)
	timeout := fs.Duration("timeout", 60*time.Second, "limit for the whole run")
	pos, err := parseArgs(fs, args, 1)
	if err != nil {
		return fail(err)
	}
	if err := c.check(); err != nil {
		return fail(err)
	}
	target, err := ma.NewMultiaddr(pos[0])
	if err != nil {
		return fail(usagef("bad multiaddr %q: %v", pos[0], err))
	}
	relayPart, bID, err := splitCircuit(target)
	if err != nil {
		return fail(usagef("%v", err))
	}
	relayInfo, err := peer.AddrInfoFromP2pAddr(relayPart)
	if err != nil {
		return fail(usagef("relay part %s: %v", relayPart, err))
	}
	c.applyKnobs()

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	res := punchResult{Event: "punch", Peer: bID.String(), HolePunches: []hpEvent{}}
	var mu sync.Mutex
	attempts := make(chan hpEvent, 16)
	tr := newHPTracer("responder", func(p peer.ID, e hpEvent) {
		if p != bID {
			return
		}
		mu.Lock()
		res.HolePunches = append(res.HolePunches, e)
		mu.Unlock()
		select {
		case attempts <- e:
		default:
		}
	})
	opts, err := c.hostOptions()
	if err != nil {
		return fail(err)
	}
	opts = append(opts,
		libp2p.EnableRelay(),
		libp2p.ForceReachabilityPrivate(),
		libp2p.EnableHolePunching(holepunch.WithTracer(tr)),
	)
	h, err := libp2p.New(opts...)
	if err != nil {
		return fail(fmt.Errorf("start host: %w", err))
	}
	defer closeHost(h)
	res.Self = h.ID().String()
	finish := func(err error) int {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			res.Error = err.Error()
			emit(res)
			log.Printf("error: %v", err)
			return exitFail
		}
		res.OK = true
		emit(res)
		return exitOK
	}

	// The relayed connection to B (its time: Connect returns only after
	// identify), then the direct one, when they come.
	relayed := make(chan time.Time, 1)
	direct := make(chan network.Conn, 1)
	h.Network().Notify(&network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		if c.RemotePeer() != bID {
			return
		}
		ch := direct
		if isCircuit(c.RemoteMultiaddr()) {
			select {
			case relayed <- time.Now():
			default:
			}
			return
		}
		select {
		case ch <- c:
		default:
		}
	}})
	sub, err := h.EventBus().Subscribe([]any{new(event.EvtPeerIdentificationCompleted), new(event.EvtPeerIdentificationFailed)}, eventbus.BufSize(64))
	if err != nil {
		return finish(fmt.Errorf("subscribe: %w", err))
	}
	defer sub.Close()

	// The relay first, with its identify: it tells us the address our NAT
	// gave us, which DCUtR sends to B.
	t0 := time.Now()
	if err := h.Connect(ctx, *relayInfo); err != nil {
		return finish(fmt.Errorf("connect to the relay: %w", err))
	}
	if _, err := waitIdentify(ctx, sub, relayInfo.ID); err != nil {
		return finish(fmt.Errorf("relay: %w", err))
	}
	// go-libp2p serves /libp2p/dcutr only once it has an address to send
	// (holepunch.Service.waitForPublicAddr polls for one: 250 ms, 500 ms,
	// 1 s...). B checks A's protocols when the relayed connection is
	// identified, so wait for the handler before the clock starts.
	for !slices.Contains(h.Mux().Protocols(), holepunch.Protocol) {
		select {
		case <-ctx.Done():
			return finish(fmt.Errorf("DCUtR never served: no address to send (%v)", h.Addrs()))
		case <-time.After(10 * time.Millisecond):
		}
	}
	res.RelayMillis = millis(time.Since(t0))

	start := time.Now()
	h.Peerstore().AddAddrs(bID, []ma.Multiaddr{target.Decapsulate(ma.StringCast("/p2p/" + bID.String()))}, peerstore.TempAddrTTL)
	if err := h.Connect(ctx, peer.AddrInfo{ID: bID}); err != nil {
		return finish(fmt.Errorf("connect through the relay: %w", err))
	}
	select {
	case at := <-relayed:
		res.RelayedMillis = millis(at.Sub(start))
	default:
		return finish(errors.New("connected to B, but not through the relay"))
	}

	// Wait for the direct connection; B gives up after its third round.
	var dc network.Conn
	failed := 0
wait:
	for {
		select {
		case dc = <-direct:
			break wait
		case e := <-attempts:
			if !e.Success && e.Attempt >= 3 {
				failed = e.Attempt
			}
			if failed >= 3 {
				// Give a success a moment to show up as a connection.
				select {
				case dc = <-direct:
					break wait
				case <-time.After(time.Second):
				}
				return finish(fallback(ctx, h, bID, &res, errors.New("no direct connection: all hole-punch attempts failed")))
			}
		case <-ctx.Done():
			return finish(fallback(context.Background(), h, bID, &res, fmt.Errorf("no direct connection: %w", ctx.Err())))
		}
	}
	res.DirectMillis = millis(time.Since(start))
	res.Transport = transportOf(dc.RemoteMultiaddr())
	res.Remote = dc.RemoteMultiaddr().String()

	s, err := h.NewStream(ctx, bID, EchoProtocol)
	if err != nil {
		return finish(fmt.Errorf("echo: open stream: %w", err))
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	if isCircuit(s.Conn().RemoteMultiaddr()) {
		_ = s.Reset()
		return finish(errors.New("echo: the stream went over the relayed connection"))
	}
	if _, err := s.Write([]byte{0x2a}); err != nil {
		return finish(fmt.Errorf("echo: write: %w", err))
	}
	var b [1]byte
	if _, err := io.ReadFull(s, b[:]); err != nil {
		return finish(fmt.Errorf("echo: read: %w", err))
	}
	res.ReplyMillis = millis(time.Since(start))
	_ = s.CloseWrite()
	_, _ = io.Copy(io.Discard, s)
	_ = s.Close()
	return finish(nil)
}

// fallback checks that the relayed connection still works (ping is allowed
// on it) and returns err.
func fallback(ctx context.Context, h host.Host, p peer.ID, res *punchResult, err error) error {
	pctx, cancel := context.WithTimeout(network.WithAllowLimitedConn(ctx, "fallback"), 5*time.Second)
	defer cancel()
	r := <-ping.Ping(pctx, h, p)
	res.RelayedFallback = r.Error == nil
	if r.Error != nil {
		return fmt.Errorf("%w; relayed connection: ping failed: %v", err, r.Error)
	}
	return err
}

// splitCircuit splits <relay>/p2p-circuit/p2p/<B> into the relay's address
// and B.
func splitCircuit(a ma.Multiaddr) (ma.Multiaddr, peer.ID, error) {
	for i, c := range a {
		if c.Code() != ma.P_CIRCUIT {
			continue
		}
		rest := a[i+1:]
		if len(rest) != 1 || rest[0].Code() != ma.P_P2P {
			break
		}
		id, err := peer.Decode(rest[0].Value())
		if err != nil {
			return nil, "", err
		}
		return a[:i], id, nil
	}
	return nil, "", fmt.Errorf("%s: want <relay>/p2p-circuit/p2p/<peer>", a)
}

func isCircuit(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

func transportOf(a ma.Multiaddr) string {
	s := a.String()
	switch {
	case strings.Contains(s, "/quic-v1"):
		return "quic-v1"
	case strings.Contains(s, "/tcp/"):
		return "tcp"
	}
	return s
}
