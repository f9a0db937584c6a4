// Package ping implements the libp2p ping protocol, /ipfs/ping/1.0.0
// (specs ping/ping.md).
//
// The dialer writes Size random bytes and the listener echoes them; the
// dialer times the round trip and may repeat on the same stream. When done,
// the dialer half-closes, and the listener finishes its echo and closes.
//
// Handle is the listener's stream handler for one stream, and Listener
// wraps it with the spec's limit of two inbound streams per peer. Once sends
// a single ping over a negotiated stream; Run sends a series of them from
// its own goroutine. Keeping one outbound ping stream per peer is the
// host's job.
package ping

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
)

// ID is the protocol id of ping.
const ID protocol.ID = "/ipfs/ping/1.0.0"

// Size is the length of a ping payload.
const Size = 32

const (
	// IdleTimeout is how long Handle waits for the next ping (and for its
	// echo to be written) before it gives up on the stream. The spec sets
	// no limit; go-libp2p's listener allows 60 s, so a peer pinging that
	// rarely must not lose its stream to us.
	IdleTimeout = 60 * time.Second
	// Timeout is how long Run allows each ping.
	Timeout = 10 * time.Second
)

// ErrMismatch means the peer echoed bytes other than the ones sent.
var ErrMismatch = errors.New("ping: echo does not match the payload")

// Stream is what ping needs from a negotiated stream. network.Stream,
// network.MuxedStream and net.Conn all satisfy it.
type Stream interface {
	io.ReadWriter
	SetDeadline(t time.Time) error
}

// Handle answers pings on s until the dialer half-closes it, then closes s.
// It resets s if the dialer stops mid-ping, sends nothing for IdleTimeout,
// or the stream fails. It returns when s is done.
func Handle(s network.Stream) {
	if err := serve(s, IdleTimeout); err != nil {
		s.Reset()
		return
	}
	s.Close()
}

// MaxInbound is how many ping streams a Listener serves at once per peer
// (specs ping/ping.md: the listener SHOULD accept at most two).
const MaxInbound = 2

// Listener serves inbound ping streams with Handle, at most MaxInbound per
// peer. When a peer opens one more, the oldest is reset rather than the new
// one refused: a dialer that opens a stream per ping (js-libp2p) may open
// the next before its close of the previous one reaches us, and a dialer
// replacing a broken stream (rust) is using the newest. The zero value is
// ready to use; one Listener serves one host.
type Listener struct {
	mu    sync.Mutex
	peers map[peer.ID][]*inbound // per peer, oldest first
}

// inbound is one stream a Listener serves; a pointer identifies it, as
// stream values need not be comparable.
type inbound struct{ s network.Stream }

// Handle serves s like the package's Handle, after resetting the peer's
// oldest ping stream if s is one too many.
func (l *Listener) Handle(s network.Stream) {
	in, p := &inbound{s}, s.RemotePeer()
	l.mu.Lock()
	if l.peers == nil {
		l.peers = make(map[peer.ID][]*inbound)
	}
	open := append(l.peers[p], in)
	var oldest *inbound
	if len(open) > MaxInbound {
		oldest = open[0]
		open = slices.Delete(open, 0, 1)
	}
	l.peers[p] = open
	l.mu.Unlock()
	if oldest != nil {
		// Its handler sees the reset as a failed read and returns.
		oldest.s.Reset()
	}
	defer l.remove(p, in)
	Handle(s)
}

func (l *Listener) remove(p peer.ID, in *inbound) {
	l.mu.Lock()
	defer l.mu.Unlock()
	open := slices.DeleteFunc(l.peers[p], func(x *inbound) bool { return x == in })
	if len(open) == 0 {
		delete(l.peers, p)
	} else {
		l.peers[p] = open
	}
}

// serve echoes pings until a clean end of stream, which is not an error.
func serve(s Stream, idle time.Duration) error {
	var buf [Size]byte
	for {
		// Some streams refuse deadlines once the peer has closed (net.Pipe
		// does); the read below then ends at once, so go on regardless.
		_ = s.SetDeadline(time.Now().Add(idle))
		if _, err := io.ReadFull(s, buf[:]); err != nil {
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("ping: reading a ping: %w", err)
		}
		if _, err := s.Write(buf[:]); err != nil {
			return fmt.Errorf("ping: writing the echo: %w", err)
		}
	}
}

// Once sends one ping over s and returns the round-trip time, measured from
// just before the write to the end of the echo. It fails with ErrMismatch
// if the echo differs.
//
// When ctx ends during the ping, Once moves s's deadline into the past to
// unblock and returns an error wrapping ctx.Err(); the stream is then out of
// step with its peer and should be reset. Otherwise Once leaves the
// deadline alone, so one set by the caller applies too.
func Once(ctx context.Context, s Stream) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("ping: %w", err)
	}
	var buf [2 * Size]byte
	sent, got := buf[:Size], buf[Size:]
	rand.Read(sent) // never fails

	stop := context.AfterFunc(ctx, func() { s.SetDeadline(time.Unix(1, 0)) })
	rtt, err := roundTrip(s, sent, got)
	if !stop() {
		// ctx ended during the ping: whatever happened, its deadline is
		// now landing on s.
		return 0, fmt.Errorf("ping: %w", ctx.Err())
	}
	return rtt, err
}

// Tracer is told the outcome of pings sent with OnceTraced: the round trip
// when err is nil. It must not block.
type Tracer interface {
	Ping(rtt time.Duration, err error)
}

// OnceTraced is Once, telling t (when not nil) the outcome.
func OnceTraced(ctx context.Context, s Stream, t Tracer) (time.Duration, error) {
	rtt, err := Once(ctx, s)
	if t != nil {
		t.Ping(rtt, err)
	}
	return rtt, err
}

func roundTrip(s Stream, sent, got []byte) (time.Duration, error) {
	start := time.Now()
	if _, err := s.Write(sent); err != nil {
		return 0, fmt.Errorf("ping: sending: %w", err)
	}
	if _, err := io.ReadFull(s, got); err != nil {
		return 0, fmt.Errorf("ping: reading the echo: %w", err)
	}
	rtt := time.Since(start)
	if !bytes.Equal(sent, got) {
		return 0, ErrMismatch
	}
	return rtt, nil
}

// Result is the outcome of one ping sent by Run.
type Result struct {
	RTT time.Duration
	Err error
}

// Run sends count pings over s (forever if count <= 0), one every interval,
// each allowed Timeout, and reports each on the returned channel. A failed
// ping is reported and ends the run. The channel is closed when the run
// ends; once ctx is done, Run stops reporting and ends promptly.
//
// Run takes over s: its goroutine closes s when the pings are done or ctx
// ends between pings, and resets it when a ping fails or is interrupted.
// Read the channel until it closes, or cancel ctx; either lets the
// goroutine exit.
func Run(ctx context.Context, s network.MuxedStream, count int, interval time.Duration) <-chan Result {
	out := make(chan Result, 1)
	go func() {
		defer close(out)
		if err := run(ctx, s, count, interval, out); err != nil {
			s.Reset()
			return
		}
		s.Close()
	}()
	return out
}

// run sends the pings. It returns an error when s should be reset.
func run(ctx context.Context, s Stream, count int, interval time.Duration, out chan<- Result) error {
	var tick *time.Ticker
	if interval > 0 {
		tick = time.NewTicker(interval)
		defer tick.Stop()
	}
	for i := 0; count <= 0 || i < count; i++ {
		if i > 0 && tick != nil {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return nil // between pings: a clean end
			}
		}
		pctx, cancel := context.WithTimeout(ctx, Timeout)
		rtt, err := Once(pctx, s)
		cancel()
		if ctx.Err() != nil {
			return err // reset only if the ping was cut short
		}
		select {
		case out <- Result{RTT: rtt, Err: err}:
		case <-ctx.Done():
			return err
		}
		if err != nil {
			return err
		}
	}
	return nil
}
