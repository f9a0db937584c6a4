package dialrank

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
)

// Outcome is how one attempt ended.
type Outcome uint8

const (
	Pending      Outcome = iota // started, not ended
	NotStarted                  // ranked, but the dial ended before its turn
	Connected                   // secured and muxed
	PeerMismatch                // answered by another peer
	Refused                     // connection refused or reset: the host answered, nothing listens
	Failed                      // another error: a handshake error, a local refusal; neither proof of a path nor of a black hole
	Unreachable                 // no route (ENETUNREACH, EHOSTUNREACH)
	Timeout                     // no answer in time
	Overtaken                   // cancelled because another address connected first
	Cancelled                   // cancelled because the dial as a whole ended (its context, the swarm closing)
)

var outcomeNames = [...]string{
	Pending:      "pending",
	NotStarted:   "not started",
	Connected:    "connected",
	PeerMismatch: "peer ID mismatch",
	Refused:      "refused",
	Failed:       "failed",
	Unreachable:  "unreachable",
	Timeout:      "timeout",
	Overtaken:    "overtaken",
	Cancelled:    "cancelled",
}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "outcome?"
}

// answered reports whether something came back from the peer's address.
func (o Outcome) answered() bool {
	return o == Connected || o == PeerMismatch || o == Refused
}

// Classify maps a transport's dial error to an outcome (nil: Connected).
// Overtaken is the caller's to say: a cancellation looks the same either
// way.
func Classify(err error) Outcome {
	var mismatch *network.PeerIDMismatchError
	var timeout interface{ Timeout() bool }
	switch {
	case err == nil:
		return Connected
	case errors.As(err, &mismatch):
		return PeerMismatch
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET):
		return Refused
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return Unreachable
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &timeout) && timeout.Timeout():
		return Timeout
	case errors.Is(err, context.Canceled):
		return Cancelled
	}
	return Failed
}

// Attempt is one address of a dial: when it started and how it ended.
type Attempt struct {
	Dial       Dial
	Start, End time.Time // End is zero while Pending
	Outcome    Outcome
	Err        error
}

// Took is how long the attempt ran (until now if still pending: zero).
func (a *Attempt) Took() time.Duration {
	if a.End.IsZero() {
		return 0
	}
	return a.End.Sub(a.Start)
}

// silent reports whether the attempt is evidence that packets vanished:
// no answer at all, or still none when another address won after twice
// the time this one should have taken.
func (a *Attempt) silent() bool {
	switch a.Outcome {
	case Timeout, Unreachable:
		return true
	case Overtaken:
		return a.Dial.Expect > 0 && a.Took() >= 2*a.Dial.Expect+Margin
	}
	return false
}

// Trace records one dial: what was ranked, and when each attempt started
// and ended. The swarm fills it from its dial loop (one goroutine: a Trace
// is not safe for concurrent use), then hands it to RTTs.Learn,
// BlackHoles.Learn and DialErrorReport.
type Trace struct {
	Peer     peer.ID
	Begin    time.Time
	End      time.Time // zero while the dial runs
	Ranking  Ranking
	Attempts []Attempt
	Err      error // the dial's error, if it failed
}

// NewTrace starts a trace of a dial to p ranked as r.
func NewTrace(p peer.ID, r Ranking, now time.Time) *Trace {
	return &Trace{Peer: p, Begin: now, Ranking: r, Attempts: make([]Attempt, 0, len(r.Dials))}
}

// Started records that d's dial started; the index names it to Finished.
func (t *Trace) Started(d Dial, now time.Time) int {
	t.Attempts = append(t.Attempts, Attempt{Dial: d, Start: now})
	return len(t.Attempts) - 1
}

// Finished records how attempt i ended; err is classified by Classify.
func (t *Trace) Finished(i int, now time.Time, err error) {
	t.FinishedAs(i, now, Classify(err), err)
}

// FinishedAs records how attempt i ended, with an outcome the caller knows
// better than Classify (Overtaken).
func (t *Trace) FinishedAs(i int, now time.Time, o Outcome, err error) {
	if i < 0 || i >= len(t.Attempts) || t.Attempts[i].Outcome != Pending {
		return
	}
	a := &t.Attempts[i]
	a.End, a.Outcome, a.Err = now, o, err
}

// Done ends the trace: attempts still pending end as Overtaken when the
// dial connected (err == nil), as Timeout when it ran out of time (err is
// context.DeadlineExceeded: they had no answer in all that time), and as
// Cancelled otherwise.
func (t *Trace) Done(now time.Time, err error) {
	t.End, t.Err = now, err
	o, why := Cancelled, error(nil)
	switch {
	case err == nil:
		o = Overtaken
	case errors.Is(err, context.DeadlineExceeded):
		o, why = Timeout, err
	}
	for i := range t.Attempts {
		t.FinishedAs(i, now, o, why)
	}
}

// Winner returns the attempt that connected, or nil.
func (t *Trace) Winner() *Attempt {
	for i := range t.Attempts {
		if t.Attempts[i].Outcome == Connected {
			return &t.Attempts[i]
		}
	}
	return nil
}

// String prints the ranked list with each attempt's times, then what was
// skipped and why. Times are relative to the start of the dial.
func (t *Trace) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dial %s: %d ranked, %d skipped", t.Peer, len(t.Ranking.Dials), len(t.Ranking.Skipped))
	switch w := t.Winner(); {
	case w != nil:
		fmt.Fprintf(&b, ", connected via %s after %v", w.Dial.Addr, ms(w.End.Sub(t.Begin)))
	case t.Err != nil:
		fmt.Fprintf(&b, ", failed after %v: %v", ms(t.End.Sub(t.Begin)), t.Err)
	case t.End.IsZero():
		b.WriteString(", running")
	}
	if t.Ranking.Unfiltered {
		b.WriteString(" (unfiltered)")
	}
	b.WriteByte('\n')
	for _, d := range t.Ranking.Dials {
		fmt.Fprintf(&b, "  +%-7v %s [%s] %s", ms(d.Delay), d.Addr, d.Transport, d.Why)
		a := t.attempt(d)
		switch {
		case a == nil:
			b.WriteString(" -> not started")
		case a.Outcome == Pending:
			fmt.Fprintf(&b, " -> started +%v, pending", ms(a.Start.Sub(t.Begin)))
		default:
			fmt.Fprintf(&b, " -> started +%v, %s after %v", ms(a.Start.Sub(t.Begin)), a.Outcome, ms(a.Took()))
			if a.Err != nil {
				fmt.Fprintf(&b, ": %v", a.Err)
			}
		}
		b.WriteByte('\n')
	}
	for _, s := range t.Ranking.Skipped {
		fmt.Fprintf(&b, "  skip     %s: %s\n", s.Addr, s.Detail)
	}
	return b.String()
}

// attempt finds d's attempt, if it started.
func (t *Trace) attempt(d Dial) *Attempt {
	for i := range t.Attempts {
		if t.Attempts[i].Dial.Addr.Equal(d.Addr) {
			return &t.Attempts[i]
		}
	}
	return nil
}

// ms rounds for display: whole milliseconds, or microseconds below one.
func ms(d time.Duration) time.Duration {
	if d < time.Millisecond && d > -time.Millisecond {
		return d.Round(time.Microsecond)
	}
	return d.Round(time.Millisecond)
}

// Failure is one line of a dial error: an address that did not connect.
type Failure struct {
	Dial      Dial // Addr, Transport and Why of the address (Delay and Why are empty for a skipped one)
	Outcome   Outcome
	Took      time.Duration // how long the attempt ran; zero when it never started
	Skip      Reason        // why the address was never dialed (Outcome is NotStarted)
	SkipWhy   string        // the detail of Skip
	Err       error
	startedAt time.Duration
}

func (f Failure) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s [%s]: ", f.Dial.Addr, f.Dial.Transport)
	switch {
	case f.Skip != Dialed:
		fmt.Fprintf(&b, "skipped: %s", f.SkipWhy)
	case f.Outcome == NotStarted:
		fmt.Fprintf(&b, "not started (ranked +%v: %s)", ms(f.Dial.Delay), f.Dial.Why)
	default:
		fmt.Fprintf(&b, "%s after %v", f.Outcome, ms(f.Took))
		if f.Err != nil {
			fmt.Fprintf(&b, ": %v", f.Err)
		}
	}
	return b.String()
}

// usefulness orders failures for a reader: an answer that explains the
// failure (another peer, a refusal, a handshake error) first, then
// silence, then what was never tried.
func (f *Failure) usefulness() int {
	if f.Skip != Dialed {
		return 20 + int(f.Skip)
	}
	switch f.Outcome {
	case PeerMismatch:
		return 0
	case Refused:
		return 1
	case Failed:
		return 2
	case Unreachable:
		return 3
	case Timeout:
		return 4
	case Overtaken, Cancelled, Pending:
		return 5
	}
	return 6 // NotStarted
}

// Report is the per-address part of a dial error, most useful first.
type Report []Failure

// DialErrorReport lists every address of t that did not connect: the
// attempts that failed, the ranked addresses never started, and the
// skipped ones, sorted by usefulness (a peer ID mismatch or a refusal
// before a handshake error before silence before a skip), then by start.
func DialErrorReport(t *Trace) Report {
	r := make(Report, 0, len(t.Ranking.Dials)+len(t.Ranking.Skipped))
	for _, d := range t.Ranking.Dials {
		a := t.attempt(d)
		switch {
		case a == nil:
			r = append(r, Failure{Dial: d, Outcome: NotStarted, startedAt: d.Delay})
		case a.Outcome != Connected:
			r = append(r, Failure{Dial: d, Outcome: a.Outcome, Took: a.Took(), Err: a.Err, startedAt: a.Start.Sub(t.Begin)})
		}
	}
	for _, s := range t.Ranking.Skipped {
		kind, _ := TransportOf(s.Addr)
		r = append(r, Failure{Dial: Dial{Addr: s.Addr, Transport: kind}, Outcome: NotStarted, Skip: s.Reason, SkipWhy: s.Detail})
	}
	slices.SortStableFunc(r, func(a, b Failure) int {
		return cmp.Or(cmp.Compare(a.usefulness(), b.usefulness()), cmp.Compare(a.startedAt, b.startedAt))
	})
	return r
}

// String prints one failure per line.
func (r Report) String() string {
	var b strings.Builder
	for i, f := range r {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString("  ")
		b.WriteString(f.String())
	}
	return b.String()
}
