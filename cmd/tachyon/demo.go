package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"text/tabwriter"
	"time"

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
)

// demoCase is one row of the demo table.
type demoCase struct {
	transport string
	listen    string
	security  protocol.ID
}

func demoCases() []demoCase {
	return []demoCase{
		{"tcp", "/ip4/127.0.0.1/tcp/0", tachyon.Noise},
		{"tcp", "/ip4/127.0.0.1/tcp/0", tachyon.TLS},
		{"tcp (ipv6)", "/ip6/::1/tcp/0", tachyon.Noise},
		{"tcp (ipv6)", "/ip6/::1/tcp/0", tachyon.TLS},
		{"websocket", "/ip4/127.0.0.1/tcp/0/ws", tachyon.Noise},
		{"websocket", "/ip4/127.0.0.1/tcp/0/ws", tachyon.TLS},
		{"websocket (wss)", "/ip4/127.0.0.1/tcp/0/tls/ws", tachyon.Noise},
		{"quic-v1", "/ip4/127.0.0.1/udp/0/quic-v1", tachyon.TLS},
		{"quic-v1 (ipv6)", "/ip6/::1/udp/0/quic-v1", tachyon.TLS},
		{"webtransport", "/ip4/127.0.0.1/udp/0/quic-v1/webtransport", tachyon.Noise},
		{"webrtc-direct", "/ip4/127.0.0.1/udp/0/webrtc-direct", tachyon.Noise},
	}
}

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("demo", flag.ContinueOnError)
	pings := fl.Int("pings", 5, "pings per row")
	logLvl := addLogLevel(fl)
	pos, err := parseInterspersed(fl, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if *pings < 1 {
		return usagef("-pings must be at least 1")
	}
	logOpt := logLvl.option(stderr)
	fmt.Fprintln(stdout, "Two tachyon nodes in this process, connected over every transport and security protocol:")
	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TRANSPORT\tSECURITY\tMUXER\tCONNECT\tPING RTT (avg)\tRESULT")
	failed := 0
	for _, c := range demoCases() {
		row, err := demoRow(ctx, c, *pings, logOpt)
		if err != nil {
			failed++
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\tFAILED: %v\n", c.transport, c.security, err)
			continue
		}
		fmt.Fprintln(tw, row)
	}
	tw.Flush()
	if failed > 0 {
		return fmt.Errorf("%d of %d combinations failed", failed, len(demoCases()))
	}
	return nil
}

func demoRow(ctx context.Context, c demoCase, pings int, logOpt tachyon.Option) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	// The wss row serves a throwaway self-signed certificate, which the
	// client accepts without checking: the libp2p handshake inside
	// authenticates the peer all the same.
	wss, err := demoCertificate()
	if err != nil {
		return "", err
	}
	server, err := tachyon.New(tachyon.ListenAddrStrings(c.listen), tachyon.Security(c.security), tachyon.WebSocketTLS(wss), logOpt)
	if err != nil {
		return "", err
	}
	defer server.Close()
	client, err := tachyon.New(tachyon.Security(c.security), tachyon.WebSocketInsecureSkipVerify(), logOpt)
	if err != nil {
		return "", err
	}
	defer client.Close()
	start := time.Now()
	if err := client.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}); err != nil {
		return "", err
	}
	connect := time.Since(start)
	var total time.Duration
	err = client.Ping(ctx, server.ID(), pings, 0, 5*time.Second, func(_ int, rtt time.Duration) { total += rtt })
	if err != nil {
		return "", err
	}
	conns := client.Network().ConnsToPeer(server.ID())
	if len(conns) == 0 {
		return "", fmt.Errorf("connection vanished")
	}
	st := conns[0].ConnState()
	muxer := string(st.Muxer)
	if muxer == "" {
		muxer = "(native streams)"
	}
	return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\tok", c.transport, st.Security, muxer, round(connect), round(total/time.Duration(pings))), nil
}

func demoCertificate() (*tls.Config, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "tachyon demo"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: k}}}, nil
}
