package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
)

// known is one line of known.txt: an incompatibility the run expects.
type known struct {
	Dialer, Listener, Variant string // path.Match patterns
	Reason                    string
	line                      int
}

// parseKnown reads known.txt: "dialer listener variant reason...", fields
// separated by spaces, # comments. Variants are spelled as in the tables
// (tcp/noise/yamux, quic-v1, webtransport ...).
func parseKnown(r io.Reader) ([]known, error) {
	var out []known
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 {
			return nil, fmt.Errorf("known incompatibilities line %d: want dialer, listener, variant and a reason: %q", n, line)
		}
		k := known{Dialer: f[0], Listener: f[1], Variant: f[2], Reason: strings.Join(f[3:], " "), line: n}
		for _, p := range f[:3] {
			if _, err := path.Match(p, ""); err != nil {
				return nil, fmt.Errorf("known incompatibilities line %d: pattern %q: %w", n, p, err)
			}
		}
		out = append(out, k)
	}
	return out, sc.Err()
}

func (k *known) matches(c *cell) bool {
	m := func(p, s string) bool { ok, _ := path.Match(p, s); return ok }
	return m(k.Dialer, c.Dialer) && m(k.Listener, c.Listener) && m(k.Variant, c.variant().String())
}

// judge turns a run cell's pass/fail into its verdict against the list: a
// listed cell must fail and an unlisted one must pass.
func judge(c *cell, ks []known) {
	if c.Outcome == "" { // not applicable: never run
		return
	}
	c.Status, c.Reason = c.Outcome, c.Detail
	i := slices.IndexFunc(ks, func(k known) bool { return k.matches(c) })
	switch {
	case i < 0:
	case c.Outcome == "fail":
		c.Status, c.Reason = "known", ks[i].Reason+" (failed: "+c.Detail+")"
	default:
		c.Status, c.Reason = "unexpected-pass", fmt.Sprintf("listed as incompatible (known.txt line %d: %s) but passed", ks[i].line, ks[i].Reason)
	}
}

// results is the JSON file of a run.
type results struct {
	Set     string     `json:"set"`
	Date    string     `json:"date"`
	Seconds float64    `json:"seconds"`
	Go      string     `json:"go"`
	Impls   []implInfo `json:"implementations"`
	Cells   []cell     `json:"cells"`
}

type implInfo struct {
	Name       string `json:"name"`
	Version    string `json:"version"`
	BuildError string `json:"buildError,omitempty"`
}

func (r *results) counts() map[string]int {
	n := map[string]int{}
	for _, c := range r.Cells {
		n[c.Status]++
	}
	return n
}

// markdown renders a run: one grid per variant (rows dial, columns
// listen), the reasons as numbered notes, then the latency comparison.
func (r *results) markdown() string {
	var b strings.Builder
	n := r.counts()
	fmt.Fprintf(&b, "Last run %s (%s set, Go %s, %.0f s): **%d pass, %d fail, %d known incompatibilities, %d unexpected passes, %d not applicable**.\n\n",
		r.Date, r.Set, r.Go, r.Seconds, n["pass"], n["fail"], n["known"], n["unexpected-pass"], n["n/a"])
	b.WriteString("| name | implementation |\n|---|---|\n")
	for _, im := range r.Impls {
		v := im.Version
		if im.BuildError != "" {
			v += " (**build failed**: " + oneLine(tail(im.BuildError, 200)) + ")"
		}
		fmt.Fprintf(&b, "| %s | %s |\n", im.Name, v)
	}
	b.WriteString("\nCells: `✓ ms` passed (handshake + 1 RTT in ms, one sample), `known` an expected failure, ")
	b.WriteString("`FAIL` an unexpected failure, `PASS?` a listed incompatibility that passed, `–` not applicable; [n] is the note with the reason.\n")
	var notes noteList
	note := notes.ref
	names := make([]string, len(r.Impls))
	for i, im := range r.Impls {
		names[i] = im.Name
	}
	for _, v := range variants {
		cells := map[[2]string]*cell{}
		var listeners []string
		for i := range r.Cells {
			c := &r.Cells[i]
			if c.variant() != v {
				continue
			}
			cells[[2]string{c.Dialer, c.Listener}] = c
			if !slices.Contains(listeners, c.Listener) {
				listeners = append(listeners, c.Listener)
			}
		}
		if len(cells) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n**%s** (rows dial, columns listen)\n\n| dialer \\ listener |", v)
		for _, l := range listeners {
			fmt.Fprintf(&b, " %s |", l)
		}
		b.WriteString("\n|---|" + strings.Repeat("---|", len(listeners)) + "\n")
		for _, d := range names {
			if !slices.ContainsFunc(listeners, func(l string) bool { return cells[[2]string{d, l}] != nil }) {
				continue
			}
			fmt.Fprintf(&b, "| %s |", d)
			for _, l := range listeners {
				c := cells[[2]string{d, l}]
				switch {
				case c == nil:
					b.WriteString(" |")
				case c.Status == "pass":
					fmt.Fprintf(&b, " ✓ %.0f |", c.Handshake)
				case c.Status == "n/a":
					fmt.Fprintf(&b, " –[%d] |", note(c.Reason))
				case c.Status == "known":
					fmt.Fprintf(&b, " known[%d] |", note(knownReason(c.Reason)))
				case c.Status == "unexpected-pass":
					fmt.Fprintf(&b, " **PASS?**[%d] |", note(c.Reason))
				default:
					fmt.Fprintf(&b, " **FAIL**[%d] |", note(c.Reason))
				}
			}
			b.WriteString("\n")
		}
	}
	notes.write(&b)
	b.WriteString(r.latency())
	return b.String()
}

// knownReason drops a known cell's failure detail (it differs per cell)
// so that the notes group by the listed reason.
func knownReason(s string) string {
	if i := strings.Index(s, " (failed: "); i >= 0 {
		return s[:i]
	}
	return s
}

// latencyRef is the go-libp2p version tachyon's latency is compared with.
const latencyRef = "go-v0.51.0"

// latency points to the latency comparison: one sample per cell, taken
// while the machine does other work, cannot say which side is slower, so
// the matrix shows its numbers in the grids only and -latency measures.
func (r *results) latency() string {
	return "\nLatency: the grids show one sample per cell; tachyon vs go-libp2p v0.51 seat by seat, with repeats and a noise margin, is the latency table " +
		"(`go run ./interop/matrix -latency`, `make interop-latency`).\n"
}

// writeSection replaces the text between the set's markers in
// COMPATIBILITY.md; the markers must be there already.
func writeSection(file, set, body string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	begin, end := "<!-- transport-interop "+set+" begin -->\n", "<!-- transport-interop "+set+" end -->"
	s := string(b)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		return fmt.Errorf("%s: markers %q ... %q not found", file, strings.TrimSpace(begin), end)
	}
	s = s[:i+len(begin)] + body + s[j:]
	return os.WriteFile(file, []byte(s), 0o644)
}

// noteList numbers the reasons a table cites, each once, in order of
// first citation.
type noteList []string

// ref returns reason's note number, adding it if new.
func (n *noteList) ref(reason string) int {
	if i := slices.Index(*n, reason); i >= 0 {
		return i + 1
	}
	*n = append(*n, reason)
	return len(*n)
}

// write appends the numbered notes, if any.
func (n noteList) write(b *strings.Builder) {
	if len(n) == 0 {
		return
	}
	b.WriteString("\nNotes:\n")
	for i, s := range n {
		fmt.Fprintf(b, "%d. %s\n", i+1, strings.ReplaceAll(s, "|", "\\|"))
	}
}
