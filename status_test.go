package tachyon

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/connmgr"
	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/dialrank"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/internal/streamtest"
)

// TestStatus connects two clients to a server over TCP and QUIC, pings,
// keeps a stream open and fails a dial, then reads every side's Status.
func TestStatus(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const evilAgent = `evil/1 <img src=x onerror=alert(1)>`
	// The connection manager counts the streams per protocol.
	server := testHost(t, ListenAddrStrings("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"), UserAgent("server/1"), ConnManager(connmgr.Config{}))
	server.SetStreamHandler(echoID, echo)
	var traced atomic.Int32
	tcpClient := testHost(t, Transports(TCP), UserAgent(evilAgent), DialTrace(func(*dialrank.Trace) { traced.Add(1) }))
	quicClient := testHost(t, Transports(QUIC), UserAgent("quic/1"))
	for _, c := range []*Host{tcpClient, quicClient} {
		if err := c.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.IdentifyWait(ctx, server.ID()); err != nil {
			t.Fatal(err)
		}
		// The server's identify of the client, which records its agent,
		// runs on its own.
		if _, err := server.IdentifyWait(ctx, c.ID()); err != nil {
			t.Fatal(err)
		}
	}
	if err := tcpClient.Ping(ctx, server.ID(), 2, 0, 5*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	s, err := quicClient.NewStream(ctx, server.ID(), echoID)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	if _, err := s.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}

	// A dial to a port nobody listens on.
	gone := testHost(t, ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	goneAddr := gone.Addrs()[0]
	gone.Close()
	nobody := streamtest.PeerID(t, "nobody")
	if err := tcpClient.Connect(ctx, peer.AddrInfo{ID: nobody, Addrs: []ma.Multiaddr{goneAddr}}); err == nil {
		t.Fatal("connected to a closed port")
	}
	if traced.Load() < 2 {
		t.Errorf("the DialTrace option saw %d dials, want 2: the status hook must chain it", traced.Load())
	}

	// The server sees both clients (its end may register after Connect
	// returned, but identify answered, so it has).
	st := server.Status()
	if st.ID != server.ID().String() || st.Agent != "server/1" {
		t.Errorf("server status: id %s agent %q", st.ID, st.Agent)
	}
	if !equalStrings(st.ListenAddrs, addrStrings(server.Addrs())) {
		t.Errorf("listen addrs %v, want %v", st.ListenAddrs, server.Addrs())
	}
	if !equalStrings(st.AdvertisedAddrs, addrStrings(server.AdvertisedAddrs())) {
		t.Errorf("advertised addrs %v, want %v", st.AdvertisedAddrs, server.AdvertisedAddrs())
	}
	if !contains(st.Protocols, string(echoID)) {
		t.Errorf("protocols %v lack %s", st.Protocols, echoID)
	}
	want := map[string]struct{ transport, agent string }{
		tcpClient.ID().String():  {"tcp", evilAgent},
		quicClient.ID().String(): {"quic-v1", "quic/1"},
	}
	if len(st.Peers) != len(want) {
		t.Fatalf("server status has %d peers, want %d: %+v", len(st.Peers), len(want), st.Peers)
	}
	for i, p := range st.Peers {
		if i > 0 && st.Peers[i-1].ID >= p.ID {
			t.Errorf("peers not sorted by ID: %s before %s", st.Peers[i-1].ID, p.ID)
		}
		w, ok := want[p.ID]
		switch {
		case !ok:
			t.Errorf("unexpected peer %s", p.ID)
			continue
		case p.Agent != w.agent:
			t.Errorf("peer %s agent %q, want %q", p.ID, p.Agent, w.agent)
		case len(p.Conns) != 1:
			t.Fatalf("peer %s has %d conns, want 1", p.ID, len(p.Conns))
		}
		c := p.Conns[0]
		if c.Transport != w.transport || c.Direction != "inbound" || c.Security == "" || c.RemoteAddr == "" || c.LocalAddr == "" {
			t.Errorf("peer %s conn %+v, want an inbound %s conn with security and addresses", p.ID, c, w.transport)
		}
		if c.Age <= 0 || c.Age > time.Minute || c.Opened.IsZero() {
			t.Errorf("peer %s conn age %v opened %v", p.ID, c.Age, c.Opened)
		}
		if w.transport == "quic-v1" {
			// The echo stream is open: counted, and by protocol.
			if c.Streams < 1 {
				t.Errorf("quic conn has %d streams, want the open echo stream", c.Streams)
			}
			if c.StreamsByProtocol[string(echoID)] != 1 {
				t.Errorf("streams by protocol %v, want one %s", c.StreamsByProtocol, echoID)
			}
		}
	}

	// The client that pinged knows the RTT; it dialed, and its failure is kept.
	cst := tcpClient.Status()
	if len(cst.Peers) != 1 || cst.Peers[0].ID != server.ID().String() {
		t.Fatalf("client peers %+v", cst.Peers)
	}
	if p := cst.Peers[0]; p.RTT <= 0 || p.Conns[0].RTT != p.RTT || p.Conns[0].Direction != "outbound" || p.Agent != "server/1" {
		t.Errorf("client's view of the server: %+v", p)
	}
	if len(cst.DialFailures) != 1 {
		t.Fatalf("%d dial failures, want 1: %+v", len(cst.DialFailures), cst.DialFailures)
	}
	f := cst.DialFailures[0]
	if f.Peer != nobody.String() || len(f.Addrs) != 1 || !strings.Contains(f.Addrs[0], goneAddr.String()) ||
		!strings.Contains(f.Addrs[0], "refused") || time.Since(f.Time) > time.Minute || f.Error == "" {
		t.Errorf("dial failure %+v: want %s at %s refused", f, nobody, goneAddr)
	}
	if len(quicClient.Status().DialFailures) != 0 {
		t.Errorf("the QUIC client failed no dial, but its status lists some")
	}

	// JSON: peer IDs and addresses as text, durations in nanoseconds.
	b, err := json.Marshal(cst)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	peers := back["peers"].([]any)
	p0 := peers[0].(map[string]any)
	if p0["id"] != server.ID().String() || p0["rttNs"].(float64) != float64(cst.Peers[0].RTT) {
		t.Errorf("JSON peer %v", p0)
	}
	if back["dialFailures"].([]any)[0].(map[string]any)["peer"] != nobody.String() {
		t.Errorf("JSON dial failures %v", back["dialFailures"])
	}

	// A closed host answers with what it still knows: no peers.
	tcpClient.Close()
	if len(tcpClient.Status().Peers) != 0 {
		t.Error("a closed host still lists peers")
	}
}

func equalStrings(a, b []string) bool {
	return strings.Join(a, "\n") == strings.Join(b, "\n")
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// TestDialFailures checks the ring: only failed dials, newest first, at
// most MaxDialFailures, lines bounded.
func TestDialFailures(t *testing.T) {
	addr := ma.StringCast("/ip4/192.0.2.1/tcp/4001")
	long := errors.New("handshake failed: " + strings.Repeat("é", 400) + "\nsecond line")
	trace := func(i int, ok bool, err error) *dialrank.Trace {
		k, _ := crypto.GenerateEd25519Key(nil)
		p, _ := peer.IDFromPrivateKey(k)
		now := time.Unix(int64(1000+i), 0)
		tr := dialrank.NewTrace(p, dialrank.Ranking{Dials: []dialrank.Dial{{Addr: addr, Transport: dialrank.TCP}}}, now)
		idx := tr.Started(tr.Ranking.Dials[0], now)
		if ok {
			err = nil
		}
		tr.Finished(idx, now, err)
		tr.Done(now, nil)
		return tr
	}
	for _, tc := range []struct {
		name      string
		fails, ok int
		err       error
		wantN     int
		wantLine  string
	}{
		{"empty", 0, 3, nil, 0, ""},
		{"one refused", 1, 1, syscall.ECONNREFUSED, 1, "refused"},
		{"wraps", MaxDialFailures + 5, 2, syscall.ECONNREFUSED, MaxDialFailures, "refused"},
		{"long error clipped to one line", 2, 0, long, 2, "handshake failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var seen []*dialrank.Trace
			var f dialFailures
			hook := f.hook(func(tr *dialrank.Trace) { seen = append(seen, tr) })
			var failed []*dialrank.Trace
			for i := 0; i < tc.fails+tc.ok; i++ {
				// Successes after the failures must not push them out.
				tr := trace(i, i >= tc.fails, tc.err)
				if i < tc.fails {
					failed = append(failed, tr)
				}
				hook(tr)
			}
			if len(seen) != tc.fails+tc.ok {
				t.Errorf("user hook saw %d traces, want %d", len(seen), tc.fails+tc.ok)
			}
			got := f.list()
			if len(got) != tc.wantN {
				t.Fatalf("%d failures, want %d", len(got), tc.wantN)
			}
			for i, df := range got {
				tr := failed[len(failed)-1-i] // newest first
				if df.Peer != tr.Peer.String() || !df.Time.Equal(tr.End) {
					t.Errorf("failure %d is %s at %v, want %s at %v", i, df.Peer, df.Time, tr.Peer, tr.End)
				}
				if len(df.Addrs) != 1 || !strings.Contains(df.Addrs[0], addr.String()) || !strings.Contains(df.Addrs[0], tc.wantLine) {
					t.Errorf("failure %d addrs %q, want one line with %s and %q", i, df.Addrs, addr, tc.wantLine)
				}
				for _, l := range df.Addrs {
					if strings.Contains(l, "\n") || len(l) > maxFailureLine+len("…") {
						t.Errorf("line of %d bytes or with a newline: %q", len(l), l)
					}
				}
			}
		})
	}
	var nilRing *dialFailures
	if l := nilRing.list(); l == nil || len(l) != 0 {
		t.Errorf("a nil ring lists %v, want an empty list", l)
	}
}
