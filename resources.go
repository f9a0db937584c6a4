package tachyon

import (
	"net/netip"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/limits"
)

// Limits sets the resource limits (see package limits: zero fields take
// the defaults, scaled to the machine; negative ones mean no limit). A
// host has limits.Default() without this option. Refusals are errors and
// log lines that name the limit and the Config field that raises it.
func Limits(cfg limits.Config) Option {
	return func(c *config) error {
		c.limits = &cfg
		c.noLimits = false
		return nil
	}
}

// NoLimits turns every resource limit off. Only for hosts that talk to
// peers they trust: without limits, one peer can exhaust the memory and
// file descriptors of the node.
func NoLimits() Option {
	return func(c *config) error {
		c.limits = nil
		c.noLimits = true
		return nil
	}
}

// ipGate is a connection gater that can judge an address alone, before a
// handshake is spent on it (gater.List is one).
type ipGate interface {
	AllowsIP(netip.Addr) bool
}

// resources is the host's resource manager: the limits, behind the
// gater's address check for inbound handshakes. Either may be missing.
type resources struct {
	lim  *limits.Manager
	gate ipGate
}

// errGated is what a refused inbound handshake reports when the
// connection gater refused its address.
type errGated struct{ addr netip.Addr }

func (e errGated) Error() string { return "connection gater refuses " + e.addr.String() }

func (r resources) BeginHandshake(remote netip.Addr) (func(), error) {
	if r.gate != nil && !r.gate.AllowsIP(remote) {
		return nil, errGated{remote}
	}
	if r.lim == nil {
		return func() {}, nil
	}
	return r.lim.BeginHandshake(remote)
}

func (r resources) OpenConn(dir network.Direction, p peer.ID, remote ma.Multiaddr) (network.ConnScope, error) {
	if r.lim == nil {
		return noScope{}, nil
	}
	return r.lim.OpenConn(dir, p, remote)
}

// noScope is the scope of a connection when only the gater is on.
type noScope struct{}

func (noScope) ReserveMemory(int) error                      { return nil }
func (noScope) ReserveMemoryLeaving(int, int) error          { return nil }
func (noScope) ReleaseMemory(int)                            {}
func (noScope) OpenStream(network.Direction) (func(), error) { return func() {}, nil }
func (noScope) Close()                                       {}

func (r resources) OpenProtocolStream(dir network.Direction, p peer.ID, proto protocol.ID) (func(), error) {
	if r.lim == nil {
		return func() {}, nil
	}
	return r.lim.OpenProtocolStream(dir, p, proto)
}

// newResources builds the host's resource manager from the options; nil
// when there is neither a limit nor an address gate.
func newResources(cfg config) (network.ResourceManager, *limits.Manager, error) {
	var r resources
	if !cfg.noLimits {
		lc := limits.Config{}
		if cfg.limits != nil {
			lc = *cfg.limits
		}
		if lc.Tracer == nil {
			lc.Tracer = cfg.metrics.Limits()
		}
		m, err := limits.New(lc, cfg.log.With("component", "limits"))
		if err != nil {
			return nil, nil, err
		}
		r.lim = m
	}
	r.gate, _ = cfg.gater.(ipGate)
	if r.lim == nil && r.gate == nil {
		return nil, nil, nil
	}
	return r, r.lim, nil
}
