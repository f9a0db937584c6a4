package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
)

// dialTimeOutput is the JSON line of dial-time, the shape `tachyon dial`
// prints, so that test/dialing reads both alike.
type dialTimeOutput struct {
	Event string        `json:"event"`
	OK    bool          `json:"ok"`
	Peer  string        `json:"peer"`
	Runs  []dialTimeRun `json:"runs"`
	Error string        `json:"error,omitempty"`
}

// dialTimeRun is one fresh host's dial. go-libp2p does not tell which
// addresses it dialed: DialsStarted is -1 (the test counts them on the
// wire) and Attempts is empty.
type dialTimeRun struct {
	ConnectMillis float64    `json:"connectMillis"`
	DialsStarted  int        `json:"dialsStarted"`
	Addr          string     `json:"addr"`
	Probes        int        `json:"probes"`
	Attempts      []struct{} `json:"attempts"`
}

// cmdDialTime dials one peer n times, each time from a new default
// go-libp2p host (default transports, ranker and black-hole detectors,
// relay client), and prints how long each took to connect.
func cmdDialTime(args []string) int {
	fs := flag.NewFlagSet("dial-time", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	n := fs.Int("n", 1, "dials, each from a new host")
	timeout := fs.Duration("timeout", 30*time.Second, "limit for each dial")
	if err := fs.Parse(args); err != nil {
		return fail(usagef("dial-time: %v", err))
	}
	if *n < 1 || *timeout <= 0 {
		return fail(usagef("dial-time: -n must be >= 1 and -timeout > 0"))
	}
	ai, err := dialTimeTarget(fs.Args())
	if err != nil {
		return fail(err)
	}
	out := dialTimeOutput{Event: "dial", OK: true, Peer: ai.ID.String(), Runs: []dialTimeRun{}}
	for i := 0; i < *n; i++ {
		r, err := dialTimeOnce(*ai, *timeout)
		if err != nil {
			out.OK = false
			out.Error = fmt.Sprintf("dial %d of %d: %v", i+1, *n, err)
			log.Print(out.Error)
			emit(out)
			return exitFail
		}
		out.Runs = append(out.Runs, r)
	}
	emit(out)
	return exitOK
}

// dialTimeTarget turns MADDR/p2p/ID arguments into one peer's addresses;
// every one must name the same peer.
func dialTimeTarget(args []string) (*peer.AddrInfo, error) {
	if len(args) == 0 {
		return nil, usagef("dial-time: want at least one MADDR/p2p/ID")
	}
	var ai peer.AddrInfo
	for _, s := range args {
		t, err := parseTarget(s)
		if err != nil {
			return nil, err
		}
		if ai.ID != "" && t.ID != ai.ID {
			return nil, usagef("dial-time: %q names peer %s, the others %s", s, t.ID, ai.ID)
		}
		ai.ID = t.ID
		ai.Addrs = append(ai.Addrs, t.Addrs...)
	}
	return &ai, nil
}

// dialTimeOnce starts a new default host, dials the peer and closes the
// host. The time is DialPeer's: until the connection is up, as tachyon's
// Connect measures it (go's Host.Connect waits for identify too, one more
// round trip). Relayed (limited) connections count.
func dialTimeOnce(ai peer.AddrInfo, timeout time.Duration) (dialTimeRun, error) {
	// NoListenAddrs turns the relay transport off unless asked for; a
	// listening default host has it.
	h, err := libp2p.New(libp2p.NoListenAddrs, libp2p.EnableRelay(), libp2p.UserAgent(AgentVersion), libp2p.DisableMetrics())
	if err != nil {
		return dialTimeRun{}, fmt.Errorf("starting a go-libp2p host: %w", err)
	}
	defer closeHost(h)
	h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.TempAddrTTL)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	c, err := h.Network().DialPeer(network.WithAllowLimitedConn(ctx, "dial-time"), ai.ID)
	took := time.Since(start)
	if err != nil {
		return dialTimeRun{}, fmt.Errorf("dialing %s after %s: %w", ai.ID, took.Round(time.Millisecond), err)
	}
	return dialTimeRun{
		ConnectMillis: millis(took),
		DialsStarted:  -1,
		Addr:          stripP2P(c.RemoteMultiaddr()).String(),
		Attempts:      []struct{}{},
	}, nil
}

// stripP2P drops a trailing /p2p/ID, which relayed connections' remote
// addresses may carry.
func stripP2P(a ma.Multiaddr) ma.Multiaddr {
	if n := len(a); n > 0 && a[n-1].Code() == ma.P_P2P {
		return a[:n-1]
	}
	return a
}
