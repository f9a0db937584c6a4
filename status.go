package tachyon

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/dialrank"
)

// Status is a snapshot of a host for status pages and debugging: who we
// are, where we listen, whom we are connected to and how, and which dials
// failed lately. Durations are in nanoseconds in JSON (the Go encoding of
// time.Duration); the field names say so.
type Status struct {
	Time            time.Time     `json:"time"`
	ID              string        `json:"id"`
	Agent           string        `json:"agent"`
	Protocols       []string      `json:"protocols"`       // the protocols we serve
	ListenAddrs     []string      `json:"listenAddrs"`     // Host.Addrs
	AdvertisedAddrs []string      `json:"advertisedAddrs"` // Host.AdvertisedAddrs
	Peers           []PeerStatus  `json:"peers"`           // by peer ID
	DialFailures    []DialFailure `json:"dialFailures"`    // newest first, at most MaxDialFailures
}

// PeerStatus is one connected peer.
type PeerStatus struct {
	ID string `json:"id"`
	// Agent is the agent version the peer told identify; it comes from the
	// network, so whoever shows it must escape it.
	Agent string `json:"agent,omitempty"`
	// RTT is the smoothed round-trip time to the peer measured by pings
	// and dials (zero: none measured yet).
	RTT   time.Duration `json:"rttNs,omitempty"`
	Conns []ConnStatus  `json:"conns"` // oldest first
}

// ConnStatus is one connection.
type ConnStatus struct {
	ID         uint64 `json:"id"`
	Transport  string `json:"transport"`
	Security   string `json:"security,omitempty"`
	Muxer      string `json:"muxer,omitempty"`
	Direction  string `json:"direction"` // inbound or outbound
	LocalAddr  string `json:"localAddr"`
	RemoteAddr string `json:"remoteAddr"`
	// Opened is when the connection finished its upgrade; Age is how long
	// ago that was when the snapshot was taken.
	Opened  time.Time     `json:"opened"`
	Age     time.Duration `json:"ageNs"`
	Limited bool          `json:"limited,omitempty"`
	// RTT is the smoothed round-trip time measured to the peer at this
	// address (zero: none).
	RTT     time.Duration `json:"rttNs,omitempty"`
	Streams int           `json:"streams"`
	// StreamsByProtocol counts the open streams whose protocol the host
	// knows (negotiated through the host); nil when it keeps no count.
	StreamsByProtocol map[string]int `json:"streamsByProtocol,omitempty"`
}

// DialFailure is a dial of a peer that connected nowhere.
type DialFailure struct {
	Time  time.Time `json:"time"` // when the dial ended
	Peer  string    `json:"peer"`
	Error string    `json:"error"` // one line
	// Addrs has one line per address that did not connect: the address,
	// its transport, and what happened (refused, timeout, skipped and why).
	Addrs []string `json:"addrs,omitempty"`
}

// MaxDialFailures is how many recent dial failures Status keeps.
const MaxDialFailures = 32

// Bounds on what one DialFailure holds, so that the ring's size does not
// depend on the peers: addresses listed, and the length of each line.
const (
	maxFailureAddrs = 12
	maxFailureLine  = 300
)

// Status returns a snapshot of the host. Each connection is read once, so
// a peer and its connections agree, though connections may come and go
// while it runs.
func (h *Host) Status() Status {
	now := time.Now()
	st := Status{
		Time:            now,
		ID:              h.id.String(),
		Agent:           h.cfg.userAgent,
		Protocols:       protocolStrings(h.Protocols()),
		ListenAddrs:     addrStrings(h.Addrs()),
		AdvertisedAddrs: addrStrings(h.AdvertisedAddrs()),
		Peers:           []PeerStatus{},
		DialFailures:    h.dialFails.list(),
	}
	byPeer := map[peer.ID]*PeerStatus{}
	var order []peer.ID
	for _, c := range h.swarm.Conns() {
		p := c.RemotePeer()
		ps := byPeer[p]
		if ps == nil {
			agent, _ := h.ps.Agent(p)
			ps = &PeerStatus{ID: p.String(), Agent: agent}
			byPeer[p] = ps
			order = append(order, p)
		}
		cs := h.connStatus(c, now)
		ps.Conns = append(ps.Conns, cs)
		// The peer's RTT is that of its best measured path.
		if cs.RTT > 0 && (ps.RTT == 0 || cs.RTT < ps.RTT) {
			ps.RTT = cs.RTT
		}
	}
	slices.SortFunc(order, func(a, b peer.ID) int { return strings.Compare(byPeer[a].ID, byPeer[b].ID) })
	for _, p := range order {
		ps := byPeer[p]
		slices.SortFunc(ps.Conns, func(a, b ConnStatus) int {
			return cmp.Or(a.Opened.Compare(b.Opened), cmp.Compare(a.ID, b.ID))
		})
		st.Peers = append(st.Peers, *ps)
	}
	return st
}

// connStatus describes c as of now.
func (h *Host) connStatus(c network.Conn, now time.Time) ConnStatus {
	state := c.ConnState()
	cs := ConnStatus{
		ID:         c.ID(),
		Transport:  state.Transport,
		Security:   string(state.Security),
		Muxer:      string(state.Muxer),
		Direction:  c.Direction().String(),
		LocalAddr:  addrString(c.LocalMultiaddr()),
		RemoteAddr: addrString(c.RemoteMultiaddr()),
		Opened:     c.Opened(),
		Age:        now.Sub(c.Opened()),
		Limited:    state.Limited,
		Streams:    c.NumStreams(),
	}
	if h.rtts != nil {
		// Only a measurement of this peer counts; the store also guesses
		// from the peer's network and the transport, for ranking dials.
		if e, ok := h.rtts.Estimate(c.RemotePeer(), c.RemoteMultiaddr()); ok && (e.Source == "host" || e.Source == "peer") {
			cs.RTT = e.SRTT
		}
	}
	// The connection manager counts the protocols of the streams the host
	// negotiated (when there is one); it is asked, not duplicated.
	if h.cm != nil {
		for id, n := range h.cm.StreamProtocols(c) {
			if cs.StreamsByProtocol == nil {
				cs.StreamsByProtocol = map[string]int{}
			}
			cs.StreamsByProtocol[string(id)] = n
		}
	}
	return cs
}

func addrString(a ma.Multiaddr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

func addrStrings(as []ma.Multiaddr) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

func protocolStrings(ids []protocol.ID) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		out = append(out, string(id))
	}
	return out
}

// dialFailures is a ring of the last MaxDialFailures failed dials, fed by
// the swarm's dial trace hook.
type dialFailures struct {
	mu   sync.Mutex
	ring [MaxDialFailures]DialFailure
	next int // where the next failure goes
	n    int // how many the ring holds
}

// hook returns a dial trace hook that records failures, then calls user
// (the DialTrace option), if set.
func (f *dialFailures) hook(user func(*dialrank.Trace)) func(*dialrank.Trace) {
	return func(tr *dialrank.Trace) {
		f.record(tr)
		if user != nil {
			user(tr)
		}
	}
}

// record keeps tr if the dial connected nowhere. It runs on the dialing
// goroutine: the trace is read here and not kept.
func (f *dialFailures) record(tr *dialrank.Trace) {
	if tr.Winner() != nil {
		return
	}
	df := DialFailure{Time: tr.End, Peer: tr.Peer.String(), Error: "no address connected"}
	if tr.Err != nil {
		df.Error = clip(oneLine(tr.Err.Error()))
	}
	for _, fl := range dialrank.DialErrorReport(tr) {
		if len(df.Addrs) == maxFailureAddrs {
			break
		}
		df.Addrs = append(df.Addrs, clip(oneLine(fl.String())))
	}
	f.mu.Lock()
	f.ring[f.next] = df
	f.next = (f.next + 1) % len(f.ring)
	f.n = min(f.n+1, len(f.ring))
	f.mu.Unlock()
}

// list returns the failures held, newest first.
func (f *dialFailures) list() []DialFailure {
	out := []DialFailure{}
	if f == nil {
		return out
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := 1; i <= f.n; i++ {
		out = append(out, f.ring[(f.next-i+len(f.ring))%len(f.ring)])
	}
	return out
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// clip bounds s to maxFailureLine bytes, on a rune boundary.
func clip(s string) string {
	if len(s) <= maxFailureLine {
		return s
	}
	cut := maxFailureLine
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
