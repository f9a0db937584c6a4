package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/resolve"
)

// target parses a multiaddr that names its peer.
func target(s string) (peer.AddrInfo, error) {
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("bad multiaddr %q: %w", s, err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(a)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("multiaddr %q must end in /p2p/<peer id>: %w", s, err)
	}
	return *ai, nil
}

// dialer starts a host and connects it to the peer at maddr within
// timeout. The context it returns has the same limit.
func dialer(ctx context.Context, timeout time.Duration, maddr string, logOpt tachyon.Option) (*tachyon.Host, peer.AddrInfo, context.Context, context.CancelFunc, error) {
	ai, err := target(maddr)
	if err != nil {
		return nil, ai, nil, nil, usageError{error: err}
	}
	h, err := tachyon.New(tachyon.DialTimeout(timeout), logOpt)
	if err != nil {
		return nil, ai, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	start := time.Now()
	dialed := ai
	if dialed.Addrs, err = resolveAddrs(ctx, ai.Addrs); err == nil {
		err = h.Connect(ctx, dialed)
	}
	if err != nil {
		cancel()
		h.Close()
		return nil, ai, nil, nil, explainDial(dialTarget{shown: maddr, info: dialed, elapsed: time.Since(start)}, err)
	}
	return h, ai, ctx, cancel, nil
}

// resolveAddrs replaces /dns, /dns4 and /dns6 names with their IP
// addresses, IPv4 first (the swarm would resolve them too; the CLI does it
// first so that its errors and hints show what was dialed). WebSocket
// addresses keep their name: the transport checks the server's certificate
// against it.
func resolveAddrs(ctx context.Context, addrs []ma.Multiaddr) ([]ma.Multiaddr, error) {
	var out []ma.Multiaddr
	for _, a := range addrs {
		if len(a) == 0 || hasProtocol(a, ma.P_WS) || hasProtocol(a, ma.P_WSS) || !resolve.NeedsResolve(a) {
			out = append(out, a)
			continue
		}
		r, err := (&resolve.Resolver{}).Resolve(ctx, a)
		if err != nil {
			return nil, err
		}
		slices.SortStableFunc(r, func(x, y ma.Multiaddr) int {
			x4, y4 := x[0].Code() == ma.P_IP4, y[0].Code() == ma.P_IP4
			switch {
			case x4 == y4:
				return 0
			case x4:
				return -1
			default:
				return 1
			}
		})
		out = append(out, r...)
	}
	return out, nil
}

func cmdPing(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("ping", flag.ContinueOnError)
	n := fl.Int("n", 5, "`N` pings")
	interval := fl.Duration("i", time.Second, "interval between pings")
	timeout := fl.Duration("timeout", 10*time.Second, "timeout to connect, and per ping")
	logLvl := addLogLevel(fl)
	pos, err := parseInterspersed(fl, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("expected one multiaddr, got %d arguments", len(pos))
	}
	if *n < 1 {
		return usagef("-n must be at least 1")
	}
	start := time.Now()
	h, ai, _, cancel, err := dialer(ctx, *timeout, pos[0], logLvl.option(stderr))
	if err != nil {
		return err
	}
	defer h.Close()
	cancel()
	fmt.Fprintf(stdout, "PING %s: connected in %s\n", ai.ID, round(time.Since(start)))
	var rtts []time.Duration
	err = h.Ping(ctx, ai.ID, *n, *interval, *timeout, func(seq int, rtt time.Duration) {
		rtts = append(rtts, rtt)
		fmt.Fprintf(stdout, "pong from %s: seq=%d time=%s\n", ai.ID, seq, round(rtt))
	})
	if len(rtts) > 0 {
		minR, maxR := slices.Min(rtts), slices.Max(rtts)
		var sum float64
		for _, r := range rtts {
			sum += float64(r)
		}
		avg := sum / float64(len(rtts))
		var sq float64
		for _, r := range rtts {
			sq += (float64(r) - avg) * (float64(r) - avg)
		}
		fmt.Fprintf(stdout, "--- %s ping statistics ---\n%d sent, %d received\nrtt min/avg/max/stddev = %s/%s/%s/%s\n",
			ai.ID, *n, len(rtts), round(minR), round(time.Duration(avg)), round(maxR), round(time.Duration(math.Sqrt(sq/float64(len(rtts))))))
	}
	if err != nil {
		return fmt.Errorf("pinging %s: %w", pos[0], err)
	}
	return nil
}

func round(d time.Duration) time.Duration {
	switch {
	case d > time.Second:
		return d.Round(time.Millisecond)
	case d > time.Millisecond:
		return d.Round(time.Microsecond)
	default:
		return d
	}
}

func cmdID(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("id", flag.ContinueOnError)
	timeout := fl.Duration("timeout", 10*time.Second, "limit for connecting and identify together")
	logLvl := addLogLevel(fl)
	pos, err := parseInterspersed(fl, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("expected one multiaddr, got %d arguments", len(pos))
	}
	h, ai, ctx, cancel, err := dialer(ctx, *timeout, pos[0], logLvl.option(stderr))
	if err != nil {
		return err
	}
	defer h.Close()
	defer cancel()
	res, err := h.IdentifyWait(ctx, ai.ID)
	if err != nil {
		return fmt.Errorf("identify with %s: %w", pos[0], err)
	}
	m := res.Message
	fmt.Fprintf(stdout, "Peer:             %s\n", res.Peer)
	fmt.Fprintf(stdout, "Agent version:    %s\n", m.AgentVersion)
	fmt.Fprintf(stdout, "Protocol version: %s\n", m.ProtocolVersion)
	if c := h.Network().ConnsToPeer(ai.ID); len(c) > 0 {
		st := c[0].ConnState()
		fmt.Fprintf(stdout, "Connection:       %s %s %s via %s\n", st.Transport, st.Security, st.Muxer, c[0].RemoteMultiaddr())
	}
	fmt.Fprintf(stdout, "Signed record:    %v\n", res.Record() != nil)
	fmt.Fprintln(stdout, "Protocols:")
	for _, p := range m.Protocols {
		fmt.Fprintf(stdout, "  %s\n", p)
	}
	// What the peer advertises to us: a tachyon peer tells a peer on its
	// own machine or LAN its loopback or private addresses too, the
	// Internet only the public ones it confirmed (and relay addresses).
	fmt.Fprintln(stdout, "Advertised addresses (as told to us):")
	for _, a := range m.ListenAddrs {
		fmt.Fprintf(stdout, "  %s\n", a)
	}
	if m.ObservedAddr != nil {
		fmt.Fprintf(stdout, "Observed address: %s\n", m.ObservedAddr)
	}
	return nil
}
