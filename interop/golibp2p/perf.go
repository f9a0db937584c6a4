package main

// perf is a go-libp2p perf client and server that follow the test-plans
// perf contract (the same flags and output as `tachyon perf`), so the
// tachyon suite can check that the two interoperate both ways:
//
//	golibp2p-peer perf --run-server --server-address 127.0.0.1:4001
//	golibp2p-peer perf --server-address 127.0.0.1:4001 --transport tcp --upload-bytes N --download-bytes M
//
// go-libp2p v0.51 ships no perf protocol package, so the protocol
// (perf/perf.md) is written here against go-libp2p's host and streams: the
// client sends the download size as a big-endian uint64, then the upload
// bytes, closes its write side and reads the download until EOF; the server
// mirrors that.

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	libp2pwebrtc "github.com/libp2p/go-libp2p/p2p/transport/webrtc"
	libp2pwebtransport "github.com/libp2p/go-libp2p/p2p/transport/webtransport"
	ma "github.com/multiformats/go-multiaddr"
)

const perfID protocol.ID = "/perf/1.0.0"

// perfSeed is the all-zero seed of the contract's server identity
// (12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN).
const perfSeed = "0000000000000000000000000000000000000000000000000000000000000000"

const perfBuf = 64 << 10

type perfLine struct {
	Type          string  `json:"type"`
	TimeSeconds   float64 `json:"timeSeconds"`
	UploadBytes   uint64  `json:"uploadBytes"`
	DownloadBytes uint64  `json:"downloadBytes"`
}

func cmdPerf(args []string) int {
	fs := flag.NewFlagSet("perf", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	server := fs.Bool("run-server", false, "run a perf server until SIGINT/SIGTERM")
	addr := fs.String("server-address", "", "HOST:PORT of the server, or its full multiaddr")
	transport := fs.String("transport", "tcp", "tcp, quic-v1, webtransport or webrtc-direct")
	upload := fs.Uint64("upload-bytes", 0, "bytes to upload")
	download := fs.Uint64("download-bytes", 0, "bytes to download")
	if _, err := parseArgs(fs, args, 0); err != nil {
		return fail(err)
	}
	if *addr == "" {
		return fail(usagef("perf: --server-address is required"))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	if *server {
		err = perfServer(ctx, *addr)
	} else {
		err = perfClient(ctx, *addr, *transport, *upload, *download)
	}
	if err != nil {
		return fail(err)
	}
	return exitOK
}

// perfHost is a default-security go-libp2p host (TLS and Noise, yamux) with
// the four transports a perf run may name.
func perfHost(key string, listen []string) (host.Host, error) {
	opts := []libp2p.Option{
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(libp2pquic.NewTransport),
		libp2p.Transport(libp2pwebtransport.New),
		libp2p.Transport(libp2pwebrtc.New),
		libp2p.UserAgent(AgentVersion),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.ResourceManager(&network.NullResourceManager{}),
	}
	if len(listen) == 0 {
		opts = append(opts, libp2p.NoListenAddrs)
	} else {
		opts = append(opts, libp2p.ListenAddrStrings(listen...))
	}
	if key != "" {
		sk, err := seedKey(key)
		if err != nil {
			return nil, err
		}
		opts = append(opts, libp2p.Identity(sk))
	}
	return libp2p.New(opts...)
}

func hostPortMaddr(hostPort string) (ipPart, port string, err error) {
	h, p, err := net.SplitHostPort(hostPort)
	if err != nil {
		return "", "", usagef("--server-address %q: want HOST:PORT: %v", hostPort, err)
	}
	ip := net.ParseIP(h)
	switch {
	case ip == nil:
		return "", "", usagef("--server-address %q: want an IP address", hostPort)
	case ip.To4() != nil:
		return "/ip4/" + ip.String(), p, nil
	default:
		return "/ip6/" + ip.String(), p, nil
	}
}

func perfServer(ctx context.Context, hostPort string) error {
	ip, port, err := hostPortMaddr(hostPort)
	if err != nil {
		return err
	}
	// WebRTC-direct cannot share the QUIC port in go-libp2p without its
	// reuse option, so it takes the next port up.
	p, err := strconv.Atoi(port)
	if err != nil || p <= 0 || p >= 65535 {
		return usagef("--server-address %q: want a port in 1-65534", hostPort)
	}
	next := strconv.Itoa(p + 1)
	h, err := perfHost(perfSeed, []string{
		ip + "/tcp/" + port,
		ip + "/udp/" + port + "/quic-v1",
		ip + "/udp/" + port + "/quic-v1/webtransport",
		ip + "/udp/" + next + "/webrtc-direct",
	})
	if err != nil {
		return fmt.Errorf("perf server: %w", err)
	}
	defer h.Close()
	h.SetStreamHandler(perfID, perfHandle)
	for _, a := range h.Addrs() {
		printLine(a.String() + "/p2p/" + h.ID().String())
	}
	<-ctx.Done()
	return nil
}

// perfHandle serves one perf request.
func perfHandle(s network.Stream) {
	if err := perfServe(s); err != nil {
		log.Printf("perf from %s: %v", s.Conn().RemotePeer(), err)
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

func perfServe(s network.Stream) error {
	var hdr [8]byte
	if _, err := io.ReadFull(s, hdr[:]); err != nil {
		return fmt.Errorf("reading the download size: %w", err)
	}
	buf := make([]byte, perfBuf)
	if _, err := io.CopyBuffer(io.Discard, s, buf); err != nil {
		return fmt.Errorf("reading the upload: %w", err)
	}
	return perfSend(s, buf, binary.BigEndian.Uint64(hdr[:]), nil)
}

func perfSend(w io.Writer, buf []byte, n uint64, count *atomic.Uint64) error {
	for n > 0 {
		chunk := buf
		if uint64(len(chunk)) > n {
			chunk = chunk[:n]
		}
		m, err := w.Write(chunk)
		if count != nil {
			count.Add(uint64(m))
		}
		if err != nil {
			return fmt.Errorf("sending: %w", err)
		}
		n -= uint64(m)
	}
	return nil
}

func perfTarget(addr, transport string) (*peer.AddrInfo, error) {
	var s string
	if strings.HasPrefix(addr, "/") {
		s = addr
	} else {
		ip, port, err := hostPortMaddr(addr)
		if err != nil {
			return nil, err
		}
		switch transport {
		case "tcp":
			s = ip + "/tcp/" + port
		case "quic-v1":
			s = ip + "/udp/" + port + "/quic-v1"
		default:
			return nil, usagef("--transport %s needs the server's full multiaddr (certificate hashes) as --server-address", transport)
		}
	}
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		return nil, usagef("--server-address: %v", err)
	}
	if _, err := a.ValueForProtocol(ma.P_P2P); err != nil {
		sk, _ := seedKey(perfSeed)
		id, err := peer.IDFromPrivateKey(sk)
		if err != nil {
			return nil, err
		}
		a = a.Encapsulate(ma.StringCast("/p2p/" + id.String()))
	}
	return peer.AddrInfoFromP2pAddr(a)
}

func perfClient(ctx context.Context, addr, transport string, upload, download uint64) error {
	target, err := perfTarget(addr, transport)
	if err != nil {
		return err
	}
	h, err := perfHost("", nil)
	if err != nil {
		return fmt.Errorf("perf client: %w", err)
	}
	defer h.Close()
	start := time.Now()
	if err := h.Connect(ctx, *target); err != nil {
		return fmt.Errorf("connecting to %s: %w", target.ID, err)
	}
	s, err := h.NewStream(ctx, target.ID, perfID)
	if err != nil {
		return fmt.Errorf("opening a perf stream: %w", err)
	}
	var up, down atomic.Uint64
	done := make(chan struct{})
	reporterDone := make(chan struct{})
	go func() { // reports once a second until the run ends
		defer close(reporterDone)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last, lastUp, lastDown := time.Now(), uint64(0), uint64(0)
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				u, d := up.Load(), down.Load()
				emit(perfLine{"intermediary", now.Sub(last).Seconds(), u - lastUp, d - lastDown})
				last, lastUp, lastDown = now, u, d
			}
		}
	}()
	err = perfExchange(s, upload, download, &up, &down)
	close(done)
	<-reporterDone
	if err != nil {
		_ = s.Reset()
		return err
	}
	_ = s.Close()
	emit(perfLine{"final", time.Since(start).Seconds(), up.Load(), down.Load()})
	return nil
}

func perfExchange(s network.Stream, upload, download uint64, up, down *atomic.Uint64) error {
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], download)
	if _, err := s.Write(hdr[:]); err != nil {
		return fmt.Errorf("sending the download size: %w", err)
	}
	buf := make([]byte, perfBuf)
	if err := perfSend(s, buf, upload, up); err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	if err := s.CloseWrite(); err != nil {
		return fmt.Errorf("closing the upload: %w", err)
	}
	for {
		n, err := s.Read(buf)
		down.Add(uint64(n))
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("download: %w", err)
		}
	}
	if got := down.Load(); got != download {
		return fmt.Errorf("download: got %d bytes, asked for %d", got, download)
	}
	return nil
}
