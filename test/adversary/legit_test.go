package adversary

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tachyon-p2p/tachyon/testbed"
)

const (
	pingInterval = 20 * time.Millisecond
	pingTimeout  = 2 * time.Second // a ping slower than this counts as lost
	probeGap     = 250 * time.Millisecond
)

// legit is the well-behaved peer in its own host: one long-lived
// connection that pings the victim, and new connections (a new process and
// identity each time) that dial, open an echo stream and get a byte back.
type legit struct {
	host *testbed.Host
	bin  string // tachyon CLI

	mu          sync.Mutex
	rtts        []time.Duration // pings answered inside the window
	lost        int             // pings that failed or timed out inside the window
	dials, ok   int             // new-connection probes inside the window
	slowest     time.Duration   // the slowest successful probe (process start to echo)
	dialErrs    []string        // the first few failures
	pingErrs    []string        // the first few reasons a pinger stopped
	from, until time.Time       // the window; zero until: open
}

// inWindow reports whether t falls in the attack window.
func (l *legit) inWindow(t time.Time) bool {
	return !l.from.IsZero() && !t.Before(l.from) && (l.until.IsZero() || !t.After(l.until))
}

// ping runs `tachyon ping` against addr until ctx ends, restarting it when
// a ping fails (counted as lost). ready is closed once the first pong is in.
func (l *legit) ping(ctx context.Context, addr string, ready chan<- struct{}) {
	var once sync.Once
	for ctx.Err() == nil {
		cmd := l.host.Command(ctx, l.bin, "ping", addr, "-n", "1000000", "-i", pingInterval.String(), "-timeout", pingTimeout.String())
		out, err := cmd.StdoutPipe()
		if err != nil {
			return
		}
		stderr := &tailBuffer{max: 4096}
		cmd.Stderr = stderr
		if err := startCmd(cmd); err != nil {
			return
		}
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			i := strings.Index(line, " time=")
			if !strings.HasPrefix(line, "pong from ") || i < 0 {
				continue
			}
			d, err := time.ParseDuration(line[i+len(" time="):])
			if err != nil {
				continue
			}
			once.Do(func() { close(ready) })
			l.mu.Lock()
			if l.inWindow(time.Now()) {
				l.rtts = append(l.rtts, d)
			}
			l.mu.Unlock()
		}
		cmd.Wait()
		if ctx.Err() == nil {
			// The pinger gave up on a ping (or the connection): lost.
			l.mu.Lock()
			if l.inWindow(time.Now()) {
				l.lost++
				if len(l.pingErrs) < 3 {
					l.pingErrs = append(l.pingErrs, lastLines(stderr.String(), 1))
				}
			}
			l.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(probeGap):
			}
		}
	}
}

// probe dials addr with a new `tachyon rtt` process (new identity, new
// connection) every probeGap until ctx ends; a probe that starts inside
// the window counts.
func (l *legit) probe(ctx context.Context, addr string) {
	for ctx.Err() == nil {
		start := time.Now()
		// Not ctx: a probe that started in the window runs to its end.
		pctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cmd := l.host.Command(pctx, l.bin, "rtt", addr, "-n", "1", "-timeout", "5s")
		var stdout bytes.Buffer
		cmd.Stdout = &stdout
		err := startCmd(cmd)
		if err == nil {
			err = cmd.Wait()
		}
		cancel()
		out := stdout.Bytes()
		var res struct {
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &res)
		l.mu.Lock()
		if l.inWindow(start) {
			l.dials++
			if err == nil && jerr == nil && res.OK {
				l.ok++
				l.slowest = max(l.slowest, time.Since(start))
			} else if len(l.dialErrs) < 3 {
				l.dialErrs = append(l.dialErrs, fmt.Sprintf("%v %s", err, res.Error))
			}
		}
		l.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(probeGap):
		}
	}
}

// open starts the window, close ends it.
func (l *legit) open() {
	l.mu.Lock()
	l.from = time.Now()
	l.mu.Unlock()
}

func (l *legit) close() {
	l.mu.Lock()
	l.until = time.Now()
	l.mu.Unlock()
}

// p99 is the 99th percentile of the pings in the window (nearest rank),
// with a lost ping counting as pingTimeout.
func (l *legit) p99() (time.Duration, int, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	all := slices.Clone(l.rtts)
	for range l.lost {
		all = append(all, pingTimeout)
	}
	if len(all) == 0 {
		return 0, 0, l.lost
	}
	slices.Sort(all)
	i := (len(all)*99+99)/100 - 1
	return all[i], len(all), l.lost
}
