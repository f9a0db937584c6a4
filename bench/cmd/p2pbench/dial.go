package main

import (
	"context"
	"fmt"
	"io"
	"time"
)

// setup is one client implementation dialing one server implementation
// with one security protocol.
type setup struct {
	client, server, sec string
}

func (s setup) String() string { return fmt.Sprintf("%s->%s/%s", s.client, s.server, s.sec) }

// serverKey finds a setup's server among the shared ones.
type serverKey struct{ impl, sec string }

// dialWarmup iterations of each setup are run and dropped, so lazy
// initialisation (first key generation, first dial) is not counted.
const dialWarmup = 3

// firstReply measures one new connection: a fresh client host, built
// before the clock starts, dials server, opens an echo stream, writes one
// byte and reads it back. The clock runs from the dial to the reply.
// Both sides connect with Connect and then NewStream, as a user would;
// go-libp2p's NewStream waits for identify to finish on a new connection.
func firstReply(ctx context.Context, su setup, srv endpoint) (time.Duration, error) {
	d, _, err := firstReplyCPU(ctx, su, srv, nil)
	return d, err
}

// firstReplyCPU is firstReply, also returning the process CPU time spent
// while the clock ran (both ends, and whatever else ran in the process).
// With client set, that running host dials instead of a fresh one, and
// drops the connection afterwards (hangUp).
func firstReplyCPU(ctx context.Context, su setup, srv, client endpoint) (time.Duration, time.Duration, error) {
	server := srv.ref()
	c := client
	if c == nil {
		var err error
		if c, err = newHost(su.client, su.sec, false); err != nil {
			return 0, 0, err
		}
		defer c.close()
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()

	cpu0, start := cpuTime(), time.Now()
	if err := c.connect(ctx, server); err != nil {
		return 0, 0, fmt.Errorf("%v: connect: %w", su, err)
	}
	s, err := c.newStream(ctx, server, echoProto)
	if err != nil {
		return 0, 0, fmt.Errorf("%v: new stream: %w", su, err)
	}
	b := []byte{42}
	if _, err := s.Write(b); err != nil {
		return 0, 0, fmt.Errorf("%v: write: %w", su, err)
	}
	if _, err := io.ReadFull(s, b); err != nil {
		return 0, 0, fmt.Errorf("%v: read reply: %w", su, err)
	}
	if su.client == implTachyon && slowTachyon > 0 {
		spin(time.Duration(slowTachyon * float64(time.Since(start)))) // injected regression, see inject.go
	}
	d, cpu := time.Since(start), cpuTime()-cpu0
	s.Close()
	// Close only once identify has finished both ways: tachyon's yamux
	// hangs in SetReadDeadline on a stream whose session has shut down
	// (deadline.stop leaves a stopped timer that set then waits on), and
	// closing mid-identify triggers that. Not timed.
	waitIdentified(ctx, c, srv)
	if client != nil {
		if err := hangUp(ctx, c, srv); err != nil {
			return 0, 0, fmt.Errorf("%v: %w", su, err)
		}
	}
	return d, cpu, nil
}

// hangUp closes c's connections to srv and waits until srv has dropped
// its side too, so that the next connection of a running client host is
// new at both ends (identify runs again). Not timed.
func hangUp(ctx context.Context, c, srv endpoint) error {
	if err := c.disconnect(srv.ref()); err != nil {
		return fmt.Errorf("hanging up: %w", err)
	}
	for srv.connectedTo(c.ref()) || c.connectedTo(srv.ref()) {
		if ctx.Err() != nil {
			return fmt.Errorf("hanging up: %w", ctx.Err())
		}
		time.Sleep(200 * time.Microsecond)
	}
	return nil
}

// waitIdentified returns once identify has finished both ways between a
// and b (errors are ctx's, or the connection's end, which the caller's
// next step reports).
func waitIdentified(ctx context.Context, a, b endpoint) {
	a.waitIdentified(ctx, b.ref())
	b.waitIdentified(ctx, a.ref())
}

// runDials measures n first replies for every setup. The setups take
// turns in rounds, so that load from other users of the machine falls on
// all of them alike rather than on whichever ran at the wrong moment.
func runDials(ctx context.Context, servers map[serverKey]endpoint, https map[string]*httpServer, setups []setup, n, rounds int) (map[setup][]time.Duration, error) {
	out := make(map[setup][]time.Duration)
	run := func(su setup, k int, keep bool) error {
		srv := servers[serverKey{su.server, su.sec}]
		for range k {
			var d time.Duration
			var err error
			if su.sec == httpSec {
				d, err = https[su.server].firstReply(ctx)
			} else {
				d, err = firstReply(ctx, su, srv)
			}
			if err != nil {
				return err
			}
			if keep {
				out[su] = append(out[su], d)
			}
		}
		return nil
	}
	for _, su := range setups {
		if err := run(su, dialWarmup, false); err != nil {
			return nil, err
		}
	}
	for r := range rounds {
		// Spread n over the rounds; the first rounds take the remainder.
		k := n / rounds
		if r < n%rounds {
			k++
		}
		for _, su := range setups {
			if err := run(su, k, true); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
