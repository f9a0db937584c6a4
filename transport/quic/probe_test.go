package quic

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// scriptedConn answers runProbe's sends and reads from scripts; past its
// script a send succeeds and a read times out at once (the fake has no
// clock: every deadline has passed).
type scriptedConn struct {
	mu            sync.Mutex
	writes, reads []error
	sent          int
}

func (c *scriptedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent++
	if len(c.writes) > 0 {
		err := c.writes[0]
		c.writes = c.writes[1:]
		if err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (c *scriptedConn) Read([]byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.reads) > 0 {
		err := c.reads[0]
		c.reads = c.reads[1:]
		return 0, err
	}
	return 0, os.ErrDeadlineExceeded
}

func (c *scriptedConn) SetReadDeadline(time.Time) error { return nil }

// TestRunProbe: an ICMP error ends the probe and the dial whether a send or
// a read reports it; other send failures do not end the schedule; a closed
// socket ends the probe quietly.
func TestRunProbe(t *testing.T) {
	if !isUnreachable(syscall.ECONNREFUSED) {
		t.Skip("ICMP errors on UDP sockets are read on Unix only")
	}
	refusedErr := &net.OpError{Op: "write", Net: "udp", Err: os.NewSyscallError("sendto", syscall.ECONNREFUSED)}
	for _, tc := range []struct {
		name          string
		writes, reads []error
		sent          int  // sends made
		refused       bool // the dial was cancelled with the ICMP error
	}{
		{"silent", nil, nil, len(probeSchedule), false},
		{"refused on a read", nil, []error{os.ErrDeadlineExceeded, refusedErr}, 2, true},
		{"refused on a send", []error{nil, refusedErr}, nil, 2, true},
		{"send fails, then refused", []error{syscall.ENOBUFS, refusedErr}, nil, 2, true},
		{"send fails every time", []error{syscall.EPERM, syscall.EPERM, syscall.EPERM, syscall.EPERM}, nil, len(probeSchedule), false},
		{"closed", []error{net.ErrClosed}, nil, 1, false},
		{"closed while reading", nil, []error{net.ErrClosed}, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &scriptedConn{writes: tc.writes, reads: tc.reads}
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			runProbe(c, probeSchedule, cancel)
			if c.sent != tc.sent {
				t.Errorf("%d sends, want %d", c.sent, tc.sent)
			}
			var pe *probeError
			got := errors.As(context.Cause(ctx), &pe) && errors.Is(pe, syscall.ECONNREFUSED)
			if got != tc.refused {
				t.Errorf("dial cancelled with the ICMP error: %v (cause %v), want %v", got, context.Cause(ctx), tc.refused)
			}
		})
	}
}
