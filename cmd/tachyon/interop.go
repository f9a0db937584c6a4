package main

// tachyon transport-interop: the libp2p test-plans transport-interop
// contract. Everything comes from the environment (transport, muxer,
// security, is_dialer, ip, redis_addr, test_timeout_seconds); the listener
// RPUSHes its address to the Redis list "listenerAddr", the dialer BLPOPs
// it, connects, pings once and prints one JSON line.
//
// This file uses only the root package API that tachyon has had since the
// library options (tachyon.New, Transports, Security, Muxers, Connect,
// Ping), the standard library and core/peer: the interop matrix
// (interop/matrix) builds it, with a two-line main, against a pinned old
// commit of tachyon, so that the old library speaks the contract too.
// Keep it that way.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/core/peer"
)

// interopConfig is the contract's environment, parsed.
type interopConfig struct {
	transport tachyon.TransportID
	listen    string // multiaddr with %s for the ip
	security  []tachyon.Option
	dialer    bool
	ip        string
	redisAddr string
	timeout   time.Duration
}

// interopTransports maps the contract's transport names to tachyon's.
var interopTransports = map[string]struct {
	id         tachyon.TransportID
	listen     string
	selfSecure bool // QUIC, WebTransport and WebRTC-direct bring their own security and streams
}{
	"tcp":           {tachyon.TCP, "/ip4/%s/tcp/0", false},
	"ws":            {tachyon.WebSocket, "/ip4/%s/tcp/0/ws", false},
	"quic-v1":       {tachyon.QUIC, "/ip4/%s/udp/0/quic-v1", true},
	"webtransport":  {tachyon.WebTransport, "/ip4/%s/udp/0/quic-v1/webtransport", true},
	"webrtc-direct": {tachyon.WebRTCDirect, "/ip4/%s/udp/0/webrtc-direct", true},
}

// interopUsage is an error in the environment (exit code 2).
type interopUsage struct{ error }

func parseInteropEnv(getenv func(string) string) (interopConfig, error) {
	get := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	var c interopConfig
	tname := get("transport", "")
	t, ok := interopTransports[tname]
	if !ok {
		return c, interopUsage{fmt.Errorf("transport %q is not one of tcp, ws, quic-v1, webtransport, webrtc-direct", tname)}
	}
	c.transport, c.listen = t.id, t.listen
	if !t.selfSecure {
		switch sec := get("security", ""); sec {
		case "noise":
			c.security = []tachyon.Option{tachyon.Security(tachyon.Noise)}
		case "tls":
			c.security = []tachyon.Option{tachyon.Security(tachyon.TLS)}
		default:
			return c, interopUsage{fmt.Errorf("security %q is not one of noise, tls", sec)}
		}
		if mux := get("muxer", ""); mux != "yamux" {
			return c, interopUsage{fmt.Errorf("muxer %q is not yamux", mux)}
		}
		c.security = append(c.security, tachyon.Muxers(tachyon.Yamux))
	}
	switch d := get("is_dialer", ""); d {
	case "true", "false":
		c.dialer = d == "true"
	default:
		return c, interopUsage{fmt.Errorf("is_dialer %q is neither true nor false", d)}
	}
	c.ip = get("ip", "0.0.0.0")
	if a := net.ParseIP(c.ip); a == nil || a.To4() == nil {
		return c, interopUsage{fmt.Errorf("ip %q is not an IPv4 address", c.ip)}
	}
	c.redisAddr = get("redis_addr", "redis:6379")
	secs, err := strconv.Atoi(get("test_timeout_seconds", "180"))
	if err != nil || secs <= 0 {
		return c, interopUsage{fmt.Errorf("test_timeout_seconds %q is not a positive integer", getenv("test_timeout_seconds"))}
	}
	c.timeout = time.Duration(secs) * time.Second
	return c, nil
}

// interopResult is the dialer's line; the runner looks for both keys.
type interopResult struct {
	HandshakePlusOneRTTMillis float64 `json:"handshakePlusOneRTTMillis"`
	PingRTTMillis             float64 `json:"pingRTTMilllis"` // three l's: the contract's spelling
}

// transportInterop runs one side of the contract. A listener returns only
// on error or when the test timeout passes (an error: the runner kills the
// listener once the dialer is done).
func transportInterop(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	c, err := parseInteropEnv(getenv)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	opts := append([]tachyon.Option{tachyon.Transports(c.transport)}, c.security...)
	if !c.dialer {
		opts = append(opts, tachyon.ListenAddrStrings(fmt.Sprintf(c.listen, c.ip)))
	}
	h, err := tachyon.New(opts...)
	if err != nil {
		return fmt.Errorf("building the %s host: %w", c.transport, err)
	}
	defer h.Close()

	rc, err := dialRedis(ctx, c.redisAddr)
	if err != nil {
		return err
	}
	defer rc.close()

	if !c.dialer {
		addr, err := interopPublishable(h.Addrs(), c.ip)
		if err != nil {
			return err
		}
		full := addr.String() + "/p2p/" + h.ID().String()
		if _, err := rc.do(ctx, "RPUSH", "listenerAddr", full); err != nil {
			return fmt.Errorf("publishing %s in redis at %s: %w", full, c.redisAddr, err)
		}
		fmt.Fprintln(stderr, "listening on", full)
		<-ctx.Done()
		return fmt.Errorf("listener: %w", ctx.Err())
	}

	reply, err := rc.do(ctx, "BLPOP", "listenerAddr", strconv.Itoa(int(c.timeout/time.Second)))
	if err != nil {
		return fmt.Errorf("waiting for the listener's address in redis at %s: %w", c.redisAddr, err)
	}
	if len(reply) != 2 {
		return errors.New("no listener address in redis before the test timeout")
	}
	target, err := ma.NewMultiaddr(reply[1])
	if err != nil {
		return fmt.Errorf("listener address %q: %w", reply[1], err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(target)
	if err != nil {
		return fmt.Errorf("listener address %q: %w", reply[1], err)
	}
	start := time.Now()
	if err := h.Connect(ctx, *ai); err != nil {
		return fmt.Errorf("connecting to %s: %w", target, err)
	}
	var rtt time.Duration
	if err := h.Ping(ctx, ai.ID, 1, 0, c.timeout, func(_ int, d time.Duration) { rtt = d }); err != nil {
		return fmt.Errorf("pinging %s: %w", ai.ID, err)
	}
	total := time.Since(start)
	line, _ := json.Marshal(interopResult{
		HandshakePlusOneRTTMillis: float64(total.Microseconds()) / 1000,
		PingRTTMillis:             float64(rtt.Microseconds()) / 1000,
	})
	_, err = stdout.Write(append(line, '\n'))
	return err
}

// interopPublishable picks the address dialers get: the first one on ip,
// or the first non-loopback one when ip is unspecified (never 0.0.0.0).
// The plain forms come before the ones naming a security protocol.
func interopPublishable(addrs []ma.Multiaddr, ip string) (ma.Multiaddr, error) {
	for _, a := range addrs {
		v, err := a.ValueForProtocol(ma.P_IP4)
		if err != nil {
			continue
		}
		if v == ip || ip == "0.0.0.0" && !net.ParseIP(v).IsLoopback() {
			return a, nil
		}
	}
	return nil, fmt.Errorf("no listen address on %s among %v", ip, addrs)
}

// redisConn speaks the few RESP commands the contract needs (PING, RPUSH,
// BLPOP): a client library would be the only dependency of this command.
type redisConn struct {
	conn net.Conn
	r    *bufio.Reader
}

// dialRedis connects and PINGs, retrying until ctx ends: the harness may
// start the peers before redis answers.
func dialRedis(ctx context.Context, addr string) (*redisConn, error) {
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			rc := &redisConn{conn: c, r: bufio.NewReader(c)}
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err = rc.do(pctx, "PING")
			cancel()
			if err == nil {
				return rc, nil
			}
			c.Close()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connecting to redis at %s: %w (last: %v)", addr, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (rc *redisConn) close() error { return rc.conn.Close() }

// do sends one command and returns its reply flattened to strings: nil for
// a null reply, the elements for an array. ctx bounds the exchange.
func (rc *redisConn) do(ctx context.Context, args ...string) ([]string, error) {
	stop := context.AfterFunc(ctx, func() { rc.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(rc.conn, b.String()); err != nil {
		return nil, fmt.Errorf("redis %s: %w", args[0], err)
	}
	out, err := readRESP(rc.r, 0)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("redis %s: %w", args[0], err)
	}
	return out, nil
}

// maxRESP bounds what a reply may make us allocate or recurse into.
const (
	maxRESPBulk  = 1 << 20
	maxRESPArray = 1 << 10
	maxRESPDepth = 4
)

// readRESP reads one reply (simple string, error, integer, bulk string or
// array of those).
func readRESP(r *bufio.Reader, depth int) ([]string, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	s, ok := strings.CutSuffix(string(line), "\r\n")
	if !ok || s == "" {
		return nil, fmt.Errorf("malformed reply line %q", line)
	}
	switch s[0] {
	case '+', ':':
		return []string{s[1:]}, nil
	case '-':
		return nil, fmt.Errorf("server error: %s", s[1:])
	case '$':
		n, err := strconv.Atoi(s[1:])
		switch {
		case err != nil || n < -1 || n > maxRESPBulk:
			return nil, fmt.Errorf("bad bulk length %q", s)
		case n == -1:
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		if string(buf[n:]) != "\r\n" {
			return nil, errors.New("bulk string without its CRLF")
		}
		return []string{string(buf[:n])}, nil
	case '*':
		n, err := strconv.Atoi(s[1:])
		switch {
		case err != nil || n < -1 || n > maxRESPArray:
			return nil, fmt.Errorf("bad array length %q", s)
		case n == -1:
			return nil, nil
		case depth >= maxRESPDepth:
			return nil, errors.New("arrays nested too deep")
		}
		out := []string{}
		for range n {
			v, err := readRESP(r, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, v...)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown reply type %q", s[0])
}

// cmdTransportInterop is the CLI entry: no flags and no arguments (-h
// prints the usage), the environment only.
func cmdTransportInterop(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("transport-interop", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return usageError{error: err, fs: fs}
	}
	if fs.NArg() > 0 {
		return usagef("takes no arguments: it is configured by the environment (transport, muxer, security, is_dialer, ip, redis_addr, test_timeout_seconds)")
	}
	err := transportInterop(ctx, os.Getenv, stdout, stderr)
	var u interopUsage
	if errors.As(err, &u) {
		return usageError{error: u.error}
	}
	return err
}
