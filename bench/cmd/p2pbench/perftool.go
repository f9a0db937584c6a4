package main

// -perf-tool: the perf programs as a user runs them, each end its own
// process on loopback: `tachyon perf` against `tachyon perf --run-server`,
// the go-libp2p perf peer (interop/golibp2p, /perf/1.0.0 over a default
// go-libp2p host) against itself, and the floors of the same machine in the
// same run: a bare crypto/tls 1.3 stream and quic-go's HTTP/3, both between
// two p2pbench processes. Members take turns in rounds whose order rotates,
// so load that comes and goes falls on all of them; the figure of a member
// is its median over the rounds.

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var (
	perfTool       = flag.Bool("perf-tool", false, "measure the perf programs between two processes (tachyon perf, the go-libp2p perf peer) against bare TLS and HTTP/3 floors")
	perfToolRounds = flag.Int("perf-tool-rounds", 5, "rounds of -perf-tool")
	perfToolSize   = flag.Int64("perf-tool-size", 512<<20, "bytes per TCP upload of -perf-tool (QUIC: half)")
	tlsServe       = flag.Bool("tls-serve", false, "internal: serve bare TLS 1.3 uploads on 127.0.0.1 and print the address")
	tlsClient      = flag.String("tls-client", "", "internal: upload -tls-size bytes over bare TLS 1.3 to `addr` and print MiB/s")
	tlsSize        = flag.Int64("tls-size", 0, "internal: bytes of -tls-client")
)

// perfToolChild runs the hidden bare-TLS subcommands; ok is false if none
// was asked for.
func perfToolChild() (code int, ok bool) {
	switch {
	case *tlsServe:
		b, err := newBareTLS()
		if err != nil {
			fmt.Fprintln(os.Stderr, "p2pbench -tls-serve:", err)
			return 1, true
		}
		fmt.Println(b.ln.Addr())
		select {} // until the parent ends us
	case *tlsClient != "":
		r, err := (&bareTLS{cfg: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}}).uploadTo(*tlsClient, *tlsSize)
		if err != nil {
			fmt.Fprintln(os.Stderr, "p2pbench -tls-client:", err)
			return 1, true
		}
		fmt.Printf("RATE %f\n", r)
		return 0, true
	}
	return 0, false
}

// perfMember is one program pair of the comparison.
type perfMember struct {
	name   string
	family string // "TCP" or "QUIC"
	// run does one upload of size bytes and returns MiB/s.
	run func(ctx context.Context, size int64) (float64, error)
}

// perfRig holds the servers of every member.
type perfRig struct {
	dir     string
	tachyon string // binaries
	gopeer  string
	self    string
	procs   []*exec.Cmd
	members []perfMember
}

func (r *perfRig) close() {
	for _, p := range r.procs {
		p.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			p.Process.Kill()
			<-done
		}
	}
	os.RemoveAll(r.dir)
}

// start runs a server and returns the first line it prints (if wantLine).
func (r *perfRig) start(ctx context.Context, wantLine bool, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	r.procs = append(r.procs, cmd)
	if !wantLine {
		go io.Copy(io.Discard, out)
		return "", nil
	}
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		return "", fmt.Errorf("%s %v printed nothing: %v", name, args, sc.Err())
	}
	go io.Copy(io.Discard, out)
	return strings.TrimSpace(sc.Text()), nil
}

// freePort is a TCP and UDP port free on 127.0.0.1 just now.
func freePort() (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("no port free for both TCP and UDP")
}

// waitPerfServer waits until a perf client succeeds against addr.
func waitPerfServer(ctx context.Context, bin, addr string) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := runPerfClient(ctx, bin, addr, "tcp", 1); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("perf server %s at %s not answering: %w", filepath.Base(bin), addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runPerfClient runs one upload with a perf client following the
// test-plans contract and returns MiB/s from its final line.
func runPerfClient(ctx context.Context, bin, addr, transport string, size int64) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	args := []string{"perf", "--server-address", addr, "--transport", transport,
		"--upload-bytes", strconv.FormatInt(size, 10), "--download-bytes", "0"}
	out, err := exec.CommandContext(ctx, bin, args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return 0, fmt.Errorf("%s %v: %w: %s", filepath.Base(bin), args, err, ee.Stderr)
		}
		return 0, err
	}
	var final struct {
		Type        string  `json:"type"`
		TimeSeconds float64 `json:"timeSeconds"`
		UploadBytes int64   `json:"uploadBytes"`
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var v struct{ Type string }
		if json.Unmarshal([]byte(l), &v) == nil && v.Type == "final" {
			if err := json.Unmarshal([]byte(l), &final); err != nil {
				return 0, err
			}
		}
	}
	if final.Type != "final" || final.UploadBytes != size || final.TimeSeconds <= 0 {
		return 0, fmt.Errorf("%s: no final line for %d bytes in %q", filepath.Base(bin), size, out)
	}
	return float64(size) / (1 << 20) / final.TimeSeconds, nil
}

// childRate runs p2pbench with args and returns the MiB/s of its RATE line.
func childRate(ctx context.Context, self string, args ...string) (float64, error) {
	out, err := exec.CommandContext(ctx, self, args...).Output()
	if err != nil {
		return 0, fmt.Errorf("p2pbench %s: %w", args[0], err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "RATE "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("p2pbench %s printed %q", args[0], out)
}

// newPerfRig builds the programs and starts every server.
func newPerfRig(ctx context.Context) (*perfRig, error) {
	dir, err := os.MkdirTemp("", "p2pbench-perf")
	if err != nil {
		return nil, err
	}
	r := &perfRig{dir: dir, tachyon: filepath.Join(dir, "tachyon"), gopeer: filepath.Join(dir, "golibp2p-peer")}
	fail := func(err error) (*perfRig, error) { r.close(); return nil, err }
	if r.self, err = os.Executable(); err != nil {
		return fail(err)
	}
	for _, b := range []struct{ dir, pkg, out string }{
		{"..", "./cmd/tachyon", r.tachyon},
		{"../interop/golibp2p", ".", r.gopeer},
	} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", b.out, b.pkg)
		cmd.Dir = b.dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fail(fmt.Errorf("building %s (run from bench/): %w: %s", b.pkg, err, out))
		}
	}
	for _, bin := range []string{r.tachyon, r.gopeer} {
		port, err := freePort()
		if err != nil {
			return fail(err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		if _, err := r.start(ctx, false, bin, "perf", "--run-server", "--server-address", addr); err != nil {
			return fail(err)
		}
		if err := waitPerfServer(ctx, bin, addr); err != nil {
			return fail(err)
		}
		impl := "tachyon perf"
		if bin == r.gopeer {
			impl = "go-libp2p perf"
		}
		for _, tr := range []struct{ transport, family string }{{"tcp", "TCP"}, {"quic-v1", "QUIC"}} {
			r.members = append(r.members, perfMember{name: impl, family: tr.family,
				run: func(ctx context.Context, size int64) (float64, error) {
					return runPerfClient(ctx, bin, addr, tr.transport, size)
				}})
		}
	}
	tlsAddr, err := r.start(ctx, true, r.self, "-tls-serve")
	if err != nil {
		return fail(err)
	}
	r.members = append(r.members, perfMember{name: "bare TLS 1.3", family: "TCP",
		run: func(ctx context.Context, size int64) (float64, error) {
			return childRate(ctx, r.self, "-tls-client", tlsAddr, "-tls-size", strconv.FormatInt(size, 10))
		}})
	h3, err := r.start(ctx, true, r.self, "-wan-serve", httpH3, "-wan-ip", "127.0.0.1")
	if err != nil {
		return fail(err)
	}
	r.members = append(r.members, perfMember{name: "HTTP/3 (quic-go)", family: "QUIC",
		run: func(ctx context.Context, size int64) (float64, error) {
			return childRate(ctx, r.self, "-wan-client", httpH3, "-wan-peer", h3, "-wan-size", strconv.FormatInt(size, 10))
		}})
	return r, nil
}

// perfToolMain runs the rounds and prints the table; the exit code is 0,
// or 1 if it could not measure.
func perfToolMain(rounds int, size int64) int {
	ctx := context.Background()
	start := time.Now()
	r, err := newPerfRig(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "p2pbench:", err)
		return 1
	}
	defer r.close()
	rates := make(map[string][]float64) // by member key
	key := func(m perfMember) string { return m.name + "|" + m.family }
	for i := range rounds {
		for j := range r.members {
			m := r.members[(i+j)%len(r.members)]
			sz := size
			if m.family == "QUIC" {
				sz = size / 2
			}
			v, err := m.run(ctx, sz)
			if err != nil {
				fmt.Fprintf(os.Stderr, "p2pbench: %s over %s: %v\n", m.name, m.family, err)
				return 1
			}
			rates[key(m)] = append(rates[key(m)], v)
		}
		logf("perf tool: round %d/%d", i+1, rounds)
	}
	fmt.Print(perfToolMarkdown(rates, rounds, size, time.Since(start)))
	return 0
}

// perfToolMarkdown is the table: each member's median and runs, and the
// ratios the goals name.
func perfToolMarkdown(rates map[string][]float64, rounds int, size int64, took time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d rounds, %d MiB per TCP upload and %d MiB per QUIC upload, %v, load average at the end %s; MiB/s, median of the rounds\n\n",
		rounds, size>>20, size>>21, took.Round(time.Second), loadAvg())
	med := func(k string) float64 { return median(rates[k]) }
	b.WriteString("| transport | program pair (two processes) | MiB/s | runs |\n|---|---|---:|---|\n")
	for _, fam := range []string{"TCP", "QUIC"} {
		for _, name := range []string{"tachyon perf", "go-libp2p perf", "bare TLS 1.3", "HTTP/3 (quic-go)"} {
			k := name + "|" + fam
			if len(rates[k]) == 0 {
				continue
			}
			runs := slices.Sorted(slices.Values(rates[k]))
			var rs []string
			for _, v := range runs {
				rs = append(rs, fmt.Sprintf("%.0f", v))
			}
			fmt.Fprintf(&b, "| %s | %s | %.0f | %s |\n", fam, name, med(k), strings.Join(rs, ", "))
		}
	}
	b.WriteString("\n| ratio | value | goal |\n|---|---:|---|\n")
	ratio := func(label, a, c, goal string) {
		if len(rates[a]) > 0 && len(rates[c]) > 0 {
			fmt.Fprintf(&b, "| %s | %.2f | %s |\n", label, med(a)/med(c), goal)
		}
	}
	ratio("TCP: tachyon perf / go-libp2p perf", "tachyon perf|TCP", "go-libp2p perf|TCP", ">= 1.5")
	ratio("TCP: tachyon perf / bare TLS 1.3", "tachyon perf|TCP", "bare TLS 1.3|TCP", ">= 0.9")
	ratio("QUIC: tachyon perf / go-libp2p perf", "tachyon perf|QUIC", "go-libp2p perf|QUIC", "")
	ratio("QUIC: tachyon perf / HTTP/3", "tachyon perf|QUIC", "HTTP/3 (quic-go)|QUIC", ">= 1.0")
	return b.String()
}
