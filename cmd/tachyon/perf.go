package main

// tachyon perf follows the libp2p test-plans perf contract (test-plans
// perf/README.md), so that the binary can stand in for a "perf" image:
//
//	tachyon perf --run-server --server-address 0.0.0.0:4001
//	tachyon perf --server-address 10.0.0.1:4001 --transport tcp --upload-bytes N --download-bytes M
//
// The server's identity is the Ed25519 key of the all-zero seed, so the
// client knows the peer ID without being told. The client prints one JSON
// object per line on stdout: an "intermediary" object every second (the
// time and bytes of that one-second interval, as go-libp2p's perf prints
// them) and a "final" one (the whole run, connection setup included).
//
// WebTransport and WebRTC-direct addresses carry the certificate hashes of
// the server, which host:port cannot: for those transports pass the
// server's full multiaddr, as the server prints it, as --server-address
// (the newer test-plans harness passes full multiaddrs this way too). A
// multiaddr names its transport, so --transport is needed only with
// HOST:PORT; a multiaddr with /p2p/ may name any peer, such as a
// "tachyon node --perf". A HOST that is a name (localhost) is resolved
// with the system resolver.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/protocol/perf"
)

// perfServerID is the peer ID of the perf server identity, the Ed25519 key
// of the all-zero seed.
const perfServerID = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"

// perfServerKey is the perf server identity.
func perfServerKey() crypto.PrivKey {
	k, err := crypto.Ed25519KeyFromSeed(make([]byte, 32))
	if err != nil {
		panic(err) // the seed has the right length
	}
	return k
}

// perfTransports are the --transport values, in the test-plans spelling.
var perfTransports = []string{"tcp", "quic-v1", "webtransport", "webrtc-direct"}

func cmdPerf(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("perf", flag.ContinueOnError)
	server := fl.Bool("run-server", false, "run a perf server until SIGINT/SIGTERM")
	addr := fl.String("server-address", "", "`ADDR` of the server: its HOST:PORT or full multiaddr (client), or the HOST:PORT to listen on (server, default 0.0.0.0:4001)")
	transport := fl.String("transport", "tcp", "`NAME` of the transport for a HOST:PORT --server-address: tcp or quic-v1 (webtransport and webrtc-direct need the full multiaddr); a multiaddr names its own")
	upload := fl.Uint64("upload-bytes", 0, "`N` bytes to upload")
	download := fl.Uint64("download-bytes", 0, "`N` bytes to download")
	security := fl.String("security", "", "noise or tls (default: offer both, TLS first)")
	cpuProfile := fl.String("cpu-profile", "", "write a CPU profile of this process to `FILE` (go tool pprof reads it)")
	logLvl := addLogLevel(fl)
	pos, err := parseInterspersed(fl, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if *addr == "" && *server {
		*addr = "0.0.0.0:4001" // the contract's port
	}
	if *addr == "" {
		return usagef("--server-address is required")
	}
	transportSet := false
	fl.Visit(func(f *flag.Flag) { transportSet = transportSet || f.Name == "transport" })
	if !transportSet {
		*transport = "" // from the address; tcp for HOST:PORT
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	opts := []tachyon.Option{logLvl.option(stderr)}
	if sec, err := securityOption(*security); err != nil {
		return err
	} else if sec != nil {
		opts = append(opts, sec)
	}
	if *server {
		return perfServer(ctx, *addr, opts, stdout, stderr)
	}
	target, err := perfTarget(*addr, *transport)
	if err != nil {
		return usageError{error: err}
	}
	dt := dialTarget{shown: *addr, info: target, perfHostPort: !strings.HasPrefix(*addr, "/")}
	if dt.perfHostPort {
		dt.shown = fmt.Sprintf("%s (%s)", *addr, target.Addrs[0])
	}
	return perfClient(ctx, dt, *upload, *download, opts, stdout, stderr)
}

// perfListenAddrs turns HOST:PORT into the server's listen addresses: TCP,
// which must work, and the UDP transports, each used if the host supports
// it.
func perfListenAddrs(hostPort string) (tcp ma.Multiaddr, udp []ma.Multiaddr, err error) {
	ip, port, err := splitHostPort(hostPort)
	if err != nil {
		return nil, nil, err
	}
	tcp, err = ma.NewMultiaddr(ip + "/tcp/" + port)
	if err != nil {
		return nil, nil, err
	}
	// QUIC, WebTransport and WebRTC-direct share the UDP socket where the
	// OS allows; elsewhere WebRTC-direct takes any free port.
	rtcPort := port
	if !tachyon.SharedUDPPort {
		rtcPort = "0"
	}
	for _, s := range []string{"/udp/" + port + "/quic-v1", "/udp/" + port + "/quic-v1/webtransport", "/udp/" + rtcPort + "/webrtc-direct"} {
		a, err := ma.NewMultiaddr(ip + s)
		if err != nil {
			return nil, nil, err
		}
		udp = append(udp, a)
	}
	return tcp, udp, nil
}

func perfServer(ctx context.Context, hostPort string, opts []tachyon.Option, stdout, stderr io.Writer) error {
	tcp, udp, err := perfListenAddrs(hostPort)
	if err != nil {
		return usageError{error: err}
	}
	if tcp, err = resolveListen(ctx, tcp); err != nil {
		return err
	}
	for i := range udp {
		if udp[i], err = resolveListen(ctx, udp[i]); err != nil {
			return err
		}
	}
	opts = append(opts, tachyon.Identity(perfServerKey()), tachyon.ListenAddrs(tcp))
	h, err := tachyon.New(opts...)
	if err != nil {
		return listenHint(err)
	}
	defer h.Close()
	if err := h.SetStreamHandler(perf.ID, perf.Handle); err != nil {
		return err
	}
	// The UDP transports join when the host can listen on them; until
	// then the swarm refuses the address and the server stays on TCP.
	for _, a := range udp {
		if err := h.Network().Listen(a); err != nil {
			fmt.Fprintf(stderr, "perf: not listening on %s: %v\n", a, err)
		}
	}
	for _, a := range h.FullAddrs() {
		fmt.Fprintln(stdout, a)
	}
	<-ctx.Done()
	fmt.Fprintln(stderr, "shutting down")
	return nil
}

// perfTarget is the server address the client dials: HOST:PORT made into
// the multiaddr of the transport ("" is tcp), or a full multiaddr, which
// names its transport (transport, if not "", must match). Without /p2p/
// the server is assumed to have the perf identity.
func perfTarget(addr, transport string) (peer.AddrInfo, error) {
	ai := peer.AddrInfo{}
	var a ma.Multiaddr
	if strings.HasPrefix(addr, "/") {
		m, err := ma.NewMultiaddr(addr)
		if err != nil {
			return ai, fmt.Errorf("--server-address: %w", err)
		}
		if got := transportOf(m); transport != "" && got != transport {
			return ai, fmt.Errorf("--server-address %s is a %s address, but --transport is %s", m, got, transport)
		}
		a = m
	} else {
		ip, port, err := splitHostPort(addr)
		if err != nil {
			return ai, err
		}
		var s string
		switch transport {
		case "tcp", "":
			s = ip + "/tcp/" + port
		case "quic-v1":
			s = ip + "/udp/" + port + "/quic-v1"
		case "webtransport", "webrtc-direct":
			return ai, fmt.Errorf("--transport %s needs the server's certificate hash, which HOST:PORT does not carry: "+
				"pass the server's full %s multiaddr (as tachyon perf --run-server prints it) as --server-address", transport, transport)
		default:
			return ai, fmt.Errorf("--transport %q: want one of %s", transport, strings.Join(perfTransports, ", "))
		}
		if a, err = ma.NewMultiaddr(s); err != nil {
			return ai, err
		}
	}
	if _, err := a.ValueForProtocol(ma.P_P2P); err == nil {
		info, err := peer.AddrInfoFromP2pAddr(a)
		if err != nil {
			return ai, fmt.Errorf("--server-address: %w", err)
		}
		return *info, nil
	}
	id, err := peer.Decode(perfServerID)
	if err != nil {
		return ai, err
	}
	return peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{a}}, nil
}

// transportOf names the transport of a multiaddr the way --transport does.
func transportOf(a ma.Multiaddr) string {
	has := func(code int) bool { _, err := a.ValueForProtocol(code); return err == nil }
	switch {
	case has(ma.P_WEBRTC_DIRECT):
		return "webrtc-direct"
	case has(ma.P_WEBTRANSPORT):
		return "webtransport"
	case has(ma.P_QUIC_V1):
		return "quic-v1"
	case has(ma.P_WS) || has(ma.P_WSS):
		return "ws"
	case has(ma.P_TCP):
		return "tcp"
	default:
		return "unknown"
	}
}

// splitHostPort turns HOST:PORT into "/ip4/HOST", "/ip6/HOST" or
// "/dns/HOST", and the port.
func splitHostPort(hostPort string) (string, string, error) {
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return "", "", fmt.Errorf("--server-address %q: want HOST:PORT: %w", hostPort, err)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	ip := net.ParseIP(host)
	switch {
	case ip == nil:
		return "/dns/" + host, port, nil
	case ip.To4() != nil:
		return "/ip4/" + ip.String(), port, nil
	default:
		return "/ip6/" + ip.String(), port, nil
	}
}

// perfLine is one line of the client's output.
type perfLine struct {
	Type          string  `json:"type"`
	TimeSeconds   float64 `json:"timeSeconds"`
	UploadBytes   uint64  `json:"uploadBytes"`
	DownloadBytes uint64  `json:"downloadBytes"`
}

func printLine(w io.Writer, l perfLine) {
	b, _ := json.Marshal(l) // cannot fail: plain fields
	w.Write(append(b, '\n'))
}

func perfClient(ctx context.Context, target dialTarget, upload, download uint64, opts []tachyon.Option, stdout, stderr io.Writer) error {
	h, err := tachyon.New(opts...)
	if err != nil {
		return err
	}
	defer h.Close()
	bar := newProgressBar(stderr, upload, download)
	start := time.Now()
	if target.info.Addrs, err = resolveAddrs(ctx, target.info.Addrs); err != nil {
		return err
	}
	if err := h.Connect(ctx, target.info); err != nil {
		target.elapsed = time.Since(start)
		return explainDial(target, err)
	}
	// Negotiate before returning, so that a peer without perf says so
	// here rather than as a reset in the middle of the transfer.
	s, err := h.NewStream(network.WithEagerNegotiation(ctx), target.info.ID, perf.ID)
	if err != nil {
		err = notServed(err, perf.ID, "--perf")
		return fmt.Errorf("opening a perf stream with %s: %w", target.shown, err)
	}
	res, err := perf.Run(ctx, s, upload, download, func(p perf.Progress) {
		printLine(stdout, perfLine{"intermediary", p.Interval.Seconds(), p.Upload, p.Download})
		bar.update(p)
	})
	bar.done()
	if err != nil {
		return err
	}
	printLine(stdout, perfLine{"final", time.Since(start).Seconds(), res.Upload, res.Download})
	return nil
}

// progressBar draws progress on a terminal; on anything else it does
// nothing.
type progressBar struct {
	w     io.Writer // nil: not a terminal
	total uint64    // bytes to move, 0 if unknown
}

func newProgressBar(w io.Writer, upload, download uint64) *progressBar {
	under := w
	if sw, ok := w.(*syncWriter); ok {
		under = sw.w
	}
	f, ok := under.(*os.File)
	if !ok {
		return &progressBar{}
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return &progressBar{}
	}
	b := &progressBar{w: w}
	if upload != perf.Unlimited && download != perf.Unlimited && upload+download >= upload {
		b.total = upload + download
	}
	return b
}

func (b *progressBar) update(p perf.Progress) {
	if b.w == nil {
		return
	}
	const width = 30
	moved := p.TotalUpload + p.TotalDownload
	var line strings.Builder
	if b.total > 0 {
		frac := min(float64(moved)/float64(b.total), 1)
		fill := int(frac * width)
		fmt.Fprintf(&line, "[%s%s] %3.0f%% ", strings.Repeat("=", fill), strings.Repeat(" ", width-fill), 100*frac)
	}
	rate := float64(p.Upload+p.Download) / (1 << 20) / p.Interval.Seconds()
	fmt.Fprintf(&line, "up %s down %s  %.1f MiB/s  %s", mib(p.TotalUpload), mib(p.TotalDownload), rate, p.Elapsed.Round(time.Second))
	fmt.Fprintf(b.w, "\r%s\x1b[K", line.String())
}

func (b *progressBar) done() {
	if b.w != nil {
		fmt.Fprint(b.w, "\r\x1b[K")
	}
}

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// resolveListen resolves a /dns name in a listen address (perf
// --run-server --server-address localhost:4001) to its first IP.
func resolveListen(ctx context.Context, a ma.Multiaddr) (ma.Multiaddr, error) {
	r, err := resolveAddrs(ctx, []ma.Multiaddr{a})
	if err != nil {
		return nil, err
	}
	if len(r) == 0 {
		return nil, fmt.Errorf("%s resolves to no address", a)
	}
	return r[0], nil
}

// startCPUProfile profiles the process into file until stop is called.
func startCPUProfile(file string) (stop func(), err error) {
	f, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// securityOption turns a --security flag into the host option: "" keeps the
// default (both, TLS first), "noise" or "tls" offers that one alone.
func securityOption(name string) (tachyon.Option, error) {
	switch name {
	case "":
		return nil, nil
	case "noise":
		return tachyon.Security(tachyon.Noise), nil
	case "tls":
		return tachyon.Security(tachyon.TLS), nil
	}
	return nil, usagef("--security %q: want noise or tls", name)
}
