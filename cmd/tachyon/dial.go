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

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/dialrank"
)

// dialLine is what "tachyon dial" prints: one JSON line for all runs.
type dialLine struct {
	Event string    `json:"event"`
	OK    bool      `json:"ok"`
	Peer  string    `json:"peer"`
	Runs  []dialRun `json:"runs"`
	Error string    `json:"error,omitempty"`
}

// dialRun is one Connect: how long it took, and every attempt the dialer
// started, from its trace.
type dialRun struct {
	Peer          string        `json:"peer"`
	ConnectMillis float64       `json:"connectMillis"`
	DialsStarted  int           `json:"dialsStarted"`
	Addr          string        `json:"addr,omitempty"` // the address that connected
	Probes        int           `json:"probes"`         // black-hole probes among the attempts
	Attempts      []dialAttempt `json:"attempts"`
	Skipped       []dialSkip    `json:"skipped,omitempty"`
	Trace         string        `json:"trace"` // the trace as text
}

type dialAttempt struct {
	Addr        string  `json:"addr"`
	Transport   string  `json:"transport"`
	StartMillis float64 `json:"startMillis"`
	TookMillis  float64 `json:"tookMillis"`
	Outcome     string  `json:"outcome"`
	Probe       bool    `json:"probe"`
}

type dialSkip struct {
	Addr   string `json:"addr"`
	Reason string `json:"reason"`
}

// cmdDial times Connect to a peer given all its addresses, with a new host
// each time (or one host throughout, which keeps what the dialer learned:
// RTTs, black holes, back-offs, and may then dial several peers in turn:
// the black-hole detector wants evidence from more than one peer), and
// reports every attempt.
func cmdDial(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("dial", flag.ContinueOnError)
	n := fl.Int("n", 1, "`N` connects")
	timeout := fl.Duration("timeout", 30*time.Second, "limit for each connect")
	sameHost := fl.Bool("same-host", false, "one host for all connects, closing the connection in between (the dialer keeps what it learned)")
	verbose := fl.Bool("v", false, "print each dial's trace to stderr")
	logLvl := addLogLevel(fl)
	pos, err := parseInterspersed(fl, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("expected the peer's multiaddrs, each ending in /p2p/<peer id>")
	}
	if *n < 1 || *timeout <= 0 {
		return usagef("-n must be at least 1 and -timeout positive")
	}
	// The peers, in the order first named, each with its addresses.
	var peers []peer.AddrInfo
	for _, s := range pos {
		one, err := target(s)
		if err != nil {
			return usageError{error: err}
		}
		i := slices.IndexFunc(peers, func(ai peer.AddrInfo) bool { return ai.ID == one.ID })
		if i < 0 {
			peers = append(peers, peer.AddrInfo{ID: one.ID})
			i = len(peers) - 1
		}
		peers[i].Addrs = append(peers[i].Addrs, one.Addrs...)
	}
	if len(peers) > 1 && !*sameHost {
		return usagef("several peers need -same-host (they are dialed in turn by one host)")
	}
	d := connectTimer{peers: peers, shown: pos[0], timeout: *timeout, logOpt: logLvl.option(stderr)}
	res := dialLine{Event: "dial", OK: true, Peer: peers[0].ID.String()}
	if *sameHost {
		err = d.sameHost(ctx, *n, &res, stderr, *verbose)
	} else {
		for i := 0; i < *n && err == nil; i++ {
			err = d.fresh(ctx, &res, stderr, *verbose)
		}
	}
	if err != nil {
		res.OK, res.Error = false, err.Error()
	}
	b, _ := json.Marshal(res)
	stdout.Write(append(b, '\n'))
	return err
}

type connectTimer struct {
	peers   []peer.AddrInfo // -same-host connects to each in turn
	shown   string          // the peer as given, for errors
	timeout time.Duration
	logOpt  tachyon.Option
}

// traces collects a host's dial traces.
type traces struct {
	mu   sync.Mutex
	list []*dialrank.Trace
}

func (t *traces) add(tr *dialrank.Trace) {
	t.mu.Lock()
	t.list = append(t.list, tr)
	t.mu.Unlock()
}

func (t *traces) take() []*dialrank.Trace {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.list
	t.list = nil
	return l
}

func (d *connectTimer) host(tr *traces) (*tachyon.Host, error) {
	h, err := tachyon.New(tachyon.DialTimeout(d.timeout), tachyon.DialTrace(tr.add), d.logOpt)
	if err != nil {
		return nil, fmt.Errorf("start host: %w", err)
	}
	return h, nil
}

func (d *connectTimer) fresh(ctx context.Context, res *dialLine, stderr io.Writer, verbose bool) error {
	tr := &traces{}
	h, err := d.host(tr)
	if err != nil {
		return err
	}
	defer h.Close()
	return d.connect(ctx, h, d.peers[0], tr, res, stderr, verbose)
}

func (d *connectTimer) sameHost(ctx context.Context, n int, res *dialLine, stderr io.Writer, verbose bool) error {
	tr := &traces{}
	h, err := d.host(tr)
	if err != nil {
		return err
	}
	defer h.Close()
	for i := 0; i < n; i++ {
		ai := d.peers[i%len(d.peers)]
		if err := d.connect(ctx, h, ai, tr, res, stderr, verbose); err != nil {
			return fmt.Errorf("connect %d: %w", i+1, err)
		}
		h.ClosePeer(ai.ID)
		for h.Connectedness(ai.ID) == network.Connected {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	return nil
}

// connect times one Connect and records its trace.
func (d *connectTimer) connect(ctx context.Context, h *tachyon.Host, ai peer.AddrInfo, tr *traces, res *dialLine, stderr io.Writer, verbose bool) error {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	start := time.Now()
	err := h.Connect(ctx, ai)
	took := time.Since(start)
	list := tr.take()
	if verbose {
		for _, t := range list {
			fmt.Fprintln(stderr, t)
		}
	}
	if err != nil {
		return explainDial(dialTarget{shown: d.shown, info: ai, elapsed: took}, err)
	}
	run := dialRun{Peer: ai.ID.String(), ConnectMillis: ms(took), Attempts: []dialAttempt{}}
	for _, t := range list {
		if t.Peer != ai.ID {
			continue
		}
		for _, a := range t.Attempts {
			run.Attempts = append(run.Attempts, dialAttempt{
				Addr: a.Dial.Addr.String(), Transport: a.Dial.Transport.String(),
				StartMillis: ms(a.Start.Sub(t.Begin)), TookMillis: ms(a.Took()),
				Outcome: a.Outcome.String(), Probe: a.Dial.Probe,
			})
			if a.Dial.Probe {
				run.Probes++
			}
		}
		for _, s := range t.Ranking.Skipped {
			run.Skipped = append(run.Skipped, dialSkip{Addr: s.Addr.String(), Reason: s.Detail})
		}
		if w := t.Winner(); w != nil {
			run.Addr = w.Dial.Addr.String()
		}
		run.Trace += t.String()
	}
	run.DialsStarted = len(run.Attempts)
	if run.Addr == "" {
		return errors.New("connected, but no dial of this host connected (the peer dialed us?)")
	}
	res.Runs = append(res.Runs, run)
	return nil
}
