package tcp_test

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/muxer/yamux"
	"github.com/tachyon-p2p/tachyon/security/noise"
	"github.com/tachyon-p2p/tachyon/transport/tcp"
	"github.com/tachyon-p2p/tachyon/transport/websocket"
	"github.com/tachyon-p2p/tachyon/upgrader"
	"github.com/tachyon-p2p/tachyon/upgrader/rmtest"
)

// attackerIP is a second loopback address: Linux routes all of 127/8 to
// lo, so the attacker's sockets come from another IP than the good peer's.
const attackerIP = "127.0.0.2"

func dialFrom(t *testing.T, src string, dst net.Addr) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", dst.String())
	if err != nil {
		if runtime.GOOS != "linux" {
			t.Skipf("no second loopback address %s on %s (only Linux routes all of 127/8): %v", src, runtime.GOOS, err)
		}
		t.Fatal(err)
	}
	return c
}

type admitNode struct {
	id  peer.ID
	tcp *tcp.Transport
	ws  *websocket.Transport
}

func newAdmitNode(t *testing.T, rm network.ResourceManager, timeout time.Duration) *admitNode {
	t.Helper()
	k, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(k)
	sec, err := noise.New(k, nil)
	if err != nil {
		t.Fatal(err)
	}
	up := upgrader.Upgrader{
		Security:         []network.SecureTransport{sec},
		Muxers:           []network.Multiplexer{&yamux.Transport{}},
		HandshakeTimeout: timeout,
		Transport:        "tcp",
	}
	wsUp := up
	wsUp.Transport = "websocket"
	pm := tcp.NewPortMux(&tcp.PortMuxConfig{SniffTimeout: timeout, Resources: rm})
	return &admitNode{
		id:  id,
		tcp: tcp.New(&up, &tcp.Config{PortMux: pm}),
		ws:  websocket.New(&wsUp, &websocket.Config{PortMux: pm, HandshakeTimeout: timeout}),
	}
}

// One IP holding many idle or half-handshaken sockets cannot keep a good
// peer out: past its per-IP cap its sockets are closed at once, and the
// good peer's dials go through. Every admitted handshake is given back.
func TestOneIPCannotBlockAccept(t *testing.T) {
	for _, tc := range []struct {
		name   string
		shared bool // a /ws listener shares the port: every conn is sniffed
	}{
		{"tcp only", false},
		{"shared with websocket", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			const perIP, attackers = 4, 60
			rm := &rmtest.Manager{HandshakesPerIP: perIP}
			// Admitted attackers stay for the whole test: nothing times out.
			server := newAdmitNode(t, rm, time.Minute)
			client := newAdmitNode(t, nil, 0)
			l, err := server.tcp.Listen(ma.StringCast("/ip4/127.0.0.1/tcp/0"))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			var wsl network.Listener
			if tc.shared {
				if wsl, err = server.ws.Listen(ma.StringCast("/ip4/127.0.0.1/tcp/0/ws")); err != nil {
					t.Fatal(err)
				}
				defer wsl.Close()
			}
			na, _ := manet.ToNetAddr(l.Multiaddrs()[0])

			// Idle sockets, a partial multistream header, and Noise
			// negotiated, then a first message announced at 65000 bytes
			// and stalled after 100.
			noiseStall := append([]byte("\x13/multistream/1.0.0\n\x07/noise\n\xfd\xe8"), make([]byte, 100)...)
			stalls := [][]byte{nil, []byte("\x13/multistream/1."), noiseStall}
			var bad []net.Conn
			defer func() {
				for _, c := range bad {
					c.Close()
				}
			}()
			for i := range attackers {
				c := dialFrom(t, attackerIP, na)
				bad = append(bad, c)
				if b := stalls[i%len(stalls)]; b != nil {
					c.Write(b)
				}
			}

			// All but perIP are closed at once: wait for those (a read of a
			// held one would wait for the handshake timeout).
			closed := make(chan struct{}, attackers)
			var wg sync.WaitGroup
			for _, c := range bad {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c.SetReadDeadline(time.Now().Add(15 * time.Second))
					if _, err := io.Copy(io.Discard, c); !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.ErrNoProgress) {
						var ne net.Error
						if !errors.As(err, &ne) || !ne.Timeout() {
							closed <- struct{}{}
						}
					}
				}()
			}
			for range attackers - perIP {
				select {
				case <-closed:
				case <-ctx.Done():
					t.Fatalf("the listener kept more than %d of one IP's sockets", perIP)
				}
			}

			// The good peer, from 127.0.0.1, still gets in, over TCP and
			// over WebSocket when the port is shared.
			targets := []ma.Multiaddr{l.Multiaddrs()[0]}
			if wsl != nil {
				targets = append(targets, wsl.Multiaddrs()[0])
			}
			for _, addr := range targets {
				sl := l
				if wsl != nil && addr.Equal(wsl.Multiaddrs()[0]) {
					sl = wsl
				}
				for range 3 {
					accepted := make(chan network.TransportConn, 1)
					go func() {
						c, _ := sl.Accept()
						accepted <- c
					}()
					var c network.TransportConn
					if wsl != nil && sl == wsl {
						c, err = client.ws.Dial(ctx, addr, server.id)
					} else {
						c, err = client.tcp.Dial(ctx, addr, server.id)
					}
					if err != nil {
						t.Fatalf("good peer could not connect to %s: %v", addr, err)
					}
					c.Close()
					if sc := <-accepted; sc != nil {
						sc.Close()
					}
				}
			}
			if st := rm.Stats(); st.HandshakesRefused < attackers-perIP {
				t.Errorf("refused %d handshakes, want at least %d", st.HandshakesRefused, attackers-perIP)
			}

			for _, c := range bad {
				c.Close()
			}
			wg.Wait()
			l.Close()
			if wsl != nil {
				wsl.Close()
			}
			if st := rm.Stats(); st.Handshakes != 0 || len(st.Misuse) != 0 {
				t.Fatalf("%d handshakes still counted after close (misuse %v)", st.Handshakes, st.Misuse)
			}
		})
	}
}
