package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
)

type rttResult struct {
	Event  string    `json:"event"`
	OK     bool      `json:"ok"`
	Millis []float64 `json:"millis"`
}

func cmdRTT(args []string) int {
	var c stackConfig
	fs := newFlagSet("rtt", &c)
	count := fs.Int("count", 10, "number of iterations, each with a new host")
	timeout := fs.Duration("timeout", 30*time.Second, "limit for each iteration")
	pos, err := parseArgs(fs, args, 1)
	if err != nil {
		return fail(err)
	}
	if err := checkStack(&c); err != nil {
		return fail(err)
	}
	if *count < 1 || *timeout <= 0 {
		return fail(usagef("--count must be >= 1, --timeout > 0"))
	}
	ai, err := parseTarget(pos[0])
	if err != nil {
		return fail(err)
	}
	res := rttResult{Event: "rtt", OK: true, Millis: make([]float64, 0, *count)}
	for i := 0; i < *count; i++ {
		d, err := rttOnce(&c, ai, *timeout)
		if err != nil {
			return fail(fmt.Errorf("iteration %d: %w", i+1, err))
		}
		res.Millis = append(res.Millis, millis(d))
	}
	emit(res)
	return exitOK
}

// rttOnce starts a fresh host and measures from the start of the dial
// (host.NewStream on the echo protocol, which dials, upgrades, waits for
// identify and negotiates the protocol) until one echoed byte is read back.
func rttOnce(c *stackConfig, ai *peer.AddrInfo, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cc := *c
	cc.KeySeed = "" // every iteration is a new peer
	h, err := newHost(&cc)
	if err != nil {
		return 0, fmt.Errorf("start host: %w", err)
	}
	defer closeHost(h)
	h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.TempAddrTTL)

	start := time.Now()
	s, err := h.NewStream(ctx, ai.ID, EchoProtocol)
	if err != nil {
		return 0, fmt.Errorf("open stream: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	if _, err := s.Write([]byte{0x2a}); err != nil {
		return 0, fmt.Errorf("write: %w", err)
	}
	var b [1]byte
	if _, err := io.ReadFull(s, b[:]); err != nil {
		return 0, fmt.Errorf("read: %w", err)
	}
	elapsed := time.Since(start)
	if b[0] != 0x2a {
		return 0, fmt.Errorf("echoed byte %#x, want 0x2a", b[0])
	}
	// Finish the exchange cleanly so the listener's handler sees EOF.
	if err := s.CloseWrite(); err != nil {
		return 0, fmt.Errorf("close write: %w", err)
	}
	if _, err := io.Copy(io.Discard, s); err != nil {
		return 0, fmt.Errorf("drain: %w", err)
	}
	_ = s.Close()
	return elapsed, nil
}
