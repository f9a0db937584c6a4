package autonatv2

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/internal/lp"
	"github.com/tachyon-p2p/tachyon/internal/streamtest"
)

// newScripted returns a client whose server runs script on each request
// stream; cleanup waits for the scripts.
func newScripted(t *testing.T, cfg ClientConfig, script func(c *Client, st *streamtest.Stream)) (*Client, peer.ID) {
	var wg sync.WaitGroup
	server := streamtest.PeerID(t, "server")
	var c *Client
	c = NewClient(scriptHost{t: t, server: server, wg: &wg, script: func(st *streamtest.Stream) {
		st.SetDeadline(time.Now().Add(testTimeout))
		script(c, st)
	}}, cfg)
	t.Cleanup(func() {
		c.Close()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(testTimeout):
			t.Error("server script still running")
		}
	})
	return c, server
}

// Every (status, dialStatus, dial-back) combination the client can see.
func TestClientVerdicts(t *testing.T) {
	const (
		none         = ""
		before       = "before"       // our nonce, before the response
		after        = "after"        // our nonce, just after the response
		wrongNonce   = "wrong nonce"  // someone else's nonce, before
		inconsistent = "inconsistent" // our nonce on a QUIC connection
	)
	addrs := []ma.Multiaddr{ma.StringCast("/ip4/192.0.2.1/tcp/1"), clientAddr}
	cases := []struct {
		status   ResponseStatus
		dial     DialStatus
		idx      uint32
		dialBack string
		want     Verdict
		err      error
		reason   string
	}{
		{status: StatusOK, dial: DialStatusOK, idx: 1, dialBack: before, want: Reachable},
		{status: StatusOK, dial: DialStatusOK, idx: 1, dialBack: after, want: Reachable},
		{status: StatusOK, dial: DialStatusOK, idx: 1, dialBack: none, want: Unknown, reason: "none with our nonce"},
		{status: StatusOK, dial: DialStatusOK, idx: 1, dialBack: wrongNonce, want: Unknown, reason: "none with our nonce"},
		{status: StatusOK, dial: DialStatusOK, idx: 1, dialBack: inconsistent, want: Unknown, reason: "not of the kind"},
		{status: StatusOK, dial: DialStatusDialError, idx: 1, dialBack: none, want: Unreachable},
		{status: StatusOK, dial: DialStatusDialError, idx: 1, dialBack: before, want: Unknown, reason: "reported a dial error"},
		{status: StatusOK, dial: DialStatusDialBackError, idx: 1, dialBack: none, want: Unknown, reason: "could not complete"},
		{status: StatusOK, dial: DialStatusDialBackError, idx: 1, dialBack: before, want: Unknown, reason: "did arrive"},
		{status: StatusOK, dial: DialStatusUnused, idx: 1, err: ErrProtocol},
		{status: StatusOK, dial: 7, idx: 1, err: ErrProtocol},
		{status: StatusOK, dial: DialStatusOK, idx: 2, dialBack: before, err: ErrProtocol},
		{status: StatusOK, dial: DialStatusOK, idx: 1 << 31, err: ErrProtocol},
		{status: StatusDialRefused, err: ErrDialRefused},
		{status: StatusDialRefused, dialBack: before, err: ErrDialRefused},
		{status: StatusRequestRejected, err: ErrRejected},
		{status: StatusInternalError, err: ErrInternal},
		{status: 300, err: ErrProtocol},
		{status: -1, err: ErrProtocol},
	}
	for _, c := range cases {
		name := c.status.String() + "/" + c.dial.String() + "/" + c.dialBack
		t.Run(name, func(t *testing.T) {
			leakcheck.Check(t)
			var answered sync.WaitGroup
			defer answered.Wait()
			client, server := newScripted(t, ClientConfig{DialBackGrace: 200 * time.Millisecond}, func(cl *Client, st *streamtest.Stream) {
				m, err := ReadMessage(st)
				if err != nil || m.DialRequest == nil {
					t.Errorf("request: %+v, %v", m, err)
					st.Reset()
					return
				}
				nonce, local := m.DialRequest.Nonce, clientAddr
				switch c.dialBack {
				case wrongNonce:
					nonce++
				case inconsistent:
					local = clientQUIC
				}
				if c.dialBack != none && c.dialBack != after {
					if r, err := sendDialBack(t, cl, nonce, local); err != nil || r.Status != DialBackStatusOK {
						t.Errorf("dial-back answer %+v, %v", r, err)
					}
				}
				Write(st, &Message{DialResponse: &DialResponse{Status: c.status, AddrIdx: c.idx, DialStatus: c.dial}})
				st.Close()
				if c.dialBack == after {
					// The client closes its end once it has the response:
					// only then does the dial-back arrive.
					io.Copy(io.Discard, st)
					sendDialBack(t, cl, nonce, local)
				}
			})
			res, err := client.Check(context.Background(), server, addrs)
			if c.err != nil {
				if !errors.Is(err, c.err) || !strings.Contains(err.Error(), server.String()) {
					t.Fatalf("Check: %v, want %v naming the server", err, c.err)
				}
				if res.Verdict != Unknown {
					t.Fatalf("verdict %s with an error", res.Verdict)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Verdict != c.want || res.AddrIdx != int(c.idx) || !res.Addr.Equal(addrs[c.idx]) || res.DialStatus != c.dial {
				t.Fatalf("result %+v, want %s", res, c.want)
			}
			if !strings.Contains(res.Reason, c.reason) || (c.reason == "") != (res.Reason == "") {
				t.Fatalf("reason %q, want %q", res.Reason, c.reason)
			}
		})
	}
}

func TestClientDialData(t *testing.T) {
	cases := []struct {
		name   string
		cfg    ClientConfig
		idx    uint32
		ask    uint64
		chunks []int // what the server should receive
		err    error
	}{
		{name: "less than a chunk", ask: 1000, chunks: []int{1000}},
		{name: "several chunks", ask: 10000, chunks: []int{4096, 4096, 1808}},
		{name: "exact chunks", ask: 8192, chunks: []int{4096, 4096}},
		{name: "at the limit", ask: DefaultMaxDialData, chunks: nil},
		{name: "too much", ask: DefaultMaxDialData + 1, err: ErrTooMuchDialData},
		{name: "above a lower limit", cfg: ClientConfig{MaxDialData: 5000}, ask: 5001, err: ErrTooMuchDialData},
		{name: "address out of range", idx: 1, ask: 1000, err: ErrProtocol},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			leakcheck.Check(t)
			c.cfg.DialBackGrace = time.Millisecond
			var got []int
			total := uint64(0)
			client, server := newScripted(t, c.cfg, func(cl *Client, st *streamtest.Stream) {
				m, err := ReadMessage(st)
				if err != nil || m.DialRequest == nil {
					t.Errorf("request: %+v, %v", m, err)
					return
				}
				Write(st, &Message{DialDataRequest: &DialDataRequest{AddrIdx: c.idx, NumBytes: c.ask}})
				for total < c.ask {
					m, err := ReadMessage(st)
					if err != nil {
						return // the client gave up: the test checks its error
					}
					if m.DialDataResponse == nil {
						t.Errorf("got %s, want dial data", m.kind())
						return
					}
					got = append(got, len(m.DialDataResponse.Data))
					total += uint64(len(m.DialDataResponse.Data))
				}
				Write(st, &Message{DialResponse: &DialResponse{Status: StatusOK, DialStatus: DialStatusDialError}})
				st.Close()
			})
			res, err := client.Check(context.Background(), server, []ma.Multiaddr{clientAddr})
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("Check: %v, want %v", err, c.err)
				}
				if res.DialData != 0 {
					t.Fatalf("paid %d", res.DialData)
				}
				return
			}
			if err != nil || res.Verdict != Unreachable || res.DialData != c.ask || total != c.ask {
				t.Fatalf("Check: %+v, %v; server got %d of %d bytes", res, err, total, c.ask)
			}
			if c.chunks != nil && !slices.Equal(got, c.chunks) {
				t.Fatalf("chunks %v, want %v", got, c.chunks)
			}
			for _, n := range got {
				if n > MaxDataChunk {
					t.Fatalf("chunk of %d bytes", n)
				}
			}
		})
	}
}

func TestClientMalformed(t *testing.T) {
	cases := []struct {
		name   string
		answer [][]byte // raw frames the server sends after reading the request
		reset  bool
		err    error
	}{
		{name: "garbage", answer: [][]byte{{2, 0xff, 0xff}}, err: ErrMalformed},
		{name: "empty message", answer: [][]byte{{0}}, err: ErrProtocol},
		{name: "a DialRequest", answer: [][]byte{frameMsg(&Message{DialRequest: &DialRequest{Nonce: 1}})}, err: ErrProtocol},
		{name: "two DialDataRequests", answer: [][]byte{
			frameMsg(&Message{DialDataRequest: &DialDataRequest{NumBytes: 10}}),
			frameMsg(&Message{DialDataRequest: &DialDataRequest{NumBytes: 10}}),
		}, err: ErrProtocol},
		{name: "too large", answer: [][]byte{lp.Append(nil, make([]byte, MaxMessageSize+1))}, err: lp.ErrTooLarge},
		{name: "reset", reset: true},
		{name: "closed without answer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			leakcheck.Check(t)
			client, server := newScripted(t, ClientConfig{}, func(cl *Client, st *streamtest.Stream) {
				if _, err := ReadMessage(st); err != nil {
					t.Errorf("request: %v", err)
				}
				for _, b := range c.answer {
					st.Write(b)
				}
				if c.reset {
					st.Reset()
					return
				}
				st.Close()
			})
			_, err := client.Check(context.Background(), server, []ma.Multiaddr{clientAddr})
			if err == nil || (c.err != nil && !errors.Is(err, c.err)) || !strings.Contains(err.Error(), server.String()) {
				t.Fatalf("Check: %v, want %v naming the server", err, c.err)
			}
		})
	}
}

func TestClientTimeoutAndClose(t *testing.T) {
	leakcheck.Check(t)
	release, asked := make(chan struct{}), make(chan struct{}, 2)
	client, server := newScripted(t, ClientConfig{}, func(cl *Client, st *streamtest.Stream) {
		ReadMessage(st)
		asked <- struct{}{}
		<-release // a server that never answers
		st.Reset()
	})
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := client.Check(ctx, server, []ma.Multiaddr{clientAddr}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Check past its deadline: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := client.Check(context.Background(), server, []ma.Multiaddr{clientAddr})
		done <- err
	}()
	for range 2 {
		select {
		case <-asked:
		case <-time.After(testTimeout):
			t.Fatal("no request")
		}
	}
	client.Close()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Check cut by Close: %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Close did not end the Check")
	}
}

func TestCheckArguments(t *testing.T) {
	client, server := newScripted(t, ClientConfig{}, func(*Client, *streamtest.Stream) { t.Error("no stream expected") })
	if _, err := client.Check(context.Background(), server, nil); err == nil {
		t.Fatal("Check with no address")
	}
	var many []ma.Multiaddr
	for range 1000 {
		many = append(many, clientAddr)
	}
	if _, err := client.Check(context.Background(), server, many); err == nil {
		t.Fatal("Check with a request beyond MaxMessageSize")
	}
}

func TestHandleDialBack(t *testing.T) {
	leakcheck.Check(t)
	c := NewClient(scriptHost{}, ClientConfig{DialBackTimeout: 200 * time.Millisecond})
	defer c.Close()
	nonce, seen, err := c.register()
	if err != nil {
		t.Fatal(err)
	}
	defer c.unregister(nonce)

	// Known nonce: acknowledged with the empty message, reported once.
	if r, err := sendDialBack(t, c, nonce, clientAddr); err != nil || r.Status != DialBackStatusOK {
		t.Fatalf("known nonce: %+v, %v", r, err)
	}
	if got := <-seen; !got.Equal(clientAddr) {
		t.Fatalf("reported %s", got)
	}
	// A second dial-back, and unknown nonces, are acknowledged and ignored.
	for _, n := range []uint64{nonce, nonce + 1, 0} {
		if r, err := sendDialBack(t, c, n, clientQUIC); err != nil || r.Status != DialBackStatusOK {
			t.Fatalf("nonce %d: %+v, %v", n, r, err)
		}
	}
	select {
	case got := <-seen:
		t.Fatalf("reported again: %s", got)
	default:
	}

	bad := []struct {
		name string
		send []byte
		eof  bool
	}{
		{"garbage", []byte{2, 0x08, 0x01}, false},
		{"too large", lp.Append(nil, make([]byte, MaxDialBackMessageSize+1)), false},
		{"truncated", []byte{9, 0x09, 1, 2}, true},
		{"nothing", nil, true},
		{"silent", nil, false}, // reset at DialBackTimeout
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			a, s := streamtest.Pair(streamtest.Config{Protocol: DialBackID, A: streamtest.PeerID(t, "dialer"), B: streamtest.PeerID(t, "client"), AAddr: dialerAddr, BAddr: clientAddr})
			done := make(chan struct{})
			go func() {
				defer close(done)
				c.HandleDialBack(s)
			}()
			a.Write(b.send)
			if b.eof {
				a.CloseWrite()
			}
			waitReset(t, a)
			<-done
		})
	}
}

func TestConsistent(t *testing.T) {
	cases := []struct {
		local, tested string
		want          bool
	}{
		{"/ip4/192.168.1.2/tcp/4001", "/ip4/1.2.3.4/tcp/5000", true},
		{"/ip4/192.168.1.2/tcp/4001", "/ip4/1.2.3.4/tcp/5000/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA", true},
		{"/ip4/192.168.1.2/tcp/4001", "/ip4/1.2.3.4/tcp/4001/tls", true},
		{"/ip4/192.168.1.2/tcp/4001", "/ip4/1.2.3.4/tcp/4001/noise", true},
		{"/ip4/192.168.1.2/tcp/4001", "/dns4/example.com/tcp/4001", true},
		{"/ip6/2a00:1450::1/tcp/4001", "/dns/example.com/tcp/4001", true},
		{"/ip4/192.168.1.2/udp/4001/quic-v1", "/ip4/1.2.3.4/udp/4001/quic-v1", true},
		{"/ip4/192.168.1.2/udp/4001/quic-v1/webtransport", "/ip4/1.2.3.4/udp/4001/quic-v1/webtransport/certhash/uEiDDq4_xNyDorZBH3TlGazyJdOWSwvo4PUo5YHFMrvDE8g", true},
		{"/ip4/192.168.1.2/tcp/443/tls/ws", "/ip4/1.2.3.4/tcp/443/wss", true},
		{"/ip4/192.168.1.2/tcp/443/tls/ws", "/ip4/1.2.3.4/tcp/443/tls/sni/example.com/ws", true},
		{"/ip4/192.168.1.2/tcp/4001", "/ip4/1.2.3.4/udp/4001/quic-v1", false},
		{"/ip4/192.168.1.2/udp/4001/quic-v1", "/ip4/1.2.3.4/udp/4001/quic-v1/webtransport", false},
		{"/ip4/192.168.1.2/tcp/4001", "/ip6/2a00:1450::1/tcp/4001", false},
		{"/ip6/2a00:1450::1/tcp/4001", "/dns4/example.com/tcp/4001", false},
		{"/ip4/192.168.1.2/tcp/4001/ws", "/ip4/1.2.3.4/tcp/4001", false},
		{"/ip4/192.168.1.2/tcp/4001/tls/ws", "/ip4/1.2.3.4/tcp/4001/ws", false},
	}
	for _, c := range cases {
		if got := consistent(ma.StringCast(c.local), ma.StringCast(c.tested)); got != c.want {
			t.Errorf("consistent(%s, %s) = %v", c.local, c.tested, got)
		}
	}
	if consistent(nil, clientAddr) || consistent(clientAddr, nil) {
		t.Error("an empty address is consistent")
	}
}
