package tachyon

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/event"
	"github.com/tachyon-p2p/tachyon/obsaddr"
	"github.com/tachyon-p2p/tachyon/protocol/autonatv1"
	"github.com/tachyon-p2p/tachyon/protocol/autonatv2"
	"github.com/tachyon-p2p/tachyon/reachability"
	"github.com/tachyon-p2p/tachyon/swarm"
)

// AutoNATConfig tunes how the host learns which of its addresses others
// can dial, and how it answers others who ask. The zero value is the
// default.
type AutoNATConfig struct {
	// ObservedAddrs tunes the observed address manager: how many observer
	// groups must agree before an address peers see us at becomes a
	// candidate (default 4), and how observers are grouped. Its
	// ListenAddrs and UntilClosed are set by the host.
	ObservedAddrs obsaddr.Config
	// Reachability tunes the verdicts (default: 2 servers agreeing) and
	// the re-check schedule. Its OnChange is set by the host.
	Reachability reachability.Config
	// Client tunes the AutoNAT v2 client.
	Client autonatv2.ClientConfig
	// Server and ServerV1 tune the AutoNAT v2 and v1 servers; the host's
	// PublicPrefixes are added to theirs.
	Server   autonatv2.ServerConfig
	ServerV1 autonatv1.Config
	// NoServer turns the servers off: the host does not dial others back.
	NoServer bool
}

// AutoNAT sets how reachability is checked and served. By default the host
// checks its public addresses with AutoNAT v2 servers among its peers,
// advertises only those confirmed, and serves AutoNAT v2 and v1 (with
// rate limits, public addresses only).
func AutoNAT(cfg AutoNATConfig) Option {
	return func(c *config) error {
		c.autonat = &cfg
		return nil
	}
}

// NoAutoNAT turns AutoNAT off: no checks (every public listen address is
// advertised, as configured) and no servers.
func NoAutoNAT() Option {
	return func(c *config) error {
		c.noAutoNAT = true
		return nil
	}
}

// autoNAT is the host's AutoNAT state; nil parts are off.
type autoNAT struct {
	obs    *obsaddr.Manager
	reach  *reachability.Manager // nil: reachability forced or AutoNAT off
	client *autonatv2.Client
	server *autonatv2.Server
	v1     *autonatv1.Service
	dialer *dialBacker
	poke   chan struct{}
	// threshold is the observer groups that make an observation count.
	threshold int
	// witnesses are outside IPs seen on sockets we do not listen on.
	witnesses ipWitnesses
	// cover opens connections in families too few observers report.
	cover familyCover
}

// ipWitnesses are the outside IPs peers report on connections made from
// sockets we do not listen on (a QUIC dial from its own socket, a TCP dial
// from an ephemeral port), one per open connection with its observer's
// group. The port means nothing to a listener, but the IP is ours all the
// same: outsideIPs guesses our listeners' outside addresses from it, so a
// node learns that its NAT moved even when no connection comes from a
// listening socket.
type ipWitnesses struct {
	mu     sync.Mutex
	byConn map[uint64]ipWitness
}

type ipWitness struct {
	ip    netip.Addr
	group netip.Prefix
}

// maxWitnesses bounds the table; one entry per open connection.
const maxWitnesses = 1024

func (w *ipWitnesses) add(conn uint64, ip netip.Addr, group netip.Prefix) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.byConn == nil {
		w.byConn = make(map[uint64]ipWitness)
	}
	if _, ok := w.byConn[conn]; !ok && len(w.byConn) >= maxWitnesses {
		return false
	}
	w.byConn[conn] = ipWitness{ip, group}
	return true
}

func (w *ipWitnesses) remove(conn uint64) {
	w.mu.Lock()
	delete(w.byConn, conn)
	w.mu.Unlock()
}

// groups returns, per outside IP, the observer groups that report it.
func (w *ipWitnesses) groups() map[netip.Addr]map[netip.Prefix]bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[netip.Addr]map[netip.Prefix]bool{}
	for _, x := range w.byConn {
		if out[x.ip] == nil {
			out[x.ip] = map[netip.Prefix]bool{}
		}
		out[x.ip][x.group] = true
	}
	return out
}

// ipOf returns the IP a multiaddr starts with.
func ipOf(a ma.Multiaddr) (netip.Addr, bool) {
	x, err := manet.ToIP(a)
	if err != nil {
		return netip.Addr{}, false
	}
	ip, ok := netip.AddrFromSlice(x)
	return ip.Unmap(), ok
}

// witness records the outside IP of an observation that obsaddr could not
// take because it came on a socket we do not listen on.
func (h *Host) witness(c network.Conn, observed ma.Multiaddr) bool {
	ip, ok := ipOf(observed)
	if !ok || scopeOf(observed, h.cfg.publicPrefixes) != scopePublic {
		return false
	}
	oip, ok := ipOf(c.RemoteMultiaddr())
	if !ok {
		return false
	}
	bits := 48
	if oip.Is4() {
		bits = 24
	}
	return h.an.witnesses.add(c.ID(), ip, netip.PrefixFrom(oip, bits).Masked())
}

// startAutoNAT builds the observed address manager, the reachability
// checks and the servers, as configured.
func (h *Host) startAutoNAT() error {
	var cfg AutoNATConfig
	if h.cfg.autonat != nil {
		cfg = *h.cfg.autonat
	}
	an := &autoNAT{poke: make(chan struct{}, 1)}
	ocfg := cfg.ObservedAddrs
	ocfg.UntilClosed = true
	ocfg.ListenAddrs = h.swarm.ListenAddrs
	an.obs = obsaddr.New(ocfg)
	an.threshold = ocfg.ActivationThreshold
	if an.threshold <= 0 {
		an.threshold = obsaddr.DefaultActivationThreshold
	}
	h.an = an
	return h.startAutoNATParts(cfg)
}

// startAddrsLoop starts the address loop, once every part it reads (relay
// reservations, AutoNAT) is built. It runs whatever else is on: observed
// addresses change what the host tells its LAN even without checks.
func (h *Host) startAddrsLoop() {
	h.wg.Add(1)
	go h.addrsLoop()
}

// startAutoNATParts starts the servers and the checks that are on.
func (h *Host) startAutoNATParts(cfg AutoNATConfig) error {
	an := h.an
	if h.cfg.noAutoNAT {
		return nil
	}
	if !cfg.NoServer {
		d, err := newDialBacker(h.cfg)
		if err != nil {
			return err
		}
		an.dialer = d
		scfg := cfg.Server
		scfg.PublicPrefixes = append(slices.Clone(scfg.PublicPrefixes), h.cfg.publicPrefixes...)
		if scfg.Log == nil {
			scfg.Log = h.log.With("component", "autonat-server")
		}
		if scfg.Tracer == nil {
			scfg.Tracer = h.cfg.metrics.AutoNATv2()
		}
		an.server = autonatv2.NewServer(natServerHost{d}, scfg)
		v1cfg := cfg.ServerV1
		v1cfg.PublicPrefixes = append(slices.Clone(v1cfg.PublicPrefixes), h.cfg.publicPrefixes...)
		if v1cfg.Log == nil {
			v1cfg.Log = h.log.With("component", "autonat-v1")
		}
		if v1cfg.Tracer == nil {
			v1cfg.Tracer = h.cfg.metrics.AutoNATv1()
		}
		an.v1 = autonatv1.New(natV1Host{d}, v1cfg)
		if err := h.SetStreamHandler(autonatv2.DialRequestID, an.server.HandleDialRequest); err != nil {
			return err
		}
		if err := h.SetStreamHandler(autonatv1.ID, an.v1.HandleStream); err != nil {
			return err
		}
	}
	if h.cfg.reachability != network.ReachabilityUnknown {
		return nil // told, not measured
	}
	ccfg := cfg.Client
	if ccfg.Log == nil {
		ccfg.Log = h.log.With("component", "autonat-client")
	}
	if ccfg.Tracer == nil {
		ccfg.Tracer = h.cfg.metrics.AutoNATv2()
	}
	an.client = autonatv2.NewClient(h, ccfg)
	if err := h.SetStreamHandler(autonatv2.DialBackID, an.client.HandleDialBack); err != nil {
		return err
	}
	rcfg := cfg.Reachability
	user := rcfg.OnChange
	rcfg.OnChange = func(c reachability.Change) {
		h.log.Info("address reachability", "addr", c.Addr, "from", c.From, "to", c.To, "servers", len(c.Evidence))
		servers := make([]peer.ID, len(c.Evidence))
		for i, r := range c.Evidence {
			servers[i] = r.Server
		}
		h.bus.Emit(event.EvtAddrReachability{Addr: c.Addr, From: c.From.String(), To: c.To.String(), Servers: servers})
		h.pokeAddrs()
		if user != nil {
			user(c)
		}
	}
	if rcfg.Log == nil {
		rcfg.Log = h.log.With("component", "reachability")
	}
	if rcfg.Tracer == nil {
		rcfg.Tracer = h.cfg.metrics.Reachability()
	}
	an.reach = reachability.New(natProber{h}, rcfg)
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		an.reach.Run(h.ctx)
	}()
	return nil
}

// closeAutoNAT ends the exchanges running on handler goroutines.
func (h *Host) closeAutoNAT() {
	if h.an == nil {
		return
	}
	if h.an.server != nil {
		h.an.server.Close()
	}
	if h.an.v1 != nil {
		h.an.v1.Close()
	}
	if h.an.client != nil {
		h.an.client.Close()
	}
}

// pokeAddrs tells the address loop to look again.
func (h *Host) pokeAddrs() {
	if h.an == nil {
		return
	}
	select {
	case h.an.poke <- struct{}{}:
	default:
	}
}

// addrsLoop keeps the reachability candidates, the advertised addresses
// and the relay reservations in step with what was observed and
// confirmed. Changes that come in a burst make one identify push.
func (h *Host) addrsLoop() {
	defer h.wg.Done()
	var timer *time.Timer
	var observed []ma.Multiaddr
	shapes := map[string]bool{}
	for {
		// The reachability checks start with the address loop's first
		// round: it reads the first verdicts. A new outside address (a new
		// NAT mapping, a new outside IP) says the network changed: check
		// everything again now rather than at the next re-check, so an
		// address that stopped working is not advertised for minutes.
		now := h.an.obs.Addrs(h.swarm.ListenAddrs())
		if reach := h.an.reach; reach != nil {
			if outsideChanged(shapes, observed, now) {
				h.log.Info("new observed address: checking reachability again", "observed", now)
				reach.Recheck()
			}
			reach.SetAddrs(h.candidates())
			h.coverFamilies()
			if h.rsv != nil {
				h.rsv.SetActive(len(reach.Addrs(reachability.Public)) == 0)
			}
		}
		observed = now
		h.addrsChanged()
		var timerC <-chan time.Time
		if next := h.an.obs.NextExpiry(); !next.IsZero() {
			timer = time.NewTimer(max(time.Until(next), 0) + time.Millisecond)
			timerC = timer.C
		}
		select {
		case <-h.ctx.Done():
		case <-h.an.poke:
		case <-timerC:
		}
		if timer != nil {
			timer.Stop()
		}
		if h.ctx.Err() != nil {
			return
		}
		// Let a burst (identify of several peers, several verdicts) settle.
		select {
		case <-h.ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// outsideChanged says whether now, the observed addresses, holds one
// that was not observed in the round before, of a shape (family and
// transports) observed before: our outside address for it changed. The
// first address of a shape is learning, not a change: a dual-stack node
// hears of its IPv4 and IPv6 addresses at different times, and re-checking
// everything then would only repeat the probes in flight. seen collects
// the shapes. Missed: a move to a network of the other family only (the
// first IPv6 address after IPv4 alone); the old addresses are then
// re-checked on their timer (RecheckMin, doubling to RecheckMax).
func outsideChanged(seen map[string]bool, before, now []ma.Multiaddr) bool {
	old := make(map[string]bool, len(before))
	for _, b := range before {
		p, _ := pathOf(b)
		old[p] = true
	}
	changed := false
	var shapes []string
	for _, a := range now {
		path, shape := pathOf(a)
		changed = changed || seen[shape] && !old[path]
		shapes = append(shapes, shape)
	}
	for _, s := range shapes {
		seen[s] = true
	}
	return changed
}

// pathOf returns a's components that name a network path (left out: a
// WebTransport listener's rotating certificate hashes, the peer ID), and
// their protocols alone.
func pathOf(a ma.Multiaddr) (path, shape string) {
	var p, s []byte
	for _, c := range a {
		if c.Code() == ma.P_CERTHASH || c.Code() == ma.P_P2P {
			continue
		}
		p = append(p, c.Bytes()...)
		s = binary.AppendUvarint(s, uint64(c.Code()))
	}
	return string(p), string(s)
}

// candidates are the addresses worth checking: our public listen
// addresses and the public addresses peers agree they see us at.
func (h *Host) candidates() []ma.Multiaddr {
	var out []ma.Multiaddr
	add := func(a ma.Multiaddr) {
		if len(a) == 0 || a[0].Code() != ma.P_IP4 && a[0].Code() != ma.P_IP6 {
			return // AutoNAT tests IP addresses only
		}
		if scopeOf(a, h.cfg.publicPrefixes) == scopePublic && !swarm.IsRelayAddr(a) && !slices.ContainsFunc(out, a.Equal) {
			out = append(out, a)
		}
	}
	raw := h.swarm.ListenAddrs()
	listen := h.ifaces.expandListen(raw)
	for _, a := range listen {
		add(a)
	}
	observed := h.an.obs.Addrs(raw)
	moved := h.movedFrom()
	for _, a := range observed {
		// An observation outlives its connection for a while; once the
		// NAT moved, the old address would stay a candidate (and, being
		// confirmed, advertised) until dial-backs to it time out.
		if ip, ok := ipOf(a); ok && moved(ip) {
			continue
		}
		add(a)
	}
	// A node reaches its peers over whichever transport a dial picked, so
	// no socket may have enough observers of its own (two over TCP, two
	// over QUIC). Behind a NAT that keeps ports (most do), the outside IP
	// is that of all sockets: guess each listener's outside address.
	// AutoNAT decides; a wrong guess is found private and never advertised.
	for _, ip := range h.outsideIPs() {
		for _, l := range listen {
			if g := withIP(l, ip); g != nil {
				add(g)
			}
		}
	}
	return out
}

// outsideIPs are the outside IPs that observer groups report for us,
// counted over all our sockets together, leaving out sockets whose NAT
// looks endpoint-dependent (its ports mean nothing). These only make
// candidates, which AutoNAT checks before anything is advertised, so two
// groups are enough (fewer than activation needs): a dual-stack node may
// reach most peers over one family and few over the other. The cost of a
// false IP is a few probes, with dial data paid. An IP that only closed
// connections vouch for gives way to one that an open connection reports,
// in its family: the NAT moved.
func (h *Host) outsideIPs() []ma.Component {
	groups, live := h.observedIPGroups(false)
	var kept []netip.Addr
	liveFamily := map[bool]bool{}
	need := min(h.an.threshold, guessGroups)
	for ip, g := range groups {
		if len(g) >= need {
			kept = append(kept, ip)
			liveFamily[ip.Is4()] = liveFamily[ip.Is4()] || live[ip]
		}
	}
	slices.SortFunc(kept, netip.Addr.Compare)
	var out []ma.Component
	for _, ip := range kept {
		if liveFamily[ip.Is4()] && !live[ip] {
			continue
		}
		code, s := ma.P_IP6, ip.String()
		if ip.Is4() {
			code = ma.P_IP4
		}
		c, err := ma.NewComponent(ma.ProtocolWithCode(code).Name, s)
		if err == nil {
			out = append(out, *c)
		}
	}
	return out
}

// movedFrom returns a test for outside IPs we moved away from: only closed
// connections vouch for it, while an open one reports another IP of its
// family that enough observer groups agree on (the rule outsideIPs applies
// to its guesses).
func (h *Host) movedFrom() func(netip.Addr) bool {
	groups, live := h.observedIPGroups(false)
	need := min(h.an.threshold, guessGroups)
	liveFamily := map[bool]bool{}
	for ip, g := range groups {
		if live[ip] && len(g) >= need {
			liveFamily[ip.Is4()] = true
		}
	}
	return func(ip netip.Addr) bool {
		return !live[ip] && liveFamily[ip.Is4()]
	}
}

// observedIPGroups returns, per outside IP that peers report for us, the
// observer groups that report it, and whether an open connection (rather
// than only closed ones) vouches for it. Sockets whose NAT looks
// endpoint-dependent (their ports mean nothing) count only with
// dependent.
func (h *Host) observedIPGroups(dependent bool) (groups map[netip.Addr]map[netip.Prefix]bool, live map[netip.Addr]bool) {
	groups = h.an.witnesses.groups()
	live = map[netip.Addr]bool{}
	for ip := range groups {
		live[ip] = true // witnesses are open connections
	}
	for _, ls := range h.an.obs.Status() {
		if ls.EndpointDependent && !dependent {
			continue
		}
		for _, e := range ls.Endpoints {
			x, err := manet.ToIP(e.Addr)
			if err != nil {
				continue
			}
			ip, ok := netip.AddrFromSlice(x)
			if !ok {
				continue
			}
			ip = ip.Unmap()
			if groups[ip] == nil {
				groups[ip] = map[netip.Prefix]bool{}
			}
			for _, o := range e.Observers {
				groups[ip][o.Group] = true
				live[ip] = live[ip] || o.Expires.IsZero()
			}
		}
	}
	return groups, live
}

// guessGroups is how many observer groups make an outside IP a candidate
// on every listener (see outsideIPs).
const guessGroups = 2

// withIP is a with its IP replaced by ip's, when both are IPs of one
// family; else nil.
func withIP(a ma.Multiaddr, ip ma.Component) ma.Multiaddr {
	if len(a) < 2 || a[0].Code() != ip.Code() || (ip.Code() != ma.P_IP4 && ip.Code() != ma.P_IP6) {
		return nil
	}
	return append(ma.Multiaddr{ip}, a[1:]...)
}

// recordObserved feeds the observed address manager (and the simple list
// hole punching uses) with what the peer of c says it sees us at.
func (h *Host) recordObserved(c network.Conn, observed ma.Multiaddr) {
	if len(observed) == 0 || c.IsClosed() {
		return
	}
	if sc, ok := c.(*swarm.Conn); ok {
		h.observe(sc, observed)
	}
	if h.an == nil {
		return
	}
	err := h.an.obs.Record(obsaddr.Observation{
		Local: c.LocalMultiaddr(), Observed: observed, Observer: c.RemoteMultiaddr(),
		Peer: c.RemotePeer(), ConnID: c.ID(), Dir: c.Direction(),
	})
	if err == nil || errors.Is(err, obsaddr.ErrNotListening) && !c.ConnState().Limited && h.witness(c, observed) {
		h.pokeAddrs()
	}
}

// connClosedAutoNAT drops what a closed connection observed and tells the
// checks a server may have gone.
func (h *Host) connClosedAutoNAT(c *swarm.Conn) {
	if h.an == nil {
		return
	}
	h.an.obs.ConnClosed(c.ID())
	h.an.witnesses.remove(c.ID())
	h.pokeAddrs()
	if h.an.reach != nil {
		h.an.reach.ServersChanged()
	}
}

// peerIdentifiedAutoNAT tells the checks about a peer that may be a
// server.
func (h *Host) peerIdentifiedAutoNAT(p peer.ID) {
	if h.an == nil || h.an.reach == nil {
		return
	}
	if _, ok := h.ps.SupportsProtocol(p, autonatv2.DialRequestID); ok {
		h.an.reach.ServersChanged()
	}
}

// confirmedFunc says which public addresses are confirmed; nil: all are
// (reachability is not checked, or forced public).
func (h *Host) confirmedFunc() func(ma.Multiaddr) bool {
	switch {
	case h.cfg.reachability == network.ReachabilityPrivate:
		return func(ma.Multiaddr) bool { return false }
	case h.an == nil || h.an.reach == nil:
		return nil
	}
	public := h.an.reach.Addrs(reachability.Public)
	return func(a ma.Multiaddr) bool { return slices.ContainsFunc(public, a.Equal) }
}

// ReachabilityTable returns what the host knows about each of its
// candidate addresses: the verdict, the servers' answers behind it, and
// when it is checked next. Empty when reachability is not checked.
func (h *Host) ReachabilityTable() []reachability.AddrState {
	if h.an == nil || h.an.reach == nil {
		return nil
	}
	return h.an.reach.Table()
}

// natProber runs the reachability checks with the AutoNAT v2 client.
type natProber struct{ h *Host }

// Servers are the connected peers that serve AutoNAT v2 over a direct
// connection.
func (p natProber) Servers() []peer.ID {
	var out []peer.ID
	for _, q := range p.h.swarm.Peers() {
		if _, ok := p.h.ps.SupportsProtocol(q, autonatv2.DialRequestID); !ok {
			continue
		}
		if slices.ContainsFunc(p.h.swarm.ConnsToPeer(q), func(c *swarm.Conn) bool { return !c.Limited() && !c.IsClosed() }) {
			out = append(out, q)
		}
	}
	return out
}

// errNoVerdict is an answer that says nothing about the address.
var errNoVerdict = errors.New("no verdict")

func (p natProber) Probe(ctx context.Context, server peer.ID, addr ma.Multiaddr) (reachability.Outcome, error) {
	res, err := p.h.an.client.Check(ctx, server, []ma.Multiaddr{addr})
	if errors.Is(err, autonatv2.ErrRejected) || errors.Is(err, autonatv2.ErrInternal) {
		return reachability.Busy, err
	}
	if err != nil {
		return reachability.Inconclusive, err
	}
	switch res.Verdict {
	case autonatv2.Reachable:
		return reachability.Reached, nil
	case autonatv2.Unreachable:
		return reachability.Unreached, nil
	}
	return reachability.Inconclusive, errors.Join(errNoVerdict, errors.New(res.Reason))
}

// natServerHost is the AutoNAT v2 server's view: the dial-back dialer.
type natServerHost struct{ d *dialBacker }

func (s natServerHost) CanDial(a ma.Multiaddr) bool { return s.d.CanDial(a) }
func (s natServerHost) DialBack(ctx context.Context, p peer.ID, a ma.Multiaddr) (network.Stream, error) {
	return s.d.DialBack(ctx, p, a, autonatv2.DialBackID)
}

// natV1Host is the AutoNAT v1 server's view: the dial-back dialer.
type natV1Host struct{ d *dialBacker }

func (s natV1Host) CanDial(a ma.Multiaddr) bool { return s.d.CanDial(a) }
func (s natV1Host) DialBack(ctx context.Context, p peer.ID, addrs []ma.Multiaddr) (ma.Multiaddr, error) {
	return s.d.DialBackAny(ctx, p, addrs)
}
