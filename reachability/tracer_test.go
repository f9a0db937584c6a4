package reachability

import (
	"context"
	"errors"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// chanTracer passes each call on as a string.
type chanTracer chan string

func (c chanTracer) Changed(from, to Verdict) { c <- "changed " + from.String() + " " + to.String() }
func (c chanTracer) Addrs(pub, priv, unk int) {
	c <- "addrs " + string(rune('0'+pub)) + string(rune('0'+priv)) + string(rune('0'+unk))
}

func TestTracer(t *testing.T) {
	leakcheck.Check(t)
	fp := &fakeProber{answer: func(_ peer.ID, a ma.Multiaddr) (Outcome, error) {
		switch {
		case a.Equal(addrTCP):
			return Reached, nil
		case a.Equal(addrQUIC):
			return Unreached, nil
		}
		return Inconclusive, errors.New("refused")
	}}
	tr := make(chanTracer, 20)
	m := New(fp, Config{Tracer: tr})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		m.Run(ctx)
		close(done)
	}()
	defer func() { cancel(); <-done }()
	next := func() string {
		select {
		case s := <-tr:
			return s
		case <-time.After(5 * time.Second):
			t.Fatal("no tracer call")
			return ""
		}
	}

	m.SetAddrs([]ma.Multiaddr{addrTCP, addrQUIC, ma.StringCast("/ip4/203.0.113.5/udp/4002/quic-v1")})
	if got := next(); got != "addrs 003" {
		t.Fatalf("after SetAddrs: %q, want addrs 003", got)
	}
	fp.mu.Lock()
	fp.servers = servers(t, 3)
	fp.mu.Unlock()
	m.ServersChanged()
	// Two changes, each followed by the counts; either address may be
	// decided first.
	var got [4]string
	for i := range got {
		got[i] = next()
	}
	want := [4]string{"changed unknown public", "addrs 102", "changed unknown private", "addrs 111"}
	if got[0] == "changed unknown private" {
		want = [4]string{"changed unknown private", "addrs 012", "changed unknown public", "addrs 111"}
	}
	if got != want {
		t.Fatalf("traced %q, want %q", got, want)
	}
}
