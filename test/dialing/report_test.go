package dialing

import (
	"fmt"
	"slices"
	"strings"
)

// resultsTable is the markdown table of the scenarios that ran.
func resultsTable(results []*result, iters int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Median of %d fresh dialers per cell; dials = attempts started, counted on the wire. Best single address: "+
		"the fastest median of `tachyon dial` given one working address alone.\n\n", iters)
	b.WriteString("| scenario | best single address | tachyon ms / dials | go-libp2p ms / dials | tachyon connected via | go-libp2p connected via |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- |\n")
	for _, r := range results {
		if r.err != nil || r.impls[tachyonImpl] == nil {
			fmt.Fprintf(&b, "| %d %s | did not run: %s | | | | |\n", r.sc.num, r.sc.name, oneLine(r.err))
			continue
		}
		fmt.Fprintf(&b, "| %d %s | %.1f ms (%s) | %s | %s | %s | %s |\n", r.sc.num, r.sc.name, r.best, shortAddr(r.bestAddr),
			cell(r.impls[tachyonImpl]), cell(r.impls[goImpl]), via(r.impls[tachyonImpl]), via(r.impls[goImpl]))
		if lr := r.learn; lr != nil {
			switch {
			case lr.err != nil:
				fmt.Fprintf(&b, "| %d learning (one host, %d dials) | | failed: %s | | | |\n", r.sc.num, sameHostDials, oneLine(lr.err))
			case lr.learnedAt < 0:
				fmt.Fprintf(&b, "| %d learning (one host, %d dials) | | never learned | | | |\n", r.sc.num, len(lr.runs))
			default:
				fmt.Fprintf(&b, "| %d learned at dial %d of %d (one host) | | %.1f / %.1f from then on; %d of %d attempts into the hole, %d probes after learning | | | |\n",
					r.sc.num, lr.learnedAt+1, len(lr.runs), median(lr.after), median(intsF(lr.dialsAfter)), lr.holeJSON, lr.jsonTotal, lr.probesAfter)
			}
		}
	}
	return b.String()
}

func cell(r *implResult) string {
	if r == nil {
		return "-"
	}
	s := fmt.Sprintf("%.1f / %.1f", median(r.times), median(intsF(r.wire)))
	if r.err != nil {
		s += " (failed: " + oneLine(r.err) + ")"
	}
	return s
}

// via lists the addresses an implementation connected through.
func via(r *implResult) string {
	if r == nil {
		return "-"
	}
	return strings.Join(uniqShort(r.connected), ", ")
}

func oneLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return strings.ReplaceAll(s, "|", "/")
}

// shortAddr drops peer IDs and certhashes, for the table.
func shortAddr(a string) string {
	var out []string
	skip := false
	for _, p := range strings.Split(a, "/") {
		switch {
		case skip:
			skip = false
		case p == "certhash" || p == "p2p":
			skip = true
		default:
			out = append(out, p)
		}
	}
	return strings.Join(out, "/")
}

func uniqShort(addrs []string) []string {
	var out []string
	for _, a := range addrs {
		s := shortAddr(a)
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
