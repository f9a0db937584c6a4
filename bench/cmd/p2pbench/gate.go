package main

// The regression gate (-check, -write-baseline). It compares ratios only,
// never absolute times, and measures them so that a busy shared machine
// moves both sides of a ratio alike:
//
//   - the stacks of a comparison group (tachyon, go-libp2p and the HTTP
//     baselines of one transport) take single turns, ABCABC..., with the
//     starting member rotating, so every member sees the same moments;
//   - the gate runs with GOMAXPROCS=1: sender and receiver then take turns
//     on one thread, so a figure is the CPU work of both ends and does not
//     depend on whether the second core is free at that moment (other
//     users' load lands there). This made the per-round spread of the
//     upload ratios drop from 15-35 % to 3-7 %; what it cannot see,
//     regressions in how the two ends overlap on two cores, is left to
//     the full run;
//   - every round yields one ratio per comparison (medians of its dials,
//     best of its uploads), and the gate takes the median of those per-round
//     ratios, so a burst of load that spoils a round or two is outvoted
//     instead of pooled into the figures.

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// gateTolerance is how much worse than the baseline a ratio may get.
const gateTolerance = 0.15

// Sizes of the gate. A batch is gateRounds rounds after gateWarmup
// dropped ones; a check that fails measures up to gateBatches batches,
// pooling their rounds, and -write-baseline always takes gateBatches.
const (
	defaultGateRounds = 40
	gateWarmup        = 1
	gateBatches       = 3
	gateDials         = 4        // dials per member per round (median taken)
	gateUploads       = 2        // uploads per member per round (best taken)
	gateUpTCP         = 32 << 20 // bytes per upload, TCP stacks
	gateUpQUIC        = 16 << 20 // bytes per upload, QUIC stacks (slower)
	gateProcs         = 1        // GOMAXPROCS of the gate, see above
)

// gateGroups are the comparisons: the first member is the tachyon stack,
// each other member is compared with it. The browser transports are left
// out: they are being reworked for speed and their runs spread widely.
var gateGroups = []struct {
	sec     string
	members []serverKey
}{
	{secNoise, []serverKey{{implTachyon, secNoise}, {implGo, secNoise}, {httpH1, httpSec}, {httpH2, httpSec}}},
	{secTLS, []serverKey{{implTachyon, secTLS}, {implGo, secTLS}, {httpH1, httpSec}, {httpH2, httpSec}}},
	{secQUIC, []serverKey{{implTachyon, secQUIC}, {implGo, secQUIC}, {httpH3, httpSec}}},
}

// gateRatio is one ratio the regression gate watches.
type gateRatio struct {
	Ratio        float64 `json:"ratio"`
	HigherBetter bool    `json:"higher_is_better"`
}

// baselineFile is bench/baseline.json. The same code gives other ratios on
// another processor (AES-GCM against ChaCha20, for one), so each machine
// whose baseline was written has its own (Machines, by machineID); Ratios
// holds, per ratio, the worst of every machine's, for a machine not listed.
type baselineFile struct {
	Note     string                     `json:"note"`
	Date     string                     `json:"date"`
	Rounds   int                        `json:"rounds"`
	Ratios   map[string]gateRatio       `json:"ratios"`
	Machines map[string]machineBaseline `json:"machines,omitempty"`
}

// machineBaseline is one machine's baseline.
type machineBaseline struct {
	Date   string               `json:"date"`
	Rounds int                  `json:"rounds"`
	Ratios map[string]gateRatio `json:"ratios"`
}

// ratiosFor returns the baseline for the machine id and which one it is.
func (bf baselineFile) ratiosFor(id string) (map[string]gateRatio, string) {
	if m, ok := bf.Machines[id]; ok {
		return m.Ratios, "this machine's (" + id + ")"
	}
	return bf.Ratios, "the worst of the known machines' (none for " + id + ")"
}

// withMachine returns bf with cur added to machine id's baseline: each
// ratio the worse of cur's and the one already there, so that writing the
// baseline again on another day widens it to that day's figures too (the
// same code on the same machine image has measured up to 15 % apart
// between days on first replies); to tighten it after an improvement,
// delete the machine's entry first. The default ratios become, for the
// ratios measured now, the worst of every machine's and the old defaults;
// ratios no longer measured are dropped from them (a machine's own entry
// keeps them until it is written again).
func (bf baselineFile) withMachine(id string, cur map[string]gateRatio, date string, rounds int) baselineFile {
	out := baselineFile{Note: bf.Note, Date: date, Rounds: rounds, Ratios: map[string]gateRatio{}, Machines: map[string]machineBaseline{}}
	maps.Copy(out.Machines, bf.Machines)
	mine := machineBaseline{Date: date, Rounds: rounds, Ratios: map[string]gateRatio{}}
	if prev, ok := bf.Machines[id]; ok {
		mine.Date = prev.Date + " and " + date
		mine.Rounds += prev.Rounds
	}
	for k, c := range cur {
		if p, ok := bf.Machines[id].Ratios[k]; ok && worseThan(p, c) {
			c = p
		}
		mine.Ratios[k] = c
	}
	out.Machines[id] = mine
	for k, c := range mine.Ratios {
		if o, ok := bf.Ratios[k]; ok && worseThan(o, c) {
			c = o
		}
		for _, m := range out.Machines {
			if o, ok := m.Ratios[k]; ok && worseThan(o, c) {
				c = o
			}
		}
		out.Ratios[k] = c
	}
	return out
}

// worseThan reports whether a is a worse figure than b.
func worseThan(a, b gateRatio) bool {
	if a.HigherBetter {
		return a.Ratio < b.Ratio
	}
	return a.Ratio > b.Ratio
}

// machineID names the processor the gate runs on: /proc/cpuinfo's model
// name and cache size (a VM may show only "AMD EPYC") and a digest of its
// flags (which tell generations apart), with the core count.
func machineID() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	field := func(name string) string {
		for line := range strings.Lines(string(b)) {
			k, v, ok := strings.Cut(line, ":")
			if ok && strings.TrimSpace(k) == name {
				return strings.TrimSpace(v)
			}
		}
		return "?"
	}
	flags := sha256.Sum256([]byte(field("flags")))
	return fmt.Sprintf("%s, %s cache, %d cores, flags %x", field("model name"), field("cache size"), runtime.NumCPU(), flags[:4])
}

// gateName names the ratio of tachyon's sec stack to member m.
func gateName(kind, sec string, m serverKey) string {
	if m.sec == httpSec {
		return fmt.Sprintf("%s: tachyon %s/%s", kind, sec, m.impl)
	}
	return fmt.Sprintf("%s: tachyon/go-libp2p %s", kind, sec)
}

// gateRig is everything the gate dials and uploads to, built once.
type gateRig struct {
	servers map[serverKey]endpoint
	clients map[serverKey]endpoint // connected, for uploads
	https   map[string]*httpServer
	ups     map[string]*httpUploader
}

func newGateRig(ctx context.Context) (*gateRig, error) {
	g := &gateRig{
		servers: make(map[serverKey]endpoint),
		clients: make(map[serverKey]endpoint),
		https:   make(map[string]*httpServer),
		ups:     make(map[string]*httpUploader),
	}
	for _, impl := range impls {
		for _, sec := range upSecs {
			k := serverKey{impl, sec}
			s, err := newHost(impl, sec, true)
			if err != nil {
				g.close()
				return nil, err
			}
			g.servers[k] = s
			if err := serve(s); err != nil {
				g.close()
				return nil, err
			}
		}
	}
	for _, kind := range httpKinds {
		s, err := newHTTPServer(kind)
		if err != nil {
			g.close()
			return nil, err
		}
		g.https[kind] = s
	}
	if err := g.reconnect(ctx); err != nil {
		g.close()
		return nil, err
	}
	return g, nil
}

// reconnect replaces every upload connection with a new one (untimed).
// A connection can settle in a faster or slower state for its lifetime
// (socket buffer auto-tuning, flow-control windows); one connection per
// run made whole runs differ by up to 16 %, a new one per round lets the
// median over rounds average such states out.
func (g *gateRig) reconnect(ctx context.Context) error {
	if err := reconnectClients(ctx, g.servers, g.clients); err != nil {
		return fmt.Errorf("gate: %w", err)
	}
	for kind, s := range g.https {
		if old := g.ups[kind]; old != nil {
			old.done()
		}
		u, err := s.uploader(ctx)
		if err != nil {
			delete(g.ups, kind)
			return err
		}
		g.ups[kind] = u
	}
	return nil
}

// reconnectClients replaces the client of every server with a new host
// connected to it, identify done, closing the old one.
func reconnectClients(ctx context.Context, servers, clients map[serverKey]endpoint) error {
	for k, s := range servers {
		if old := clients[k]; old != nil {
			old.close()
		}
		c, err := newHost(k.impl, k.sec, false)
		if err != nil {
			delete(clients, k)
			return err
		}
		clients[k] = c
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = c.connect(cctx, s.ref())
		if err == nil {
			// Closing a tachyon host mid-identify can hang (see firstReply).
			waitIdentified(cctx, c, s)
		}
		cancel()
		if err != nil {
			return fmt.Errorf("%s/%s: connect: %w", k.impl, k.sec, err)
		}
	}
	return nil
}

func (g *gateRig) close() {
	for _, u := range g.ups {
		u.done()
	}
	for _, s := range g.https {
		s.close()
	}
	for _, c := range g.clients {
		c.close()
	}
	for _, s := range g.servers {
		s.close()
	}
}

func (g *gateRig) dial(ctx context.Context, m serverKey) (time.Duration, error) {
	if m.sec == httpSec {
		return g.https[m.impl].firstReply(ctx)
	}
	return firstReply(ctx, setup{m.impl, m.impl, m.sec}, g.servers[m])
}

func (g *gateRig) upload(ctx context.Context, m serverKey, size int64) (float64, error) {
	if m.sec == httpSec {
		return g.ups[m.impl].post(ctx, size)
	}
	return uploadOnce(ctx, g.clients[m], g.servers[m].ref(), size)
}

// round measures every group once and returns one ratio per comparison.
func (g *gateRig) round(ctx context.Context, n int) (map[string]float64, error) {
	if err := g.reconnect(ctx); err != nil {
		return nil, err
	}
	out := make(map[string]float64)
	for _, grp := range gateGroups {
		ms := grp.members
		dials := make([][]time.Duration, len(ms))
		ups := make([]float64, len(ms))
		size := int64(gateUpTCP)
		if family(grp.sec) == "QUIC" {
			size = gateUpQUIC
		}
		// Single turns, the first member rotating with i and the round, so
		// no member always follows the same one.
		for i := range gateDials {
			for j := range ms {
				m := ms[(i+j+n)%len(ms)]
				d, err := g.dial(ctx, m)
				if err != nil {
					return nil, err
				}
				idx := slices.Index(ms, m)
				dials[idx] = append(dials[idx], d)
			}
		}
		for i := range gateUploads {
			for j := range ms {
				idx := (i + j + n) % len(ms)
				r, err := g.upload(ctx, ms[idx], size)
				if err != nil {
					return nil, fmt.Errorf("gate: upload %v: %w", ms[idx], err)
				}
				ups[idx] = max(ups[idx], r)
			}
		}
		t := float64(percentile(dials[0], 0.5))
		for j, m := range ms[1:] {
			out[gateName("first reply median", grp.sec, m)] = t / float64(percentile(dials[j+1], 0.5))
			out[gateName("upload best", grp.sec, m)] = ups[0] / ups[j+1]
		}
	}
	return out, nil
}

// gateHigherBetter says which way a ratio should move.
func gateHigherBetter(name string) bool { return strings.HasPrefix(name, "upload") }

// gateRatios is the median over rounds of every ratio.
func gateRatios(rounds []map[string]float64) map[string]gateRatio {
	out := make(map[string]gateRatio)
	if len(rounds) == 0 {
		return out
	}
	for k := range rounds[0] {
		xs := make([]float64, 0, len(rounds))
		for _, r := range rounds {
			xs = append(xs, r[k])
		}
		out[k] = gateRatio{median(xs), gateHigherBetter(k)}
	}
	return out
}

// spread is the interquartile range of one ratio over the rounds relative
// to its median, printed so the steadiness of each ratio can be judged.
func spread(rounds []map[string]float64, k string) float64 {
	xs := make([]float64, 0, len(rounds))
	for _, r := range rounds {
		xs = append(xs, r[k])
	}
	slices.Sort(xs)
	n := len(xs)
	if n < 4 {
		return 0
	}
	return (xs[3*n/4] - xs[n/4]) / median(xs)
}

// gate measures the ratios and either writes them as the baseline
// (writePath) or compares them with the baseline at checkPath. A check
// that fails measures another batch, up to gateBatches, pooling the rounds:
// a real regression stays, a busy moment on the shared machine is outvoted.
// It returns the exit code: 0 pass, 1 regression, 2 could not measure.
func gate(checkPath, writePath string, rounds int) int {
	start := time.Now()
	ctx := context.Background()
	var base baselineFile
	if checkPath != "" {
		b, err := os.ReadFile(checkPath)
		if err == nil {
			err = json.Unmarshal(b, &base)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "p2pbench: baseline:", err)
			return 2
		}
	}
	id := machineID()
	// The baseline to update is read before measuring, so that a file that
	// cannot be read costs no minutes; one that does not exist is begun.
	var old baselineFile
	if writePath != "" {
		b, err := os.ReadFile(writePath)
		if err == nil {
			err = json.Unmarshal(b, &old)
		} else if errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "p2pbench: baseline to update:", err)
			return 2
		}
	}
	runtime.GOMAXPROCS(gateProcs)
	if slowTachyon > 0 {
		logf("gate: P2PBENCH_SLOW_TACHYON=%g: tachyon's first replies and writes are slowed on purpose", slowTachyon)
	}
	rig, err := newGateRig(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "p2pbench:", err)
		return 2
	}
	defer rig.close()

	var pool []map[string]float64
	n := 0
	batch := func() error {
		for i := range gateWarmup + rounds {
			r, err := rig.round(ctx, n)
			n++
			if err != nil {
				return err
			}
			if i >= gateWarmup {
				pool = append(pool, r)
			}
			if (i+1)%8 == 0 {
				logf("gate: %d rounds", len(pool))
			}
		}
		return nil
	}

	// P2PBENCH_GATE_DUMP=file keeps every round's ratios, to study the
	// method's spread.
	if dump := os.Getenv("P2PBENCH_GATE_DUMP"); dump != "" {
		defer func() {
			b, _ := json.Marshal(pool)
			os.WriteFile(dump, b, 0o644)
		}()
	}
	if writePath != "" {
		for range gateBatches {
			if err := batch(); err != nil {
				fmt.Fprintln(os.Stderr, "p2pbench:", err)
				return 2
			}
		}
		cur := gateRatios(pool)
		if len(cur) == 0 {
			fmt.Fprintln(os.Stderr, "p2pbench: no ratio measured; baseline not written")
			return 2
		}
		if old.Note == "" {
			old.Note = "p2pbench -write-baseline: medians over rounds of per-round ratios (stacks in single interleaved turns, GOMAXPROCS=1); -check fails when one worsens by more than 15 % against the baseline of its machine, or, on a machine not listed, against ratios, the worst of the listed ones"
		}
		bf := old.withMachine(id, cur, time.Now().UTC().Format("2006-01-02 15:04 UTC"), len(pool))
		b, _ := json.MarshalIndent(bf, "", "  ")
		if err := os.WriteFile(writePath, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "p2pbench:", err)
			return 2
		}
		for _, k := range slices.Sorted(maps.Keys(cur)) {
			fmt.Printf("%-50s %.3f (spread %.0f %%)\n", k, cur[k].Ratio, 100*spread(pool, k))
		}
		fmt.Printf("baseline of %s from %d rounds written to %s in %v\n", id, len(pool), writePath, time.Since(start).Round(time.Second))
		return 0
	}

	ratios, which := base.ratiosFor(id)
	if len(ratios) == 0 {
		fmt.Fprintf(os.Stderr, "p2pbench: %s baseline in %s holds no ratio\n", which, checkPath)
		return 2
	}
	logf("gate: comparing with %s baseline", which)
	base = baselineFile{Ratios: ratios}
	var failed []string
	for attempt := range gateBatches {
		if err := batch(); err != nil {
			fmt.Fprintln(os.Stderr, "p2pbench:", err)
			return 2
		}
		failed = compare(base, pool, attempt == gateBatches-1)
		if len(failed) == 0 {
			break
		}
		if attempt < gateBatches-1 {
			logf("gate: %d ratios worse than the baseline (%s); measuring another batch", len(failed), strings.Join(failed, "; "))
		}
	}
	if len(failed) == 0 {
		compare(base, pool, true)
	}
	fmt.Printf("p2pbench -check: %d of %d ratios worse than the baseline by more than %.0f %% after %d rounds (%v)\n",
		len(failed), len(base.Ratios), 100*gateTolerance, len(pool), time.Since(start).Round(time.Second))
	if len(failed) > 0 {
		fmt.Printf("p2pbench -check: FAILED: %s\n", strings.Join(failed, "; "))
		return 1
	}
	return 0
}

// compare returns the names of the ratios that are worse than in base by
// more than gateTolerance (or missing), printing every ratio if verbose.
func compare(base baselineFile, pool []map[string]float64, verbose bool) []string {
	cur := gateRatios(pool)
	var failed []string
	for _, k := range slices.Sorted(maps.Keys(base.Ratios)) {
		b := base.Ratios[k]
		c, ok := cur[k]
		if !ok {
			failed = append(failed, k+" (not measured)")
			if verbose {
				fmt.Printf("FAIL %-50s not measured\n", k)
			}
			continue
		}
		// worse is the relative change in the bad direction.
		worse := c.Ratio/b.Ratio - 1
		if b.HigherBetter {
			worse = b.Ratio/c.Ratio - 1
		}
		status := "ok  "
		if worse > gateTolerance {
			status = "FAIL"
			failed = append(failed, fmt.Sprintf("%s %+.0f %%", k, 100*worse))
		}
		if verbose {
			fmt.Printf("%s %-50s baseline %.3f now %.3f (%+.0f %% worse; spread %.0f %%)\n", status, k, b.Ratio, c.Ratio, 100*worse, 100*spread(pool, k))
		}
	}
	return failed
}
