package relayed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/tachyon-p2p/tachyon/core/circuit"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/logs"
)

// Reservation is a slot held on a relay: while it lasts, the relay accepts
// circuits to us.
type Reservation struct {
	Relay  peer.ID
	Expire time.Time
	// Addrs are the relay's addresses, each ending in /p2p/<relay>: ours
	// are these with /p2p-circuit appended.
	Addrs []ma.Multiaddr
	// Limit is what the relay allows per circuit; nil: no limit.
	Limit *circuit.Limit
	// Voucher is the relay's signed statement, when it sent one.
	Voucher *circuit.Voucher
}

// CircuitAddrs are our addresses through this reservation.
func (r *Reservation) CircuitAddrs() []ma.Multiaddr {
	out := make([]ma.Multiaddr, 0, len(r.Addrs))
	for _, a := range r.Addrs {
		out = append(out, append(slices.Clone(a), circuitComponent()))
	}
	return out
}

// Reserve asks relay for a reservation for local, over a direct connection
// (made if needed). The relay keeps it while that connection lives and
// until it expires; Reserve again before then to refresh it.
func Reserve(ctx context.Context, h Host, local peer.ID, relay peer.AddrInfo) (*Reservation, error) {
	if err := h.Connect(ctx, relay); err != nil {
		return nil, fmt.Errorf("relayed: connecting to relay %s: %w", relay.ID, err)
	}
	s, err := h.NewStream(ctx, relay.ID, circuit.HopID)
	if err != nil {
		return nil, fmt.Errorf("relayed: opening a hop stream to relay %s: %w", relay.ID, err)
	}
	defer s.Close()
	dl := time.Now().Add(StreamTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	s.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { s.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	fail := func(what string, err error) (*Reservation, error) {
		s.Reset()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("relayed: reserving on relay %s: %s: %w", relay.ID, what, err)
	}
	if err := circuit.WriteHop(s, &circuit.HopMessage{Type: circuit.HopReserve}); err != nil {
		return fail("sending RESERVE", err)
	}
	m, err := circuit.ReadHop(s)
	if err != nil {
		return fail("reading the answer", err)
	}
	if m.Type != circuit.HopStatus {
		return fail("answer", fmt.Errorf("%w: %s instead of STATUS", circuit.ErrMalformed, m.Type))
	}
	if m.Status != circuit.StatusOK {
		return fail("refused", &circuit.StatusError{Status: m.Status, From: "relay"})
	}
	if m.Reservation == nil {
		return fail("answer", fmt.Errorf("%w: STATUS OK without a reservation", circuit.ErrMalformed))
	}
	expire := time.Unix(int64(min(m.Reservation.Expire, 1<<62)), 0)
	if !expire.After(time.Now()) {
		return fail("answer", fmt.Errorf("%w: the reservation expired at %s", circuit.ErrMalformed, expire.UTC().Format(time.RFC3339)))
	}
	r := &Reservation{Relay: relay.ID, Expire: expire, Limit: m.Limit}
	if len(m.Reservation.Voucher) > 0 {
		v, err := circuit.OpenVoucher(m.Reservation.Voucher)
		if err != nil {
			return fail("voucher", err)
		}
		if v.Relay != relay.ID || v.Peer != local {
			return fail("voucher", fmt.Errorf("%w: voucher is for peer %s on relay %s", circuit.ErrMalformed, v.Peer, v.Relay))
		}
		r.Voucher = v
	}
	r.Addrs = relayAddrs(m.Reservation.Addrs, s.Conn().RemoteMultiaddr(), relay.ID)
	return r, nil
}

// relayAddrs picks the relay addresses to advertise: those the relay gave
// that can work for our peers (not loopback, unless we reach the relay over
// loopback ourselves; never relayed ones), each with /p2p/<relay>; the
// address we reached the relay at when it gave none that fit.
func relayAddrs(given []ma.Multiaddr, connAddr ma.Multiaddr, relay peer.ID) []ma.Multiaddr {
	loopback := len(connAddr) > 0 && manet.IsIPLoopback(connAddr)
	pc, err := relay.Component()
	if err != nil {
		return nil
	}
	var out []ma.Multiaddr
	add := func(a ma.Multiaddr) {
		tpt, id := peer.SplitAddr(a)
		if id != "" && id != relay || len(tpt) == 0 {
			return
		}
		if slices.ContainsFunc(tpt, func(c ma.Component) bool { return c.Code() == ma.P_CIRCUIT }) {
			return
		}
		if manet.IsIPLoopback(tpt) && !loopback || manet.IsIPUnspecified(tpt) {
			return
		}
		full := append(slices.Clone(tpt), *pc)
		if !slices.ContainsFunc(out, full.Equal) {
			out = append(out, full)
		}
	}
	for _, a := range given {
		add(a)
	}
	if len(out) == 0 && len(connAddr) > 0 {
		add(connAddr)
	}
	return out
}

// ReservationsConfig tunes Reservations.
type ReservationsConfig struct {
	// Relays to reserve on, in preference order.
	Relays []peer.AddrInfo
	// Want is how many reservations to hold at once. Default 2.
	Want int
	// MinBackoff and MaxBackoff bound the wait before retrying a relay
	// that refused or failed. Defaults 5 s and 5 min.
	MinBackoff, MaxBackoff time.Duration
	// OnChange is called, from the Run goroutine, whenever the set of
	// reservations (and so CircuitAddrs) changed.
	OnChange func()
	Log      *slog.Logger
	// Tracer, if set, is told about reservation requests and the count
	// held.
	Tracer Tracer
}

// Tracer is told, from the Run goroutine, about every reservation request
// as it ends (status: the relay's answer; StatusUnused when none came) and
// about the number of reservations held when it changes. It must not
// block.
type Tracer interface {
	ReservationRequest(status circuit.Status)
	Reservations(n int)
}

// Reservations keeps up to Want reservations on relays of a static list,
// refreshes each before it expires, and moves on to the next relay when one
// goes away or refuses.
type Reservations struct {
	h     Host
	local peer.ID
	cfg   ReservationsConfig
	log   *slog.Logger
	wake  chan struct{}

	mu      sync.Mutex
	held    map[peer.ID]*Reservation
	retryAt map[peer.ID]time.Time
	backoff map[peer.ID]time.Duration
	active  bool
	dirty   bool // held changed outside step: OnChange is due
}

// NewReservations returns a keeper; nothing happens until Run, and only
// while active (SetActive).
func NewReservations(h Host, local peer.ID, cfg ReservationsConfig) *Reservations {
	if cfg.Want <= 0 {
		cfg.Want = 2
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 5 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Minute
	}
	return &Reservations{
		h: h, local: local, cfg: cfg, log: logs.Or(cfg.Log),
		wake:    make(chan struct{}, 1),
		held:    make(map[peer.ID]*Reservation),
		retryAt: make(map[peer.ID]time.Time),
		backoff: make(map[peer.ID]time.Duration),
		active:  true,
	}
}

// SetActive starts (true) or stops (false) keeping reservations. Stopping
// forgets the reservations held: a publicly reachable node advertises its
// own addresses, not relays'.
func (r *Reservations) SetActive(on bool) {
	r.mu.Lock()
	changed := r.active != on
	r.active = on
	if !on && len(r.held) > 0 {
		clear(r.held)
		r.dirty = true
	}
	r.mu.Unlock()
	if changed {
		r.poke()
	}
}

// PeerDisconnected tells the keeper that p's last connection closed: a
// reservation on p is gone with it (the relay drops it), so another is made.
func (r *Reservations) PeerDisconnected(p peer.ID) {
	r.mu.Lock()
	_, had := r.held[p]
	delete(r.held, p)
	r.dirty = r.dirty || had
	r.mu.Unlock()
	if had {
		r.log.Info("relay reservation lost: connection to the relay closed", "relay", p)
		r.poke()
	}
}

func (r *Reservations) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Held lists the reservations held now.
func (r *Reservations) Held() []Reservation {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Reservation, 0, len(r.held))
	for _, rv := range r.held {
		out = append(out, *rv)
	}
	slices.SortFunc(out, func(a, b Reservation) int { return compareIDs(a.Relay, b.Relay) })
	return out
}

func compareIDs(a, b peer.ID) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// CircuitAddrs are our addresses through the reservations held.
func (r *Reservations) CircuitAddrs() []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, rv := range r.Held() {
		out = append(out, rv.CircuitAddrs()...)
	}
	return out
}

// refreshAt is when a reservation is renewed: a quarter of its remaining
// time before it expires, at most 5 minutes before, so a relay that is slow
// to answer or briefly away does not let it lapse.
func refreshAt(rv *Reservation, got time.Time) time.Time {
	margin := min(rv.Expire.Sub(got)/4, 5*time.Minute)
	return rv.Expire.Add(-margin)
}

// Run keeps the reservations until ctx ends. The caller owns the goroutine.
func (r *Reservations) Run(ctx context.Context) {
	refresh := make(map[peer.ID]time.Time)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-r.wake:
		}
		next := r.step(ctx, refresh)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(time.Until(next))
	}
}

// step makes or renews the reservations due and returns when to look again.
func (r *Reservations) step(ctx context.Context, refresh map[peer.ID]time.Time) time.Time {
	now := time.Now()
	next := now.Add(time.Minute)
	r.mu.Lock()
	active := r.active
	changed := r.dirty
	r.dirty = false
	for p := range refresh {
		if _, ok := r.held[p]; !ok {
			delete(refresh, p)
		}
	}
	r.mu.Unlock()
	if !active {
		if changed {
			r.changed()
		}
		return next
	}
	for _, relay := range r.cfg.Relays {
		if ctx.Err() != nil {
			return next
		}
		r.mu.Lock()
		_, held := r.held[relay.ID]
		count := len(r.held)
		retry := r.retryAt[relay.ID]
		r.mu.Unlock()
		due := false
		switch {
		case held:
			due = !now.Before(refresh[relay.ID])
		case count < r.cfg.Want:
			due = !now.Before(retry)
		}
		if !due {
			if held && refresh[relay.ID].Before(next) {
				next = refresh[relay.ID]
			}
			if !held && count < r.cfg.Want && retry.Before(next) {
				next = retry
			}
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, StreamTimeout)
		rv, err := Reserve(rctx, r.h, r.local, relay)
		cancel()
		if t := r.cfg.Tracer; t != nil {
			t.ReservationRequest(statusOf(err))
		}
		now = time.Now()
		r.mu.Lock()
		if err != nil {
			b := r.backoff[relay.ID]
			b = min(max(2*b, r.cfg.MinBackoff), r.cfg.MaxBackoff)
			b = b/2 + rand.N(b/2+1) // jitter: relays restarting are not hit in step
			r.backoff[relay.ID] = b
			r.retryAt[relay.ID] = now.Add(b)
			if _, ok := r.held[relay.ID]; ok {
				// A failed refresh keeps the reservation until it expires.
				if old := r.held[relay.ID]; !now.Before(old.Expire) {
					delete(r.held, relay.ID)
					changed = true
				} else {
					refresh[relay.ID] = now.Add(b)
				}
			}
			r.mu.Unlock()
			r.log.Warn("relay reservation failed", "relay", relay.ID, "retry_in", b.Round(time.Second), "err", err)
			if t := now.Add(b); t.Before(next) {
				next = t
			}
			continue
		}
		_, had := r.held[relay.ID]
		if !r.active {
			r.mu.Unlock()
			break
		}
		r.held[relay.ID] = rv
		delete(r.backoff, relay.ID)
		delete(r.retryAt, relay.ID)
		r.mu.Unlock()
		refresh[relay.ID] = refreshAt(rv, now)
		if refresh[relay.ID].Before(next) {
			next = refresh[relay.ID]
		}
		if !had {
			changed = true
			r.log.Info("relay reservation made", "relay", relay.ID, "expires", rv.Expire.UTC().Format(time.RFC3339), "addrs", rv.CircuitAddrs())
		} else {
			r.log.Debug("relay reservation refreshed", "relay", relay.ID, "expires", rv.Expire.UTC().Format(time.RFC3339))
		}
	}
	if changed {
		r.changed()
	}
	return next
}

// changed tells the tracer and OnChange that the reservations held
// changed.
func (r *Reservations) changed() {
	if t := r.cfg.Tracer; t != nil {
		r.mu.Lock()
		n := len(r.held)
		r.mu.Unlock()
		t.Reservations(n)
	}
	if r.cfg.OnChange != nil {
		r.cfg.OnChange()
	}
}

// statusOf is the relay's answer that Reserve's err reports: StatusOK for
// no error, StatusUnused when the relay did not answer.
func statusOf(err error) circuit.Status {
	var se *circuit.StatusError
	switch {
	case err == nil:
		return circuit.StatusOK
	case errors.As(err, &se):
		return se.Status
	}
	return circuit.StatusUnused
}
