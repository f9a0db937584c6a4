package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/protocol/perf"
	"github.com/tachyon-p2p/tachyon/transport/webrtc"
)

func cmdNode(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("node", flag.ContinueOnError)
	var listen multiFlag
	fl.Var(&listen, "listen", "multiaddr to listen on (repeatable)")
	keyFile := fl.String("key", "", "identity key file (created if missing)")
	servePerf := fl.Bool("perf", false, "serve the perf protocol "+string(perf.ID)+" (off by default: it lets any peer make this node send and receive without limit)")
	echo := fl.Bool("echo", false, "serve "+string(echoProtocol)+" (echoes each stream back; used by the interop and round-trip tests)")
	if pos, err := parseInterspersed(fl, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", pos[0])}
	}
	if len(listen) == 0 {
		listen = multiFlag{
			"/ip4/0.0.0.0/tcp/4001", "/ip6/::/tcp/4001",
			"/ip4/0.0.0.0/tcp/4001/ws", "/ip6/::/tcp/4001/ws",
			"/ip4/0.0.0.0/udp/4001/quic-v1", "/ip6/::/udp/4001/quic-v1",
			"/ip4/0.0.0.0/udp/4001/quic-v1/webtransport", "/ip6/::/udp/4001/quic-v1/webtransport",
		}
		// One UDP socket per family carries all three where the OS allows.
		rtcPort := "4001"
		if !tachyon.SharedUDPPort {
			rtcPort = "4002"
		}
		listen = append(listen, "/ip4/0.0.0.0/udp/"+rtcPort+"/webrtc-direct", "/ip6/::/udp/"+rtcPort+"/webrtc-direct")
	}
	opts := []tachyon.Option{tachyon.ListenAddrStrings(listen...)}
	if *keyFile != "" {
		k, err := loadOrCreateKey(*keyFile)
		if err != nil {
			return err
		}
		cert, err := loadOrCreateWebRTCCert(*keyFile + ".webrtc.pem")
		if err != nil {
			return err
		}
		opts = append(opts, tachyon.Identity(k), tachyon.WebRTCCertificate(cert))
	}
	h, err := tachyon.New(opts...)
	if err != nil {
		return err
	}
	if *servePerf {
		h.SetStreamHandler(perf.ID, perf.Handle)
	}
	if *echo {
		h.SetStreamHandler(echoProtocol, serveEcho)
	}
	for _, a := range h.FullAddrs() {
		fmt.Fprintln(stdout, a)
	}
	<-ctx.Done()
	fmt.Fprintln(stderr, "shutting down")
	return h.Close()
}

// loadOrCreateKey reads a private key in the libp2p protobuf encoding, or
// creates an Ed25519 key and stores it readable by the owner only.
func loadOrCreateKey(path string) (crypto.PrivKey, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := crypto.UnmarshalPrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("reading key %s: %w", path, err)
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
			return nil, fmt.Errorf("reading WebRTC certificate %s: %w", path, err)
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
