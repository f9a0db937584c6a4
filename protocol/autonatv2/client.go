package autonatv2

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/logs"
	"github.com/tachyon-p2p/tachyon/internal/lp"
	"github.com/tachyon-p2p/tachyon/internal/streamctx"
)

// Client defaults.
const (
	// DefaultMaxDialData is the most dial data a client pays, the most a
	// server of go-libp2p's asks.
	DefaultMaxDialData = 100_000
	// DefaultDialBackGrace is how long Check waits, after an OK, for a
	// dial-back that has not arrived yet.
	DefaultDialBackGrace = time.Second
)

// ClientHost is what the client needs from the host.
type ClientHost interface {
	NewStream(ctx context.Context, p peer.ID, protos ...protocol.ID) (network.Stream, error)
}

// ClientConfig tunes the client; the zero value is usable.
type ClientConfig struct {
	// MaxDialData is the most dial data a Check pays; a server asking
	// more gets the request aborted. Default DefaultMaxDialData.
	MaxDialData uint64
	// Timeout bounds a Check when its context allows longer. Default
	// DefaultStreamTimeout.
	Timeout time.Duration
	// DialBackTimeout bounds the exchange on a dial-back stream. Default
	// DefaultDialBackTimeout.
	DialBackTimeout time.Duration
	// DialBackGrace is how long Check waits for a late dial-back after an
	// OK response (at most what its context leaves). Default
	// DefaultDialBackGrace.
	DialBackGrace time.Duration
	// Log gets debug lines about dial-backs.
	Log *slog.Logger
	// Tracer, if set, is told the result of every Check.
	Tracer Tracer
}

// Verdict is what a Check tells about the address tested.
type Verdict int

const (
	// Unknown: the server's answer proves nothing either way.
	Unknown Verdict = iota
	// Reachable: the server dialed the address and our nonce came back.
	Reachable
	// Unreachable: the server could not connect to the address.
	Unreachable
)

func (v Verdict) String() string {
	switch v {
	case Unknown:
		return "unknown"
	case Reachable:
		return "reachable"
	case Unreachable:
		return "unreachable"
	}
	return fmt.Sprintf("Verdict(%d)", int(v))
}

// Result is the outcome of a Check.
type Result struct {
	Server peer.ID
	// Addr is the address the server tested, at AddrIdx in the request;
	// nil and -1 when it tested none.
	Addr    ma.Multiaddr
	AddrIdx int
	Verdict Verdict
	// DialStatus is what the server said of its dial-back.
	DialStatus DialStatus
	// DialBack is the local address of the connection our nonce came
	// back on, nil if it did not.
	DialBack ma.Multiaddr
	// DialData is how much dial data we paid.
	DialData uint64
	// Reason explains an Unknown verdict.
	Reason string
}

// Errors a Check wraps. Each is wrapped with the server's ID.
var (
	// ErrDialRefused: the server dials none of the addresses (E_DIAL_REFUSED).
	ErrDialRefused = errors.New("autonatv2: the server refused to dial any of the addresses")
	// ErrRejected: the server would not serve the request (E_REQUEST_REJECTED).
	ErrRejected = errors.New("autonatv2: the server rejected the request")
	// ErrInternal: the server failed (E_INTERNAL_ERROR).
	ErrInternal = errors.New("autonatv2: internal error at the server")
	// ErrProtocol: the server broke the protocol.
	ErrProtocol = errors.New("autonatv2: protocol error")
	// ErrTooMuchDialData: the server asked more than MaxDialData.
	ErrTooMuchDialData = errors.New("autonatv2: the server asks for too much dial data")
)

// Client asks servers to test our addresses and answers their dial-backs.
type Client struct {
	h   ClientHost
	cfg ClientConfig
	log *slog.Logger
	// fullChunk is a whole DialDataResponse of MaxDataChunk bytes, length
	// prefix included, encoded once (the spec's suggestion).
	fullChunk []byte

	// ctx ends with Close: it cuts the checks and dial-backs in flight.
	ctx    context.Context
	cancel context.CancelFunc

	mu sync.Mutex
	// pending maps the nonce of each Check in flight to where its first
	// dial-back reports the connection's local address (buffered: 1; nil
	// once used).
	pending map[uint64]chan ma.Multiaddr
}

// NewClient returns a client; the host routes DialBackID streams, from
// any peer, to HandleDialBack.
func NewClient(h ClientHost, cfg ClientConfig) *Client {
	if cfg.MaxDialData == 0 {
		cfg.MaxDialData = DefaultMaxDialData
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultStreamTimeout
	}
	if cfg.DialBackTimeout <= 0 {
		cfg.DialBackTimeout = DefaultDialBackTimeout
	}
	if cfg.DialBackGrace <= 0 {
		cfg.DialBackGrace = DefaultDialBackGrace
	}
	c := &Client{h: h, cfg: cfg, log: logs.Or(cfg.Log), pending: make(map[uint64]chan ma.Multiaddr)}
	c.fullChunk = lp.Append(nil, (&Message{DialDataResponse: &DialDataResponse{Data: make([]byte, MaxDataChunk)}}).Marshal())
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// Close cuts the checks and dial-backs in flight. It does not wait for
// them: they belong to their callers and to the host.
func (c *Client) Close() error {
	c.cancel()
	return nil
}

// Check asks server to dial one of addrs (in priority order: it takes
// the first it is willing to dial) and says what came of it. The error
// wraps ErrDialRefused, ErrRejected, ErrInternal, ErrProtocol or
// ErrTooMuchDialData when the server said or did so, or the stream's
// error; the Result is filled as far as the exchange went.
func (c *Client) Check(ctx context.Context, server peer.ID, addrs []ma.Multiaddr) (Result, error) {
	res, err := c.check(ctx, server, addrs)
	if t := c.cfg.Tracer; t != nil {
		t.ClientCheck(clientResult(res, err))
	}
	return res, err
}

// clientResult is a Check's word for Tracer.ClientCheck.
func clientResult(res Result, err error) string {
	switch {
	case errors.Is(err, ErrDialRefused):
		return "refused"
	case errors.Is(err, ErrRejected):
		return "rejected"
	case err != nil:
		return "error"
	}
	return res.Verdict.String()
}

func (c *Client) check(ctx context.Context, server peer.ID, addrs []ma.Multiaddr) (Result, error) {
	res := Result{Server: server, AddrIdx: -1}
	fail := func(err error) (Result, error) {
		return res, fmt.Errorf("%w (server %s)", err, server)
	}
	if len(addrs) == 0 {
		return fail(errors.New("autonatv2: no address to test"))
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	defer context.AfterFunc(c.ctx, cancel)()

	req := &DialRequest{Addrs: make([][]byte, len(addrs))}
	for i, a := range addrs {
		req.Addrs[i] = a.Bytes()
	}
	nonce, seen, err := c.register()
	if err != nil {
		return fail(err)
	}
	defer c.unregister(nonce)
	req.Nonce = nonce
	msg := &Message{DialRequest: req}
	if n := len(msg.Marshal()); n > MaxMessageSize {
		return fail(fmt.Errorf("autonatv2: %d addresses make a request of %d bytes, limit %d", len(addrs), n, MaxMessageSize))
	}

	st, err := c.h.NewStream(ctx, server, DialRequestID)
	if err != nil {
		return fail(fmt.Errorf("autonatv2: opening a stream: %w", err))
	}
	stop := streamctx.Bind(ctx, st)
	defer stop()
	resp, err := c.exchange(ctx, st, msg, len(addrs), &res)
	if err != nil {
		st.Reset()
		return fail(err)
	}
	st.Close()
	if err := c.judge(ctx, resp, addrs, seen, &res); err != nil {
		return fail(err)
	}
	return res, nil
}

// exchange sends the request, pays dial data if asked, and returns the
// server's DialResponse.
func (c *Client) exchange(ctx context.Context, st network.Stream, msg *Message, n int, res *Result) (*DialResponse, error) {
	if err := Write(st, msg); err != nil {
		return nil, fmt.Errorf("autonatv2: sending the request: %w", streamctx.Err(ctx, err))
	}
	m, err := ReadMessage(st)
	if err != nil {
		return nil, fmt.Errorf("autonatv2: reading the answer: %w", streamctx.Err(ctx, err))
	}
	if ddr := m.DialDataRequest; ddr != nil {
		if int64(ddr.AddrIdx) >= int64(n) {
			return nil, fmt.Errorf("%w: dial data asked for address %d of %d", ErrProtocol, ddr.AddrIdx, n)
		}
		if ddr.NumBytes > c.cfg.MaxDialData {
			return nil, fmt.Errorf("%w: %d bytes asked, limit %d", ErrTooMuchDialData, ddr.NumBytes, c.cfg.MaxDialData)
		}
		if err := c.pay(st, ddr.NumBytes); err != nil {
			return nil, fmt.Errorf("autonatv2: sending %d bytes of dial data: %w", ddr.NumBytes, streamctx.Err(ctx, err))
		}
		res.DialData = ddr.NumBytes
		if m, err = ReadMessage(st); err != nil {
			return nil, fmt.Errorf("autonatv2: reading the response: %w", streamctx.Err(ctx, err))
		}
	}
	if m.DialResponse == nil {
		return nil, fmt.Errorf("%w: got %s, want a DialResponse", ErrProtocol, m.kind())
	}
	return m.DialResponse, nil
}

// pay sends n bytes of dial data in chunks of MaxDataChunk.
func (c *Client) pay(st network.Stream, n uint64) error {
	for ; n >= MaxDataChunk; n -= MaxDataChunk {
		if _, err := st.Write(c.fullChunk); err != nil {
			return err
		}
	}
	if n == 0 {
		return nil
	}
	return Write(st, &Message{DialDataResponse: &DialDataResponse{Data: make([]byte, n)}})
}

// judge turns an answer into a verdict. Only our nonce proves a dial
// happened: an OK without it, or with it on a connection of another kind
// than the address tested, is Unknown, as is any answer that contradicts
// what we saw.
func (c *Client) judge(ctx context.Context, resp *DialResponse, addrs []ma.Multiaddr, seen chan ma.Multiaddr, res *Result) error {
	switch resp.Status {
	case StatusOK:
	case StatusDialRefused:
		return ErrDialRefused
	case StatusRequestRejected:
		return ErrRejected
	case StatusInternalError:
		return ErrInternal
	default:
		return fmt.Errorf("%w: unknown response status %s", ErrProtocol, resp.Status)
	}
	if int64(resp.AddrIdx) >= int64(len(addrs)) {
		return fmt.Errorf("%w: response for address %d of %d", ErrProtocol, resp.AddrIdx, len(addrs))
	}
	res.AddrIdx, res.Addr, res.DialStatus = int(resp.AddrIdx), addrs[resp.AddrIdx], resp.DialStatus
	var local ma.Multiaddr
	select {
	case local = <-seen:
	default:
	}
	switch resp.DialStatus {
	case DialStatusOK:
		if local == nil {
			local = c.waitDialBack(ctx, seen)
		}
		res.DialBack = local
		switch {
		case local == nil:
			res.Reason = "the server reported a successful dial-back, but none with our nonce arrived (server broken or lying)"
		case !consistent(local, res.Addr):
			res.Reason = fmt.Sprintf("our nonce came back on a connection at %s, not of the kind of %s (server broken or lying)", local, res.Addr)
		default:
			res.Verdict = Reachable
		}
	case DialStatusDialError:
		res.DialBack = local
		if local != nil {
			res.Reason = fmt.Sprintf("the server reported a dial error, but our nonce came back on a connection at %s", local)
		} else {
			res.Verdict = Unreachable
		}
	case DialStatusDialBackError:
		res.DialBack = local
		res.Reason = "the server connected but could not complete the dial-back exchange"
		if local != nil {
			res.Reason += fmt.Sprintf(" (our nonce did arrive, on a connection at %s)", local)
		}
	default:
		return fmt.Errorf("%w: dial status %s in an OK response", ErrProtocol, resp.DialStatus)
	}
	return nil
}

// waitDialBack waits a little for a dial-back that may still be on its
// way: the server may answer before our acknowledgement's effects, or the
// two streams may simply race.
func (c *Client) waitDialBack(ctx context.Context, seen chan ma.Multiaddr) ma.Multiaddr {
	grace := c.cfg.DialBackGrace
	if dl, ok := ctx.Deadline(); ok {
		grace = min(grace, time.Until(dl))
	}
	if grace <= 0 {
		return nil
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case local := <-seen:
		return local
	case <-t.C:
	case <-ctx.Done():
	}
	return nil
}

// register picks a fresh nonce for a Check. Nonces are unpredictable, so
// that a server cannot claim a dial-back it did not make.
func (c *Client) register() (uint64, chan ma.Multiaddr, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, nil, fmt.Errorf("autonatv2: drawing a nonce: %w", err)
		}
		n := binary.LittleEndian.Uint64(b[:])
		if _, dup := c.pending[n]; n != 0 && !dup {
			ch := make(chan ma.Multiaddr, 1)
			c.pending[n] = ch
			return n, ch, nil
		}
	}
}

func (c *Client) unregister(nonce uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pending, nonce)
}

// HandleDialBack serves a DialBackID stream, from whatever peer: servers
// dial back from an identity of their own. It acknowledges every
// well-formed DialBack, as the spec asks, and reports the nonces of
// Checks in flight (the first dial-back of each).
func (c *Client) HandleDialBack(st network.Stream) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.DialBackTimeout)
	defer cancel()
	stop := streamctx.Bind(ctx, st)
	defer stop()
	local := st.Conn().LocalMultiaddr()
	d, err := ReadDialBack(st)
	if err != nil {
		c.log.Debug("autonatv2: bad dial-back", "peer", st.RemotePeer(), "local", local, "err", streamctx.Err(ctx, err))
		st.Reset()
		return
	}
	if !c.deliver(d.Nonce, local) {
		c.log.Debug("autonatv2: dial-back with an unknown nonce", "peer", st.RemotePeer(), "local", local)
	}
	if err := Write(st, &DialBackResponse{Status: DialBackStatusOK}); err != nil {
		st.Reset()
		return
	}
	st.Close()
}

// deliver reports a dial-back to the Check that sent nonce, if any.
func (c *Client) deliver(nonce uint64, local ma.Multiaddr) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch, ok := c.pending[nonce]
	if !ok {
		return false
	}
	if ch != nil {
		ch <- local // never blocks: buffered, and used once
		// Later dial-backs with this nonce are acknowledged, not reported:
		// the first stands.
		c.pending[nonce] = nil
	}
	return true
}

// consistent says whether a connection whose local address is local can
// be a dial to tested: the same IP version (a DNS name matches its kind)
// and the same transport stack. Ports and IPs may differ behind a NAT.
func consistent(local, tested ma.Multiaddr) bool {
	lf, lt := shape(local)
	tf, tt := shape(tested)
	if lf == famNone || tf == famNone {
		return false
	}
	if lf != tf && lf != famAny && tf != famAny {
		return false
	}
	return slices.Equal(lt, tt)
}

const (
	famNone = iota
	fam4
	fam6
	famAny // /dns, /dnsaddr: either
)

// shape is a's IP family and the codes of its transport protocols, left
// of what does not tell transports apart (/p2p, /certhash, /sni).
func shape(a ma.Multiaddr) (int, []int) {
	if len(a) == 0 {
		return famNone, nil
	}
	fam := famNone
	switch a[0].Code() {
	case ma.P_IP4, ma.P_DNS4:
		fam = fam4
	case ma.P_IP6, ma.P_DNS6:
		fam = fam6
	case ma.P_DNS, ma.P_DNSADDR:
		fam = famAny
	}
	var codes []int
	for _, c := range a[1:] {
		switch c.Code() {
		case ma.P_P2P, ma.P_CERTHASH, ma.P_SNI:
		case ma.P_WSS:
			codes = append(codes, ma.P_TLS, ma.P_WS)
		default:
			codes = append(codes, c.Code())
		}
	}
	// Our TCP listeners' /tcp/P/tls and /tcp/P/noise name the security
	// protocol; the connection's own address is /tcp/P.
	if len(codes) == 2 && codes[0] == ma.P_TCP && (codes[1] == ma.P_TLS || codes[1] == ma.P_NOISE) {
		codes = codes[:1]
	}
	return fam, codes
}
