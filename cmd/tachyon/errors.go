package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/mss"
	"github.com/tachyon-p2p/tachyon/swarm"
)

// explained is an error the CLI rewrote for people: msg is the whole line,
// err stays reachable for errors.Is and As.
type explained struct {
	msg string
	err error
}

func (e *explained) Error() string { return e.msg }
func (e *explained) Unwrap() error { return e.err }

// dialTarget is what a command tried to connect to, for explaining why it
// could not.
type dialTarget struct {
	shown   string        // the address as the user gave it
	info    peer.AddrInfo // what was dialed
	elapsed time.Duration // how long the attempt took
	// perfHostPort: --server-address was HOST:PORT, so the peer ID is the
	// perf server identity's, assumed rather than given.
	perfHostPort bool
}

// explainDial turns a failed Connect into one line: "cannot reach ADDR:
// CAUSE; HINT", or for a QUIC handshake that met silence "QUIC handshake
// with ADDR timed out after D: no reply; is a node listening on that UDP
// port?". A dial of several addresses adds one indented line per address
// (transport, outcome, time, or why it was not tried), most useful first.
func explainDial(t dialTarget, err error) error {
	if errors.Is(err, context.Canceled) {
		return &explained{fmt.Sprintf("connecting to %s: interrupted", t.shown), err}
	}
	transport := "unknown"
	if len(t.info.Addrs) > 0 {
		transport = transportOf(t.info.Addrs[0])
	}
	var de *swarm.DialError
	if errors.As(err, &de) && errors.Is(de.Cause, swarm.ErrNoAddresses) && len(t.info.Addrs) > 0 {
		return &explained{fmt.Sprintf("cannot reach %s: this tachyon has no %s transport for it (%v)", t.shown, transport, swarm.ErrNoAddresses), err}
	}
	var hint string
	var mismatch *network.PeerIDMismatchError
	cause := usefulCause(err)
	switch {
	case errors.As(err, &mismatch):
		cause = "peer ID mismatch: the node there is " + mismatch.Actual.String()
		hint = mismatchHint(t, mismatch.Actual)
	case errors.Is(err, syscall.ECONNREFUSED):
		hint = "is a node listening there?"
		if udpTransport(transport) {
			hint = "is a node listening on that UDP port?"
		}
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		d := t.elapsed.Round(time.Second)
		if udpTransport(transport) {
			name := "QUIC"
			if transport == "webrtc-direct" {
				name = "WebRTC"
			}
			return &explained{fmt.Sprintf("%s handshake with %s timed out after %s: no reply; is a node listening on that UDP port?", name, t.shown, d), err}
		}
		cause = fmt.Sprintf("no connection within %s", d)
		hint = "is the host up and the port open (no firewall dropping packets)?"
	case errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH):
		hint = "is the host's network reachable from here?"
	case strings.Contains(err.Error(), "certhash") || strings.Contains(err.Error(), "certificate hash"):
		hint = "the /certhash part must be the server's current one: copy the address the server printed at start"
	}
	if head, lines, ok := strings.Cut(cause, "\n"); ok {
		// One line per address: the hint goes on the first line.
		msg := fmt.Sprintf("cannot reach %s: %s", t.shown, head)
		if hint != "" {
			msg += " " + hint
		}
		return &explained{msg + "\n" + lines, err}
	}
	msg := fmt.Sprintf("cannot reach %s: %s", t.shown, cause)
	if hint != "" {
		msg += "; " + hint
	}
	return &explained{msg, err}
}

func udpTransport(t string) bool {
	return t == "quic-v1" || t == "webtransport" || t == "webrtc-direct"
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

func mismatchHint(t dialTarget, actual peer.ID) string {
	full := ""
	if len(t.info.Addrs) > 0 {
		full = fmt.Sprintf("%s/p2p/%s", t.info.Addrs[0], actual)
	}
	if t.perfHostPort {
		h := "HOST:PORT assumes the perf server identity " + perfServerID + ", which only tachyon perf --run-server has"
		if full != "" {
			return h + "; for another node (tachyon node --perf), pass its full multiaddr: --server-address " + full
		}
		return h + "; for another node (tachyon node --perf), pass its full multiaddr, with /p2p/, as --server-address"
	}
	if full != "" {
		return "the address's /p2p/ part names another peer; if you meant the node there, use " + full
	}
	return "the address's /p2p/ part names another peer"
}

// usefulCause is the part of err that says what went wrong, without the
// layers above it that repeat the peer ID and address: for each address
// the swarm tried, the deepest wrapped error with a message long enough to
// read alone ("connection refused" alone does not say connecting where).
func usefulCause(err error) string {
	var de *swarm.DialError
	if errors.As(err, &de) {
		if len(de.Report) > 1 {
			// Every address, most useful first, with its transport, how
			// long it took and why it failed or was not tried.
			var b strings.Builder
			fmt.Fprintf(&b, "none of %d addresses connected;", len(de.Report))
			for _, f := range de.Report {
				b.WriteString("\n  ")
				b.WriteString(f.String())
			}
			return b.String()
		}
		if len(de.Errors) == 1 {
			return deepest(de.Errors[0].Err)
		}
		if len(de.Errors) > 1 {
			parts := make([]string, len(de.Errors))
			for i, ae := range de.Errors {
				parts[i] = fmt.Sprintf("%s: %s", ae.Addr, deepest(ae.Err))
			}
			return strings.Join(parts, "; ")
		}
		if de.Cause != nil {
			return deepest(de.Cause)
		}
	}
	return deepest(err)
}

func deepest(err error) string {
	const readable = 30
	var chain []error
	for e := err; e != nil; e = errors.Unwrap(e) {
		chain = append(chain, e)
	}
	for i := len(chain) - 1; i >= 0; i-- {
		if s := chain[i].Error(); len(s) >= readable {
			return s
		}
	}
	return err.Error()
}

// listenHint adds what to try to a failed listen.
func listenHint(err error) error {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return &explained{fmt.Sprintf("%v; another process (another node?) has the port: pick another with --listen, or port 0 for any", err), err}
	case errors.Is(err, syscall.EACCES):
		return &explained{fmt.Sprintf("%v; ports below 1024 need privileges: pick a higher one", err), err}
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return &explained{fmt.Sprintf("%v; that IP is not one of this machine's (0.0.0.0 or :: listens on all)", err), err}
	}
	return err
}

// hasProtocol reports whether a has code among its components.
func hasProtocol(a ma.Multiaddr, code int) bool {
	_, err := a.ValueForProtocol(code)
	return err == nil
}

// notServed explains an error of opening or first using a stream of proto
// that the peer refused (multistream-select "na") or reset during the
// negotiation: the peer does not serve proto, which flag turns on.
func notServed(err error, proto protocol.ID, flag string) error {
	if errors.Is(err, mss.ErrNotSupported) || errors.Is(err, network.ErrReset) {
		return &explained{fmt.Sprintf("peer does not serve %s (start it with %s)", proto, flag), err}
	}
	return err
}
