package quic_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/mss"
	"github.com/tachyon-p2p/tachyon/transport/quic"
	"github.com/tachyon-p2p/tachyon/transport/udpmux"
	tt "github.com/tachyon-p2p/tachyon/transport/udpmux/transporttest"
	"github.com/tachyon-p2p/tachyon/transport/webtransport"
)

const echoProto = "/tachyon-test/echo/1.0.0"

var (
	buildOnce sync.Once
	peerBin   string
	buildErr  error
)

// goPeer builds interop/golibp2p (a go-libp2p v0.51 peer) once per run.
func goPeer(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "golibp2p-peer")
		if err != nil {
			buildErr = err
			return
		}
		peerBin = filepath.Join(dir, "golibp2p-peer")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", peerBin, ".")
		cmd.Dir = filepath.Join("..", "..", "interop", "golibp2p")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building the go-libp2p peer: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return peerBin
}

// newTachyon returns a transport by name on a fresh Mux.
func newTachyon(t *testing.T, name string) (network.Transport, peer.ID) {
	k, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	mux := udpmux.New(nil)
	var tr network.Transport
	if name == "quic-v1" {
		tr, err = quic.New(k, mux, nil)
	} else {
		tr, err = webtransport.New(k, mux, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	return tr, id
}

// TestGoLibp2pDialsOut: tachyon dials a go-libp2p listener and runs the
// echo protocol over multistream-select, on several streams.
func TestGoLibp2pDialsOut(t *testing.T) {
	bin := goPeer(t)
	for _, name := range []string{"quic-v1", "webtransport"} {
		t.Run(name, func(t *testing.T) {
			leakcheck.Check(t)
			tt.CheckQUICGoroutines(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "listen", "--transport", name)
			out, _ := cmd.StdoutPipe()
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				cmd.Process.Signal(syscall.SIGTERM)
				cmd.Wait()
			}()
			lines := bufio.NewScanner(out)
			var full string
			for lines.Scan() {
				if lines.Text() == "READY" {
					break
				}
				if full == "" {
					full = lines.Text()
				}
			}
			go io.Copy(io.Discard, out)
			addr, err := ma.NewMultiaddr(full)
			if err != nil {
				t.Fatalf("go peer printed %q: %v", full, err)
			}
			transportAddr, last := ma.SplitLast(addr)
			goID, err := peer.Decode(last.Value())
			if err != nil {
				t.Fatal(err)
			}
			tr, _ := newTachyon(t, name)
			start := time.Now()
			c, err := tr.Dial(ctx, transportAddr, goID)
			if err != nil {
				t.Fatalf("dial go-libp2p at %s: %v", addr, err)
			}
			t.Logf("connection setup to go-libp2p: %v", time.Since(start))
			defer c.Close()
			if c.RemotePeer() != goID {
				t.Fatalf("remote peer %s, want %s", c.RemotePeer(), goID)
			}
			const n = 4
			errs := make(chan error, n)
			for range n {
				go func() { errs <- echoViaMSS(ctx, c, 1<<20) }()
			}
			for range n {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			// A wrong peer ID is refused by the real go peer too.
			other, _ := newTachyon(t, name)
			_, otherID := newTachyon(t, name)
			if _, err := other.Dial(ctx, transportAddr, otherID); err == nil {
				t.Fatal("dial with a wrong peer ID succeeded")
			}
		})
	}
}

func echoViaMSS(ctx context.Context, c network.TransportConn, size int) error {
	s, err := c.OpenStream(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(20 * time.Second))
	if err := mss.SelectProto(s, echoProto); err != nil {
		return fmt.Errorf("negotiating %s: %w", echoProto, err)
	}
	data := make([]byte, size)
	rand.Read(data)
	go func() {
		s.Write(data)
		s.CloseWrite()
	}()
	got, err := io.ReadAll(s)
	if err != nil {
		return fmt.Errorf("reading the echo: %w", err)
	}
	if !bytes.Equal(got, data) {
		return fmt.Errorf("echo mismatch: %d bytes back of %d", len(got), len(data))
	}
	return nil
}

// TestGoLibp2pDialsIn: a go-libp2p peer dials tachyon's listener. The
// transport handshake completes with the right peer IDs and go's first
// stream (identify, via multistream-select) reaches us. We do not serve
// identify here (no Host yet), so go's dial command itself times out
// waiting for it; the test only asserts the transport level.
func TestGoLibp2pDialsIn(t *testing.T) {
	bin := goPeer(t)
	seed := make([]byte, 32)
	rand.Read(seed)
	goKey, _ := crypto.Ed25519KeyFromSeed(seed)
	goID, _ := peer.IDFromPrivateKey(goKey)
	for _, name := range []string{"quic-v1", "webtransport"} {
		t.Run(name, func(t *testing.T) {
			leakcheck.Check(t)
			tt.CheckQUICGoroutines(t)
			tr, id := newTachyon(t, name)
			l := tt.Listen(t, tr, "/ip4/127.0.0.1/udp/0/quic-v1"+map[string]string{"quic-v1": "", "webtransport": "/webtransport"}[name])
			target := l.Multiaddrs()[0].String() + "/p2p/" + id.String()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "dial", target, "--transport", name, "--key-seed", hex.EncodeToString(seed),
				"--pings", "0", "--echo-bytes", "0", "--timeout", "10s")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				cmd.Process.Kill()
				cmd.Wait()
			}()
			c, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.RemotePeer() != goID {
				t.Fatalf("accepted %s, want the go peer %s", c.RemotePeer(), goID)
			}
			s, err := c.AcceptStream()
			if err != nil {
				t.Fatalf("accepting go's first stream: %v (go: %s)", err, stderr.String())
			}
			s.SetReadDeadline(time.Now().Add(10 * time.Second))
			hdr := make([]byte, 20)
			if _, err := io.ReadFull(s, hdr); err != nil {
				t.Fatalf("reading go's first stream: %v", err)
			}
			if !strings.HasPrefix(string(hdr), "\x13/multistream/1.0.0\n") {
				t.Fatalf("go's first stream starts with %q", hdr)
			}
			s.Reset()
		})
	}
}
