package autonat

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// renderTables writes the per-cell summary and the per-address detail of
// every round, as markdown.
func renderTables(all []*roundResult, soak time.Duration, full bool) string {
	var b strings.Builder
	mode := "CI"
	if full {
		mode = "full (make autonat)"
	}
	fmt.Fprintf(&b, "Run: %s, %d round(s), %s soak with %.0f %% loss on the client's link after the verdicts; "+
		"40 ms RTT client-servers; 3 servers on 3 core hosts (3 observer /24s); times from the client process's start "+
		"(go: per address, one process per address).\n\n", mode, len(all), soak, 100*lossRate)
	first := all[0]
	b.WriteString("| # | scenario | client | servers | verdicts right | time to last correct verdict | max probes/address | flaps | advertised set exact (changes after) | re-advertised after the change | notes (round 1) |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for ci, c := range first.cells {
		var right, total, flaps, probes, advOK, advCh int
		var times, readv []string
		for _, rr := range all {
			res := rr.results[rr.cells[ci]]
			right += res.rightCount()
			total += len(res.addrs)
			if len(res.extra) > 0 {
				total++ // the unexpected verdicts count as one wrong
			}
			for _, a := range res.addrs {
				flaps += a.flaps
				probes = max(probes, a.probes)
			}
			src := res
			if res.pre != nil {
				src = res.pre
			}
			switch d, wrong := src.maxTime(); {
			case !src.hasVerdicts() && src.allRight():
				times = append(times, "(no candidate)")
			case wrong == 0:
				times = append(times, fmtDur(d))
			case wrong == len(src.addrs):
				times = append(times, "all wrong")
			default:
				times = append(times, fmt.Sprintf("%s (%d wrong)", fmtDur(d), wrong))
			}
			if res.advRight {
				advOK++
			}
			advCh += res.advChanges
			if c.sc.num == 7 {
				if res.readv > 0 {
					readv = append(readv, fmtDur(res.readv))
				} else {
					readv = append(readv, "not within the wait")
				}
			}
		}
		adv := "-"
		if c.client == tachyonImpl {
			adv = fmt.Sprintf("%d/%d (%d)", advOK, len(all), advCh)
		}
		rv := "-"
		if len(readv) > 0 {
			rv = strings.Join(readv, ", ")
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %d/%d | %s | %d | %d | %s | %s | %s |\n", c.sc.num, c.sc.name, c.client, c.servers,
			right, total, strings.Join(times, ", "), probes, flaps, adv, rv, c.connsNote())
	}
	b.WriteString("\nPer address (truth -> final verdict; time from client start; probes = AutoNAT v2 requests the servers started for it until then; history of round 1):\n\n")
	b.WriteString("| # | client | servers | address | truth | final | time | probes | flaps | history (round 1) |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for ci, c := range first.cells {
		res0 := first.results[c]
		for ai, a0 := range res0.addrs {
			var finals, times, probes []string
			flaps := 0
			for _, rr := range all {
				res := rr.results[rr.cells[ci]]
				if ai >= len(res.addrs) {
					continue
				}
				a := res.addrs[ai]
				finals = append(finals, a.final)
				flaps += a.flaps
				if a.right && a.truth.verdict != none {
					times = append(times, fmtDur(a.at))
					probes = append(probes, fmt.Sprint(a.probes))
				} else {
					times = append(times, "-")
					probes = append(probes, "-")
				}
			}
			addr := a0.truth.addr
			if addr == "" {
				addr = "(" + a0.truth.slot.String() + ": no candidate)"
			}
			hist := strings.Join(a0.history, " ")
			if len(a0.wrong) > 0 {
				hist += " WRONG BEFORE: " + strings.Join(a0.wrong, ",")
			}
			fmt.Fprintf(&b, "| %d | %s | %s | `%s` | %s | %s | %s | %s | %d | %s |\n", c.sc.num, c.client, c.servers, addr, a0.truth.verdict,
				strings.Join(finals, ", "), strings.Join(times, ", "), strings.Join(probes, ", "), flaps, hist)
		}
		if len(res0.extra) > 0 {
			fmt.Fprintf(&b, "| %d | %s | %s | unexpected verdicts | - | %s | - | - | - | |\n", c.sc.num, c.client, c.servers, strings.Join(res0.extra, "; "))
		}
		if c.client == tachyonImpl && !res0.advRight {
			fmt.Fprintf(&b, "| %d | %s | %s | advertised set | `%s` | `%s` | - | - | - | |\n", c.sc.num, c.client, c.servers,
				strings.Join(res0.advWant, " "), strings.Join(res0.adv, " "))
		}
	}
	return b.String()
}

// hasVerdicts: the truth has at least one candidate address.
func (r *cellResult) hasVerdicts() bool {
	for _, a := range r.addrs {
		if a.truth.verdict != none {
			return true
		}
	}
	return false
}

// checkGoals asserts the reachability goals on one round. Correctness holds for
// every tachyon client, and for go clients of tachyon servers wherever go
// gets the address right with go servers (a wrong answer there would be
// the tachyon servers'). Timing goals hold for tachyon clients of tachyon
// servers; a private verdict's time is bounded below by the servers'
// dial-back timeout, a known limit logged as such in CI.
// checkGoals reports what the round missed and returns the cells that
// failed.
func checkGoals(t *testing.T, rr *roundResult, full bool) (failed []*cell) {
	t.Helper()
	find := func(sc *scenario, cl, sv impl) *cellResult {
		for _, c := range rr.cells {
			if c.sc == sc && c.client == cl && c.servers == sv {
				return rr.results[c]
			}
		}
		return nil
	}
	for _, c := range rr.cells {
		res := rr.results[c]
		errorf := func(format string, args ...any) {
			t.Helper()
			if !slices.Contains(failed, c) {
				failed = append(failed, c)
			}
			t.Errorf(format, args...)
		}
		for _, p := range res.problems {
			errorf("%s: %s", c, p)
		}
		if c.client == goImpl && c.servers == tachyonImpl {
			gg := find(c.sc, goImpl, goImpl)
			for i, a := range res.addrs {
				if !a.right && gg != nil && i < len(gg.addrs) && gg.addrs[i].right {
					errorf("%s: %s is %s, want %s (go gets it right with go servers): history %v",
						c, a.truth.addr, a.final, a.truth.verdict, a.history)
				}
			}
			continue
		}
		if c.client != tachyonImpl {
			continue
		}
		for _, a := range res.addrs {
			switch {
			case a.right:
			case a.final == none && c.noObservers(a.truth.slot) && !full:
				t.Logf("GOAL MISSED (known limit: observed addresses come per transport and family, and the client reached "+
					"fewer than 3 observers over %s; %s): %s: %s is no candidate, want %s", a.truth.slot, c.connsNote(), c, a.truth.addr, a.truth.verdict)
			default:
				errorf("%s: %s (%s) is %s, want %s: history %v (%s)", c, a.truth.addr, a.truth.slot, a.final, a.truth.verdict, a.history, c.connsNote())
			}
			if a.flaps > 0 {
				errorf("%s: %s flapped %d times after its correct verdict: %v", c, a.truth.addr, a.flaps, a.history)
			}
		}
		if len(res.extra) > 0 {
			errorf("%s: verdicts for addresses that should be no candidates: %v", c, res.extra)
		}
		switch {
		case res.advRight:
		case sameSet(res.adv, res.advWantLimited) && !full:
			t.Logf("GOAL MISSED (known limit: no candidate for an address, see above): %s: advertises %q, want exactly %q", c, res.adv, res.advWant)
		default:
			errorf("%s: advertises %q, want exactly %q", c, res.adv, res.advWant)
		}
		if c.sc.num == 7 {
			switch {
			case res.readv == 0:
				errorf("%s: the new outside address was not advertised (or the old one still was) %s after the change", c, 3*readvMax)
			case res.readv > readvMax && full && c.servers != tachyonImpl:
				// Timing goals are tachyon's (client and servers); with go
				// servers the old address waits for go's dial-back timeout.
				t.Logf("tabulated, not a goal (go-libp2p servers: the old address stays advertised until two of their "+
					"dial-backs to it time out): %s: re-advertised %s after the outside address changed", c, fmtDur(res.readv))
			case res.readv > readvMax && !full:
				t.Logf("GOAL MISSED (known limit: nothing tells the client of the change until a server connection is re-made "+
					"and identify reports the new address; the old address then stays advertised until two servers' dial-backs "+
					"to it time out): %s: re-advertised %s after the outside address changed, goal %s", c, fmtDur(res.readv), readvMax)
			case res.readv > readvMax:
				errorf("GOAL MISSED: %s: re-advertised %s after the outside address changed, goal %s", c, fmtDur(res.readv), readvMax)
			}
		}
		if c.servers != tachyonImpl {
			continue
		}
		timed := res
		if res.pre != nil {
			timed = res.pre // scenario 7's first verdicts; its re-advertisement is checked above
		}
		for _, a := range timed.addrs {
			if !a.right || a.truth.verdict == none {
				continue
			}
			if a.probes > probesMax {
				errorf("%s: %s took %d probes, goal %d", c, a.truth.addr, a.probes, probesMax)
			}
			if a.at <= verdictMax {
				continue
			}
			msg := fmt.Sprintf("%s: %s %s after %s, goal %s", c, a.truth.addr, a.truth.verdict, fmtDur(a.at), verdictMax)
			switch {
			case full:
				errorf("GOAL MISSED: %s", msg)
			case a.truth.verdict == private:
				t.Logf("GOAL MISSED (known limit: a private verdict waits for the servers' dial-back timeout: 3 s for tachyon servers, 5-10 s for go's): %s", msg)
			default:
				errorf("GOAL MISSED: %s", msg)
			}
		}
	}
	return failed
}
