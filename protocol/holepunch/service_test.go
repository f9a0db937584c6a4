package holepunch

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/internal/lp"
	"github.com/tachyon-p2p/tachyon/internal/streamtest"
	"github.com/tachyon-p2p/tachyon/internal/varint"
	"github.com/tachyon-p2p/tachyon/mss"
)

// slack is how late a timed step may be on a loaded 2-core machine with
// -race; assertions only bound from below tightly.
const slack = 200 * time.Millisecond

var relayAddr = ma.StringCast("/ip4/198.51.100.1/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit")

func within(t testing.TB, what string, got, lo, hi time.Duration) {
	t.Helper()
	if got < lo || got > hi {
		t.Errorf("%s = %s, want within [%s, %s]", what, got, lo, hi)
	}
}

// The round trip B measures is the relay's, both ways; A returns when SYNC
// arrives, half a round trip after B sent it.
func TestExchange(t *testing.T) {
	leakcheck.Check(t)
	const delay = 40 * time.Millisecond
	aID, bID := newID(t, "A"), newID(t, "B")
	aAddrs, bAddrs := addrs("/ip4/1.2.3.4/tcp/1"), addrs("/ip4/5.6.7.8/tcp/2", "/ip4/5.6.7.8/udp/2/quic-v1")
	bEnd, aEnd := streamPair(delay, bID, aID, relayAddr, relayAddr, true)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	type result struct {
		addrs []ma.Multiaddr
		err   error
		at    time.Time
	}
	done := make(chan result, 1)
	go func() {
		got, err := Respond(ctx, aEnd, aAddrs, nil)
		done <- result{got, err, time.Now()}
	}()
	got, rtt, err := Initiate(ctx, bEnd, bAddrs, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !sameAddrs(got, aAddrs) || !sameAddrs(r.addrs, bAddrs) {
		t.Errorf("B got %v (want %v), A got %v (want %v)", got, aAddrs, r.addrs, bAddrs)
	}
	within(t, "RTT", rtt, 2*delay, 2*delay+slack)
	within(t, "SYNC to A's return", r.at.Sub(bEnd.LastWrite()), delay, delay+slack)
	// The exchanges leave the stream to their caller.
	if bEnd.Ended() != "" || aEnd.Ended() != "" {
		t.Errorf("streams ended by the exchange: B %q, A %q", bEnd.Ended(), aEnd.Ended())
	}
}

// A misbehaving peer gets an error, never a hang.
func TestExchangeMalformed(t *testing.T) {
	connect := (&Message{Type: Connect, ObsAddrs: addrs("/ip4/1.2.3.4/tcp/1")}).Marshal()
	sync := (&Message{Type: Sync}).Marshal()
	tooLarge := varint.Append(nil, MaxMessageSize+1)
	send := func(msgs ...[]byte) func(st *streamtest.Stream) {
		return func(st *streamtest.Stream) {
			for _, m := range msgs {
				_, _ = st.Write(m)
			}
		}
	}
	silent := func(*streamtest.Stream) {}
	tests := []struct {
		name    string
		b       bool // test B's Initiate against a scripted A; else A's Respond
		peer    func(st *streamtest.Stream)
		wantErr error // nil: any error
	}{
		{"B: A answers SYNC", true, send(lp.Append(nil, sync)), ErrMalformed},
		{"B: A answers garbage", true, send(lp.Append(nil, []byte{0x08, 0x07})), ErrMalformed},
		{"B: A answers a huge message", true, send(tooLarge), lp.ErrTooLarge},
		{"B: A closes", true, func(st *streamtest.Stream) { _ = st.Close() }, io.EOF},
		{"B: A resets", true, func(st *streamtest.Stream) { _ = st.Reset() }, network.ErrReset},
		{"B: A is silent", true, silent, context.DeadlineExceeded},
		{"A: SYNC before CONNECT", false, send(lp.Append(nil, sync)), ErrMalformed},
		{"A: garbage", false, send([]byte{0x03, 0xff, 0xff, 0xff}), ErrMalformed},
		{"A: a huge message", false, send(tooLarge), lp.ErrTooLarge},
		{"A: CONNECT twice", false, send(lp.Append(nil, connect), lp.Append(nil, connect)), ErrMalformed},
		{"A: CONNECT then close", false, func(st *streamtest.Stream) { send(lp.Append(nil, connect))(st); _ = st.Close() }, io.EOF},
		{"A: CONNECT then silence", false, send(lp.Append(nil, connect)), context.DeadlineExceeded},
		{"A: silent", false, silent, context.DeadlineExceeded},
		{"A: reset", false, func(st *streamtest.Stream) { _ = st.Reset() }, network.ErrReset},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leakcheck.Check(t)
			us, them := streamPair(time.Millisecond, newID(t, "us"), newID(t, "them"), relayAddr, relayAddr, true)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			tt.peer(them)
			start := time.Now()
			var err error
			if tt.b {
				_, _, err = Initiate(ctx, us, addrs("/ip4/5.6.7.8/tcp/2"), nil)
			} else {
				_, err = Respond(ctx, us, addrs("/ip4/5.6.7.8/tcp/2"), nil)
			}
			if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if took := time.Since(start); took > testTimeout/2 {
				t.Fatalf("took %s", took)
			}
		})
	}
}

// One round end to end: B dials half a round trip after sending SYNC, when
// SYNC reaches A and A dials too; A is the client of the upgrade.
func TestDirectConnectTiming(t *testing.T) {
	leakcheck.Check(t)
	const delay = 40 * time.Millisecond
	ps := newPair(t, delay, Config{}, Config{})
	ps.a.dial, ps.b.dial = dialOK(ps.bID), dialOK(ps.aID)
	c, err := ps.directConnect(t)
	if err != nil {
		t.Fatal(err)
	}
	if !c.RemoteMultiaddr().Equal(ps.aAddrs[0]) {
		t.Errorf("connected to %v", c.RemoteMultiaddr())
	}
	eb, ea := ps.evB.next(t), ps.evA.next(t)
	ps.wg.Wait()

	if eb.Side != SideInitiator || eb.Attempt != 1 || !eb.Success || eb.Peer != ps.aID || eb.Transport != "tcp" ||
		!eb.Remote.Equal(ps.aAddrs[0]) || !sameAddrs(eb.Addrs, ps.aAddrs) || eb.Reason != "" || eb.Err != nil {
		t.Errorf("B's event: %+v", eb)
	}
	if ea.Side != SideResponder || ea.Attempt != 1 || !ea.Success || ea.Peer != ps.bID || !sameAddrs(ea.Addrs, ps.bAddrs) {
		t.Errorf("A's event: %+v", ea)
	}
	within(t, "RTT", eb.RTT, 2*delay, 2*delay+slack)
	if eb.Took < eb.RTT+eb.RTT/2 {
		t.Errorf("B's attempt took %s, less than 1.5 RTT %s", eb.Took, eb.RTT)
	}

	streams := ps.b.openedStreams()
	if len(streams) != 1 {
		t.Fatalf("%d streams opened, want 1", len(streams))
	}
	syncAt := streams[0].LastWrite()
	da, db := ps.a.dialCalls(), ps.b.dialCalls()
	if len(da) != 1 || len(db) != 1 {
		t.Fatalf("dials: A %d, B %d; want 1 each", len(da), len(db))
	}
	within(t, "B's dial after SYNC", db[0].at.Sub(syncAt), eb.RTT/2-10*time.Millisecond, eb.RTT/2+60*time.Millisecond+slack)
	within(t, "A's dial after SYNC", da[0].at.Sub(syncAt), delay, delay+slack)
	if !sameAddrs(db[0].addrs, ps.aAddrs) || !sameAddrs(da[0].addrs, ps.bAddrs) {
		t.Errorf("B dialed %v, A dialed %v", db[0].addrs, da[0].addrs)
	}
	for _, x := range []struct {
		who        string
		d          dialCall
		wantClient bool
	}{{"A", da[0], true}, {"B", db[0], false}} {
		if !x.d.simOpen || x.d.isClient != x.wantClient || !x.d.force {
			t.Errorf("%s's dial: simultaneous %v client %v force %v; want true %v true", x.who, x.d.simOpen, x.d.isClient, x.d.force, x.wantClient)
		}
		if x.d.deadline <= 0 || x.d.deadline > 5*time.Second {
			t.Errorf("%s's dial deadline in %s, want within the default 5 s", x.who, x.d.deadline)
		}
	}
	if e := streams[0].Ended(); e != "close" {
		t.Errorf("B ended its stream with %q, want close", e)
	}
}

// Rounds 1 and 2 follow the spec (A client, B server); round 3 swaps both,
// for go-libp2p before v0.41.
func TestRoles(t *testing.T) {
	leakcheck.Check(t)
	ps := newPair(t, time.Millisecond, Config{}, Config{})
	_, err := ps.directConnect(t)
	if !errors.Is(err, ErrFailed) {
		t.Fatalf("DirectConnect: %v, want ErrFailed", err)
	}
	ps.wg.Wait()
	da, db := ps.a.dialCalls(), ps.b.dialCalls()
	if len(da) != 3 || len(db) != 3 {
		t.Fatalf("dials: A %d, B %d; want 3 each", len(da), len(db))
	}
	for i, want := range []bool{true, true, false} {
		if !da[i].simOpen || da[i].isClient != want {
			t.Errorf("round %d: A client %v (simultaneous %v), want %v", i+1, da[i].isClient, da[i].simOpen, want)
		}
		if !db[i].simOpen || db[i].isClient != !want {
			t.Errorf("round %d: B client %v (simultaneous %v), want %v", i+1, db[i].isClient, db[i].simOpen, !want)
		}
	}
	for who, evs := range map[string][]Event{"A": ps.evA.list(), "B": ps.evB.list()} {
		if len(evs) != 3 {
			t.Fatalf("%s: %d events, want 3", who, len(evs))
		}
		for i, e := range evs {
			if e.Attempt != i+1 || e.Success || e.Reason != ReasonDialError || e.Err == nil {
				t.Errorf("%s's event %d: %+v", who, i, e)
			}
		}
	}
	if n := len(ps.b.openedStreams()); n != 3 {
		t.Errorf("%d streams, want one per round", n)
	}
}

// B first dials A's known public addresses; only if that fails does it
// punch.
func TestConnectionReversal(t *testing.T) {
	known := addrs("/ip4/10.0.0.1/tcp/4001", "/ip4/1.2.3.4/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA",
		"/ip4/127.0.0.1/tcp/4001", relayAddr.String(), "/ip4/1.2.3.4/tcp/4001")
	tests := []struct {
		name       string
		known      []ma.Multiaddr
		dial       func(ps *pair) dialFunc
		wantEvents []Event // Attempt, Success, Reason
		wantDials  int
	}{
		{"reversal works", known, func(ps *pair) dialFunc { return dialOK(ps.aID) },
			[]Event{{Attempt: 0, Success: true}}, 1},
		{"reversal fails, punch works", known, func(ps *pair) dialFunc {
			return func(ctx context.Context, n int, a []ma.Multiaddr) (network.Conn, error) {
				if n == 0 {
					return nil, errors.New("refused")
				}
				return connTo(ps.aID, a), nil
			}
		}, []Event{{Attempt: 0, Reason: ReasonDialError}, {Attempt: 1, Success: true}}, 2},
		{"reversal times out, punch works", known, func(ps *pair) dialFunc {
			return func(ctx context.Context, n int, a []ma.Multiaddr) (network.Conn, error) {
				if n == 0 {
					return dialTimeoutIO(ctx, n, a)
				}
				return connTo(ps.aID, a), nil
			}
		}, []Event{{Attempt: 0, Reason: ReasonTimeout}, {Attempt: 1, Success: true}}, 2},
		{"no public address known", addrs("/ip4/10.0.0.1/tcp/1", relayAddr.String()), func(ps *pair) dialFunc { return dialOK(ps.aID) },
			[]Event{{Attempt: 1, Success: true}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leakcheck.Check(t)
			ps := newPair(t, time.Millisecond, Config{}, Config{DialTimeout: 50 * time.Millisecond})
			ps.b.peerAddrs, ps.b.dial = tt.known, tt.dial(ps)
			ps.a.dial = dialOK(ps.bID)
			if _, err := ps.directConnect(t); err != nil {
				t.Fatal(err)
			}
			ps.wg.Wait()
			evs := ps.evB.list()
			if len(evs) != len(tt.wantEvents) {
				t.Fatalf("events %+v, want %+v", evs, tt.wantEvents)
			}
			for i, w := range tt.wantEvents {
				if e := evs[i]; e.Attempt != w.Attempt || e.Success != w.Success || e.Reason != w.Reason {
					t.Errorf("event %d: %+v, want %+v", i, e, w)
				}
			}
			d := ps.b.dialCalls()
			if len(d) != tt.wantDials {
				t.Fatalf("%d dials, want %d", len(d), tt.wantDials)
			}
			if tt.wantEvents[0].Attempt == 0 {
				if !d[0].force || d[0].simOpen || !sameAddrs(d[0].addrs, addrs("/ip4/1.2.3.4/tcp/4001")) {
					t.Errorf("reversal dial: force %v simultaneous %v addrs %v", d[0].force, d[0].simOpen, d[0].addrs)
				}
				if !sameAddrs(evs[0].Addrs, d[0].addrs) {
					t.Errorf("reversal event addrs %v", evs[0].Addrs)
				}
			}
			wantStreams := 0
			if tt.wantEvents[len(tt.wantEvents)-1].Attempt > 0 {
				wantStreams = 1
			}
			if n := len(ps.b.openedStreams()); n != wantStreams {
				t.Errorf("%d streams opened, want %d", n, wantStreams)
			}
		})
	}
}

func TestDirectConnectFailures(t *testing.T) {
	dialErr := errors.New("no route to host")
	tests := []struct {
		name        string
		cfgB        Config
		setup       func(ps *pair)
		wantReason  string
		wantEvents  int
		wantStreams int
		wantErr     error
	}{
		{"no own usable address", Config{}, func(ps *pair) {
			ps.b.own = addrs("/ip4/10.0.0.2/tcp/1", "/ip4/127.0.0.1/tcp/1", relayAddr.String())
		}, ReasonNoOwnAddrs, 1, 0, ErrFailed},
		{"peer sends no address", Config{}, func(ps *pair) { ps.a.own = nil }, ReasonNoPeerAddrs, 1, 1, ErrFailed},
		{"peer sends no usable address", Config{}, func(ps *pair) {
			ps.a.own = addrs("/ip4/10.0.0.2/tcp/1")
			ps.sa.cfg.AllowPrivateAddrs = true
		}, ReasonNoPeerAddrs, 1, 1, ErrFailed},
		{"peer does not speak DCUtR", Config{}, func(ps *pair) {
			ps.b.streamErr = &mss.NotSupportedError{}
		}, ReasonNotSupported, 1, 0, ErrFailed},
		{"peer refuses DCUtR at the first answer", Config{}, func(ps *pair) { ps.b.refuse = true },
			ReasonNotSupported, 1, 1, ErrFailed},
		{"no stream over the relayed connection", Config{}, func(ps *pair) {
			ps.b.streamErr = network.ErrLimitedConn
		}, ReasonNoStream, 1, 0, network.ErrLimitedConn},
		{"dial error", Config{}, func(ps *pair) {
			ps.b.dial = func(context.Context, int, []ma.Multiaddr) (network.Conn, error) { return nil, dialErr }
		}, ReasonDialError, 3, 3, dialErr},
		{"dial timeout", Config{DialTimeout: 50 * time.Millisecond}, func(ps *pair) { ps.b.dial = dialHang }, ReasonTimeout, 3, 3, context.DeadlineExceeded},
		// What net.Dialer returns when its ctx expires.
		{"dial timeout as i/o timeout", Config{DialTimeout: 50 * time.Millisecond}, func(ps *pair) { ps.b.dial = dialTimeoutIO },
			ReasonTimeout, 3, 3, os.ErrDeadlineExceeded},
		{"two attempts", Config{Attempts: 2}, func(*pair) {}, ReasonDialError, 2, 2, ErrFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leakcheck.Check(t)
			ps := newPair(t, time.Millisecond, Config{}, tt.cfgB)
			tt.setup(ps)
			_, err := ps.directConnect(t)
			if !errors.Is(err, ErrFailed) || !errors.Is(err, tt.wantErr) {
				t.Fatalf("DirectConnect: %v, want %v and %v", err, ErrFailed, tt.wantErr)
			}
			ps.wg.Wait()
			evs := ps.evB.list()
			if len(evs) != tt.wantEvents {
				t.Fatalf("%d events %+v, want %d", len(evs), evs, tt.wantEvents)
			}
			for i, e := range evs {
				if e.Attempt != i+1 || e.Success || e.Reason != tt.wantReason || e.Side != SideInitiator || e.Peer != ps.aID || e.Took <= 0 {
					t.Errorf("event %d: %+v, want reason %q", i, e, tt.wantReason)
				}
			}
			if n := len(ps.b.openedStreams()); n != tt.wantStreams {
				t.Errorf("%d streams, want %d", n, tt.wantStreams)
			}
		})
	}
}

func TestDirectConnectAlreadyDirect(t *testing.T) {
	leakcheck.Check(t)
	ps := newPair(t, time.Millisecond, Config{}, Config{})
	direct := connTo(ps.aID, ps.aAddrs)
	ps.b.direct = direct
	c, err := ps.directConnect(t)
	if err != nil || c != direct {
		t.Fatalf("DirectConnect = %v, %v; want the direct connection", c, err)
	}
	if len(ps.b.dialCalls()) != 0 || len(ps.b.openedStreams()) != 0 || len(ps.evB.list()) != 0 {
		t.Error("did something with a direct connection at hand")
	}
}

// One DirectConnect per peer at a time; ctx ends a run.
func TestDirectConnectOnePerPeer(t *testing.T) {
	leakcheck.Check(t)
	ps := newPair(t, time.Millisecond, Config{}, Config{DialTimeout: time.Minute})
	ps.b.peerAddrs = ps.aAddrs
	dialing := make(chan struct{})
	ps.b.dial = func(ctx context.Context, n int, a []ma.Multiaddr) (network.Conn, error) {
		close(dialing)
		return dialHang(ctx, n, a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := ps.sb.DirectConnect(ctx, ps.aID)
		done <- err
	}()
	select {
	case <-dialing:
	case err := <-done:
		t.Fatalf("DirectConnect returned before dialing: %v", err)
	}
	if _, err := ps.directConnect(t); err == nil || errors.Is(err, ErrFailed) {
		t.Errorf("second DirectConnect: %v, want already running", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("first DirectConnect: %v, want canceled", err)
	}
}

func TestUsable(t *testing.T) {
	const id = "/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
	in := addrs(
		"/ip4/1.2.3.4/tcp/4001",
		"/ip4/1.2.3.4/tcp/4001"+id,       // a duplicate once /p2p is gone
		"/ip4/1.2.3.4/tcp/4001/tls",      // the same socket: one dial per socket
		"/ip4/1.2.3.4/tcp/4001/noise"+id, // likewise
		"/ip4/1.2.3.4/udp/4001/quic-v1",
		"/ip6/2a00:1450::1/tcp/4001",
		"/dns4/example.com/tcp/443/wss",
		"/ip4/10.1.2.3/tcp/4001",
		"/ip4/192.168.1.2/tcp/4001",
		"/ip6/fd00::1/tcp/4001",
		"/ip4/127.0.0.1/tcp/4001",
		"/ip6/::1/tcp/4001",
		"/ip6/fe80::1/tcp/4001",
		"/ip4/169.254.1.2/tcp/4001",
		"/ip4/224.0.0.251/udp/5353/quic-v1",
		"/ip6/ff02::1/tcp/4001",
		"/ip4/0.0.0.0/tcp/4001",
		"/ip6/::/tcp/4001",
		"/ip4/9.9.9.9/tcp/4001"+id+"/p2p-circuit",
		"/ip4/9.9.9.9/tcp/4001"+id+"/p2p-circuit"+id,
		id,
	)
	public := addrs("/ip4/1.2.3.4/tcp/4001", "/ip4/1.2.3.4/udp/4001/quic-v1", "/ip6/2a00:1450::1/tcp/4001",
		"/dns4/example.com/tcp/443/wss")
	private := append(append([]ma.Multiaddr(nil), public...),
		addrs("/ip4/10.1.2.3/tcp/4001", "/ip4/192.168.1.2/tcp/4001", "/ip6/fd00::1/tcp/4001")...)
	// The emulated networks' "Internet" is 10.1/16; 192.168 stays home.
	prefixed := append(append([]ma.Multiaddr(nil), public...), addrs("/ip4/10.1.2.3/tcp/4001")...)
	for _, tt := range []struct {
		name     string
		allow    bool
		prefixes []netip.Prefix
		want     []ma.Multiaddr
	}{
		{"public only", false, nil, public},
		{"private allowed", true, nil, private},
		{"public prefixes", false, []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}, prefixed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := New(nil, Config{AllowPrivateAddrs: tt.allow, PublicPrefixes: tt.prefixes})
			if got := s.Usable(in); !sameAddrs(got, tt.want) {
				t.Errorf("Usable =\n%v\nwant\n%v", got, tt.want)
			}
			if got := s.Usable(nil); len(got) != 0 {
				t.Errorf("Usable(nil) = %v", got)
			}
		})
	}
}

// A stream on a connection that is neither limited nor relayed has nothing
// to upgrade: reset at once, no event, no dial.
func TestHandleStreamConn(t *testing.T) {
	direct := ma.StringCast("/ip4/5.6.7.8/tcp/4001")
	tests := []struct {
		name      string
		limited   bool
		raddr     ma.Multiaddr
		wantReset bool
		inbound   bool // A accepted the relayed connection: roles upside down
	}{
		{"direct", false, direct, true, false},
		{"relayed", false, relayAddr, false, false},
		{"limited", true, direct, false, false},
		{"relayed and limited", true, relayAddr, false, false},
		{"relayed but accepted by A", true, relayAddr, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leakcheck.Check(t)
			ps := newPair(t, time.Millisecond, Config{}, Config{})
			ps.a.dial = dialOK(ps.bID)
			bDir := network.DirInbound
			if tt.inbound {
				bDir = network.DirOutbound // A accepted: its end is inbound
			}
			bEnd, aEnd := streamtest.Pair(streamtest.Config{
				Protocol: ID, Delay: time.Millisecond, A: ps.bID, B: ps.aID, AAddr: tt.raddr, BAddr: tt.raddr,
				State: network.ConnState{Transport: "relay", Limited: tt.limited}, ADir: bDir,
			})
			done := make(chan struct{})
			go func() {
				defer close(done)
				ps.sa.HandleStream(aEnd)
			}()
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			_, _, err := Initiate(ctx, bEnd, ps.bAddrs, nil)
			<-done
			if tt.wantReset {
				if !errors.Is(err, network.ErrReset) || aEnd.Ended() != "reset" {
					t.Errorf("Initiate: %v, A's end %q; want a reset", err, aEnd.Ended())
				}
				if len(ps.a.dialCalls()) != 0 || len(ps.evA.list()) != 0 {
					t.Error("A dialed or reported")
				}
				return
			}
			if err != nil || len(ps.a.dialCalls()) != 1 {
				t.Errorf("Initiate: %v, A dialed %d times; want a round", err, len(ps.a.dialCalls()))
			}
		})
	}
}

// Whatever B sends, A's handler resets the stream and reports, without
// dialing, hanging or panicking.
func TestHandleStreamMalformed(t *testing.T) {
	connect := lp.Append(nil, (&Message{Type: Connect, ObsAddrs: addrs("/ip4/5.6.7.8/tcp/1")}).Marshal())
	tests := []struct {
		name string
		b    func(st *streamtest.Stream)
	}{
		{"garbage", func(st *streamtest.Stream) { _, _ = st.Write([]byte{0x05, 1, 2, 3, 4, 5}) }},
		// 'G' announces 71 bytes that never come.
		{"not protobuf at all", func(st *streamtest.Stream) { _, _ = st.Write([]byte("GET / HTTP/1.1\r\n\r\n")) }},
		{"silent", func(*streamtest.Stream) {}},
		{"CONNECT then silence", func(st *streamtest.Stream) { _, _ = st.Write(connect) }},
		{"SYNC before CONNECT", func(st *streamtest.Stream) { _ = Write(st, &Message{Type: Sync}) }},
		{"CONNECT twice", func(st *streamtest.Stream) { _, _ = st.Write(append(connect, connect...)) }},
		{"CONNECT then close", func(st *streamtest.Stream) { _, _ = st.Write(connect); _ = st.Close() }},
		{"oversized", func(st *streamtest.Stream) { _, _ = st.Write(varint.Append(nil, 1<<20)) }},
		{"reset", func(st *streamtest.Stream) { _ = st.Reset() }},
		{"close at once", func(st *streamtest.Stream) { _ = st.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leakcheck.Check(t)
			// A silent peer is given up on after StreamTimeout.
			ps := newPair(t, time.Millisecond, Config{StreamTimeout: 200 * time.Millisecond}, Config{})
			ps.a.dial = dialOK(ps.bID)
			bEnd, aEnd := streamPair(time.Millisecond, ps.bID, ps.aID, relayAddr, relayAddr, true)
			tt.b(bEnd)
			ps.sa.HandleStream(aEnd)
			if e := aEnd.Ended(); e != "reset" {
				t.Errorf("A ended the stream with %q, want reset", e)
			}
			evs := ps.evA.list()
			if len(evs) != 1 || evs[0].Reason != ReasonProtocol || evs[0].Err == nil || evs[0].Success || evs[0].Side != SideResponder {
				t.Errorf("events %+v, want one protocol error", evs)
			}
			if n := len(ps.a.dialCalls()); n != 0 {
				t.Errorf("A dialed %d times", n)
			}
		})
	}
}

// A side left without an address to dial stops the round before SYNC goes
// out, so that the other side does not dial alone.
func TestNoLoneDial(t *testing.T) {
	tests := []struct {
		name       string
		cfgA, cfgB Config
		setup      func(ps *pair)
		wantA      string // A's reason
		wantB      string // B's reason
		wantRounds int
	}{
		{"A has no address", Config{}, Config{}, func(ps *pair) { ps.a.own = nil },
			ReasonNoOwnAddrs, ReasonNoPeerAddrs, 1},
		// B resets: A cannot tell why.
		{"A sends only a private address", Config{AllowPrivateAddrs: true}, Config{},
			func(ps *pair) { ps.a.own = addrs("/ip4/10.0.0.1/tcp/1") }, ReasonProtocol, ReasonNoPeerAddrs, 1},
		// A resets: B cannot tell why, and tries again.
		{"B sends only a private address", Config{}, Config{AllowPrivateAddrs: true},
			func(ps *pair) { ps.b.own = addrs("/ip4/10.0.0.2/tcp/1") }, ReasonNoPeerAddrs, ReasonProtocol, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leakcheck.Check(t)
			ps := newPair(t, time.Millisecond, tt.cfgA, tt.cfgB)
			tt.setup(ps)
			ps.a.dial, ps.b.dial = dialOK(ps.bID), dialOK(ps.aID)
			if _, err := ps.directConnect(t); !errors.Is(err, ErrFailed) {
				t.Fatalf("DirectConnect: %v, want ErrFailed", err)
			}
			ps.wg.Wait()
			if na, nb := len(ps.a.dialCalls()), len(ps.b.dialCalls()); na != 0 || nb != 0 {
				t.Errorf("dials: A %d, B %d; want none", na, nb)
			}
			for who, x := range map[string]struct {
				evs  []Event
				want string
			}{"A": {ps.evA.list(), tt.wantA}, "B": {ps.evB.list(), tt.wantB}} {
				if len(x.evs) != tt.wantRounds {
					t.Errorf("%s: %d events, want %d", who, len(x.evs), tt.wantRounds)
				}
				for _, e := range x.evs {
					if e.Reason != x.want {
						t.Errorf("%s: reason %q, want %q", who, e.Reason, x.want)
					}
				}
			}
			for _, st := range ps.b.openedStreams() {
				if e := st.Ended(); e != "reset" {
					t.Errorf("B ended a stream with %q, want reset", e)
				}
			}
		})
	}
}

// The exchanges stop before their next message when keep leaves nothing.
func TestExchangeNoAddrs(t *testing.T) {
	leakcheck.Check(t)
	none := func([]ma.Multiaddr) []ma.Multiaddr { return nil }
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	bEnd, aEnd := streamPair(time.Millisecond, newID(t, "B"), newID(t, "A"), relayAddr, relayAddr, true)
	go func() { _ = Write(aEnd, &Message{Type: Connect, ObsAddrs: addrs("/ip4/1.2.3.4/tcp/1")}) }()
	_, rtt, err := Initiate(ctx, bEnd, addrs("/ip4/5.6.7.8/tcp/2"), none)
	if !errors.Is(err, ErrNoAddrs) || rtt <= 0 {
		t.Errorf("Initiate: %v, RTT %s; want ErrNoAddrs and the RTT", err, rtt)
	}
	if n := bEnd.Writes(); n != 1 {
		t.Errorf("B wrote %d messages, want CONNECT only", n)
	}

	bEnd, aEnd = streamPair(time.Millisecond, newID(t, "B"), newID(t, "A"), relayAddr, relayAddr, true)
	_ = Write(bEnd, &Message{Type: Connect, ObsAddrs: addrs("/ip4/5.6.7.8/tcp/2")})
	if _, err := Respond(ctx, aEnd, addrs("/ip4/1.2.3.4/tcp/1"), none); !errors.Is(err, ErrNoAddrs) {
		t.Errorf("Respond: %v, want ErrNoAddrs", err)
	}
	if n := aEnd.Writes(); n != 0 {
		t.Errorf("A wrote %d messages, want none", n)
	}
}

// dialTimeoutIO fails as a TCP dial does when ctx expires: with an i/o
// timeout, not ctx's error.
func dialTimeoutIO(ctx context.Context, _ int, _ []ma.Multiaddr) (network.Conn, error) {
	<-ctx.Done()
	return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}
}

// A cannot see B's round number (each round is a new stream) and guesses it
// by counting; a new run of B's must start A's count afresh.
func TestRolesAcrossRuns(t *testing.T) {
	failAfter := func(ok int, p func(ps *pair) peer.ID) func(ps *pair) dialFunc {
		return func(ps *pair) dialFunc {
			return func(_ context.Context, n int, a []ma.Multiaddr) (network.Conn, error) {
				if n < ok {
					return connTo(p(ps), a), nil
				}
				return nil, errors.New("no route")
			}
		}
	}
	toA := func(ps *pair) peer.ID { return ps.aID }
	toB := func(ps *pair) peer.ID { return ps.bID }
	tests := []struct {
		name         string
		dialA, dialB func(ps *pair) dialFunc
		wantA        []bool // A's isClient per dial, over both runs
		wantAttempts []int  // A's events
	}{
		{"two failed runs", failAfter(0, toB), failAfter(0, toA),
			[]bool{true, true, false, true, true, false}, []int{1, 2, 3, 1, 2, 3}},
		{"success, then a failed run", failAfter(1, toB), failAfter(1, toA),
			[]bool{true, true, true, false}, []int{1, 1, 2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leakcheck.Check(t)
			ps := newPair(t, time.Millisecond, Config{}, Config{})
			ps.a.dial, ps.b.dial = tt.dialA(ps), tt.dialB(ps)
			for range 2 {
				_, _ = ps.directConnect(t)
				ps.wg.Wait() // A's rounds end before B's next run begins
			}
			var got []bool
			for _, d := range ps.a.dialCalls() {
				got = append(got, d.isClient)
			}
			if !slices.Equal(got, tt.wantA) {
				t.Errorf("A's roles (client?) %v, want %v", got, tt.wantA)
			}
			var attempts []int
			for _, e := range ps.evA.list() {
				attempts = append(attempts, e.Attempt)
			}
			if !slices.Equal(attempts, tt.wantAttempts) {
				t.Errorf("A's attempts %v, want %v", attempts, tt.wantAttempts)
			}
		})
	}
}
