package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Latency mode (-latency) answers one question of the matrix with numbers
// that can be trusted: is tachyon ever slower than go-libp2p v0.51 in the
// same seat against the same peer? A seat is a variant, a peer and a role:
// "dials" (tachyon, or go v0.51, dials the peer) or "listens" (the peer
// dials tachyon, or go v0.51). For every variant and peer the four cells
// (tachyon dials, go dials, peer dials tachyon, peer dials go) run one at a
// time, interleaved ABCD ABCD ..., -repeat times, so that load that comes
// and goes on a shared machine lands on both sides of a comparison alike.

// Roles of a seat.
const (
	roleDials   = "dials"   // tachyon or go v0.51 dials the peer
	roleListens = "listens" // the peer dials tachyon or go v0.51
)

// seat is one comparison: every sample of both sides and the verdict.
type seat struct {
	Variant string `json:"variant"`
	Peer    string `json:"peer"`
	Role    string `json:"role"`
	// Tachyon and Go are the handshake + 1 RTT samples (ms) of the passing
	// runs, in run order; Failures say what the other runs gave.
	Tachyon  []float64 `json:"tachyonMillis"`
	Go       []float64 `json:"goMillis"`
	Failures []string  `json:"failures,omitempty"`
	// Verdict is what the samples say (slower, faster, same, incomplete);
	// Status is that judged against latency-known.txt (ok, slower,
	// known-slower, unexpected-not-slower, incomplete, n/a).
	Verdict string  `json:"verdict,omitempty"`
	Diff    float64 `json:"medianDiffMillis"` // tachyon's median minus go's
	Margin  float64 `json:"marginMillis"`     // the noise margin Diff was held against
	Status  string  `json:"status"`
	Reason  string  `json:"reason,omitempty"`
}

func (s *seat) key() string { return s.Variant + " " + s.Peer + " " + s.Role }

// cells are tachyon's and go v0.51's cells of the seat.
func (s *seat) cells() (t, g cell) {
	v := parseVariant(s.Variant)
	t = cell{Transport: v.Transport, Security: v.Security, Muxer: v.Muxer}
	g = t
	if s.Role == roleDials {
		t.Dialer, t.Listener, g.Dialer, g.Listener = "tachyon", s.Peer, latencyRef, s.Peer
	} else {
		t.Dialer, t.Listener, g.Dialer, g.Listener = s.Peer, "tachyon", s.Peer, latencyRef
	}
	return t, g
}

// failed says whether the seat fails the run.
func (s *seat) failed() bool {
	return s.Status == "slower" || s.Status == "unexpected-not-slower" || s.Status == "incomplete"
}

func parseVariant(s string) variant {
	f := strings.SplitN(s, "/", 3)
	if len(f) == 3 {
		return variant{f[0], f[1], f[2]}
	}
	return variant{Transport: s}
}

// latencyResults is the JSON file of a latency run.
type latencyResults struct {
	Set     string     `json:"set"`
	Date    string     `json:"date"`
	Seconds float64    `json:"seconds"`
	Go      string     `json:"go"`
	Repeat  int        `json:"repeat"`
	Load    []string   `json:"loadavg"` // /proc/loadavg before and after the run
	Impls   []implInfo `json:"implementations"`
	Seats   []seat     `json:"seats"`
}

// summary is the order statistics of a sample set.
type summary struct {
	N                   int
	Min, Q1, Median, Q3 float64
}

// summarize returns the order statistics of xs; quartiles interpolate
// linearly between order statistics (R's type 7), so they are defined for
// any N ≥ 1.
func summarize(xs []float64) summary {
	if len(xs) == 0 {
		return summary{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	q := func(p float64) float64 {
		h := p * float64(len(s)-1)
		i := int(math.Floor(h))
		if i+1 >= len(s) {
			return s[len(s)-1]
		}
		return s[i] + (h-float64(i))*(s[i+1]-s[i])
	}
	return summary{N: len(s), Min: s[0], Q1: q(0.25), Median: q(0.5), Q3: q(0.75)}
}

const (
	// minSamples below which a side's spread says nothing.
	minSamples = 3
	// floorMillis is the smallest difference called real: the timers of
	// the peers and the scheduler of a shared machine are not finer.
	floorMillis = 1.0
)

// compare says whether tachyon's samples t are slower than go's g beyond
// the noise both sample sets show: the medians must differ by more than the
// larger interquartile range of the two (and by more than floorMillis).
// Medians and IQRs ignore the one-off stalls (a GC, a descheduled process)
// that a mean would carry. faster is the mirror image; anything in between
// is same.
func compare(t, g []float64) (verdict string, diff, margin float64) {
	if len(t) < minSamples || len(g) < minSamples {
		return "incomplete", 0, 0
	}
	st, sg := summarize(t), summarize(g)
	diff = st.Median - sg.Median
	margin = max(floorMillis, st.Q3-st.Q1, sg.Q3-sg.Q1)
	switch {
	case diff > margin:
		return "slower", diff, margin
	case -diff > margin:
		return "faster", diff, margin
	}
	return "same", diff, margin
}

// judgeSeat turns a seat's samples into its status against the accepted
// exceptions (latency-known.txt: the line names tachyon's cell of the seat,
// DIALER LISTENER VARIANT REASON). An exception that is no longer slower
// fails, like a known incompatibility that passes.
func judgeSeat(s *seat, ks []known) {
	if s.Status == "n/a" {
		return
	}
	s.Verdict, s.Diff, s.Margin = compare(s.Tachyon, s.Go)
	s.Diff, s.Margin = math.Round(s.Diff*100)/100, math.Round(s.Margin*100)/100
	t, _ := s.cells()
	i := slices.IndexFunc(ks, func(k known) bool { return k.matches(&t) })
	s.Status, s.Reason = "ok", ""
	switch {
	case s.Verdict == "incomplete":
		s.Status = "incomplete"
		s.Reason = fmt.Sprintf("%d tachyon and %d go samples passed (need %d each)", len(s.Tachyon), len(s.Go), minSamples)
		if len(s.Failures) > 0 {
			s.Reason += "; " + s.Failures[0]
		}
	case s.Verdict == "slower" && i >= 0:
		s.Status, s.Reason = "known-slower", ks[i].Reason
	case s.Verdict == "slower":
		s.Status = "slower"
		s.Reason = fmt.Sprintf("tachyon's median is %.1f ms above go's (noise margin %.1f ms)", s.Diff, s.Margin)
	case i >= 0:
		s.Status = "unexpected-not-slower"
		s.Reason = fmt.Sprintf("listed as slower (latency-known.txt line %d: %s) but is %s (median diff %.1f ms, margin %.1f ms)",
			ks[i].line, ks[i].Reason, s.Verdict, s.Diff, s.Margin)
	}
}

// latencySeats lays out the seats of a run: for every variant and peer,
// the dials seat and the listens seat. A seat whose cells cannot run (not
// applicable, or a known incompatibility) is n/a with the reason.
func latencySeats(impls []*impl, ks []known, only *regexp.Regexp) ([]seat, error) {
	byName := map[string]*impl{}
	for _, im := range impls {
		byName[im.Name] = im
	}
	if byName["tachyon"] == nil || byName[latencyRef] == nil {
		return nil, fmt.Errorf("-latency compares tachyon with %s: both must be among the implementations", latencyRef)
	}
	var out []seat
	for _, v := range variants {
		for _, p := range impls {
			if p.Name == "tachyon" || p.Name == latencyRef || !only.MatchString(v.String()+" "+p.Name) {
				continue
			}
			for _, role := range []string{roleDials, roleListens} {
				s := seat{Variant: v.String(), Peer: p.Name, Role: role}
				t, g := s.cells()
				for _, c := range []cell{t, g} {
					d, l := byName[c.Dialer], byName[c.Listener]
					switch {
					case s.Status != "":
					case d.why(v, true) != "":
						s.Status, s.Reason = "n/a", d.Name+": "+d.why(v, true)
					case l.why(v, false) != "":
						s.Status, s.Reason = "n/a", l.Name+": "+l.why(v, false)
					default:
						if i := slices.IndexFunc(ks, func(k known) bool { return k.matches(&c) }); i >= 0 {
							s.Status, s.Reason = "n/a", c.Dialer+" → "+c.Listener+" is a known incompatibility: "+ks[i].Reason
						}
					}
				}
				out = append(out, s)
			}
		}
	}
	return out, nil
}

// runLatency measures the seats: for each variant and peer, the four cells
// in turn, repeat times.
func runLatency(ctx context.Context, r *runner, impls []*impl, failedBuilds map[string]string, seats []seat, repeat int) error {
	byName := map[string]*impl{}
	for _, im := range impls {
		byName[im.Name] = im
	}
	for i := 0; i < len(seats); {
		// The seats of one variant and peer are adjacent (dials, listens).
		j := i + 1
		for j < len(seats) && seats[j].Variant == seats[i].Variant && seats[j].Peer == seats[i].Peer {
			j++
		}
		group := seats[i:j]
		for round := 0; round < repeat; round++ {
			for k := range group {
				s := &group[k]
				if s.Status == "n/a" {
					continue
				}
				t, g := s.cells()
				for side, c := range []cell{t, g} {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					d, l := byName[c.Dialer], byName[c.Listener]
					if failedBuilds[d.Name] != "" || failedBuilds[l.Name] != "" {
						c.Outcome, c.Detail = "fail", "build failed"
					} else {
						r.runCell(ctx, &c, d, l)
					}
					if c.Outcome != "pass" {
						s.Failures = append(s.Failures, fmt.Sprintf("%s → %s round %d: %s", c.Dialer, c.Listener, round+1, c.Detail))
						continue
					}
					if side == 0 {
						s.Tachyon = append(s.Tachyon, c.Handshake)
					} else {
						s.Go = append(s.Go, c.Handshake)
					}
				}
			}
		}
		for k := range group {
			s := &group[k]
			if s.Status == "n/a" {
				continue
			}
			st, sg := summarize(s.Tachyon), summarize(s.Go)
			fmt.Fprintf(os.Stderr, "%-15s %-13s %-7s tachyon %7.1f ms  go %7.1f ms  (median of %d/%d)\n",
				s.Variant, s.Peer, s.Role, st.Median, sg.Median, st.N, sg.N)
		}
		i = j
	}
	return nil
}

// latencyMain is -latency after the builds: it runs the seats, writes the
// results and the table, and says whether any seat fails the run.
func latencyMain(ctx context.Context, o options, r *runner, impls []*impl, failedBuilds map[string]string, ks []known, only *regexp.Regexp, started time.Time) (int, error) {
	lks, err := readKnown(o.latencyKnown)
	if err != nil {
		return 2, err
	}
	seats, err := latencySeats(impls, ks, only)
	if err != nil {
		return 2, err
	}
	res := latencyResults{Set: o.set, Date: started.UTC().Format("2006-01-02 15:04 UTC"), Go: runtime.Version(), Repeat: o.repeat, Load: []string{loadavg()}}
	for _, im := range impls {
		res.Impls = append(res.Impls, implInfo{Name: im.Name, Version: im.Version, BuildError: failedBuilds[im.Name]})
	}
	if err := runLatency(ctx, r, impls, failedBuilds, seats, o.repeat); err != nil {
		return 1, err
	}
	res.Load = append(res.Load, loadavg())
	res.Seconds = time.Since(started).Round(time.Second).Seconds()
	res.Seats = seats
	if o.only != "" {
		// A partial run updates the seats it ran in the last results.
		if b, err := os.ReadFile(o.results); err == nil {
			var last latencyResults
			if json.Unmarshal(b, &last) == nil && last.Set == res.Set {
				res = mergeLatency(last, res)
			}
		}
	}
	return finishLatency(&res, o, lks)
}

// rejudgeLatency judges the last latency results again (after editing
// latency-known.txt) and rewrites them and the table.
func rejudgeLatency(o options) (int, error) {
	lks, err := readKnown(o.latencyKnown)
	if err != nil {
		return 2, err
	}
	b, err := os.ReadFile(o.results)
	if err != nil {
		return 2, err
	}
	var res latencyResults
	if err := json.Unmarshal(b, &res); err != nil {
		return 2, fmt.Errorf("%s: %w", o.results, err)
	}
	return finishLatency(&res, o, lks)
}

func finishLatency(res *latencyResults, o options, lks []known) (int, error) {
	n := map[string]int{}
	for i := range res.Seats {
		judgeSeat(&res.Seats[i], lks)
		n[res.Seats[i].Status]++
	}
	if err := writeResults(o, res, "latency-"+res.Set, res.markdown); err != nil {
		return 1, err
	}
	fmt.Fprintf(os.Stderr, "%d seats ok, %d slower, %d known-slower, %d unexpected-not-slower, %d incomplete, %d n/a in %.0f s; results in %s\n",
		n["ok"], n["slower"], n["known-slower"], n["unexpected-not-slower"], n["incomplete"], n["n/a"], res.Seconds, o.results)
	for _, s := range res.Seats {
		if s.failed() {
			fmt.Fprintf(os.Stderr, "  %s: %s: %s\n", s.key(), s.Status, s.Reason)
		}
	}
	if n["slower"]+n["unexpected-not-slower"]+n["incomplete"] > 0 {
		return 1, nil
	}
	return 0, nil
}

// mergeLatency puts the seats of a partial run in place of the same seats
// of the last results; the header stays the last full run's, with the
// partial run's load appended.
func mergeLatency(last, part latencyResults) latencyResults {
	idx := map[string]int{}
	for i := range last.Seats {
		idx[last.Seats[i].key()] = i
	}
	for _, s := range part.Seats {
		if i, ok := idx[s.key()]; ok {
			last.Seats[i] = s
		} else {
			last.Seats = append(last.Seats, s)
		}
	}
	last.Load = append(last.Load, part.Load...)
	return last
}

func readKnown(file string) ([]known, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ks, err := parseKnown(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return ks, nil
}

// loadavg is the machine's load when measuring: the numbers mean little on
// a busy machine, and the reader should know.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// markdown renders the comparison: one row per variant and peer, median
// (min) of each cell's samples, ▲ where tachyon is slower, ▼ where faster.
func (r *latencyResults) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Last run %s (%s set, Go %s, %.0f s, %d rounds, load average %s): tachyon (HEAD) vs go-libp2p v0.51 in the same seat against the same peer.\n\n",
		r.Date, r.Set, r.Go, r.Seconds, r.Repeat, strings.Join(r.Load, " → "))
	b.WriteString("Handshake + 1 RTT in ms as the dialer reports it: **median** (min) of the passing samples. The four cells of a row run one at a time, interleaved, ")
	b.WriteString("so load that comes and goes lands on both sides. ▲ tachyon slower, ▼ faster: the medians differ by more than the larger interquartile range of the two sides ")
	b.WriteString("(at least 1 ms); `known`[n] an accepted exception (`interop/matrix/latency-known.txt`); `–` not measured, [n] says why.\n\n")
	// The sign of each seat's difference, beyond the margin or not: one
	// seat's noise is no evidence, but most seats leaning one way is.
	n := map[string]int{}
	for _, s := range r.Seats {
		switch {
		case s.Status == "n/a" || s.Verdict == "incomplete":
		case s.Diff > 0:
			n["higher"]++
			n[s.Verdict]++
		default:
			n["lower"]++
			n[s.Verdict]++
		}
	}
	fmt.Fprintf(&b, "Of %d seats compared, tachyon's median is lower in %d and higher in %d; beyond the noise margin it is slower in %d and faster in %d.\n\n",
		n["lower"]+n["higher"], n["lower"], n["higher"], n["slower"], n["faster"])
	b.WriteString("| variant | peer | tachyon dials peer | go v0.51 dials peer | peer dials tachyon | peer dials go v0.51 |\n|---|---|---|---|---|---|\n")
	var notes noteList
	note := notes.ref
	pair := func(s *seat) string {
		if s == nil {
			return " | "
		}
		if s.Status == "n/a" {
			n := note(s.Reason)
			return fmt.Sprintf("–[%d] | –[%d]", n, n)
		}
		ms := func(xs []float64) string {
			if len(xs) == 0 {
				return "–"
			}
			m := summarize(xs)
			return fmt.Sprintf("**%.1f** (%.1f)", m.Median, m.Min)
		}
		mark := ""
		switch s.Status {
		case "slower":
			mark = " ▲"
		case "known-slower":
			mark = fmt.Sprintf(" ▲ known[%d]", note(s.Reason))
		case "unexpected-not-slower", "incomplete":
			mark = fmt.Sprintf(" **%s**[%d]", s.Status, note(s.Reason))
		default:
			if s.Verdict == "faster" {
				mark = " ▼"
			}
		}
		if len(s.Failures) > 0 && s.Status != "incomplete" {
			// Enough samples passed to compare, but a failure is news.
			mark += fmt.Sprintf(" (%d failed[%d])", len(s.Failures), note(oneLine(s.Failures[0])))
		}
		return ms(s.Tachyon) + mark + " | " + ms(s.Go)
	}
	seats := map[string]*seat{}
	var rows [][2]string
	for i := range r.Seats {
		s := &r.Seats[i]
		seats[s.key()] = s
		row := [2]string{s.Variant, s.Peer}
		if !slices.Contains(rows, row) {
			rows = append(rows, row)
		}
	}
	for _, row := range rows {
		d, l := seats[row[0]+" "+row[1]+" "+roleDials], seats[row[0]+" "+row[1]+" "+roleListens]
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", row[0], row[1], pair(d), pair(l))
	}
	notes.write(&b)
	return b.String()
}
