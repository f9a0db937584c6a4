// Command matrix runs the transport-interop matrix without docker: every
// dialer x listener x transport x security x muxer among tachyon (HEAD and a
// pinned old commit), go-libp2p versions and js-libp2p lines, as native
// processes speaking the test-plans transport-interop contract through one
// redis-server. See README.md.
//
//	go run ./interop/matrix -set slice    # CI's slice (make interop-slice)
//	go run ./interop/matrix -set full     # everything (make interop-full)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code, err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "matrix:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

type options struct {
	set      string
	impls    string
	cache    string
	results  string
	compat   string
	known    string
	only     string
	timeout  int
	netns    bool
	inNetns  bool
	buildOff bool
	rejudge  bool
	merge    string
	// -latency: tachyon vs go v0.51, seat by seat (latency.go)
	latency      bool
	repeat       int
	latencyKnown string
}

func run(ctx context.Context, args []string) (int, error) {
	var o options
	fs := flag.NewFlagSet("matrix", flag.ContinueOnError)
	userCache, _ := os.UserCacheDir()
	fs.StringVar(&o.set, "set", "slice", "`slice` or full")
	fs.StringVar(&o.impls, "impls", "", "comma-separated implementations instead of the set's (names as in the tables)")
	fs.StringVar(&o.cache, "cache", filepath.Join(userCache, "tachyon-interop-matrix"), "`dir` for generated modules and binaries")
	fs.StringVar(&o.results, "results", "", "JSON result `file` (default interop/matrix/results-SET.json)")
	fs.StringVar(&o.compat, "compat", "", "write the tables into this COMPATIBILITY.md between the set's markers (\"\": do not)")
	fs.StringVar(&o.known, "known", "", "known incompatibilities `file` (default interop/matrix/known.txt)")
	fs.StringVar(&o.only, "only", "", "run only cells whose \"dialer listener variant\" matches this `regexp` (the others are left out of the results)")
	fs.IntVar(&o.timeout, "timeout", 20, "test_timeout_seconds given to the peers")
	fs.BoolVar(&o.netns, "netns", os.Geteuid() == 0, "run the cells in a private network namespace (needs root and unshare)")
	fs.BoolVar(&o.inNetns, "in-netns", false, "internal: already in the namespace, binaries built")
	fs.BoolVar(&o.buildOff, "build-only", false, "build every implementation of the set, run nothing")
	fs.StringVar(&o.merge, "merge", "", "with -rejudge: first put the cells of this results `file` (a partial run's) in place of the same cells")
	fs.BoolVar(&o.rejudge, "rejudge", false, "run nothing: judge the -results file's cells again against -known and rewrite it and the tables")
	fs.BoolVar(&o.latency, "latency", false, "measure latency instead: tachyon vs "+latencyRef+" in each seat against each other implementation, cells one at a time, -repeat rounds (-only then matches \"variant peer\")")
	fs.IntVar(&o.repeat, "repeat", 7, "with -latency: rounds of each variant and peer's four cells")
	fs.StringVar(&o.latencyKnown, "latency-known", "", "with -latency: accepted slower seats `file` (default interop/matrix/latency-known.txt)")
	if err := fs.Parse(args); err != nil {
		return 2, err
	}
	names := sets[o.set]
	if o.impls != "" {
		names = strings.Split(o.impls, ",")
	}
	if names == nil {
		return 2, fmt.Errorf("unknown -set %q (slice or full)", o.set)
	}
	only, err := regexp.Compile(o.only)
	if err != nil {
		return 2, fmt.Errorf("-only: %w", err)
	}
	repo, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return 2, fmt.Errorf("finding the tachyon checkout (run inside it): %w", err)
	}
	e := &env{repo: strings.TrimSpace(string(repo)), cache: o.cache}
	if o.results == "" {
		o.results = filepath.Join(e.repo, "interop/matrix", "results-"+o.set+".json")
		if o.latency {
			o.results = filepath.Join(e.repo, "interop/matrix", "latency-"+o.set+".json")
		}
	}
	if o.latencyKnown == "" {
		o.latencyKnown = filepath.Join(e.repo, "interop/matrix/latency-known.txt")
	}
	if o.latency && o.repeat < minSamples {
		return 2, fmt.Errorf("-repeat %d: the comparison needs at least %d samples a side", o.repeat, minSamples)
	}
	if o.known == "" {
		o.known = filepath.Join(e.repo, "interop/matrix/known.txt")
	}
	f, err := os.Open(o.known)
	if err != nil {
		return 2, err
	}
	ks, err := parseKnown(f)
	f.Close()
	if err != nil {
		return 2, err
	}
	if o.rejudge && o.latency {
		return rejudgeLatency(o)
	}
	if o.rejudge {
		b, err := os.ReadFile(o.results)
		if err != nil {
			return 2, err
		}
		var res results
		if err := json.Unmarshal(b, &res); err != nil {
			return 2, fmt.Errorf("%s: %w", o.results, err)
		}
		if o.merge != "" {
			b, err := os.ReadFile(o.merge)
			if err != nil {
				return 2, err
			}
			var part results
			if err := json.Unmarshal(b, &part); err != nil {
				return 2, fmt.Errorf("%s: %w", o.merge, err)
			}
			res = merge(res, part, ks)
		}
		for i := range res.Cells {
			judge(&res.Cells[i], ks)
		}
		return finish(&res, o, "")
	}
	var impls []*impl
	for _, n := range names {
		im, err := e.impl(n)
		if err != nil {
			return 2, err
		}
		impls = append(impls, im)
	}

	started := time.Now()
	buildErrs := filepath.Join(o.cache, "build-errors.json")
	failedBuilds := map[string]string{}
	if o.inNetns {
		if b, err := os.ReadFile(buildErrs); err == nil {
			json.Unmarshal(b, &failedBuilds)
		}
	} else {
		if err := os.MkdirAll(filepath.Join(o.cache, "bin"), 0o755); err != nil {
			return 1, err
		}
		// One build at a time: the machine is shared and each go-libp2p
		// version compiles a few hundred packages when cold.
		for _, im := range impls {
			t := time.Now()
			if err := im.build(ctx); err != nil {
				failedBuilds[im.Name] = err.Error()
				fmt.Fprintf(os.Stderr, "build %s: FAILED after %s: %v\n", im.Name, time.Since(t).Round(time.Second), err)
				continue
			}
			fmt.Fprintf(os.Stderr, "build %s: %s\n", im.Name, time.Since(t).Round(100*time.Millisecond))
		}
		b, _ := json.Marshal(failedBuilds)
		if err := os.WriteFile(buildErrs, b, 0o644); err != nil {
			return 1, err
		}
		if o.buildOff {
			if len(failedBuilds) > 0 {
				return 1, errors.New("some builds failed")
			}
			return 0, nil
		}
		if o.netns {
			if _, err := exec.LookPath("unshare"); err != nil {
				return 1, fmt.Errorf("-netns needs unshare (util-linux); -netns=false runs on the host's loopback: %w", err)
			}
			return enterNetns(args)
		}
	}

	tmp, err := os.MkdirTemp("", "matrix-redis-")
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(tmp)
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	rd, err := startRedis(rctx, tmp)
	cancel()
	if err != nil {
		return 1, err
	}
	defer rd.stop()
	r := &runner{redis: rd, timeout: o.timeout, ip: "127.0.0.1", logs: filepath.Join(o.cache, "logs")}
	os.RemoveAll(r.logs)
	if err := os.MkdirAll(r.logs, 0o755); err != nil {
		return 1, err
	}

	if o.latency {
		return latencyMain(ctx, o, r, impls, failedBuilds, ks, only, started)
	}
	res := results{Set: o.set, Date: started.UTC().Format("2006-01-02 15:04 UTC"), Go: runtime.Version()}
	for _, im := range impls {
		res.Impls = append(res.Impls, implInfo{Name: im.Name, Version: im.Version, BuildError: failedBuilds[im.Name]})
	}
	for _, v := range variants {
		for _, d := range impls {
			for _, l := range impls {
				if ctx.Err() != nil {
					return 1, ctx.Err()
				}
				c := cell{Dialer: d.Name, Listener: l.Name, Transport: v.Transport, Security: v.Security, Muxer: v.Muxer}
				if !only.MatchString(c.Dialer + " " + c.Listener + " " + v.String()) {
					continue
				}
				switch {
				case d.why(v, true) != "":
					c.Status, c.Reason = "n/a", d.Name+": "+d.why(v, true)
				case l.why(v, false) != "":
					c.Status, c.Reason = "n/a", l.Name+": "+l.why(v, false)
				case failedBuilds[d.Name] != "" || failedBuilds[l.Name] != "":
					c.Outcome, c.Detail = "fail", "build failed"
					judge(&c, ks)
				default:
					r.runCell(ctx, &c, d, l)
					judge(&c, ks)
				}
				res.Cells = append(res.Cells, c)
				if c.Status != "n/a" {
					fmt.Fprintf(os.Stderr, "%-15s %-13s -> %-13s %-6s %6.1f ms %s\n", v, d.Name, l.Name, c.Status, c.Handshake, c.Reason)
				}
			}
		}
	}
	res.Seconds = time.Since(started).Round(time.Second).Seconds()
	if o.only != "" {
		// A partial run updates the cells it ran in the last results.
		if b, err := os.ReadFile(o.results); err == nil {
			var last results
			if json.Unmarshal(b, &last) == nil && last.Set == res.Set {
				res = merge(last, res, ks)
			}
		}
	}
	return finish(&res, o, r.logs)
}

// writeResults writes res as JSON to o.results and, with o.compat set,
// markdown() as COMPATIBILITY.md's section.
func writeResults(o options, res any, section string, markdown func() string) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(o.results, append(b, '\n'), 0o644); err != nil {
		return err
	}
	if o.compat != "" {
		return writeSection(o.compat, section, markdown())
	}
	return nil
}

// finish writes the results and the tables and says whether the run
// failed.
func finish(res *results, o options, logs string) (int, error) {
	if err := writeResults(o, res, res.Set, res.markdown); err != nil {
		return 1, err
	}
	n := res.counts()
	fmt.Fprintf(os.Stderr, "%d pass, %d fail, %d known, %d unexpected-pass, %d n/a in %.0f s; results in %s\n",
		n["pass"], n["fail"], n["known"], n["unexpected-pass"], n["n/a"], res.Seconds, o.results)
	if logs != "" && n["fail"] > 0 {
		fmt.Fprintf(os.Stderr, "failed cells' logs in %s\n", logs)
	}
	if n["fail"]+n["unexpected-pass"] > 0 {
		return 1, nil
	}
	return 0, nil
}

// merge puts the cells of a partial run in place of the same cells of the
// last results, and its implementations' build errors too; the date and
// duration stay the last full run's.
func merge(last, part results, ks []known) results {
	key := func(c *cell) string { return c.Dialer + " " + c.Listener + " " + c.variant().String() }
	idx := map[string]int{}
	for i := range last.Cells {
		idx[key(&last.Cells[i])] = i
	}
	for _, c := range part.Cells {
		if i, ok := idx[key(&c)]; ok {
			last.Cells[i] = c
		} else {
			last.Cells = append(last.Cells, c)
		}
	}
	for _, im := range part.Impls {
		for i := range last.Impls {
			if last.Impls[i].Name == im.Name {
				last.Impls[i] = im
			}
		}
	}
	for i := range last.Cells {
		judge(&last.Cells[i], ks)
	}
	return last
}
