package autonatv1

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/internal/lp"
	"github.com/tachyon-p2p/tachyon/internal/streamtest"
)

// ask runs one exchange through Check against s over c and waits for the
// server's handler to return.
func ask(t testing.TB, s *Service, c conn, self peer.ID, addrs []ma.Multiaddr) (ma.Multiaddr, error) {
	t.Helper()
	client, server := pair(t, c)
	done := serve(s, server)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	addr, err := Check(ctx, client, self, addrs)
	wait(t, done, "HandleStream")
	return addr, err
}

// statusOf is the status an exchange ended with: OK, the *StatusError's,
// or it fails t.
func statusOf(t testing.TB, err error) (Status, string) {
	t.Helper()
	if err == nil {
		return StatusOK, ""
	}
	var se *StatusError
	if !errors.As(err, &se) {
		t.Fatalf("Check: %v, want a status", err)
	}
	return se.Status, se.Text
}

func tcp(ip string, port int) string  { return fmt.Sprintf("/ip4/%s/tcp/%d", ip, port) }
func quic(ip string, port int) string { return fmt.Sprintf("/ip4/%s/udp/%d/quic-v1", ip, port) }

// TestRules covers what the server dials and how it answers, one rule a
// case, through the client.
func TestRules(t *testing.T) {
	leakcheck.Check(t)
	me := streamtest.PeerID(t, "client")
	other := streamtest.PeerID(t, "other")
	relay := streamtest.PeerID(t, "relay")
	observed := tcp(clientIP, 50123)
	many := make([]string, 20)
	for i := range many {
		many[i] = tcp(clientIP, 4001+i)
	}

	tests := []struct {
		name string
		cfg  Config
		// noDial and ok configure the fakeHost.
		noDial, ok func(ma.Multiaddr) bool
		// remote is the client's observed address (default observed);
		// limited marks the connection relayed.
		remote  string
		limited bool
		self    peer.ID // the ID the client claims (default me)
		addrs   []string

		want     Status
		wantText string
		wantDial []string // nil: no dial
		wantAddr string
	}{
		{name: "OK with the address that connected",
			ok:    func(a ma.Multiaddr) bool { return strings.Contains(a.String(), "quic") },
			addrs: []string{tcp(clientIP, 4001), quic(clientIP, 4001)}, want: StatusOK,
			wantDial: []string{tcp(clientIP, 4001), quic(clientIP, 4001)}, wantAddr: quic(clientIP, 4001)},
		{name: "addresses on another IP are dropped",
			addrs: []string{tcp(victimIP, 4001), tcp(clientIP, 4001), quic(victimIP, 4001)}, want: StatusOK,
			wantDial: []string{tcp(clientIP, 4001)}, wantAddr: tcp(clientIP, 4001)},
		{name: "only other IPs: refused without a dial",
			addrs: []string{tcp(victimIP, 4001), quic(victimIP, 4001)}, want: StatusDialRefused, wantText: textNoAddrs},
		{name: "DNS names are not the observed IP",
			addrs: []string{"/dns4/example.com/tcp/4001"}, want: StatusDialRefused, wantText: textNoAddrs},
		{name: "no addresses: refused",
			want: StatusDialRefused, wantText: textNoAddrs},
		{name: "private addresses are dropped",
			remote: tcp("192.168.1.5", 50123), addrs: []string{tcp("192.168.1.5", 4001)},
			want: StatusDialRefused, wantText: textNoAddrs},
		{name: "private addresses allowed",
			cfg:    Config{AllowPrivateAddrs: true},
			remote: tcp("192.168.1.5", 50123), addrs: []string{tcp("192.168.1.5", 4001)},
			want: StatusOK, wantDial: []string{tcp("192.168.1.5", 4001)}, wantAddr: tcp("192.168.1.5", 4001)},
		{name: "public prefixes count as public",
			cfg:    Config{PublicPrefixes: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}},
			remote: tcp("192.168.1.5", 50123), addrs: []string{tcp("192.168.1.5", 4001)},
			want: StatusOK, wantDial: []string{tcp("192.168.1.5", 4001)}, wantAddr: tcp("192.168.1.5", 4001)},
		{name: "a prefix that does not hold the IP does not help",
			cfg:    Config{PublicPrefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
			remote: tcp("192.168.1.5", 50123), addrs: []string{tcp("192.168.1.5", 4001)},
			want: StatusDialRefused, wantText: textNoAddrs},
		{name: "relayed addresses are dropped",
			addrs: []string{tcp(clientIP, 4001) + "/p2p/" + relay.String() + "/p2p-circuit", quic(clientIP, 4001)},
			want:  StatusOK, wantDial: []string{quic(clientIP, 4001)}, wantAddr: quic(clientIP, 4001)},
		{name: "addresses we cannot dial are dropped",
			noDial: func(a ma.Multiaddr) bool { return strings.Contains(a.String(), "quic") },
			addrs:  []string{quic(clientIP, 4001), tcp(clientIP, 4001)},
			want:   StatusOK, wantDial: []string{tcp(clientIP, 4001)}, wantAddr: tcp(clientIP, 4001)},
		{name: "nothing we can dial: refused",
			noDial: func(ma.Multiaddr) bool { return true },
			addrs:  []string{quic(clientIP, 4001)}, want: StatusDialRefused, wantText: textNoAddrs},
		{name: "our /p2p is stripped, another peer's is dropped",
			addrs: []string{tcp(clientIP, 4001) + "/p2p/" + me.String(), tcp(clientIP, 4002) + "/p2p/" + other.String()},
			want:  StatusOK, wantDial: []string{tcp(clientIP, 4001)}, wantAddr: tcp(clientIP, 4001)},
		{name: "duplicates are dialed once",
			addrs: []string{tcp(clientIP, 4001), tcp(clientIP, 4001) + "/p2p/" + me.String(), tcp(clientIP, 4001)},
			want:  StatusOK, wantDial: []string{tcp(clientIP, 4001)}, wantAddr: tcp(clientIP, 4001)},
		{name: "at most 16 addresses",
			ok:    func(ma.Multiaddr) bool { return false },
			cfg:   Config{DialTimeout: time.Millisecond},
			addrs: many, want: StatusDialError, wantText: textDialFailed, wantDial: many[:16]},
		{name: "IPv6",
			remote: "/ip6/2606:4700::5/udp/50123/quic-v1",
			addrs:  []string{"/ip6/2606:4700::5/udp/4001/quic-v1", tcp(clientIP, 4001), "/ip6/2606:4700::6/udp/4001/quic-v1"},
			want:   StatusOK, wantDial: []string{"/ip6/2606:4700::5/udp/4001/quic-v1"}, wantAddr: "/ip6/2606:4700::5/udp/4001/quic-v1"},
		{name: "peer ID mismatch",
			self: other, addrs: []string{tcp(clientIP, 4001)}, want: StatusBadRequest, wantText: textPeerMismatch},
		{name: "request over a limited connection",
			limited: true, addrs: []string{tcp(clientIP, 4001)}, want: StatusDialRefused, wantText: textRelayed},
		{name: "request over a relayed address",
			remote: tcp(clientIP, 4001) + "/p2p/" + relay.String() + "/p2p-circuit",
			addrs:  []string{tcp(clientIP, 4001)}, want: StatusDialRefused, wantText: textRelayed},
		{name: "observed address without an IP",
			remote: "/dns4/example.com/tcp/4001", addrs: []string{tcp(clientIP, 4001)},
			want: StatusDialRefused, wantText: textNoIP},
		{name: "dial failure",
			ok:    func(ma.Multiaddr) bool { return false },
			cfg:   Config{DialTimeout: time.Millisecond},
			addrs: []string{tcp(clientIP, 4001)}, want: StatusDialError, wantText: textDialFailed,
			wantDial: []string{tcp(clientIP, 4001)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &fakeHost{noDial: tt.noDial, ok: tt.ok}
			var ev events
			tt.cfg.OnEvent = ev.add
			s := New(h, tt.cfg)
			defer s.Close()
			c := conn{client: me, remote: observed}
			if tt.remote != "" {
				c.remote = tt.remote
			}
			c.state.Limited = tt.limited
			self := me
			if tt.self != "" {
				self = tt.self
			}

			addr, err := ask(t, s, c, self, addrs(tt.addrs...))
			status, text := statusOf(t, err)
			if status != tt.want || text != tt.wantText {
				t.Fatalf("answer %v %q, want %v %q", status, text, tt.want, tt.wantText)
			}
			if tt.wantAddr == "" && addr != nil || tt.wantAddr != "" && (addr == nil || addr.String() != tt.wantAddr) {
				t.Fatalf("address %v, want %q", addr, tt.wantAddr)
			}
			dials := h.dials()
			switch {
			case tt.wantDial == nil && len(dials) != 0:
				t.Fatalf("dialed %v, want no dial", dials)
			case tt.wantDial != nil && (len(dials) != 1 || dials[0].p != me || !sameAddrs(dials[0].addrs, addrs(tt.wantDial...))):
				t.Fatalf("dialed %v, want %s at %v", dials, me, tt.wantDial)
			}
			evs := ev.list()
			if len(evs) != 1 {
				t.Fatalf("%d events, want 1", len(evs))
			}
			e := evs[0]
			if e.Peer != me || !e.Answered || e.Status != tt.want || e.Text != tt.wantText || e.Remote.String() != c.remote ||
				(tt.wantDial != nil) != (e.Addrs != nil) || (tt.wantAddr != "") != (e.Addr != nil) || e.Took <= 0 {
				t.Fatalf("event %+v", e)
			}
			if tt.want == StatusDialError && !errors.Is(e.Err, errDial) {
				t.Fatalf("event error %v, want the dial error", e.Err)
			}
		})
	}
}

// TestMalformedRequests sends raw bytes: a complete message that is wrong
// gets E_BAD_REQUEST, anything that is not a complete message a reset.
func TestMalformedRequests(t *testing.T) {
	leakcheck.Check(t)
	me := streamtest.PeerID(t, "client")
	tcpAddr := ma.StringCast(tcp(clientIP, 4001)).Bytes()
	dial := func(id []byte) []byte {
		return (&Message{Type: TypeDial, Dial: &Dial{Peer: &PeerInfo{ID: id, Addrs: []ma.Multiaddr{ma.Cast(tcpAddr)}}}}).Marshal()
	}
	tests := []struct {
		name string
		// send is written as it is, then the client closes its side.
		send     []byte
		want     Status // ignored when reset
		wantText string
		reset    bool
		wantDial bool
	}{
		{name: "not protobuf", send: lp.Append(nil, []byte{0xff, 0xff}), want: StatusBadRequest, wantText: textMalformed},
		{name: "wrong wire type", send: lp.Append(nil, []byte{0x0a, 0x00}), want: StatusBadRequest, wantText: textMalformed},
		{name: "DIAL_RESPONSE instead of DIAL", send: lp.Append(nil, (&Message{Type: TypeDialResponse, DialResponse: &DialResponse{}}).Marshal()),
			want: StatusBadRequest, wantText: textNotDial},
		{name: "unknown type", send: lp.Append(nil, []byte{0x08, 0x07}), want: StatusBadRequest, wantText: textNotDial},
		{name: "empty message (DIAL without dial)", send: lp.Append(nil, nil), want: StatusBadRequest, wantText: textNoDial},
		{name: "dial without peer", send: lp.Append(nil, []byte{0x08, 0x00, 0x12, 0x00}), want: StatusBadRequest, wantText: textNoPeer},
		{name: "bad peer ID", send: lp.Append(nil, dial([]byte{1, 2, 3})), want: StatusBadRequest, wantText: textBadPeerID},
		{name: "empty peer ID", send: lp.Append(nil, dial([]byte{})), want: StatusBadRequest, wantText: textBadPeerID},
		{name: "absent peer ID is the stream's peer", send: lp.Append(nil, dial(nil)), want: StatusOK, wantDial: true},
		{name: "the ID as go-libp2p sends it", send: lp.Append(nil, dial([]byte(me))), want: StatusOK, wantDial: true},
		{name: "nothing sent", send: nil, reset: true},
		{name: "length over the limit", send: []byte{0x81, 0x20}, reset: true}, // 4097
		{name: "truncated message", send: []byte{0x05, 0x08, 0x00}, reset: true},
		{name: "truncated length", send: []byte{0x80}, reset: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &fakeHost{}
			var ev events
			s := New(h, Config{OnEvent: ev.add})
			defer s.Close()
			client, server := pair(t, conn{client: me, remote: tcp(clientIP, 50123)})
			done := serve(s, server)
			if _, err := client.Write(tt.send); err != nil {
				t.Fatal(err)
			}
			client.CloseWrite()
			wait(t, done, "HandleStream")

			if got := server.Ended(); (got == "reset") != tt.reset {
				t.Fatalf("server ended its stream with %q, reset %v wanted", got, tt.reset)
			}
			if len(h.dials()) > 0 != tt.wantDial {
				t.Fatalf("dials %v", h.dials())
			}
			e := ev.list()[0]
			if tt.reset {
				if e.Answered || e.Err == nil {
					t.Fatalf("event %+v, want unanswered with an error", e)
				}
				return
			}
			resp, err := Read(client)
			if err != nil {
				t.Fatal(err)
			}
			r := resp.DialResponse
			if resp.Type != TypeDialResponse || r == nil || r.Status != tt.want || r.StatusText != tt.wantText {
				t.Fatalf("response %+v %+v, want %v %q", resp, r, tt.want, tt.wantText)
			}
			if !e.Answered || e.Status != tt.want {
				t.Fatalf("event %+v", e)
			}
		})
	}
}

// The request Check sends, byte for byte, and the answer the server sends.
func TestExchangeBytes(t *testing.T) {
	leakcheck.Check(t)
	me := streamtest.PeerID(t, "client")
	client, server := pair(t, conn{client: me, remote: tcp(clientIP, 50123)})
	a := ma.StringCast(tcp(clientIP, 4001))

	type result struct {
		addr ma.Multiaddr
		err  error
	}
	res := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		addr, err := Check(ctx, client, me, []ma.Multiaddr{a})
		res <- result{addr, err}
	}()
	// peer = 2+38 + 2+8 = 50 (32); dial = 52 (34); message = 2 + 2+52 = 56 (38).
	want := append(append([]byte{0x38, 0x08, 0x00, 0x12, 0x34, 0x0a, 0x32, 0x0a, 0x26}, me...), append([]byte{0x12, 0x08}, a.Bytes()...)...)
	got := make([]byte, len(want))
	server.SetDeadline(time.Now().Add(testTimeout))
	if _, err := readFull(server, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("request % x\nwant    % x", got, want)
	}
	// OK with the address: 08 01 1a 0c 08 00 1a 08 <addr>.
	server.Write(append([]byte{0x10, 0x08, 0x01, 0x1a, 0x0c, 0x08, 0x00, 0x1a, 0x08}, a.Bytes()...))
	r := <-res
	if r.err != nil || !r.addr.Equal(a) {
		t.Fatalf("Check = %v, %v", r.addr, r.err)
	}
	if client.Ended() != "close" {
		t.Fatalf("client ended with %q, want close", client.Ended())
	}
}

func readFull(s network.Stream, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := s.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func TestRateLimits(t *testing.T) {
	leakcheck.Check(t)
	peers := make([]peer.ID, 11)
	for i := range peers {
		peers[i] = streamtest.PeerID(t, fmt.Sprint("client", i))
	}
	request := func(t *testing.T, s *Service, p peer.ID, addrs ...string) (Status, string) {
		t.Helper()
		_, err := ask(t, s, conn{client: p, remote: tcp(clientIP, 50123)}, p, addrsOf(addrs))
		return statusOf(t, err)
	}
	a := tcp(clientIP, 4001)

	t.Run("per peer", func(t *testing.T) {
		h := &fakeHost{}
		s := New(h, Config{})
		defer s.Close()
		for i := range DefaultMaxDialsPerPeer {
			if st, _ := request(t, s, peers[0], a); st != StatusOK {
				t.Fatalf("request %d: %v", i, st)
			}
		}
		if st, text := request(t, s, peers[0], a); st != StatusDialRefused || text != textRateLimited {
			t.Fatalf("request over the peer limit: %v %q", st, text)
		}
		if n := len(h.dials()); n != DefaultMaxDialsPerPeer {
			t.Fatalf("%d dials, want %d", n, DefaultMaxDialsPerPeer)
		}
		if st, _ := request(t, s, peers[1], a); st != StatusOK {
			t.Fatalf("another peer: %v", st)
		}
	})
	t.Run("total", func(t *testing.T) {
		h := &fakeHost{}
		s := New(h, Config{})
		defer s.Close()
		for i := range DefaultMaxDials {
			p := peers[i/DefaultMaxDialsPerPeer]
			if st, _ := request(t, s, p, a); st != StatusOK {
				t.Fatalf("request %d: %v", i, st)
			}
		}
		if st, text := request(t, s, peers[10], a); st != StatusDialRefused || text != textRateLimited {
			t.Fatalf("request over the total limit: %v %q", st, text)
		}
		if n := len(h.dials()); n != DefaultMaxDials {
			t.Fatalf("%d dials, want %d", n, DefaultMaxDials)
		}
	})
	t.Run("sliding window", func(t *testing.T) {
		h := &fakeHost{}
		s := New(h, Config{MaxDialsPerPeer: 2, RateWindow: time.Minute})
		defer s.Close()
		now := time.Unix(1000, 0)
		var mu sync.Mutex
		s.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
		request(t, s, peers[0], a)
		advance(30 * time.Second)
		request(t, s, peers[0], a)
		if st, _ := request(t, s, peers[0], a); st != StatusDialRefused {
			t.Fatalf("third request in the window: %v", st)
		}
		advance(30 * time.Second) // the first dial leaves the window
		if st, _ := request(t, s, peers[0], a); st != StatusOK {
			t.Fatalf("after the first left the window: %v", st)
		}
		if st, _ := request(t, s, peers[0], a); st != StatusDialRefused {
			t.Fatalf("window full again: %v", st)
		}
	})
	t.Run("refused requests do not count", func(t *testing.T) {
		h := &fakeHost{}
		s := New(h, Config{})
		defer s.Close()
		for range DefaultMaxDialsPerPeer + 1 {
			if st, _ := request(t, s, peers[0], tcp(victimIP, 4001)); st != StatusDialRefused {
				t.Fatalf("victim address: %v", st)
			}
		}
		if st, _ := request(t, s, peers[0], a); st != StatusOK {
			t.Fatalf("first dialable request: %v", st)
		}
	})
	t.Run("concurrent flood dials at most the limit", func(t *testing.T) {
		h := &fakeHost{}
		s := New(h, Config{MaxDials: 5})
		defer s.Close()
		var wg sync.WaitGroup
		var mu sync.Mutex
		count := map[Status]int{}
		for i := range 40 {
			wg.Go(func() {
				p := peers[i%len(peers)]
				client, server := pair(t, conn{client: p, remote: tcp(clientIP, 50123)})
				done := serve(s, server)
				ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
				defer cancel()
				_, err := Check(ctx, client, p, addrs(a))
				<-done
				st := StatusOK
				if se := (*StatusError)(nil); errors.As(err, &se) {
					st = se.Status
				} else if err != nil {
					t.Errorf("Check: %v", err)
				}
				mu.Lock()
				count[st]++
				mu.Unlock()
			})
		}
		wg.Wait()
		if count[StatusOK] != 5 || count[StatusDialRefused] != 35 || len(h.dials()) != 5 {
			t.Fatalf("answers %v, %d dials; want 5 OK and 5 dials", count, len(h.dials()))
		}
	})
}

func addrsOf(ss []string) []ma.Multiaddr { return addrs(ss...) }

// The limiter holds at most one entry per dial in the window, however many
// peers ask.
func TestLimiterBounded(t *testing.T) {
	l := limiter{window: time.Minute, total: 30, perPeer: 3, peers: map[peer.ID]int{}}
	now := time.Unix(0, 0)
	allowed := 0
	for i := range 100_000 {
		now = now.Add(time.Millisecond)
		if l.allow(peer.ID(fmt.Sprint(i)), now) {
			allowed++
		}
		if len(l.starts) > 30 || len(l.peers) > 30 {
			t.Fatalf("after %d requests: %d entries, %d peers", i, len(l.starts), len(l.peers))
		}
	}
	// 100 s of requests: 30 in each minute-long window.
	if allowed != 60 {
		t.Fatalf("%d allowed, want 60", allowed)
	}
}

func TestDialFailureAnsweredAtTheDialTimeout(t *testing.T) {
	leakcheck.Check(t)
	me := streamtest.PeerID(t, "client")
	const dialTimeout = 200 * time.Millisecond
	s := New(&fakeHost{ok: func(ma.Multiaddr) bool { return false }}, Config{DialTimeout: dialTimeout})
	defer s.Close()
	start := time.Now()
	_, err := ask(t, s, conn{client: me, remote: tcp(clientIP, 50123)}, me, addrs(tcp(clientIP, 4001)))
	if st, _ := statusOf(t, err); st != StatusDialError {
		t.Fatalf("status %v", st)
	}
	if took := time.Since(start); took < dialTimeout {
		t.Fatalf("failure answered after %s, before the dial timeout %s", took, dialTimeout)
	}
}

func TestStreamTimeout(t *testing.T) {
	leakcheck.Check(t)
	me := streamtest.PeerID(t, "client")
	t.Run("client never sends", func(t *testing.T) {
		var ev events
		s := New(&fakeHost{}, Config{StreamTimeout: 100 * time.Millisecond, OnEvent: ev.add})
		defer s.Close()
		_, server := pair(t, conn{client: me, remote: tcp(clientIP, 50123)})
		wait(t, serve(s, server), "HandleStream")
		if server.Ended() != "reset" {
			t.Fatalf("server ended with %q, want reset", server.Ended())
		}
		e := ev.list()[0]
		if e.Answered || !errors.Is(e.Err, context.DeadlineExceeded) {
			t.Fatalf("event %+v, want unanswered, deadline exceeded", e)
		}
	})
	t.Run("bounds the dial back", func(t *testing.T) {
		h := &fakeHost{block: true}
		s := New(h, Config{StreamTimeout: 100 * time.Millisecond})
		defer s.Close()
		client, server := pair(t, conn{client: me, remote: tcp(clientIP, 50123)})
		done := serve(s, server)
		if err := Write(client, &Message{Type: TypeDial, Dial: &Dial{Peer: &PeerInfo{Addrs: addrs(tcp(clientIP, 4001))}}}); err != nil {
			t.Fatal(err)
		}
		wait(t, done, "HandleStream")
		if server.Ended() != "reset" || len(h.dials()) != 1 {
			t.Fatalf("server ended with %q after %d dials, want reset after 1", server.Ended(), len(h.dials()))
		}
	})
}

func TestClose(t *testing.T) {
	leakcheck.Check(t)
	me := streamtest.PeerID(t, "client")
	h := &fakeHost{block: true, started: make(chan struct{}, 1)}
	s := New(h, Config{})

	// One handler waits for a request, one is in a dial-back.
	_, idle := pair(t, conn{client: me, remote: tcp(clientIP, 50123)})
	idleDone := serve(s, idle)
	client, dialing := pair(t, conn{client: me, remote: tcp(clientIP, 50124)})
	dialDone := serve(s, dialing)
	Write(client, &Message{Type: TypeDial, Dial: &Dial{Peer: &PeerInfo{Addrs: addrs(tcp(clientIP, 4001))}}})
	select {
	case <-h.started:
	case <-time.After(testTimeout):
		t.Fatal("no dial-back")
	}

	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	wait(t, closed, "Close")
	wait(t, idleDone, "the idle handler")
	wait(t, dialDone, "the dialing handler")
	if idle.Ended() != "reset" || dialing.Ended() != "reset" {
		t.Fatalf("streams ended with %q and %q, want resets", idle.Ended(), dialing.Ended())
	}

	// After Close, streams are reset at once.
	_, late := pair(t, conn{client: me, remote: tcp(clientIP, 50125)})
	wait(t, serve(s, late), "HandleStream after Close")
	if late.Ended() != "reset" {
		t.Fatalf("late stream ended with %q", late.Ended())
	}
}

// Many clients that never send: each handler holds its stream until the
// stream timeout and then lets go; nothing is dialed.
func TestIdleFlood(t *testing.T) {
	leakcheck.Check(t)
	me := streamtest.PeerID(t, "client")
	h := &fakeHost{}
	s := New(h, Config{StreamTimeout: 200 * time.Millisecond})
	defer s.Close()
	var dones []<-chan struct{}
	for i := range 500 {
		_, server := pair(t, conn{client: me, remote: tcp(clientIP, 1000+i)})
		dones = append(dones, serve(s, server))
	}
	for _, d := range dones {
		wait(t, d, "HandleStream")
	}
	if len(h.dials()) != 0 {
		t.Fatal("dialed")
	}
}

func TestDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	if c.DialTimeout != 15*time.Second || c.StreamTimeout != time.Minute || c.MaxAddrs != 16 ||
		c.MaxDials != 30 || c.MaxDialsPerPeer != 3 || c.RateWindow != time.Minute {
		t.Fatalf("defaults %+v", c)
	}
}
