package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/host/autonat"
	autonatpb "github.com/libp2p/go-libp2p/p2p/host/autonat/pb"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/protocol/autonatv2"
	autonatv2pb "github.com/libp2p/go-libp2p/p2p/protocol/autonatv2/pb"
	"github.com/libp2p/go-msgio/pbio"
	ma "github.com/multiformats/go-multiaddr"
)

// The AutoNAT commands (autonat-server, autonat-client) run go-libp2p's
// AutoNAT v2 and v1 as a user enables them, on the NAT-traversal host of
// the hole-punching commands. README.md says what go-libp2p v0.51 needs
// and how long it takes; keep the two in step.

// checkTransports lets --transport also name both transports
// ("tcp,quic-v1", hpConfig's ""), then checks c.
func checkTransports(c *hpConfig) error {
	var tcp, quic bool
	for _, t := range strings.Split(c.transport, ",") {
		switch strings.TrimSpace(t) {
		case "tcp":
			tcp = true
		case "quic-v1":
			quic = true
		case "":
		default:
			return usagef("--transport %q: want tcp, quic-v1 or tcp,quic-v1", c.transport)
		}
	}
	switch {
	case tcp && !quic:
		c.transport = "tcp"
	case quic && !tcp:
		c.transport = "quic-v1"
	default:
		c.transport = ""
	}
	return c.check()
}

// listeningEvent is the first line of both commands.
type listeningEvent struct {
	Event string   `json:"event"`
	Peer  string   `json:"peer"`
	Addrs []string `json:"addrs"`
}

func emitListening(h host.Host) error {
	addrs, err := h.Network().InterfaceListenAddresses()
	if err != nil {
		return fmt.Errorf("listen addresses: %w", err)
	}
	// The relay transport's listen address is just /p2p-circuit.
	addrs = slices.DeleteFunc(addrs, isCircuit)
	if len(addrs) == 0 {
		return errors.New("no listen addresses")
	}
	emit(listeningEvent{Event: "listening", Peer: h.ID().String(), Addrs: addrStrings(addrs)})
	return nil
}

func addrStrings(as []ma.Multiaddr) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

// waitStop blocks until SIGTERM or SIGINT arrives on sigs or stdin reaches
// EOF, whichever is first. The stdin reader stays blocked after a signal;
// the process exits right after, which ends it.
func waitStop(sigs <-chan os.Signal) {
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	select {
	case s := <-sigs:
		log.Printf("got %v, shutting down", s)
	case <-eof:
		log.Printf("stdin closed, shutting down")
	}
}

// autonatRequestEvent is one AutoNAT request this server served, as read
// off the stream: go-libp2p's own report (autonatv2.MetricsTracer) cannot
// be set through libp2p.New and does not name the peer.
type autonatRequestEvent struct {
	Event   string  `json:"event"`
	MS      float64 `json:"ms"`
	Version int     `json:"version"`
	Peer    string  `json:"peer"`
	// Remote is the client's address on the connection the request came on.
	Remote string   `json:"remote"`
	Addrs  []string `json:"addrs"`
	// DialDataBytes is what a v2 server asked the client to send before it
	// dials (amplification protection); 0 when it did not ask.
	DialDataBytes uint64 `json:"dialDataBytes"`
	// Status is the response status name; "" when the server sent no
	// response (bad request, timeout, reset).
	Status string `json:"status"`
	// DialStatus (v2) is the dial-back's status name; UNUSED unless Status
	// is OK.
	DialStatus string `json:"dialStatus,omitempty"`
	// Dialed is the address the server dialed: v2 addrs[addrIdx] when
	// Status is OK, v1 the address in the response.
	Dialed     string  `json:"dialed"`
	StatusText string  `json:"statusText,omitempty"`
	TookMillis float64 `json:"tookMillis"`
}

// cmdAutoNATServer serves AutoNAT v2 and v1 until SIGTERM, SIGINT or EOF on
// stdin, printing one line per request served.
func cmdAutoNATServer(args []string) int {
	var c hpConfig
	fs := hpFlags("autonat-server", &c)
	if _, err := parseArgs(fs, args, 0); err != nil {
		return fail(err)
	}
	if err := checkTransports(&c); err != nil {
		return fail(err)
	}
	c.applyKnobs()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	opts, err := c.hostOptions()
	if err != nil {
		return fail(err)
	}
	start := time.Now()
	opts = append(opts,
		// v2: the server's stream handler is set whenever v2 is on,
		// whatever the host's reachability; it dials back from a second
		// host with the same transports and a new identity.
		libp2p.EnableAutoNATv2(),
		// v1: the service (with its own dialer) exists only with
		// EnableNATService, and an ambient AutoNAT stops it when it
		// concludes it is private; forced public it always serves.
		libp2p.EnableNATService(),
		libp2p.ForceReachabilityPublic(),
		// v2's dialer shares the host's black-hole counters read-only and
		// refuses public UDP and IPv6 addresses until the host itself has
		// seen 100 such dials (E_DIAL_REFUSED for every QUIC request of a
		// fresh server). Without counters it dials them.
		libp2p.UDPBlackHoleSuccessCounter(nil),
		libp2p.IPv6BlackHoleSuccessCounter(nil),
	)
	h, err := libp2p.New(opts...)
	if err != nil {
		return fail(fmt.Errorf("start host: %w", err))
	}
	for _, t := range []struct {
		pid    protocol.ID
		report tapReport
	}{
		{autonatv2.DialProtocol, requestReporter(start, 2, decodeV2)},
		{autonat.AutoNATProto, requestReporter(start, 1, decodeV1)},
	} {
		if err := tapHandler(h, t.pid, t.report); err != nil {
			closeHost(h)
			return fail(err)
		}
	}
	if err := emitListening(h); err != nil {
		closeHost(h)
		return fail(err)
	}
	log.Printf("autonat-server %s", h.ID())
	waitStop(sigs)
	closeHost(h)
	emit(closedEvent{Event: "closed"})
	return exitOK
}

// requestReporter prints an autonat-request line for each tapped request
// of the given version.
func requestReporter(start time.Time, version int, decode func(in, out []byte, e *autonatRequestEvent)) tapReport {
	return func(s network.Stream, began time.Time, in, out []byte) {
		e := autonatRequestEvent{
			Event: "autonat-request", Version: version, Peer: s.Conn().RemotePeer().String(),
			Remote: s.Conn().RemoteMultiaddr().String(), Addrs: []string{},
			MS: millis(time.Since(start)), TookMillis: millis(time.Since(began)),
		}
		decode(in, out, &e)
		emit(e)
	}
}

// decodeV2 fills e from the bytes of a /libp2p/autonat/2/dial-request
// stream: the DialRequest first in, then DialDataRequest and DialResponse
// out.
func decodeV2(in, out []byte, e *autonatRequestEvent) {
	var req autonatv2pb.Message
	if err := pbio.NewDelimitedReader(bytes.NewReader(in), tapLimit).ReadMsg(&req); err == nil {
		e.Addrs = decodeAddrs(req.GetDialRequest().GetAddrs())
	}
	r := pbio.NewDelimitedReader(bytes.NewReader(out), tapLimit)
	for {
		var m autonatv2pb.Message
		if err := r.ReadMsg(&m); err != nil {
			return
		}
		if dd := m.GetDialDataRequest(); dd != nil {
			e.DialDataBytes = dd.GetNumBytes()
		}
		if resp := m.GetDialResponse(); resp != nil {
			e.Status = resp.GetStatus().String()
			e.DialStatus = resp.GetDialStatus().String()
			if i := int(resp.GetAddrIdx()); resp.GetStatus() == autonatv2pb.DialResponse_OK && i < len(e.Addrs) {
				e.Dialed = e.Addrs[i]
			}
		}
	}
}

// decodeV1 fills e from the bytes of a /libp2p/autonat/1.0.0 stream: one
// DIAL message in, one DIAL_RESPONSE out.
func decodeV1(in, out []byte, e *autonatRequestEvent) {
	var req autonatpb.Message
	if err := pbio.NewDelimitedReader(bytes.NewReader(in), tapLimit).ReadMsg(&req); err == nil {
		e.Addrs = decodeAddrs(req.GetDial().GetPeer().GetAddrs())
	}
	var res autonatpb.Message
	if err := pbio.NewDelimitedReader(bytes.NewReader(out), tapLimit).ReadMsg(&res); err != nil || res.GetDialResponse() == nil {
		return
	}
	dr := res.GetDialResponse()
	e.Status = dr.GetStatus().String()
	e.StatusText = dr.GetStatusText()
	if a, err := ma.NewMultiaddrBytes(dr.GetAddr()); err == nil {
		e.Dialed = a.String()
	}
}

// decodeAddrs renders each address, or its hex if it does not parse.
func decodeAddrs(bs [][]byte) []string {
	out := make([]string, 0, len(bs))
	for _, b := range bs {
		if a, err := ma.NewMultiaddrBytes(b); err == nil {
			out = append(out, a.String())
		} else {
			out = append(out, fmt.Sprintf("invalid:%x", b))
		}
	}
	return out
}

// tapLimit bounds what a tapped stream keeps of each direction: the AutoNAT
// messages that matter are at most 8 KiB (v2) and 4 KiB (v1); v2 dial data
// after them may be cut.
const tapLimit = 16 << 10

// tapReport receives a finished tapped stream and the bytes it carried.
type tapReport func(s network.Stream, began time.Time, in, out []byte)

// tapHandler wraps the handler go-libp2p registered on h for pid so that,
// when it returns, report gets the stream and the first bytes read and
// written. The handler itself runs unchanged, on the same stream.
func tapHandler(h host.Host, pid protocol.ID, report tapReport) error {
	inner, err := muxHandler(h, pid)
	if err != nil {
		return err
	}
	h.SetStreamHandler(pid, func(s network.Stream) {
		began := time.Now()
		t := &tapStream{Stream: s}
		if err := inner(pid, t); err != nil {
			log.Printf("%s from %s: %v", pid, s.Conn().RemotePeer(), err)
		}
		in, out := t.taken()
		report(s, began, in, out)
	})
	return nil
}

// muxHandler returns the function h's protocol muxer runs for pid.
// go-libp2p has no getter, so it negotiates pid over an in-memory stream,
// which hands the handler back without calling it.
func muxHandler(h host.Host, pid protocol.ID) (protocol.HandlerFunc, error) {
	var in bytes.Buffer
	for _, tok := range []string{"/multistream/1.0.0", string(pid)} {
		in.Write(binary.AppendUvarint(nil, uint64(len(tok)+1)))
		in.WriteString(tok + "\n")
	}
	got, handler, err := h.Mux().Negotiate(readOnlyRWC{&in})
	if err != nil || got != pid {
		return nil, fmt.Errorf("find the %s handler go-libp2p registered (protocols %v): %v", pid, h.Mux().Protocols(), err)
	}
	return handler, nil
}

type readOnlyRWC struct{ io.Reader }

func (readOnlyRWC) Write(p []byte) (int, error) { return len(p), nil }
func (readOnlyRWC) Close() error                { return nil }

// tapStream keeps the first tapLimit bytes read from and written to a
// stream.
type tapStream struct {
	network.Stream
	mu      sync.Mutex
	in, out []byte
}

func (t *tapStream) Read(p []byte) (int, error) {
	n, err := t.Stream.Read(p)
	t.keep(&t.in, p[:n])
	return n, err
}

func (t *tapStream) Write(p []byte) (int, error) {
	n, err := t.Stream.Write(p)
	t.keep(&t.out, p[:n])
	return n, err
}

func (t *tapStream) keep(dst *[]byte, p []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if room := tapLimit - len(*dst); room > 0 {
		*dst = append(*dst, p[:min(room, len(p))]...)
	}
}

func (t *tapStream) taken() (in, out []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.in, t.out
}

// Client output lines. MS is milliseconds since just before the host was
// created.
type (
	connectEvent struct {
		Event string  `json:"event"` // "connected" or "connect-failed"
		MS    float64 `json:"ms"`
		Peer  string  `json:"peer"`
		Error string  `json:"error,omitempty"`
	}
	addrsEvent struct {
		Event string   `json:"event"`
		MS    float64  `json:"ms"`
		Addrs []string `json:"addrs"`
	}
	reachableAddrsEvent struct {
		Event       string   `json:"event"`
		MS          float64  `json:"ms"`
		Reachable   []string `json:"reachable"`
		Unreachable []string `json:"unreachable"`
		Unknown     []string `json:"unknown"`
	}
	reachabilityEvent struct {
		Event        string  `json:"event"`
		MS           float64 `json:"ms"`
		Reachability string  `json:"reachability"`
	}
	dialBackEvent struct {
		Event string  `json:"event"`
		MS    float64 `json:"ms"`
		Peer  string  `json:"peer"`
		Local string  `json:"local"`
		// Answered: go-libp2p knew the nonce and wrote DialBackResponse.
		Answered bool `json:"answered"`
	}
)

// cmdAutoNATClient runs a host with the AutoNAT v2 client (and go-libp2p's
// ambient v1 client, which is always on) connected to the given servers,
// and prints every reachability change go-libp2p reports.
func cmdAutoNATClient(args []string) int {
	var c hpConfig
	fs := hpFlags("autonat-client", &c)
	var servers multiFlag
	fs.Var(&servers, "server", "AutoNAT server multiaddr ending in /p2p/<id> to connect to (repeatable)")
	connectTimeout := fs.Duration("connect-timeout", 10*time.Second, "limit for each server connection")
	if _, err := parseArgs(fs, args, 0); err != nil {
		return fail(err)
	}
	if err := checkTransports(&c); err != nil {
		return fail(err)
	}
	if *connectTimeout <= 0 {
		return fail(usagef("--connect-timeout must be > 0"))
	}
	targets, err := serverInfos(servers)
	if err != nil {
		return fail(err)
	}
	c.applyKnobs()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	opts, err := c.hostOptions()
	if err != nil {
		return fail(err)
	}
	start := time.Now()
	since := func() float64 { return millis(time.Since(start)) }
	h, err := libp2p.New(append(opts, libp2p.EnableAutoNATv2())...)
	if err != nil {
		return fail(fmt.Errorf("start host: %w", err))
	}
	// The emitters are stateful: a subscriber gets the last event first,
	// so nothing before Subscribe is lost but superseded states.
	sub, err := h.EventBus().Subscribe([]any{
		new(event.EvtLocalAddressesUpdated),
		new(event.EvtHostReachableAddrsChanged),
		new(event.EvtLocalReachabilityChanged),
	}, eventbus.BufSize(256))
	if err != nil {
		closeHost(h)
		return fail(fmt.Errorf("subscribe: %w", err))
	}
	err = tapHandler(h, autonatv2.DialBackProtocol, func(s network.Stream, _ time.Time, _, out []byte) {
		emit(dialBackEvent{Event: "dial-back", MS: since(), Peer: s.Conn().RemotePeer().String(),
			Local: s.Conn().LocalMultiaddr().String(), Answered: len(out) > 0})
	})
	if err == nil {
		// EnableAutoNATv2 makes every go host a v2 server too: servers
		// that run v2 clients ask it about their own addresses.
		err = tapHandler(h, autonatv2.DialProtocol, requestReporter(start, 2, decodeV2))
	}
	if err == nil {
		err = emitListening(h)
	}
	if err != nil {
		_ = sub.Close()
		closeHost(h)
		return fail(err)
	}
	log.Printf("autonat-client %s", h.ID())

	// Closing the host empties its addresses: not a change to report.
	var stopping atomic.Bool
	printed := make(chan struct{})
	go func() {
		defer close(printed)
		for ev := range sub.Out() {
			if stopping.Load() {
				continue
			}
			switch e := ev.(type) {
			case event.EvtLocalAddressesUpdated:
				addrs := make([]ma.Multiaddr, 0, len(e.Current))
				for _, u := range e.Current {
					addrs = append(addrs, u.Address)
				}
				emit(addrsEvent{Event: "addrs", MS: since(), Addrs: addrStrings(addrs)})
			case event.EvtHostReachableAddrsChanged:
				emit(reachableAddrsEvent{Event: "reachable-addrs", MS: since(), Reachable: addrStrings(e.Reachable),
					Unreachable: addrStrings(e.Unreachable), Unknown: addrStrings(e.Unknown)})
			case event.EvtLocalReachabilityChanged:
				emit(reachabilityEvent{Event: "reachability", MS: since(), Reachability: strings.ToLower(e.Reachability.String())})
			}
		}
	}()

	ctx, cancel := context.WithCancel(context.Background())
	var connecting sync.WaitGroup
	for _, ai := range targets {
		connecting.Go(func() {
			cctx, ccancel := context.WithTimeout(ctx, *connectTimeout)
			defer ccancel()
			if err := h.Connect(cctx, ai); err != nil {
				emit(connectEvent{Event: "connect-failed", MS: since(), Peer: ai.ID.String(), Error: err.Error()})
				return
			}
			emit(connectEvent{Event: "connected", MS: since(), Peer: ai.ID.String()})
		})
	}

	waitStop(sigs)
	stopping.Store(true)
	cancel()
	connecting.Wait()
	closeHost(h)
	_ = sub.Close()
	<-printed
	emit(closedEvent{Event: "closed"})
	return exitOK
}

// serverInfos parses the --server addresses, merging those of one peer.
func serverInfos(servers []string) ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	idx := map[peer.ID]int{}
	for _, s := range servers {
		ai, err := parseTarget(s)
		if err != nil {
			return nil, err
		}
		if i, ok := idx[ai.ID]; ok {
			out[i].Addrs = append(out[i].Addrs, ai.Addrs...)
			continue
		}
		idx[ai.ID] = len(out)
		out = append(out, *ai)
	}
	return out, nil
}
