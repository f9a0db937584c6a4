package autonatv2

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/internal/streamtest"
)

// The whole flow: Check, the server's choice, dial data when the IPs
// differ, the dial-back with our nonce, the response and the verdict.
func TestCheckEndToEnd(t *testing.T) {
	cases := []struct {
		name       string
		observed   ma.Multiaddr
		addrs      []ma.Multiaddr
		dialErr    error
		localAddr  func(ma.Multiaddr) ma.Multiaddr
		onDialBack func(*testNet, network.Stream)
		dialDelay  time.Duration
		want       Verdict
		wantIdx    int
		wantDial   DialStatus
		wantData   bool
		reason     string
	}{
		{name: "same IP: no dial data", observed: observedTCP, addrs: []ma.Multiaddr{clientAddr},
			want: Reachable, wantDial: DialStatusOK},
		{name: "other IP: dial data paid", observed: ma.StringCast("/ip4/5.6.7.8/tcp/999"), addrs: []ma.Multiaddr{clientAddr},
			want: Reachable, wantDial: DialStatusOK, wantData: true},
		{name: "QUIC, behind a private address first", observed: observedTCP,
			addrs: []ma.Multiaddr{ma.StringCast("/ip4/192.168.1.2/udp/1/quic-v1"), clientQUIC},
			want:  Reachable, wantIdx: 1, wantDial: DialStatusOK},
		{name: "NAT: local address differs in IP and port", observed: observedTCP, addrs: []ma.Multiaddr{clientAddr},
			localAddr: func(ma.Multiaddr) ma.Multiaddr { return ma.StringCast("/ip4/192.168.1.2/tcp/4001") },
			want:      Reachable, wantDial: DialStatusOK},
		{name: "dial fails", observed: observedTCP, addrs: []ma.Multiaddr{clientAddr}, dialErr: errors.New("connection refused"),
			want: Unreachable, wantDial: DialStatusDialError},
		{name: "dial-back never answered", observed: observedTCP, addrs: []ma.Multiaddr{clientAddr},
			onDialBack: func(n *testNet, st network.Stream) {
				// Read the nonce, then sit until the server gives up.
				st.SetDeadline(time.Now().Add(testTimeout))
				buf := make([]byte, 64)
				for {
					if _, err := st.Read(buf); err != nil {
						return
					}
				}
			},
			want: Unknown, wantDial: DialStatusDialBackError, reason: "could not complete"},
		{name: "dial-back answered, then reset (go-libp2p's client)", observed: observedTCP, addrs: []ma.Multiaddr{clientAddr},
			onDialBack: func(n *testNet, st network.Stream) {
				st.SetDeadline(time.Now().Add(testTimeout))
				if d, err := ReadDialBack(st); err == nil {
					n.client.deliver(d.Nonce, st.Conn().LocalMultiaddr())
				}
				Write(st, &DialBackResponse{})
				st.Close()
				st.Reset()
			},
			// The reset overtakes the delayed answer.
			dialDelay: 20 * time.Millisecond, want: Reachable, wantDial: DialStatusOK},
		{name: "dial-back closed without an answer", observed: observedTCP, addrs: []ma.Multiaddr{clientAddr},
			onDialBack: func(n *testNet, st network.Stream) {
				st.SetDeadline(time.Now().Add(testTimeout))
				ReadDialBack(st)
				st.Close()
			},
			want: Unknown, wantDial: DialStatusDialBackError, reason: "could not complete"},
		{name: "dial-back answered with an unknown status", observed: observedTCP, addrs: []ma.Multiaddr{clientAddr},
			onDialBack: func(n *testNet, st network.Stream) {
				st.SetDeadline(time.Now().Add(testTimeout))
				ReadDialBack(st)
				Write(st, &DialBackResponse{Status: 1})
				st.Close()
			},
			want: Unknown, wantDial: DialStatusDialBackError, reason: "could not complete"},
		{name: "dial-back on another transport", observed: observedTCP, addrs: []ma.Multiaddr{clientAddr},
			localAddr: func(ma.Multiaddr) ma.Multiaddr { return clientQUIC },
			want:      Unknown, wantDial: DialStatusOK, reason: "not of the kind"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			leakcheck.Check(t)
			n := newTestNet(t, ServerConfig{DialBackTimeout: 200 * time.Millisecond}, ClientConfig{DialBackGrace: 100 * time.Millisecond})
			n.observed, n.dialErr, n.localAddr, n.dialDelay = c.observed, c.dialErr, c.localAddr, c.dialDelay
			if c.onDialBack != nil {
				n.onDialBack = func(st network.Stream) { c.onDialBack(n, st) }
			}
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			res, err := n.client.Check(ctx, n.serverID, c.addrs)
			if err != nil {
				t.Fatal(err)
			}
			if res.Verdict != c.want || res.AddrIdx != c.wantIdx || !res.Addr.Equal(c.addrs[c.wantIdx]) || res.DialStatus != c.wantDial || res.Server != n.serverID {
				t.Fatalf("result %+v, want %s of address %d with %s", res, c.want, c.wantIdx, c.wantDial)
			}
			if !strings.Contains(res.Reason, c.reason) {
				t.Fatalf("reason %q, want it to say %q", res.Reason, c.reason)
			}
			e := n.event()
			if !e.Responded || e.Status != StatusOK || e.DialStatus != c.wantDial || e.AddrIdx != c.wantIdx || e.Err != nil || e.Peer != n.clientID {
				t.Fatalf("server event %+v", e)
			}
			if (c.dialErr != nil || c.wantDial == DialStatusDialBackError) != (e.DialErr != nil) {
				t.Fatalf("server event DialErr %v", e.DialErr)
			}
			if c.wantData {
				if e.DialData < DefaultDialDataMin || e.DialData > DefaultDialDataMax || res.DialData != e.DialData {
					t.Fatalf("dial data: asked %d, paid %d", e.DialData, res.DialData)
				}
			} else if e.DialData != 0 || res.DialData != 0 {
				t.Fatalf("dial data asked %d, paid %d; want none", e.DialData, res.DialData)
			}
			if n.numDials() != 1 {
				t.Fatalf("%d dials, want 1", n.numDials())
			}
			n.mu.Lock()
			defer n.mu.Unlock()
			for _, st := range n.dialConns {
				if !st.FakeConn().IsClosed() {
					t.Fatal("the dial-back connection was left open")
				}
			}
		})
	}
}

// rawRequest plays a client that pays any dial data asked: it sends addrs
// and returns the response and the amount paid.
func rawRequest(t *testing.T, n *testNet, from peer.ID, addrs [][]byte) (*DialResponse, *DialDataRequest) {
	t.Helper()
	st := n.request(from)
	if err := Write(st, &Message{DialRequest: &DialRequest{Addrs: addrs, Nonce: 77}}); err != nil {
		t.Fatal(err)
	}
	m, err := readMsg(t, st)
	if err != nil {
		t.Fatal(err)
	}
	ddr := m.DialDataRequest
	if ddr != nil {
		if err := n.client.pay(st, ddr.NumBytes); err != nil {
			t.Fatal(err)
		}
		if m, err = readMsg(t, st); err != nil {
			t.Fatal(err)
		}
	}
	if m.DialResponse == nil {
		t.Fatalf("got %s, want a DialResponse", m.kind())
	}
	st.Close()
	return m.DialResponse, ddr
}

func addrBytes(ss ...string) [][]byte {
	var out [][]byte
	for _, s := range ss {
		if strings.HasPrefix(s, "raw:") {
			out = append(out, []byte(s[4:]))
			continue
		}
		out = append(out, ma.StringCast(s).Bytes())
	}
	return out
}

func TestAddressChoice(t *testing.T) {
	noUDP := func(a ma.Multiaddr) bool {
		_, err := a.ValueForProtocol(ma.P_UDP)
		return err != nil
	}
	many := make([]string, 0, 51)
	for i := range 50 {
		many = append(many, fmt.Sprintf("/ip4/10.0.0.%d/tcp/1", i+1))
	}
	many = append(many, "/ip4/1.2.3.4/tcp/4001")
	cases := []struct {
		name    string
		cfg     ServerConfig
		canDial func(ma.Multiaddr) bool
		addrs   [][]byte
		want    int // -1: refused
		dialed  string
	}{
		{name: "private ones", addrs: addrBytes("/ip4/10.0.0.1/tcp/1", "/ip4/192.168.1.1/tcp/1", "/ip4/127.0.0.1/tcp/1", "/ip6/fd00::1/tcp/1", "/ip6/::1/tcp/1"), want: -1},
		{name: "relayed", addrs: addrBytes("/ip4/1.2.3.4/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit"), want: -1},
		{name: "undialable", canDial: noUDP, addrs: addrBytes("/ip4/1.2.3.4/udp/4001/quic-v1"), want: -1},
		{name: "unspecified and multicast", cfg: ServerConfig{AllowPrivateAddrs: true}, addrs: addrBytes("/ip4/0.0.0.0/tcp/1", "/ip4/224.0.0.1/tcp/1"), want: -1},
		{name: "no address", want: -1},
		{name: "first acceptable after unparseable, private, undialable", canDial: noUDP,
			addrs: addrBytes("raw:garbage", "/ip4/10.0.0.1/tcp/1", "/ip4/1.2.3.4/udp/4001/quic-v1", "/ip4/1.2.3.4/tcp/4001", "/ip4/5.6.7.8/tcp/4001"),
			want:  3, dialed: "/ip4/1.2.3.4/tcp/4001"},
		{name: "another peer's address skipped, ours stripped",
			addrs: [][]byte{
				ma.StringCast("/ip4/5.6.7.8/tcp/1/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA").Bytes(),
				ma.Join(clientAddr, ma.StringCast("/p2p/"+streamtest.PeerID(t, "client").String())).Bytes(),
			},
			want: 1, dialed: "/ip4/1.2.3.4/tcp/4001"},
		{name: "public prefix", cfg: ServerConfig{PublicPrefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
			addrs: addrBytes("/ip4/192.168.1.1/tcp/1", "/ip4/10.1.2.3/tcp/1"), want: 1, dialed: "/ip4/10.1.2.3/tcp/1"},
		{name: "private allowed", cfg: ServerConfig{AllowPrivateAddrs: true},
			addrs: addrBytes("/ip4/192.168.1.1/tcp/1"), want: 0, dialed: "/ip4/192.168.1.1/tcp/1"},
		{name: "only the first 50 are read", addrs: addrBytes(many...), want: -1},
		{name: "first 50 with MaxAddrs 51", cfg: ServerConfig{MaxAddrs: 51}, addrs: addrBytes(many...), want: 50, dialed: "/ip4/1.2.3.4/tcp/4001"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			leakcheck.Check(t)
			n := newTestNet(t, c.cfg, ClientConfig{})
			n.canDial = c.canDial
			resp, _ := rawRequest(t, n, n.clientID, c.addrs)
			e := n.event()
			if c.want < 0 {
				if resp.Status != StatusDialRefused || n.numDials() != 0 || e.Reason != ReasonNoDialableAddrs {
					t.Fatalf("response %+v, %d dials, event %+v; want E_DIAL_REFUSED and no dial", resp, n.numDials(), e)
				}
				return
			}
			if resp.Status != StatusOK || int(resp.AddrIdx) != c.want || resp.DialStatus != DialStatusOK {
				t.Fatalf("response %+v, want OK for address %d", resp, c.want)
			}
			if n.numDials() != 1 || n.dials[0].String() != c.dialed || e.Addr.String() != c.dialed {
				t.Fatalf("dialed %v (event %s), want %s", n.dials, e.Addr, c.dialed)
			}
		})
	}
}

func TestDialDataAsked(t *testing.T) {
	cases := []struct {
		name     string
		observed string
		addr     string
		ask      bool
	}{
		{"same IP, other port", "/ip4/1.2.3.4/tcp/5", "/ip4/1.2.3.4/tcp/4001", false},
		{"same IP, other transport", "/ip4/1.2.3.4/tcp/5", "/ip4/1.2.3.4/udp/4001/quic-v1", false},
		{"same IPv6", "/ip6/2a00:1450::1/tcp/5", "/ip6/2a00:1450::1/tcp/4001", false},
		{"other IP", "/ip4/5.6.7.8/tcp/5", "/ip4/1.2.3.4/tcp/4001", true},
		{"IPv6 observed, IPv4 asked", "/ip6/2a00:1450::1/tcp/5", "/ip4/1.2.3.4/tcp/4001", true},
		{"DNS name", "/ip4/1.2.3.4/tcp/5", "/dns4/example.com/tcp/4001", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			leakcheck.Check(t)
			n := newTestNet(t, ServerConfig{DialDataMin: 5000, DialDataMax: 6000}, ClientConfig{})
			n.observed = ma.StringCast(c.observed)
			resp, ddr := rawRequest(t, n, n.clientID, addrBytes("/ip4/10.0.0.1/tcp/1", c.addr))
			if resp.Status != StatusOK || resp.AddrIdx != 1 {
				t.Fatalf("response %+v", resp)
			}
			if (ddr != nil) != c.ask {
				t.Fatalf("dial data request %+v, want one: %v", ddr, c.ask)
			}
			if ddr != nil && (ddr.AddrIdx != 1 || ddr.NumBytes < 5000 || ddr.NumBytes > 6000) {
				t.Fatalf("dial data request %+v, want address 1 and 5000-6000 bytes", ddr)
			}
			if e := n.event(); (e.DialData != 0) != c.ask {
				t.Fatalf("event DialData %d", e.DialData)
			}
		})
	}
}

// A client that does not pay properly gets its stream reset, and no dial.
func TestDialDataAbuse(t *testing.T) {
	const streamTimeout = 300 * time.Millisecond
	chunk := func(n int) *Message { return &Message{DialDataResponse: &DialDataResponse{Data: make([]byte, n)}} }
	cases := []struct {
		name string
		send func(st *streamtest.Stream)
		slow bool // the server waits for its stream timeout
	}{
		{name: "never pays", slow: true, send: func(*streamtest.Stream) {}},
		{name: "pays half", slow: true, send: func(st *streamtest.Stream) {
			for range 2 {
				Write(st, chunk(MaxDataChunk))
			}
		}},
		{name: "oversized chunk", send: func(st *streamtest.Stream) { Write(st, chunk(MaxDataChunk+1)) }},
		{name: "tiny chunks", send: func(st *streamtest.Stream) { Write(st, chunk(10)) }},
		{name: "empty chunk", send: func(st *streamtest.Stream) { Write(st, chunk(0)) }},
		{name: "another request", send: func(st *streamtest.Stream) {
			Write(st, &Message{DialRequest: &DialRequest{Addrs: addrBytes("/ip4/1.2.3.4/tcp/1")}})
		}},
		{name: "malformed", send: func(st *streamtest.Stream) { st.Write([]byte{3, 0x22, 0x01, 0x08}) }},
		{name: "closes", send: func(st *streamtest.Stream) { st.CloseWrite() }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			leakcheck.Check(t)
			n := newTestNet(t, ServerConfig{StreamTimeout: streamTimeout, DialDataMin: 10000, DialDataMax: 10000}, ClientConfig{})
			n.observed = ma.StringCast("/ip4/5.6.7.8/tcp/5")
			start := time.Now()
			st := n.request(n.clientID)
			Write(st, &Message{DialRequest: &DialRequest{Addrs: addrBytes("/ip4/1.2.3.4/tcp/4001"), Nonce: 1}})
			m, err := readMsg(t, st)
			if err != nil || m.DialDataRequest == nil || m.DialDataRequest.NumBytes != 10000 {
				t.Fatalf("got %+v, %v; want a DialDataRequest for 10000 bytes", m, err)
			}
			c.send(st)
			waitReset(t, st)
			took := time.Since(start)
			if c.slow && took < streamTimeout {
				t.Fatalf("reset after %s, before the stream timeout %s", took, streamTimeout)
			}
			if took > streamTimeout+2*time.Second {
				t.Fatalf("reset only after %s", took)
			}
			e := n.event()
			if e.Err == nil || e.Responded || e.DialData != 10000 {
				t.Fatalf("event %+v", e)
			}
			if c.slow && !errors.Is(e.Err, context.DeadlineExceeded) {
				t.Fatalf("event Err %v, want a deadline", e.Err)
			}
			if n.numDials() != 0 {
				t.Fatal("dialed for an unpaid request")
			}
		})
	}
}

func TestServerMalformedRequest(t *testing.T) {
	cases := []struct {
		name string
		send []byte
		eof  bool
	}{
		{"garbage", []byte{2, 0xff, 0xff}, false},
		{"empty message", []byte{0}, false},
		{"a DialResponse", frameMsg(&Message{DialResponse: &DialResponse{Status: StatusOK}}), false},
		{"a DialDataResponse", frameMsg(&Message{DialDataResponse: &DialDataResponse{Data: []byte{1}}}), false},
		{"too large", []byte{0x81, 0x40}, false},
		{"nothing", nil, true},
		{"truncated", []byte{10, 0x0a, 0x03}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			leakcheck.Check(t)
			n := newTestNet(t, ServerConfig{}, ClientConfig{})
			st := n.request(n.clientID)
			st.Write(c.send)
			if c.eof {
				st.CloseWrite()
			}
			waitReset(t, st)
			if e := n.event(); e.Err == nil || e.Responded {
				t.Fatalf("event %+v", e)
			}
			if n.numDials() != 0 {
				t.Fatal("dialed")
			}
		})
	}
}

func frameMsg(m Marshaler) []byte {
	var b strings.Builder
	Write(&b, m)
	return []byte(b.String())
}

func TestRelayedRequestRejected(t *testing.T) {
	cases := []struct {
		name     string
		state    network.ConnState
		observed ma.Multiaddr
	}{
		{"limited connection", network.ConnState{Limited: true}, observedTCP},
		{"circuit address", network.ConnState{}, ma.StringCast("/ip4/5.6.7.8/tcp/1/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			leakcheck.Check(t)
			n := newTestNet(t, ServerConfig{}, ClientConfig{})
			n.state, n.observed = c.state, c.observed
			_, err := n.client.Check(context.Background(), n.serverID, []ma.Multiaddr{clientAddr})
			if !errors.Is(err, ErrRejected) {
				t.Fatalf("Check: %v, want ErrRejected", err)
			}
			if e := n.event(); e.Reason != ReasonRelayed || e.Status != StatusRequestRejected {
				t.Fatalf("event %+v", e)
			}
			if g, p, _, r := n.server.lim.sizes(); n.numDials() != 0 || g+p+r != 0 {
				t.Fatalf("%d dials, limiter holds %d+%d+%d", n.numDials(), g, p, r)
			}
		})
	}
}

// fakeClock is a settable clock for the rate limit windows.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestRateLimits(t *testing.T) {
	type req struct {
		peer     string
		otherIP  bool // needs dial data
		rejected string
	}
	cases := []struct {
		name string
		cfg  ServerConfig
		reqs []req
	}{
		{"global", ServerConfig{GlobalRPM: 3}, []req{{peer: "a"}, {peer: "b"}, {peer: "c"}, {peer: "d", rejected: ReasonGlobalRate}, {peer: "a", rejected: ReasonGlobalRate}}},
		{"per peer", ServerConfig{PerPeerRPM: 2}, []req{{peer: "a"}, {peer: "a"}, {peer: "a", rejected: ReasonPeerRate}, {peer: "b"}}},
		{"dial data", ServerConfig{DialDataRPM: 1, DialDataMin: 200, DialDataMax: 200},
			[]req{{peer: "a", otherIP: true}, {peer: "b", otherIP: true, rejected: ReasonDialDataRate}, {peer: "c"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			leakcheck.Check(t)
			n := newTestNet(t, c.cfg, ClientConfig{})
			clock := &fakeClock{t: time.Unix(1000, 0)}
			n.server.now = clock.now
			dials := 0
			for i, r := range c.reqs {
				n.observed = observedTCP
				if r.otherIP {
					n.observed = ma.StringCast("/ip4/5.6.7.8/tcp/5")
				}
				resp, _ := rawRequest(t, n, streamtest.PeerID(t, r.peer), addrBytes("/ip4/1.2.3.4/tcp/4001"))
				e := n.event()
				if r.rejected != "" {
					if resp.Status != StatusRequestRejected || e.Reason != r.rejected {
						t.Fatalf("request %d: %+v, reason %q; want rejected for %q", i, resp, e.Reason, r.rejected)
					}
				} else {
					dials++
					if resp.Status != StatusOK {
						t.Fatalf("request %d: %+v, reason %q", i, resp, e.Reason)
					}
				}
				if n.numDials() != dials {
					t.Fatalf("request %d: %d dials, want %d", i, n.numDials(), dials)
				}
				clock.advance(time.Second)
			}
			// A minute later, the windows are empty again.
			clock.advance(time.Minute)
			n.observed = observedTCP
			if resp, _ := rawRequest(t, n, streamtest.PeerID(t, c.reqs[0].peer), addrBytes("/ip4/1.2.3.4/tcp/4001")); resp.Status != StatusOK {
				t.Fatalf("a minute later: %+v", resp)
			}
			n.event()
			if g, p, d, r := n.server.lim.sizes(); g != 1 || p != 1 || d != 0 || r != 0 {
				t.Fatalf("limiter holds global %d, peers %d, dial data %d, running %d; want 1 1 0 0", g, p, d, r)
			}
		})
	}
}

func TestConcurrentLimit(t *testing.T) {
	leakcheck.Check(t)
	n := newTestNet(t, ServerConfig{MaxConcurrentPerPeer: 1}, ClientConfig{})
	a := streamtest.PeerID(t, "a")
	// a's first request is held in its dial-back.
	entered, release := make(chan struct{}), make(chan struct{})
	var held atomic.Bool
	n.onDialBack = func(st network.Stream) {
		if held.CompareAndSwap(false, true) {
			close(entered)
			<-release
		}
		n.client.HandleDialBack(st)
	}
	first := n.request(a)
	Write(first, &Message{DialRequest: &DialRequest{Addrs: addrBytes("/ip4/1.2.3.4/tcp/4001"), Nonce: 3}})
	select {
	case <-entered:
	case <-time.After(testTimeout):
		t.Fatal("no dial-back")
	}
	second := n.request(a)
	m, err := readMsg(t, second)
	if err != nil || m.DialResponse == nil || m.DialResponse.Status != StatusRequestRejected {
		t.Fatalf("second concurrent request: %+v, %v", m, err)
	}
	if e := n.event(); e.Reason != ReasonConcurrent {
		t.Fatalf("event %+v", e)
	}
	if resp, _ := rawRequest(t, n, streamtest.PeerID(t, "b"), addrBytes("/ip4/1.2.3.4/tcp/4001")); resp.Status != StatusOK || resp.DialStatus != DialStatusOK {
		t.Fatalf("another peer's request: %+v", resp)
	}
	n.event()
	close(release)
	if m, err := readMsg(t, first); err != nil || m.DialResponse == nil || m.DialResponse.Status != StatusOK {
		t.Fatalf("first request: %+v, %v", m, err)
	}
	// Once it is answered, a may ask again at once: the slot is freed
	// before the answer leaves.
	if resp, _ := rawRequest(t, n, a, addrBytes("/ip4/1.2.3.4/tcp/4001")); resp.Status != StatusOK {
		t.Fatalf("right after the first's answer: %+v", resp)
	}
	n.event()
	n.event()
	if n.numDials() != 3 {
		t.Fatalf("%d dials, want 3", n.numDials())
	}
}

// Under a flood from many peers, the server serves GlobalRPM requests and
// its state stays bounded by it.
func TestRateLimitFlood(t *testing.T) {
	leakcheck.Check(t)
	n := newTestNet(t, ServerConfig{}, ClientConfig{})
	clock := &fakeClock{t: time.Unix(1000, 0)}
	n.server.now = clock.now
	const peers = 300
	ids := make([]peer.ID, peers)
	for i := range ids {
		ids[i] = streamtest.PeerID(t, fmt.Sprint("flood", i))
	}
	var wg sync.WaitGroup
	statuses := make([]ResponseStatus, peers)
	for i := range peers {
		st := n.request(ids[i])
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer st.Close()
			Write(st, &Message{DialRequest: &DialRequest{Addrs: addrBytes("/ip4/1.2.3.4/tcp/4001"), Nonce: uint64(i + 1)}})
			st.SetDeadline(time.Now().Add(testTimeout))
			if m, err := ReadMessage(st); err == nil && m.DialResponse != nil {
				statuses[i] = m.DialResponse.Status
			}
		}()
	}
	wg.Wait()
	for range peers {
		n.event()
	}
	counts := map[ResponseStatus]int{}
	for _, s := range statuses {
		counts[s]++
	}
	if counts[StatusOK] != DefaultGlobalRPM || counts[StatusRequestRejected] != peers-DefaultGlobalRPM || n.numDials() != DefaultGlobalRPM {
		t.Fatalf("statuses %v, %d dials; want %d OK", counts, n.numDials(), DefaultGlobalRPM)
	}
	if g, p, d, r := n.server.lim.sizes(); g > DefaultGlobalRPM || p > DefaultGlobalRPM || d != 0 || r != 0 {
		t.Fatalf("limiter holds global %d, peers %d, dial data %d, running %d", g, p, d, r)
	}
	clock.advance(time.Minute)
	if resp, _ := rawRequest(t, n, ids[0], addrBytes("/ip4/1.2.3.4/tcp/4001")); resp.Status != StatusOK {
		t.Fatalf("a minute later: %+v", resp)
	}
	n.event()
	if g, p, _, _ := n.server.lim.sizes(); g != 1 || p != 1 {
		t.Fatalf("after a minute the limiter still holds global %d, peers %d", g, p)
	}
}

func TestServerClose(t *testing.T) {
	leakcheck.Check(t)
	n := newTestNet(t, ServerConfig{}, ClientConfig{})
	n.observed = ma.StringCast("/ip4/5.6.7.8/tcp/5")
	st := n.request(n.clientID)
	Write(st, &Message{DialRequest: &DialRequest{Addrs: addrBytes("/ip4/1.2.3.4/tcp/4001"), Nonce: 1}})
	if m, err := readMsg(t, st); err != nil || m.DialDataRequest == nil {
		t.Fatalf("%+v, %v", m, err)
	}
	n.server.Close()
	waitReset(t, st)
	if e := n.event(); !errors.Is(e.Err, context.Canceled) {
		t.Fatalf("event Err %v, want the cancellation", e.Err)
	}
	waitReset(t, n.request(n.clientID))
	if e := n.event(); !errors.Is(e.Err, ErrClosed) {
		t.Fatalf("event Err %v after Close", e.Err)
	}
	if n.numDials() != 0 {
		t.Fatal("dialed")
	}
}
