// Command gopeer is the go-libp2p side of the transport-interop matrix: a
// test-plans transport-interop peer (configuration from the environment,
// Redis "listenerAddr" rendezvous, one JSON line from the dialer). The matrix
// runner generates one module per go-libp2p version from this directory:
// only go.mod changes, and webrtc.go joins from v0.33, the first version
// with WebRTC-direct. Keep to go-libp2p API that exists
// in every version the matrix builds (v0.30 on).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/libp2p/go-libp2p/p2p/transport/websocket"
	libp2pwebtransport "github.com/libp2p/go-libp2p/p2p/transport/webtransport"
	ma "github.com/multiformats/go-multiaddr"
)

// transport is one transport's option and listen address (%s is the ip).
type transport struct {
	option     libp2p.Option
	listen     string
	selfSecure bool // security and muxer come with the transport
}

var transports = map[string]transport{
	"tcp":          {libp2p.Transport(tcp.NewTCPTransport), "/ip4/%s/tcp/0", false},
	"ws":           {libp2p.Transport(websocket.New), "/ip4/%s/tcp/0/ws", false},
	"quic-v1":      {libp2p.Transport(libp2pquic.NewTransport), "/ip4/%s/udp/0/quic-v1", true},
	"webtransport": {libp2p.Transport(libp2pwebtransport.New), "/ip4/%s/udp/0/quic-v1/webtransport", true},
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gopeer:", err)
		os.Exit(1)
	}
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func run() error {
	tname := env("transport", "")
	dialer := env("is_dialer", "") == "true"
	ip := env("ip", "0.0.0.0")
	redisAddr := env("redis_addr", "redis:6379")
	secs, err := strconv.Atoi(env("test_timeout_seconds", "180"))
	if err != nil || secs <= 0 {
		return fmt.Errorf("bad test_timeout_seconds %q", os.Getenv("test_timeout_seconds"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second)
	defer cancel()

	tr, ok := transports[tname]
	if !ok {
		return fmt.Errorf("unsupported transport %q", tname)
	}
	opts := []libp2p.Option{tr.option, libp2p.DisableRelay(), libp2p.Ping(true)}
	if !tr.selfSecure {
		switch sec := env("security", ""); sec {
		case "noise":
			opts = append(opts, libp2p.Security(noise.ID, noise.New))
		case "tls":
			opts = append(opts, libp2p.Security(libp2ptls.ID, libp2ptls.New))
		default:
			return fmt.Errorf("unsupported security %q", sec)
		}
		if mux := env("muxer", ""); mux != "yamux" {
			return fmt.Errorf("unsupported muxer %q", mux)
		}
		opts = append(opts, libp2p.Muxer(yamux.ID, yamux.DefaultTransport))
	}
	if dialer {
		opts = append(opts, libp2p.NoListenAddrs)
	} else {
		opts = append(opts, libp2p.ListenAddrStrings(fmt.Sprintf(tr.listen, ip)))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return fmt.Errorf("building the host: %w", err)
	}
	defer h.Close()

	rc, err := dialRedis(ctx, redisAddr)
	if err != nil {
		return err
	}
	defer rc.Close()

	if !dialer {
		addr, err := publishable(h.Addrs(), ip)
		if err != nil {
			return err
		}
		full := addr.String() + "/p2p/" + h.ID().String()
		if _, err := rc.do("RPUSH", "listenerAddr", full); err != nil {
			return fmt.Errorf("publishing %s: %w", full, err)
		}
		fmt.Fprintln(os.Stderr, "listening on", full)
		<-ctx.Done() // the runner kills us first
		return errors.New("listener: test timeout")
	}

	rc.conn.SetDeadline(time.Now().Add(time.Duration(secs) * time.Second))
	reply, err := rc.do("BLPOP", "listenerAddr", strconv.Itoa(secs))
	if err != nil {
		return fmt.Errorf("waiting for the listener's address: %w", err)
	}
	if len(reply) != 2 {
		return errors.New("no listener address before the timeout")
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
	if os.Getenv("matrix_trace") != "" {
		// Not the contract: where the dialer's time goes, for the latency
		// analysis (README, "Latency"). Connect below then finds the
		// connection and identify done.
		traceDial(ctx, h, *ai, start)
	}
	if err := h.Connect(ctx, *ai); err != nil {
		return fmt.Errorf("connecting to %s: %w", target, err)
	}
	res := <-ping.Ping(ctx, h, ai.ID)
	if res.Error != nil {
		return fmt.Errorf("pinging %s: %w", ai.ID, res.Error)
	}
	total := time.Since(start)
	out, _ := json.Marshal(map[string]float64{
		"handshakePlusOneRTTMillis": float64(total.Microseconds()) / 1000,
		"pingRTTMilllis":            float64(res.RTT.Microseconds()) / 1000, // three l's: the contract's key
	})
	fmt.Println(string(out))
	return nil
}

// publishable picks the listen address to hand to dialers: one on ip, or a
// non-loopback one when ip is unspecified.
func publishable(addrs []ma.Multiaddr, ip string) (ma.Multiaddr, error) {
	for _, a := range addrs {
		v, err := a.ValueForProtocol(ma.P_IP4)
		if err != nil {
			continue
		}
		if v == ip || (ip == "0.0.0.0" && !net.ParseIP(v).IsLoopback()) {
			return a, nil
		}
	}
	return nil, fmt.Errorf("no listen address on %s among %v", ip, addrs)
}

// redisConn speaks just enough RESP for PING, RPUSH and BLPOP.
type redisConn struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialRedis(ctx context.Context, addr string) (*redisConn, error) {
	for {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			rc := &redisConn{conn: c, r: bufio.NewReader(c)}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err = rc.do("PING"); err == nil {
				c.SetDeadline(time.Time{})
				return rc, nil
			}
			c.Close()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connecting to redis at %s: %w", addr, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (rc *redisConn) Close() error { return rc.conn.Close() }

// do sends one command and returns a reply flattened to strings (nil for a
// null reply).
func (rc *redisConn) do(args ...string) ([]string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := rc.conn.Write([]byte(b.String())); err != nil {
		return nil, err
	}
	return rc.read()
}

func (rc *redisConn) read() ([]string, error) {
	line, err := rc.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty redis reply")
	}
	switch line[0] {
	case '+', ':':
		return []string{line[1:]}, nil
	case '-':
		return nil, fmt.Errorf("redis: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(rc.r, buf); err != nil {
			return nil, err
		}
		return []string{string(buf[:n])}, nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		var out []string
		for i := 0; i < n; i++ {
			v, err := rc.read()
			if err != nil {
				return nil, err
			}
			out = append(out, v...)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected redis reply %q", line)
}

// traceDial dials like Connect does, in steps, and prints how long the
// connection (transport, security, muxer) and then the listener's identify
// took: go-libp2p's Connect waits for identify, so a listener slow to
// answer it is slower in the contract's handshake + 1 RTT.
func traceDial(ctx context.Context, h host.Host, ai peer.AddrInfo, start time.Time) {
	h.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
	c, err := h.Network().DialPeer(ctx, ai.ID)
	if err != nil {
		fmt.Fprintln(os.Stderr, "trace: dial:", err)
		return
	}
	conn := time.Since(start)
	if ids, ok := h.(interface{ IDService() identify.IDService }); ok {
		select {
		case <-ids.IDService().IdentifyWait(c):
		case <-ctx.Done():
		}
	}
	fmt.Fprintf(os.Stderr, "trace: conn %.3f ms identify %.3f ms\n",
		float64(conn.Microseconds())/1000, float64((time.Since(start)-conn).Microseconds())/1000)
}
