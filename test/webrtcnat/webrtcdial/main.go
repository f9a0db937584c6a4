// Command webrtcdial is the dialer of the test/webrtcnat testbed test: it
// dials one /webrtc (or /webrtc-direct) address with a fresh tachyon host
// and prints one JSON line of timings, then exits (status 1 on failure).
// No tachyon subcommand does this: `tachyon rtt` and `tachyon ping` have no
// STUN servers for /webrtc and do not say when the relayed connection came
// up.
//
//	webrtcdial [--stun stun:HOST:PORT]... [--relay MADDR] [--bytes N] [--timeout D] TARGET
//
// For a /webrtc TARGET (<relay>/p2p-circuit/webrtc/p2p/<peer>) the clock
// starts when the dial starts; the line gives when the relayed connection
// (the signalling's) opened, when the direct WebRTC connection opened, and
// when the first byte echoed over it came back (the peer serves `tachyon
// node --echo`). --relay connects to (and identifies with) the relay
// before the clock starts, as a browser holding a reservation would have.
// With --bytes N it then downloads N bytes with perf (`tachyon node
// --perf`) on one stream over the direct connection. If the dial fails, it
// pings the peer over the relayed connection, without dialing, and says
// whether that worked.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/event"
	"github.com/tachyon-p2p/tachyon/protocol/perf"
	"github.com/tachyon-p2p/tachyon/swarm"
)

// echoProtocol is what `tachyon node --echo` serves.
const echoProtocol protocol.ID = "/tachyon-test/echo/1.0.0"

// Line is the JSON line printed. Times are milliseconds from the start of
// the dial.
type Line struct {
	Event string `json:"event"` // "webrtcdial"
	OK    bool   `json:"ok"`
	Self  string `json:"self"`
	// RelayMillis is the connection to --relay and its identify, before
	// the clock starts.
	RelayMillis   float64 `json:"relayMillis,omitempty"`
	RelayedMillis float64 `json:"relayedMillis,omitempty"` // 0: no relayed connection
	DirectMillis  float64 `json:"directMillis,omitempty"`
	// StreamMillis is when the echo stream was open (its data channel
	// usable), WrittenMillis when its byte was written.
	StreamMillis  float64 `json:"streamMillis,omitempty"`
	WrittenMillis float64 `json:"writtenMillis,omitempty"`
	ReplyMillis   float64 `json:"replyMillis,omitempty"`
	Transport     string  `json:"transport,omitempty"` // of the direct connection
	Remote        string  `json:"remote,omitempty"`
	Local         string  `json:"local,omitempty"`
	// PerfBytes were downloaded in PerfSeconds over one stream.
	PerfBytes   uint64  `json:"perfBytes,omitempty"`
	PerfSeconds float64 `json:"perfSeconds,omitempty"`
	// RelayedFallback: after a failed dial, a ping over the relayed
	// connection (no new dial) succeeded.
	RelayedFallback bool    `json:"relayedFallback,omitempty"`
	FallbackMillis  float64 `json:"fallbackMillis,omitempty"`
	FailedMillis    float64 `json:"failedMillis,omitempty"`
	Error           string  `json:"error,omitempty"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "webrtcdial:", err)
		os.Exit(1)
	}
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("webrtcdial", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var stun multiFlag
	fl.Var(&stun, "stun", "STUN server `URL` for /webrtc (repeatable)")
	relayAddr := fl.String("relay", "", "relay `MADDR` to connect to before the clock starts")
	bytes := fl.Uint64("bytes", 0, "download `N` bytes with perf over the direct connection")
	timeout := fl.Duration("timeout", time.Minute, "limit for the whole run")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() != 1 {
		return fmt.Errorf("want one target multiaddr, got %d arguments", fl.NArg())
	}
	target, err := ma.NewMultiaddr(fl.Arg(0))
	if err != nil {
		return fmt.Errorf("target %q: %w", fl.Arg(0), err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(target)
	if err != nil {
		return fmt.Errorf("target %q: %w", fl.Arg(0), err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	line := Line{Event: "webrtcdial"}
	print := func(err error) error {
		line.OK = err == nil
		if err != nil {
			line.Error = strings.ReplaceAll(err.Error(), "\n", " ")
		}
		b, _ := json.Marshal(line)
		stdout.Write(append(b, '\n'))
		return err
	}
	opts := []tachyon.Option{tachyon.NoHolePunching(), tachyon.NoAutoNAT(), tachyon.DialTimeout(*timeout)}
	if len(stun) > 0 {
		opts = append(opts, tachyon.WebRTCSTUNServers(stun...))
	}
	h, err := tachyon.New(opts...)
	if err != nil {
		return print(fmt.Errorf("starting the host: %w", err))
	}
	defer h.Close()
	line.Self = h.ID().String()
	w := watch(h, ai.ID)
	defer w.stop()

	if *relayAddr != "" {
		ra, err := ma.NewMultiaddr(*relayAddr)
		if err != nil {
			return print(fmt.Errorf("--relay %q: %w", *relayAddr, err))
		}
		r, err := peer.AddrInfoFromP2pAddr(ra)
		if err != nil {
			return print(fmt.Errorf("--relay %q: %w", *relayAddr, err))
		}
		t0 := time.Now()
		if err := h.Connect(ctx, *r); err != nil {
			return print(fmt.Errorf("connecting to the relay %s: %w", r.ID, err))
		}
		if _, err := h.IdentifyWait(ctx, r.ID); err != nil {
			return print(fmt.Errorf("identify of the relay %s: %w", r.ID, err))
		}
		line.RelayMillis = ms(time.Since(t0))
	}

	start := time.Now()
	err = h.Connect(ctx, *ai)
	if c, ok := w.relayedConn(); ok {
		line.RelayedMillis = ms(c.Opened.Sub(start))
	}
	if err != nil {
		line.FailedMillis = ms(time.Since(start))
		err = fmt.Errorf("dialing %s: %w", target, err)
		if line.RelayedMillis > 0 {
			t1 := time.Now()
			line.RelayedFallback = pingRelayed(ctx, h, ai.ID) == nil
			line.FallbackMillis = ms(time.Since(t1))
		}
		return print(err)
	}
	direct, ok := w.directConn()
	if !ok {
		return print(fmt.Errorf("connected to %s, but over no direct connection", ai.ID))
	}
	line.DirectMillis = ms(direct.Opened.Sub(start))
	line.Transport = direct.State.Transport
	line.Remote = direct.RemoteAddr.String()
	line.Local = direct.LocalAddr.String()

	s, err := h.NewStream(ctx, ai.ID, echoProtocol)
	if err != nil {
		return print(fmt.Errorf("echo: opening a stream: %w", err))
	}
	line.StreamMillis = ms(time.Since(start))
	stopReset := context.AfterFunc(ctx, func() { s.Reset() })
	defer stopReset()
	if swarm.IsRelayAddr(s.Conn().RemoteMultiaddr()) {
		s.Reset()
		return print(errors.New("echo: the stream went over the relayed connection"))
	}
	if _, err := s.Write([]byte{0x2a}); err != nil {
		return print(fmt.Errorf("echo: write: %w", err))
	}
	line.WrittenMillis = ms(time.Since(start))
	var b [1]byte
	if _, err := io.ReadFull(s, b[:]); err != nil {
		return print(fmt.Errorf("echo: read: %w", err))
	}
	line.ReplyMillis = ms(time.Since(start))
	s.CloseWrite()
	io.Copy(io.Discard, s)
	s.Close()

	if *bytes > 0 {
		ps, err := h.NewStream(ctx, ai.ID, perf.ID)
		if err != nil {
			return print(fmt.Errorf("perf: opening a stream: %w", err))
		}
		if swarm.IsRelayAddr(ps.Conn().RemoteMultiaddr()) {
			ps.Reset()
			return print(errors.New("perf: the stream went over the relayed connection"))
		}
		res, err := perf.Run(ctx, ps, 0, *bytes, nil)
		if err != nil {
			return print(fmt.Errorf("perf: downloading %d bytes: %w", *bytes, err))
		}
		line.PerfBytes = res.Download
		line.PerfSeconds = res.DownloadTime.Seconds()
	}
	return print(nil)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// pingRelayed pings p over a connection we have, relayed ones included,
// without dialing: p's only known address is the /webrtc one that failed.
func pingRelayed(ctx context.Context, h *tachyon.Host, p peer.ID) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ctx = network.WithNoDial(network.WithAllowLimitedConn(ctx, "fallback"), "fallback")
	return h.Ping(ctx, p, 1, 0, 10*time.Second, nil)
}

// watcher records the first relayed and the first direct connection to a
// peer, from the host's events.
type watcher struct {
	p               peer.ID
	sub             *event.Subscription
	relayed, direct *event.ConnInfo
}

func watch(h *tachyon.Host, p peer.ID) *watcher {
	return &watcher{p: p, sub: h.EventBus().Subscribe(64, event.EvtConnOpened{})}
}

func (w *watcher) stop() { w.sub.Close() }

// collect reads the events buffered so far, and waits up to grace for
// more while want is not met. The host emits a connection's event before
// Connect returns the connection, so after Connect they are buffered.
func (w *watcher) collect(grace time.Duration, want func() bool) {
	t := time.NewTimer(grace)
	defer t.Stop()
	for {
		var ev any
		select {
		case ev = <-w.sub.Out():
		default:
			if want() {
				return
			}
			select {
			case ev = <-w.sub.Out():
			case <-t.C:
				return
			}
		}
		if ev == nil {
			return // closed
		}
		e, isOpen := ev.(event.EvtConnOpened)
		if !isOpen || e.Conn.Peer != w.p {
			continue
		}
		c := e.Conn
		if swarm.IsRelayAddr(c.RemoteAddr) {
			if w.relayed == nil {
				w.relayed = &c
			}
		} else if w.direct == nil {
			w.direct = &c
		}
	}
}

// relayedConn is the first relayed connection, if any (none for a
// /webrtc-direct target: no waiting).
func (w *watcher) relayedConn() (event.ConnInfo, bool) {
	w.collect(0, func() bool { return true })
	if w.relayed == nil {
		return event.ConnInfo{}, false
	}
	return *w.relayed, true
}

// directConn is the first direct connection, waited for briefly.
func (w *watcher) directConn() (event.ConnInfo, bool) {
	w.collect(time.Second, func() bool { return w.direct != nil })
	if w.direct == nil {
		return event.ConnInfo{}, false
	}
	return *w.direct, true
}
