package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/core/peer"
)

// rttLine is what "tachyon rtt" prints, the same shape as the go-libp2p
// interop peer's rtt subcommand.
type rttLine struct {
	Event  string    `json:"event"`
	OK     bool      `json:"ok"`
	Millis []float64 `json:"millis,omitempty"`
	Error  string    `json:"error,omitempty"`
}

// cmdRTT measures, N times with a new host each time, dial + a new stream
// on the echo protocol + one byte written and read back.
func cmdRTT(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("rtt", flag.ContinueOnError)
	n := fl.Int("n", 10, "`N` iterations, each with a new host")
	timeout := fl.Duration("timeout", 30*time.Second, "limit for each iteration")
	security := fl.String("security", "", "noise or tls: offer only that one (default: both, TLS first)")
	verbose := fl.Bool("v", false, "print each iteration's steps (connected, stream, written, echoed) to stderr")
	logLvl := addLogLevel(fl)
	pos, err := parseInterspersed(fl, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("expected one multiaddr, got %d arguments", len(pos))
	}
	if *n < 1 || *timeout <= 0 {
		return usagef("-n must be at least 1 and -timeout positive")
	}
	ai, err := target(pos[0])
	if err != nil {
		return usageError{error: err}
	}
	if ai.Addrs, err = resolveAddrs(ctx, ai.Addrs); err != nil {
		return err
	}
	r := rttRun{ai: ai, shown: pos[0], timeout: *timeout, opts: []tachyon.Option{logLvl.option(stderr)}}
	if sec, err := securityOption(*security); err != nil {
		return err
	} else if sec != nil {
		r.opts = append(r.opts, sec)
	}
	if *verbose { // each iteration's steps on stderr
		r.trace = stderr
	}
	res := rttLine{Event: "rtt", OK: true, Millis: make([]float64, 0, *n)}
	for i := 0; i < *n; i++ {
		d, err := r.once(ctx)
		if err != nil {
			err = fmt.Errorf("iteration %d: %w", i+1, err)
			printRTT(stdout, rttLine{Event: "rtt", OK: false, Error: err.Error()})
			return err
		}
		res.Millis = append(res.Millis, ms(d))
	}
	printRTT(stdout, res)
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func printRTT(w io.Writer, l rttLine) {
	b, _ := json.Marshal(l)
	w.Write(append(b, '\n'))
}

// rttRun is one rtt command's target and settings.
type rttRun struct {
	ai      peer.AddrInfo // resolved
	shown   string        // as given
	timeout time.Duration
	opts    []tachyon.Option // logging, security
	trace   io.Writer        // nil: no -v
}

// once makes a fresh host (new identity, no listeners) and times Connect +
// NewStream + 1 byte out + 1 byte back.
func (r *rttRun) once(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	h, err := tachyon.New(append([]tachyon.Option{tachyon.DialTimeout(r.timeout)}, r.opts...)...)
	if err != nil {
		return 0, fmt.Errorf("start host: %w", err)
	}
	defer h.Close()
	ai, trace := r.ai, r.trace

	start := time.Now()
	if err := h.Connect(ctx, ai); err != nil {
		return 0, explainDial(dialTarget{shown: r.shown, info: ai, elapsed: time.Since(start)}, err)
	}
	connected := time.Since(start)
	s, err := h.NewStream(ctx, ai.ID, echoProtocol)
	if err != nil {
		return 0, notServed(fmt.Errorf("open stream: %w", err), echoProtocol, "--echo")
	}
	opened := time.Since(start)
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	if _, err := s.Write([]byte{0x2a}); err != nil {
		return 0, fmt.Errorf("write: %w", err)
	}
	written := time.Since(start)
	var b [1]byte
	if _, err := io.ReadFull(s, b[:]); err != nil {
		return 0, notServed(fmt.Errorf("read: %w", err), echoProtocol, "--echo")
	}
	elapsed := time.Since(start)
	if trace != nil {
		fmt.Fprintf(trace, "rtt: connect %.1f ms, stream %.1f ms, write %.1f ms, echo %.1f ms\n",
			ms(connected), ms(opened), ms(written), ms(elapsed))
	}
	if b[0] != 0x2a {
		return 0, fmt.Errorf("echoed byte %#x, want 0x2a", b[0])
	}
	// Let the listener's handler see EOF before the host goes away.
	s.CloseWrite()
	io.Copy(io.Discard, s)
	s.Close()
	return elapsed, nil
}
