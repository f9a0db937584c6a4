package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/obsaddr"
	"github.com/tachyon-p2p/tachyon/protocol/perf"
	"github.com/tachyon-p2p/tachyon/protocol/relay"
	"github.com/tachyon-p2p/tachyon/stun"
	"github.com/tachyon-p2p/tachyon/transport/webrtc"
)

func cmdNode(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("node", flag.ContinueOnError)
	var listen multiFlag
	fl.Var(&listen, "listen", "`MADDR` to listen on (repeatable; default: port 4001 on every transport, all interfaces)")
	keyFile := fl.String("key", "", "identity key `FILE` (created if missing); FILE.webrtc.pem beside it keeps the WebRTC-direct certificate")
	tlsCert := fl.String("tls-cert", "", "PEM certificate (chain) `FILE` served on /tls/ws listen addresses")
	tlsKey := fl.String("tls-key", "", "PEM private key `FILE` of --tls-cert")
	servePerf := fl.Bool("perf", false, "serve the perf protocol "+string(perf.ID)+" (off by default: it lets any peer make this node send and receive without limit)")
	echo := fl.Bool("echo", false, "serve "+string(echoProtocol)+" (echoes each stream back; used by the interop and round-trip tests)")
	relayService := fl.Bool("relay-service", false, "act as a circuit relay v2 relay (hop) with go-libp2p's limits: 2 min and 128 KiB per circuit, 128 reservations")
	stunAddr := fl.String("stun", "", "serve STUN (RFC 5389 Binding) on UDP `HOST:PORT`, so that WebRTC peers behind NATs can learn their public address from this node")
	var webrtcSTUN multiFlag
	fl.Var(&webrtcSTUN, "webrtc-stun", "STUN server `URL` (stun:host:port) that /webrtc connections use to find their public address (repeatable; none by default)")
	var bootstrap multiFlag
	fl.Var(&bootstrap, "bootstrap", "peer `MADDR` (ending in /p2p/<id>) to stay connected to, reconnecting when the connection is lost (repeatable): AutoNAT servers, relays, friends")
	var relays multiFlag
	fl.Var(&relays, "relay", "relay `MADDR` (ending in /p2p/<relay id>) to keep a reservation on while not publicly reachable, and to advertise addresses through (repeatable)")
	reach := fl.String("reachability", "unknown", "`public`, private or unknown (measured with AutoNAT): force it; a public node keeps no relay reservations and advertises its public addresses unchecked, a private one advertises only relay addresses")
	hpPublic := fl.String("holepunch-public-prefixes", "", "comma-separated `CIDRs` that count as public for hole punching (emulated networks whose Internet is private address space)")
	hpPrivate := fl.Bool("holepunch-private-addrs", false, "exchange private (RFC 1918, ULA) addresses for hole punching too, not only public ones (LANs, emulated networks)")
	noHP := fl.Bool("no-holepunch", false, "do not try to replace relayed connections with direct ones (DCUtR)")
	publicPrefixes := fl.String("public-prefixes", "", "comma-separated `CIDRs` that count as public (advertised once confirmed, tested by AutoNAT, used for hole punching): for emulated networks and private deployments whose Internet is private address space")
	noAutoNAT := fl.Bool("no-autonat", false, "neither check this node's addresses with AutoNAT servers (advertise them as configured) nor answer others' AutoNAT requests")
	noAutoNATService := fl.Bool("no-autonat-service", false, "check this node's addresses, but do not dial others back for their AutoNAT requests")
	obsThreshold := fl.Int("observed-addr-threshold", 0, "how many observer networks (/24, /48) must report an address peers see this node at before it is checked and advertised (default 4)")
	debugAddr := fl.String("debug-addr", "", "`HOST:PORT` to serve GET /debug/stats (JSON: goroutines, live heap, connections, peerstore size) and /debug/pprof/ on; keep it on loopback")
	metricsAddr := fl.String("metrics", "", "`HOST:PORT` to serve Prometheus /metrics, /api/status (JSON) and a live status page at / on (a bare PORT listens on 127.0.0.1; keep it on loopback)")
	logLvl := addLogLevel(fl)
	if pos, err := parseInterspersed(fl, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if len(listen) == 0 {
		listen = multiFlag{
			"/ip4/0.0.0.0/tcp/4001", "/ip6/::/tcp/4001",
			"/ip4/0.0.0.0/tcp/4001/ws", "/ip6/::/tcp/4001/ws",
			"/ip4/0.0.0.0/udp/4001/quic-v1", "/ip6/::/udp/4001/quic-v1",
			"/ip4/0.0.0.0/udp/4001/quic-v1/webtransport", "/ip6/::/udp/4001/quic-v1/webtransport",
		}
		// One UDP socket per family carries all three where the OS allows.
		rtcPort := "4002"
		if tachyon.SharedUDPPort {
			rtcPort = "4001"
		}
		listen = append(listen, "/ip4/0.0.0.0/udp/"+rtcPort+"/webrtc-direct", "/ip6/::/udp/"+rtcPort+"/webrtc-direct")
		// WebRTC between peers behind NATs: reachable through the relays
		// of --relay, advertised as <relay>/p2p-circuit/webrtc.
		listen = append(listen, "/webrtc")
		if *tlsCert != "" {
			listen = append(listen, "/ip4/0.0.0.0/tcp/4001/tls/ws", "/ip6/::/tcp/4001/tls/ws")
		}
	}
	var addrs []ma.Multiaddr
	var wss, webrtcDirect bool
	for _, s := range listen {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return usagef("--listen %q: %w", s, err)
		}
		addrs = append(addrs, a)
		wss = wss || hasProtocol(a, ma.P_WSS) || hasProtocol(a, ma.P_TLS) && hasProtocol(a, ma.P_WS)
		webrtcDirect = webrtcDirect || hasProtocol(a, ma.P_WEBRTC_DIRECT)
	}
	opts := []tachyon.Option{tachyon.ListenAddrs(addrs...), logLvl.option(stderr)}
	switch {
	case (*tlsCert == "") != (*tlsKey == ""):
		return usagef("--tls-cert and --tls-key go together: pass both PEM files")
	case *tlsCert != "":
		c, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return fmt.Errorf("loading --tls-cert %s and --tls-key %s: %w", *tlsCert, *tlsKey, err)
		}
		opts = append(opts, tachyon.WebSocketTLS(&tls.Config{Certificates: []tls.Certificate{c}}))
	case wss:
		return usagef("listening on /tls/ws needs a certificate: pass --tls-cert and --tls-key (PEM files)")
	}
	if *keyFile != "" {
		k, err := loadOrCreateKey(*keyFile)
		if err != nil {
			return err
		}
		opts = append(opts, tachyon.Identity(k))
		// Only a node that listens on WebRTC-direct has a certificate
		// whose hash is in its addresses and should survive restarts.
		if webrtcDirect {
			cert, err := loadOrCreateWebRTCCert(*keyFile + ".webrtc.pem")
			if err != nil {
				return err
			}
			opts = append(opts, tachyon.WebRTCCertificate(cert))
		}
	}
	switch *reach {
	case "public":
		opts = append(opts, tachyon.ForceReachability(network.ReachabilityPublic))
	case "private":
		opts = append(opts, tachyon.ForceReachability(network.ReachabilityPrivate))
	case "unknown":
	default:
		return usagef("--reachability %q: want public, private or unknown", *reach)
	}
	for _, r := range relays {
		a, err := ma.NewMultiaddr(r)
		if err != nil {
			return usagef("--relay %q: %w", r, err)
		}
		opts = append(opts, tachyon.StaticRelays(a))
	}
	if *relayService {
		opts = append(opts, tachyon.RelayService(relay.DefaultConfig()))
	}
	if *noHP {
		opts = append(opts, tachyon.NoHolePunching())
	} else if *hpPrivate || *hpPublic != "" {
		cfg, err := holePunchConfig(*hpPrivate, *hpPublic)
		if err != nil {
			return err
		}
		opts = append(opts, tachyon.HolePunching(cfg))
	}
	var boot []peer.AddrInfo
	for _, b := range bootstrap {
		a, err := ma.NewMultiaddr(b)
		if err != nil {
			return usagef("--bootstrap %q: %w", b, err)
		}
		ai, err := peer.AddrInfoFromP2pAddr(a)
		if err != nil {
			return usagef("--bootstrap %q: %w", b, err)
		}
		boot = append(boot, *ai)
	}
	if len(webrtcSTUN) > 0 {
		opts = append(opts, tachyon.WebRTCSTUNServers(webrtcSTUN...))
	}
	if *publicPrefixes != "" {
		ps, err := parsePrefixes("--public-prefixes", *publicPrefixes)
		if err != nil {
			return err
		}
		opts = append(opts, tachyon.PublicPrefixes(ps...))
	}
	switch {
	case *noAutoNAT:
		opts = append(opts, tachyon.NoAutoNAT())
	case *noAutoNATService || *obsThreshold != 0:
		if *obsThreshold < 0 {
			return usagef("--observed-addr-threshold %d: want a positive number", *obsThreshold)
		}
		opts = append(opts, tachyon.AutoNAT(tachyon.AutoNATConfig{
			NoServer:      *noAutoNATService,
			ObservedAddrs: obsaddr.Config{ActivationThreshold: *obsThreshold},
		}))
	}
	var reg *prometheus.Registry
	if *metricsAddr != "" {
		a, err := metricsListenAddr(*metricsAddr)
		if err != nil {
			return err
		}
		*metricsAddr = a
		reg = newMetricsRegistry()
		opts = append(opts, tachyon.PrometheusRegisterer(reg))
	}
	h, err := tachyon.New(opts...)
	if err != nil {
		return listenHint(err)
	}
	stopReport := reportReachability(h, stdout)
	defer stopReport()
	if *servePerf {
		h.SetStreamHandler(perf.ID, (&perf.Server{Tracer: h.Metrics().Perf()}).Handle)
	}
	if *echo {
		h.SetStreamHandler(echoProtocol, serveEcho)
	}
	if *debugAddr != "" {
		wait, err := serveDebug(ctx, *debugAddr, h, stderr)
		if err != nil {
			h.Close()
			return err
		}
		defer wait()
	}
	for _, a := range h.FullAddrs() {
		fmt.Fprintln(stdout, a)
	}
	if reg != nil {
		wait, err := serveStatus(ctx, *metricsAddr, h, reg, stdout, stderr)
		if err != nil {
			h.Close()
			return err
		}
		defer wait()
	}
	if *stunAddr != "" {
		srv, err := stun.Listen(*stunAddr, &stun.Config{Log: logLvl.logger(stderr)})
		if err != nil {
			h.Close()
			return fmt.Errorf("--stun %s: %w", *stunAddr, err)
		}
		fmt.Fprintf(stdout, "stun: %s\n", srv.Addr())
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.Serve(ctx)
		}()
		defer func() { srv.Close(); <-done }()
	}
	if len(boot) > 0 {
		done := make(chan struct{})
		go func() {
			defer close(done)
			keepConnected(ctx, h, boot, stderr)
		}()
		defer func() { <-done }()
	}
	<-ctx.Done()
	fmt.Fprintln(stderr, "shutting down")
	return h.Close()
}

// badKeyError says that the file at path is not a private key, and which
// format is expected.
func badKeyError(path string, err error) error {
	return fmt.Errorf("%s: not a libp2p private key (expected the protobuf PrivateKey written by `tachyon node --key`): %w", path, err)
}

// loadOrCreateKey reads a private key in the libp2p protobuf encoding, or
// creates an Ed25519 key and stores it readable by the owner only.
func loadOrCreateKey(path string) (crypto.PrivKey, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := crypto.UnmarshalPrivateKey(b)
		if err != nil {
			return nil, badKeyError(path, err)
		}
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading key: %w", err)
	}
	k, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, err
	}
	b, err = crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating key: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, fmt.Errorf("writing key %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("writing key %s: %w", path, err)
	}
	return k, nil
}

// loadOrCreateWebRTCCert keeps the WebRTC-direct certificate beside the
// identity key, so the /certhash in the node's address survives restarts.
func loadOrCreateWebRTCCert(path string) (*webrtc.Certificate, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		c, err := webrtc.ParseCertificatePEM(b)
		if err != nil {
			return nil, fmt.Errorf("%s: not a WebRTC-direct certificate (expected the PEM certificate and key written by `tachyon node --key`): %w; "+
				"delete the file to make a new one (the /certhash of the node's webrtc-direct addresses then changes)", path, err)
		}
		return c, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading WebRTC certificate: %w", err)
	}
	c, err := webrtc.GenerateCertificate()
	if err != nil {
		return nil, err
	}
	b, err = c.MarshalPEM()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("writing WebRTC certificate: %w", err)
	}
	return c, nil
}

// echoProtocol is the echo protocol the go-libp2p interop peer serves too.
const echoProtocol protocol.ID = "/tachyon-test/echo/1.0.0"

// serveEcho copies a stream back to its sender until EOF, then closes.
func serveEcho(s network.Stream) {
	s.SetDeadline(time.Now().Add(time.Minute))
	if _, err := io.Copy(s, s); err != nil {
		s.Reset()
		return
	}
	s.Close()
}
