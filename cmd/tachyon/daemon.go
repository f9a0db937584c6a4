package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/daemon"
	"github.com/tachyon-p2p/tachyon/protocol/relay"
)

// errUnsupported marks p2pd features that tachyon daemon refuses at start.
var errUnsupported = errors.New("not supported by tachyon daemon")

// daemonFlags is the p2pd flag set (single-dash Go flags), as interop
// runners pass it.
type daemonFlags struct {
	listen        string
	hostAddrs     string
	noListenAddrs bool
	noise, tls    bool
	plaintext     bool
	muxer         string
	id            string
	relay         bool
	dht           bool
	dhtClient     bool
	dhtServer     bool
	pubsub        bool
	pubsubRouter  string
	metricsAddr   string
	logLevel      logLevel
}

func parseDaemonFlags(args []string) (*daemonFlags, error) {
	f := daemonFlags{logLevel: logLevel{defaultLogLevel}}
	fs := flag.NewFlagSet("daemon", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.listen, "listen", "/ip4/127.0.0.1/tcp/0", "control endpoint multiaddr (/ip4/.../tcp/PORT or /unix/PATH; port 0 picks one)")
	fs.StringVar(&f.hostAddrs, "hostAddrs", "/ip4/0.0.0.0/tcp/0", "comma-separated libp2p listen multiaddrs")
	fs.BoolVar(&f.noListenAddrs, "noListenAddrs", false, "do not listen for libp2p connections")
	fs.BoolVar(&f.noise, "noise", false, "offer Noise (the default when no security flag is set)")
	fs.BoolVar(&f.tls, "tls", false, "offer TLS")
	fs.BoolVar(&f.plaintext, "plaintext", false, "offer plaintext (insecure; tests only)")
	fs.StringVar(&f.muxer, "muxer", "yamux", "stream muxer: yamux")
	fs.StringVar(&f.id, "id", "", "identity key file (libp2p protobuf PrivateKey)")
	fs.BoolVar(&f.relay, "relay", false, "act as a circuit relay v2 relay (hop), with go-libp2p's default limits")
	fs.StringVar(&f.metricsAddr, "metricsAddr", "", "serve Prometheus metrics (/metrics) and the status page (/) on this HOST:PORT")
	fs.BoolVar(&f.dht, "dht", false, "run the DHT (unsupported)")
	fs.BoolVar(&f.dhtClient, "dhtClient", false, "run the DHT in client mode (unsupported)")
	fs.BoolVar(&f.dhtServer, "dhtServer", false, "run the DHT in server mode (unsupported)")
	fs.BoolVar(&f.pubsub, "pubsub", false, "run pubsub (unsupported)")
	fs.StringVar(&f.pubsubRouter, "pubsubRouter", "gossipsub", "pubsub router: gossipsub or floodsub (unsupported)")
	fs.Var(&f.logLevel, "log-level", "`LEVEL` of the host log on stderr: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return nil, usageError{err, fs}
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected argument %q", fs.Arg(0))
	}
	return &f, nil
}

// options turns the flags into host options, refusing what tachyon cannot
// do yet.
func (f *daemonFlags) options() ([]tachyon.Option, error) {
	switch {
	case f.dht || f.dhtClient || f.dhtServer:
		return nil, fmt.Errorf("-dht/-dhtClient/-dhtServer: the Kademlia DHT is %w", errUnsupported)
	case f.pubsub:
		return nil, fmt.Errorf("-pubsub (router %s): pubsub is %w", f.pubsubRouter, errUnsupported)
	}
	switch f.muxer {
	case "yamux":
	case "mplex":
		return nil, fmt.Errorf("-muxer=mplex: mplex is %w; use -muxer=yamux", errUnsupported)
	default:
		return nil, usagef("-muxer=%s: unknown muxer (want yamux)", f.muxer)
	}
	var sec []protocol.ID
	if f.noise {
		sec = append(sec, tachyon.Noise)
	}
	if f.tls {
		sec = append(sec, tachyon.TLS)
	}
	if f.plaintext {
		sec = append(sec, tachyon.Plaintext)
	}
	if len(sec) == 0 {
		sec = []protocol.ID{tachyon.Noise}
	}
	opts := []tachyon.Option{tachyon.Security(sec...)}
	if !f.noListenAddrs {
		var addrs []string
		for _, a := range strings.Split(f.hostAddrs, ",") {
			if a = strings.TrimSpace(a); a != "" {
				addrs = append(addrs, a)
			}
		}
		opts = append(opts, tachyon.ListenAddrStrings(addrs...))
	}
	if f.id != "" {
		b, err := os.ReadFile(f.id)
		if err != nil {
			return nil, fmt.Errorf("reading identity: %w", err)
		}
		k, err := crypto.UnmarshalPrivateKey(b)
		if err != nil {
			return nil, badKeyError(f.id, err)
		}
		opts = append(opts, tachyon.Identity(k))
	}
	if f.relay {
		opts = append(opts, tachyon.RelayService(relay.DefaultConfig()))
	}
	return opts, nil
}

// cmdDaemon runs a node driven through the p2pd control protocol until ctx
// ends. It prints "Control socket: <multiaddr>" once requests are accepted.
func cmdDaemon(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseDaemonFlags(args)
	if err != nil {
		return err
	}
	opts, err := f.options()
	if err != nil {
		return err
	}
	ctl, err := ma.NewMultiaddr(f.listen)
	if err != nil {
		return usagef("-listen %q: %w", f.listen, err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: f.logLevel.Level}))
	var reg *prometheus.Registry
	if f.metricsAddr != "" {
		reg = newMetricsRegistry()
		opts = append(opts, tachyon.PrometheusRegisterer(reg))
	}
	h, err := tachyon.New(append(opts, tachyon.Logger(log))...)
	if err != nil {
		return listenHint(err)
	}
	defer h.Close()
	if reg != nil {
		addr, err := metricsListenAddr(f.metricsAddr)
		if err != nil {
			return usagef("-metricsAddr %q: %w", f.metricsAddr, err)
		}
		// Its URLs go to stderr: stdout is the control protocol's banner.
		stop, err := serveStatus(ctx, addr, h, reg, stderr, stderr)
		if err != nil {
			return err
		}
		defer stop()
	}
	ln, bound, err := listenControl(ctl)
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Control socket: %s\nPeer ID: %s\nPeer Addrs:\n", bound, h.ID())
	for _, a := range h.Addrs() {
		fmt.Fprintln(&b, a)
	}
	io.WriteString(stdout, b.String())
	// Failed requests are logged at debug: their ERROR goes to a client
	// (a test suite) that may not show it.
	cfg := &daemon.Config{Logger: log.With("component", "daemon"), Tracer: h.Metrics().Daemon()}
	if err := daemon.Serve(ctx, ln, daemon.TachyonHost(h), cfg); err != nil {
		return err
	}
	return h.Close()
}

// listenControl listens on a TCP or Unix multiaddr and returns the address
// actually bound (the chosen port, for port 0).
func listenControl(a ma.Multiaddr) (net.Listener, ma.Multiaddr, error) {
	network, addr, err := manet.DialArgs(a)
	if err != nil {
		return nil, nil, fmt.Errorf("control address %s: %w", a, err)
	}
	switch network {
	case "tcp", "tcp4", "tcp6", "unix":
	default:
		return nil, nil, fmt.Errorf("control address %s: network %q is %w (use tcp or unix)", a, network, errUnsupported)
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listening for control connections on %s: %w", a, err)
	}
	bound, err := manet.FromNetAddr(ln.Addr())
	if err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("control address %s: %w", ln.Addr(), err)
	}
	return ln, bound, nil
}
