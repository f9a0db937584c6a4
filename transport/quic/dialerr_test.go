package quic_test

import (
	"context"
	"errors"
	"net"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/transport/quic"
	"github.com/tachyon-p2p/tachyon/transport/udpmux"
	tt "github.com/tachyon-p2p/tachyon/transport/udpmux/transporttest"

	ma "github.com/multiformats/go-multiaddr"
)

// closedUDPPort returns a loopback UDP port nothing listens on: bound, then
// released.
func closedUDPPort(t *testing.T) string {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := c.LocalAddr().(*net.UDPAddr).AddrPort().Port()
	c.Close()
	return "/ip4/127.0.0.1/udp/" + strconv.Itoa(int(port)) + "/quic-v1"
}

func otherPeer(t *testing.T) peer.ID {
	k, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(k)
	return id
}

// closingUDPPort returns a loopback UDP port that takes the first datagram
// (the probe's or quic-go's Initial) and closes then, before the probe's
// second send at 200 ms.
func closingUDPPort(t *testing.T) string {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		var b [2048]byte
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		c.ReadFrom(b[:])
		c.Close()
	}()
	t.Cleanup(func() { c.Close(); <-closed })
	return "/ip4/127.0.0.1/udp/" + strconv.Itoa(c.LocalAddr().(*net.UDPAddr).Port) + "/quic-v1"
}

// TestDialClosedPort: the host answers a datagram to a closed port with
// ICMP port unreachable, and the dial fails at once, naming the address,
// instead of waiting for its timeout; also when the port closes during the
// dial, at a later probe's ICMP error.
func TestDialClosedPort(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the closed-port probe reads ICMP errors on Unix only")
	}
	for _, tc := range []struct {
		name string
		port func(t *testing.T) string
	}{
		{"closed", closedUDPPort},
		{"closes during the dial", closingUDPPort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			tt.CheckQUICGoroutines(t)
			mux := udpmux.New(nil)
			k, _ := crypto.GenerateEd25519Key(nil)
			tr, err := quic.New(k, mux, &quic.Config{DialTimeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			addr := tc.port(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			_, err = tr.Dial(ctx, ma.StringCast(addr), otherPeer(t))
			took := time.Since(start)
			if err == nil {
				t.Fatalf("dial to a port that is %s succeeded", tc.name)
			}
			t.Logf("after %v: %v", took, err)
			if took > 5*time.Second {
				t.Errorf("dial took %v, want a fast failure", took)
			}
			if !errors.Is(err, quic.ErrUnreachable) || !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("error %v does not match ErrUnreachable and ECONNREFUSED", err)
			}
			if !strings.Contains(err.Error(), addr) {
				t.Errorf("error %q does not name %s", err, addr)
			}
			waitSockets(t, mux, 0)
		})
	}
}

// TestDialSilentPort: a port that takes datagrams and never answers. The
// dial ends at its timeout and says so, with the address.
func TestDialSilentPort(t *testing.T) {
	leakcheck.Check(t)
	tt.CheckQUICGoroutines(t)
	silent, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	addr := "/ip4/127.0.0.1/udp/" + strconv.Itoa(silent.LocalAddr().(*net.UDPAddr).Port) + "/quic-v1"
	mux := udpmux.New(nil)
	k, _ := crypto.GenerateEd25519Key(nil)
	tr, err := quic.New(k, mux, &quic.Config{DialTimeout: 700 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = tr.Dial(context.Background(), ma.StringCast(addr), otherPeer(t))
	took := time.Since(start)
	if err == nil {
		t.Fatal("dial to a silent port succeeded")
	}
	t.Logf("after %v: %v", took, err)
	if took > 5*time.Second {
		t.Errorf("dial took %v, want about 0.7 s", took)
	}
	for _, want := range []string{"QUIC handshake with " + addr + " timed out after 700ms", "is a node listening on that UDP port?"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v is not a deadline error", err)
	}
	waitSockets(t, mux, 0)
}
