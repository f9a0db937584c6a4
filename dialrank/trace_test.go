package dialrank

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/internal/streamtest"
)

type netTimeout struct{}

func (netTimeout) Error() string { return "handshake did not complete in time" }
func (netTimeout) Timeout() bool { return true }

func TestClassify(t *testing.T) {
	a, b := streamtest.PeerID(t, "a"), streamtest.PeerID(t, "b")
	cases := []struct {
		err  error
		want Outcome
	}{
		{nil, Connected},
		{fmt.Errorf("upgrading: %w", &network.PeerIDMismatchError{Expected: a, Actual: b}), PeerMismatch},
		{fmt.Errorf("dial tcp: %w", syscall.ECONNREFUSED), Refused},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), Refused},
		{fmt.Errorf("dial udp: %w", syscall.ENETUNREACH), Unreachable},
		{fmt.Errorf("dial: %w", syscall.EHOSTUNREACH), Unreachable},
		{fmt.Errorf("dial: %w", context.DeadlineExceeded), Timeout},
		{fmt.Errorf("read: %w", os.ErrDeadlineExceeded), Timeout},
		{fmt.Errorf("quic: %w", netTimeout{}), Timeout},
		{fmt.Errorf("dial: %w", context.Canceled), Cancelled},
		{errors.New("tls: bad certificate"), Failed},
	}
	for _, tc := range cases {
		if got := Classify(tc.err); got != tc.want {
			t.Errorf("Classify(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

// failedDial is a dial where everything went wrong in a different way.
func failedDial(t *testing.T) *Trace {
	p := streamtest.PeerID(t, "target")
	addrs := mas(t, q6, q4, t4s, t6s, "/dns4/x.example/tcp/1", rly)
	r := Plan(addrs, Knowledge{Peer: p, DirectConn: false})
	base := time.Unix(1_700_000_000, 0)
	tr := NewTrace(p, r, base)
	outcome := map[string]error{
		q6:  fmt.Errorf("dial: %w", context.DeadlineExceeded),
		q4:  &network.PeerIDMismatchError{Expected: p, Actual: streamtest.PeerID(t, "other")},
		t6s: errors.New("noise: handshake failed"),
		t4s: fmt.Errorf("dial tcp: %w", syscall.ECONNREFUSED),
	}
	for _, d := range r.Dials {
		err, ok := outcome[d.Addr.String()]
		if !ok {
			continue // the relay never starts
		}
		i := tr.Started(d, base.Add(d.Delay))
		tr.Finished(i, base.Add(d.Delay+30*time.Millisecond), err)
	}
	tr.Done(base.Add(time.Second), errors.New("all dials failed"))
	return tr
}

func TestDialErrorReport(t *testing.T) {
	rep := DialErrorReport(failedDial(t))
	var order []string
	for _, f := range rep {
		order = append(order, fmt.Sprintf("%s %s", f.Dial.Addr, f.Outcome))
	}
	want := []string{
		q4 + " peer ID mismatch",
		t4s + " refused",
		t6s + " failed",
		q6 + " timeout",
		rly + " not started",
		"/dns4/x.example/tcp/1 not started",
	}
	if strings.Join(order, "\n") != strings.Join(want, "\n") {
		t.Errorf("order:\n%s\nwant:\n%s", strings.Join(order, "\n"), strings.Join(want, "\n"))
	}
	s := rep.String()
	for _, frag := range []string{
		"[quic]: peer ID mismatch after 30ms",
		"[tcp/tls]: refused after 30ms: dial tcp: connection refused",
		"[relay]: not started (ranked +750ms: relay last",
		"/dns4/x.example/tcp/1 [other]: skipped: no IP address to dial",
	} {
		if !strings.Contains(s, frag) {
			t.Errorf("report lacks %q:\n%s", frag, s)
		}
	}
}

func TestDialErrorReportSkips(t *testing.T) {
	var v BlackHoleView
	v[UDP4] = Blocked
	r := Plan(mas(t, q4, "/ip4/192.168.1.1/tcp/1", q4), Knowledge{BlackHoles: v})
	tr := NewTrace(streamtest.PeerID(t, "x"), r, time.Unix(0, 0))
	tr.Done(time.Unix(1, 0), errors.New("no addresses"))
	rep := DialErrorReport(tr)
	var got []Reason
	for _, f := range rep {
		got = append(got, f.Skip)
	}
	// black hole before not-our-network before duplicate
	if fmt.Sprint(got) != fmt.Sprint([]Reason{BlackHoled, NotOurNetwork, DuplicateAddr}) {
		t.Errorf("skips in order %v\n%s", got, rep)
	}
}

func TestTraceString(t *testing.T) {
	tr := failedDial(t)
	s := tr.String()
	for _, frag := range []string{
		"ranked, 1 skipped, failed after 1s: all dials failed",
		"+0s      " + q6 + " [quic] quic first, wave 1; next wave after 250ms (RTT unknown) -> started +0s, timeout after 30ms",
		rly + " [relay] relay last",
		"-> not started",
		"skip     /dns4/x.example/tcp/1: no IP address",
	} {
		if !strings.Contains(s, frag) {
			t.Errorf("trace lacks %q:\n%s", frag, s)
		}
	}
	// A connected dial: pending attempts become overtaken.
	p := streamtest.PeerID(t, "target")
	base := time.Unix(0, 0)
	r := Plan(mas(t, q6, q4), Knowledge{Peer: p})
	tr = NewTrace(p, r, base)
	i := tr.Started(r.Dials[0], base)
	j := tr.Started(r.Dials[1], base.Add(250*time.Millisecond))
	tr.Finished(j, base.Add(290*time.Millisecond), nil)
	tr.Done(base.Add(290*time.Millisecond), nil)
	if tr.Attempts[i].Outcome != Overtaken || tr.Winner() != &tr.Attempts[j] {
		t.Errorf("attempts %+v", tr.Attempts)
	}
	if s := tr.String(); !strings.Contains(s, "connected via "+q4+" after 290ms") || !strings.Contains(s, "overtaken after 290ms") {
		t.Errorf("trace:\n%s", s)
	}
	// Finishing twice or out of range changes nothing.
	tr.FinishedAs(i, base, Refused, nil)
	tr.FinishedAs(7, base, Refused, nil)
	if tr.Attempts[i].Outcome != Overtaken {
		t.Error("a finished attempt was changed")
	}
}
