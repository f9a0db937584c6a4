package dialrank

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/streamtest"
)

const certhash = "/certhash/uEiDDq4_xNyDorZBH3TlGazyJdOWSwvo4PUo5YHFMrvDE8g"

func mas(t testing.TB, ss ...string) []ma.Multiaddr {
	t.Helper()
	out := make([]ma.Multiaddr, len(ss))
	for i, s := range ss {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		out[i] = a
	}
	return out
}

// got renders dials as "addr@delay" for comparisons.
func got(ds []Dial) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Addr.String() + "@" + d.Delay.String()
	}
	return out
}

func skips(r Ranking) map[string]Reason {
	m := make(map[string]Reason)
	for _, s := range r.Skipped {
		m[s.Addr.String()] = s.Reason
	}
	return m
}

// ruleCase is one table row: addresses and knowledge in, dials (with
// delays) and skips out.
type ruleCase struct {
	name  string
	addrs []string
	k     Knowledge
	want  []string          // "addr@delay" in order
	skip  map[string]Reason // exactly these skipped
}

func runRules(t *testing.T, cases []ruleCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := Plan(mas(t, tc.addrs...), tc.k)
			if g := got(r.Dials); !slices.Equal(g, tc.want) {
				t.Errorf("dials:\n got  %q\n want %q\n%s", g, tc.want, explain(r))
			}
			s := skips(r)
			if tc.skip == nil {
				tc.skip = map[string]Reason{}
			}
			if len(s) != len(tc.skip) {
				t.Errorf("skipped %v, want %v", s, tc.skip)
			}
			for a, why := range tc.skip {
				if s[a] != why {
					t.Errorf("%s: skipped as %q, want %q", a, s[a], why)
				}
			}
		})
	}
}

func explain(r Ranking) string {
	var b strings.Builder
	for _, d := range r.Dials {
		b.WriteString("  " + d.Addr.String() + " +" + d.Delay.String() + " " + d.Why + "\n")
	}
	for _, s := range r.Skipped {
		b.WriteString("  skip " + s.Addr.String() + ": " + s.Detail + "\n")
	}
	return b.String()
}

const (
	q4  = "/ip4/1.2.3.4/udp/4001/quic-v1"
	t4  = "/ip4/1.2.3.4/tcp/4001"
	t4s = "/ip4/1.2.3.4/tcp/4001/tls"
	t4n = "/ip4/1.2.3.4/tcp/4001/noise"
	q6  = "/ip6/2001:db8::1/udp/4001/quic-v1"
	t6s = "/ip6/2001:db8::1/tcp/4001/tls"
	rly = "/ip4/5.6.7.8/tcp/4001/p2p/12D3KooWGRUVh2HTwJHRjfyuYJfkgjiTu5yWKAVt7zZpSWWJqD7z/p2p-circuit"
)

var ms250 = FallbackGap

func TestRuleUndialable(t *testing.T) {
	noWebRTC := func(a ma.Multiaddr) bool { k, _ := TransportOf(a); return k != WebRTCDirect }
	runRules(t, []ruleCase{{
		name:  "no IP",
		addrs: []string{"/dns4/example.com/tcp/1", "/unix/tmp/sock", "/ip4/0.0.0.0/tcp/1", "/ip6/::/udp/1/quic-v1", q4},
		want:  []string{q4 + "@0s"},
		skip: map[string]Reason{"/dns4/example.com/tcp/1": NoIP, "/unix/tmp/sock": NoIP,
			"/ip4/0.0.0.0/tcp/1": NoIP, "/ip6/::/udp/1/quic-v1": NoIP},
	}, {
		name:  "no transport",
		addrs: []string{"/ip4/1.2.3.4/udp/4002/webrtc-direct" + certhash, q4},
		k:     Knowledge{CanDial: noWebRTC},
		want:  []string{q4 + "@0s"},
		skip:  map[string]Reason{"/ip4/1.2.3.4/udp/4002/webrtc-direct" + certhash: NoTransport},
	}})
}

func TestRuleDuplicate(t *testing.T) {
	runRules(t, []ruleCase{{
		name:  "listed twice",
		addrs: []string{q4, q4},
		want:  []string{q4 + "@0s"},
		skip:  map[string]Reason{q4: DuplicateAddr},
	}})
}

func TestRuleRelay(t *testing.T) {
	runRules(t, []ruleCase{{
		name:  "last, not before RelayDelay",
		addrs: []string{rly, q4},
		want:  []string{q4 + "@0s", rly + "@500ms"},
	}, {
		name:  "skipped next to a direct connection",
		addrs: []string{rly, q4},
		k:     Knowledge{DirectConn: true},
		want:  []string{q4 + "@0s"},
		skip:  map[string]Reason{rly: RelayNotNeeded},
	}, {
		name:  "at once when there is nothing else",
		addrs: []string{rly},
		want:  []string{rly + "@0s"},
	}, {
		name:  "relay by ID only",
		addrs: []string{"/p2p/12D3KooWGRUVh2HTwJHRjfyuYJfkgjiTu5yWKAVt7zZpSWWJqD7z/p2p-circuit"},
		want:  []string{"/p2p/12D3KooWGRUVh2HTwJHRjfyuYJfkgjiTu5yWKAVt7zZpSWWJqD7z/p2p-circuit@0s"},
	}})
}

func TestRuleLoopback(t *testing.T) {
	lq := "/ip4/127.0.0.1/udp/4001/quic-v1"
	lt := "/ip6/::1/tcp/4001/tls"
	runRules(t, []ruleCase{{
		name:  "loopback only: dialed (quic first: fewer rounds)",
		addrs: []string{lq, lt},
		want:  []string{lq + "@0s", lt + "@30ms"},
	}, {
		name:  "with other addresses: skipped",
		addrs: []string{lq, q4},
		want:  []string{q4 + "@0s"},
		skip:  map[string]Reason{lq: LoopbackAddr},
	}, {
		name:  "allowed by the caller",
		addrs: []string{lq, q4},
		k:     Knowledge{AllowLoopback: true},
		want:  []string{lq + "@0s", q4 + "@30ms"},
	}})
}

func TestRulePrivate(t *testing.T) {
	lan := "/ip4/192.168.1.7/udp/4001/quic-v1"
	cg := "/ip4/100.64.3.4/tcp/4001/tls"
	ula := "/ip6/fd00::7/udp/4001/quic-v1"
	runRules(t, []ruleCase{{
		name:  "not our network: skipped",
		addrs: []string{lan, cg, ula, q4},
		want:  []string{q4 + "@0s"},
		skip:  map[string]Reason{lan: NotOurNetwork, cg: NotOurNetwork, ula: NotOurNetwork},
	}, {
		name:  "inside a local prefix: dialed first (a LAN is faster)",
		addrs: []string{q4, lan, cg},
		k:     Knowledge{LocalPrefixes: []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")}},
		want:  []string{lan + "@0s", q4 + "@30ms"},
		skip:  map[string]Reason{cg: NotOurNetwork},
	}, {
		name:  "no public address: private ones are all the peer has",
		addrs: []string{lan, cg},
		want:  []string{lan + "@0s", cg + "@30ms"},
	}, {
		name:  "peer on our network: all dialed",
		addrs: []string{lan, ula},
		k:     Knowledge{SameNetwork: true},
		want:  []string{ula + "@0s", lan + "@30ms"},
	}})
}

func TestRuleSameSocket(t *testing.T) {
	noTLS := func(a ma.Multiaddr) bool { k, _ := TransportOf(a); return k != TCPTLS }
	runRules(t, []ruleCase{{
		name:  "tls wins",
		addrs: []string{t4, t4n, t4s},
		want:  []string{t4s + "@0s"},
		skip:  map[string]Reason{t4: SameSocket, t4n: SameSocket},
	}, {
		name:  "noise when tls cannot be dialed",
		addrs: []string{t4, t4n, t4s},
		k:     Knowledge{CanDial: noTLS},
		want:  []string{t4n + "@0s"},
		skip:  map[string]Reason{t4: SameSocket, t4s: NoTransport},
	}, {
		name:  "plain alone",
		addrs: []string{t4},
		want:  []string{t4 + "@0s"},
	}, {
		name:  "other ports are other sockets",
		addrs: []string{t4s, "/ip4/1.2.3.4/tcp/4002"},
		want:  []string{t4s + "@0s", "/ip4/1.2.3.4/tcp/4002@250ms"},
	}})
}

func TestRuleBlackHole(t *testing.T) {
	var udp6 BlackHoleView
	udp6[UDP6] = Blocked
	var probe BlackHoleView
	probe[UDP6] = Probe
	q6b := "/ip6/2001:db8::2/udp/4001/quic-v1"
	runRules(t, []ruleCase{{
		name:  "blocked: skipped",
		addrs: []string{q6, q6b, t6s, q4},
		k:     Knowledge{BlackHoles: udp6},
		want:  []string{q4 + "@0s", t6s + "@250ms"},
		skip:  map[string]Reason{q6: BlackHoled, q6b: BlackHoled},
	}, {
		name:  "probe: the best one, at once, beside the schedule",
		addrs: []string{q6b, q6, t6s, q4},
		k:     Knowledge{BlackHoles: probe},
		want:  []string{q4 + "@0s", q6b + "@0s", t6s + "@250ms"},
		skip:  map[string]Reason{q6: BlackHoled},
	}, {
		name:  "unfiltered: ignored",
		addrs: []string{q6, q4},
		k:     Knowledge{BlackHoles: udp6, Unfiltered: true},
		want:  []string{q6 + "@0s", q4 + "@250ms"},
	}, {
		name:  "private addresses have no class",
		addrs: []string{"/ip6/fd00::1/udp/1/quic-v1"},
		k:     Knowledge{BlackHoles: udp6, SameNetwork: true},
		want:  []string{"/ip6/fd00::1/udp/1/quic-v1@0s"},
	}})
	r := Plan(mas(t, q6, q4), Knowledge{BlackHoles: probe})
	if len(r.Dials) != 2 || !r.Dials[1].Probe || r.Dials[0].Probe {
		t.Errorf("probe not marked:\n%s", explain(r))
	}
}

func TestRuleOrder(t *testing.T) {
	now := time.Unix(1000, 0)
	backoff := func(a ma.Multiaddr) time.Time {
		if a.String() == q4 {
			return now.Add(time.Minute)
		}
		if a.String() == t4s {
			return now.Add(-time.Minute) // expired
		}
		return time.Time{}
	}
	runRules(t, []ruleCase{{
		name:  "back-off after healthy, before relays",
		addrs: []string{rly, q4, t4s},
		k:     Knowledge{Now: now, Backoff: backoff},
		want:  []string{t4s + "@0s", q4 + "@250ms", rly + "@500ms"},
	}, {
		name:  "all in back-off: dialed all the same",
		addrs: []string{q4},
		k:     Knowledge{Now: now, Backoff: backoff},
		want:  []string{q4 + "@0s"},
	}})
}

// fixedRTT estimates by IP.
type fixedRTT map[string]time.Duration

func (f fixedRTT) Estimate(_ peer.ID, a ma.Multiaddr) (Estimate, bool) {
	in, ok := parse(a)
	if !ok {
		return Estimate{}, false
	}
	rtt, ok := f[in.ip.String()]
	return Estimate{SRTT: rtt, RTTVar: rtt / 8, Samples: 8, Source: "test"}, ok
}

// kindRTT estimates by transport, as the store's transport level does.
type kindRTT map[Transport]time.Duration

func (f kindRTT) Estimate(_ peer.ID, a ma.Multiaddr) (Estimate, bool) {
	k, _ := TransportOf(a)
	rtt, ok := f[k]
	return Estimate{SRTT: rtt, Source: "kind"}, ok
}

func TestRuleExpected(t *testing.T) {
	qSlow := "/ip4/9.9.9.9/udp/4001/quic-v1"
	tFast := "/ip4/8.8.8.8/tcp/4001/tls"
	runRules(t, []ruleCase{{
		name:  "quic before tcp on the same host",
		addrs: []string{t4s, q4},
		k:     Knowledge{RTT: fixedRTT{"1.2.3.4": 40 * time.Millisecond}},
		want:  []string{q4 + "@0s", t4s + "@100ms"},
	}, {
		name:  "a measured fast tcp host before a slow quic host",
		addrs: []string{qSlow, tFast},
		k:     Knowledge{RTT: fixedRTT{"9.9.9.9": 300 * time.Millisecond, "8.8.8.8": 20 * time.Millisecond}},
		want:  []string{tFast + "@0s", qSlow + "@100ms"},
	}, {
		name:  "a measured host before an unknown one",
		addrs: []string{q4, tFast},
		k:     Knowledge{RTT: fixedRTT{"8.8.8.8": 20 * time.Millisecond}},
		want:  []string{tFast + "@0s", q4 + "@100ms"},
	}, {
		name:  "estimates differing by transport do not reorder one host",
		addrs: []string{t4s, q4},
		k:     Knowledge{RTT: kindRTT{QUIC: 300 * time.Millisecond, TCPTLS: 20 * time.Millisecond}},
		want:  []string{q4 + "@0s", t4s + "@315ms"},
	}})
}

func TestRuleTiers(t *testing.T) {
	h := "/ip4/1.2.3.4"
	wt := h + "/udp/4001/quic-v1/webtransport" + certhash
	ws := h + "/tcp/4002/ws"
	wss := h + "/tcp/4003/tls/sni/example.com/ws"
	rtc := h + "/udp/4004/webrtc-direct" + certhash
	runRules(t, []ruleCase{{
		name:  "one host, every transport",
		addrs: []string{rtc, wss, ws, wt, t4s, q4},
		k:     Knowledge{RTT: fixedRTT{"1.2.3.4": 40 * time.Millisecond}},
		// waves of 1, 1 and the rest (gaps of 100 ms, the minimum), and
		// webtransport, on QUIC's UDP port, one wave later (220 ms: wss's
		// and webrtc's 5 x 40 + 20)
		want: []string{q4 + "@0s", t4s + "@100ms", ws + "@200ms", wss + "@200ms", rtc + "@200ms", wt + "@420ms"},
	}, {
		name:  "equal times: ipv6, then the lower port",
		addrs: []string{"/ip4/1.2.3.4/udp/5/quic-v1", "/ip4/1.2.3.4/udp/4/quic-v1", "/ip6/2001:db8::1/udp/9/quic-v1"},
		want:  []string{"/ip6/2001:db8::1/udp/9/quic-v1@0s", "/ip4/1.2.3.4/udp/4/quic-v1@250ms", "/ip4/1.2.3.4/udp/5/quic-v1@500ms"},
	}})
	r := Plan(mas(t, t4s, q4), Knowledge{})
	if !strings.Contains(r.Dials[1].Why, "tcp/tls after quic on the same host") {
		t.Errorf("why: %q", r.Dials[1].Why)
	}
}

func TestRuleFamilies(t *testing.T) {
	q6b := "/ip6/2001:db8::2/udp/4001/quic-v1"
	q4b := "/ip4/1.2.3.5/udp/4001/quic-v1"
	runRules(t, []ruleCase{{
		name:  "ipv6 first, then alternate",
		addrs: []string{q4, q4b, q6, q6b},
		k:     Knowledge{NoDelay: true},
		want:  []string{q6 + "@0s", q4 + "@0s", q6b + "@0s", q4b + "@0s"},
	}, {
		name:  "measured ipv4 first, then alternate",
		addrs: []string{q6, q4, q4b},
		k:     Knowledge{NoDelay: true, RTT: fixedRTT{"1.2.3.4": 10 * time.Millisecond}},
		want:  []string{q4 + "@0s", q6 + "@0s", q4b + "@0s"},
	}})
	r := Plan(mas(t, q6, q4), Knowledge{})
	if !strings.Contains(r.Dials[1].Why, "happy eyeballs") {
		t.Errorf("why: %q", r.Dials[1].Why)
	}
}

func TestRuleWaves(t *testing.T) {
	var addrs, want []string
	delays := []time.Duration{0, 250, 500, 500, 500, 500, 500, 500, 500}
	for i, d := range delays {
		a := "/ip4/1.2.3." + string(rune('1'+i)) + "/udp/4001/quic-v1"
		addrs = append(addrs, a)
		want = append(want, a+"@"+(d*time.Millisecond).String())
	}
	wt6 := "/ip6/2001:db8::1/udp/4001/quic-v1/webtransport" + certhash
	wt4 := "/ip4/1.2.3.4/udp/4001/quic-v1/webtransport" + certhash
	t6 := "/ip6/2001:db8::1/tcp/4001/tls"
	runRules(t, []ruleCase{{name: "1, 1, then the rest", addrs: addrs, want: want}, {
		name:  "a shared path waits a wave",
		addrs: []string{wt4, wt6, t4s, t6, q4, q6},
		want:  []string{q6 + "@0s", q4 + "@250ms", t6 + "@500ms", t4s + "@500ms", wt6 + "@750ms", wt4 + "@750ms"},
	}, {
		name:  "not within the first two waves",
		addrs: []string{q4, "/ip4/1.2.3.4/udp/4001/quic-v1/webtransport"},
		want:  []string{q4 + "@0s", "/ip4/1.2.3.4/udp/4001/quic-v1/webtransport@250ms"},
	}})
}

func TestRuleFloors(t *testing.T) {
	rtc := "/ip4/1.2.3.4/udp/4004/webrtc-direct" + certhash
	runRules(t, []ruleCase{{
		name:  "webrtc-direct of unknown RTT after 1 s",
		addrs: []string{rtc, q4},
		want:  []string{q4 + "@0s", rtc + "@1s"},
	}, {
		name:  "webrtc-direct of known RTT: the gap",
		addrs: []string{rtc, q4},
		k:     Knowledge{RTT: fixedRTT{"1.2.3.4": 40 * time.Millisecond}},
		want:  []string{q4 + "@0s", rtc + "@100ms"},
	}, {
		name:  "webrtc-direct alone: at once",
		addrs: []string{rtc},
		want:  []string{rtc + "@0s"},
	}, {
		name:  "relay after the last direct dial when that is later",
		addrs: []string{q4, "/ip4/1.2.3.5/udp/4001/quic-v1", "/ip4/1.2.3.6/udp/4001/quic-v1", "/ip4/1.2.3.7/udp/4001/quic-v1", rly},
		want: []string{q4 + "@0s", "/ip4/1.2.3.5/udp/4001/quic-v1@250ms", "/ip4/1.2.3.6/udp/4001/quic-v1@500ms",
			"/ip4/1.2.3.7/udp/4001/quic-v1@500ms", rly + "@500ms"},
	}, {
		name:  "relay not before the last direct dial",
		addrs: []string{q4, rly, "/ip4/1.2.3.4/udp/4004/webrtc-direct" + certhash},
		want:  []string{q4 + "@0s", "/ip4/1.2.3.4/udp/4004/webrtc-direct" + certhash + "@1s", rly + "@1s"},
	}})
}

func TestRuleNoDelay(t *testing.T) {
	runRules(t, []ruleCase{{
		name:  "everything at once",
		addrs: []string{t4s, q4, rly},
		k:     Knowledge{NoDelay: true},
		want:  []string{q4 + "@0s", t4s + "@0s", rly + "@0s"},
	}})
}

func TestGap(t *testing.T) {
	cases := []struct {
		name   string
		rounds int
		e      Estimate
		local  bool
		want   time.Duration
	}{
		{"short path: the minimum", 1, Estimate{SRTT: 20 * time.Millisecond, RTTVar: 2 * time.Millisecond}, false, MinGap},
		{"quic 200 ms", 1, Estimate{SRTT: 200 * time.Millisecond, RTTVar: 10 * time.Millisecond}, false, 240 * time.Millisecond},
		{"tcp/tls 100 ms", 2, Estimate{SRTT: 100 * time.Millisecond, RTTVar: 2 * time.Millisecond}, false, 215 * time.Millisecond},
		{"jitter dominates the margin", 1, Estimate{SRTT: 100 * time.Millisecond, RTTVar: 30 * time.Millisecond}, false, 220 * time.Millisecond},
		{"capped", 5, Estimate{SRTT: 600 * time.Millisecond}, false, MaxGap},
		{"lan", 1, Estimate{SRTT: 500 * time.Microsecond}, true, 15500 * time.Microsecond},
		{"lan floor", 1, Estimate{}, true, MinGapLocal + 5*time.Millisecond},
	}
	for _, tc := range cases {
		if g := Gap(tc.rounds, tc.e, tc.local); g != tc.want {
			t.Errorf("%s: Gap = %v, want %v", tc.name, g, tc.want)
		}
	}
	// The gap always exceeds the expected handshake time below the cap:
	// the point of scenario 1.
	for rtt := time.Millisecond; rtt < 400*time.Millisecond; rtt += 7 * time.Millisecond {
		for rounds := 1; rounds <= 5; rounds++ {
			e := Estimate{SRTT: rtt}
			if exp := time.Duration(rounds) * rtt; exp < MaxGap-Margin && Gap(rounds, e, false) <= exp {
				t.Fatalf("Gap(%d, %v) = %v <= expected %v", rounds, rtt, Gap(rounds, e, false), exp)
			}
		}
	}
}

func TestTransportOf(t *testing.T) {
	cases := map[string]Transport{
		q4:  QUIC,
		t4:  TCP,
		t4s: TCPTLS,
		t4n: TCPNoise,
		"/ip4/1.2.3.4/udp/1/quic-v1/webtransport" + certhash:             WebTransport,
		"/ip4/1.2.3.4/udp/1/quic-v1/webtransport":                        WebTransport,
		"/ip4/1.2.3.4/udp/1/webrtc-direct" + certhash:                    WebRTCDirect,
		"/ip4/1.2.3.4/tcp/1/ws":                                          WebSocket,
		"/ip4/1.2.3.4/tcp/1/wss":                                         WebSocketSecure,
		"/ip4/1.2.3.4/tcp/1/tls/ws":                                      WebSocketSecure,
		"/ip4/1.2.3.4/udp/1/quic":                                        TransportOther,
		"/ip6zone/eth0/ip6/fe80::1/udp/1/quic-v1":                        QUIC,
		q4 + "/p2p/12D3KooWGRUVh2HTwJHRjfyuYJfkgjiTu5yWKAVt7zZpSWWJqD7z": QUIC,
		rly: Relay,
	}
	for s, want := range cases {
		if k, ok := TransportOf(mas(t, s)[0]); !ok || k != want {
			t.Errorf("%s: %v %v, want %v", s, k, ok, want)
		}
	}
}

func TestPlanWhy(t *testing.T) {
	r := Plan(mas(t, q6, q4, rly), Knowledge{RTT: fixedRTT{"1.2.3.4": 40 * time.Millisecond, "2001:db8::1": 40 * time.Millisecond}})
	for i, want := range []string{"quic first", "ip4 after ip6 (happy eyeballs)", "relay last"} {
		if !strings.Contains(r.Dials[i].Why, want) {
			t.Errorf("dial %d: why %q lacks %q", i, r.Dials[i].Why, want)
		}
	}
	if !strings.Contains(r.Dials[1].Why, "(test RTT)") {
		t.Errorf("why %q does not name the estimate", r.Dials[1].Why)
	}
	_ = streamtest.PeerID
}
