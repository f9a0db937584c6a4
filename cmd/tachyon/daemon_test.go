package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/tachyon-p2p/tachyon"
	"github.com/tachyon-p2p/tachyon/core/circuit"
	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/internal/lp"
	"github.com/tachyon-p2p/tachyon/internal/pb"
)

func TestDaemonRefusesAtStart(t *testing.T) {
	leakcheck.Check(t)
	missing := filepath.Join(t.TempDir(), "missing.key")
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-muxer=mplex"}, 1, "mplex is not supported by tachyon daemon"},
		{[]string{"-muxer=spdy"}, 2, "unknown muxer"},
		{[]string{"-dhtServer"}, 1, "DHT is not supported"},
		{[]string{"-dht=true"}, 1, "DHT is not supported"},
		{[]string{"-pubsub", "-pubsubRouter=floodsub"}, 1, "pubsub is not supported"},
		{[]string{"-id=" + missing}, 1, "reading identity"},
		{[]string{"-listen=/ip4/127.0.0.1/udp/0", "-noListenAddrs"}, 1, "network \"udp4\""},
		{[]string{"-listen=garbage"}, 2, "-listen"},
		{[]string{"-bogus"}, 2, "flag provided but not defined"},
		{[]string{"extra"}, 2, "unexpected argument"},
	}
	for _, c := range cases {
		code, _, stderr := runCmd(append([]string{"daemon"}, c.args...)...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("daemon %v: exit %d, stderr %q; want exit %d and %q", c.args, code, stderr, c.code, c.want)
		}
	}
}

// startDaemon runs "tachyon daemon" until stop and returns its control
// address as printed.
func startDaemon(t *testing.T, args ...string) (ctl ma.Multiaddr, stdout string, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, append([]string{"daemon"}, args...), &out, &errOut) }()
	stop = sync.OnceValue(func() int {
		cancel()
		select {
		case code := <-done:
			return code
		case <-time.After(10 * time.Second):
			t.Error("daemon did not stop within 10 s")
			return -1
		}
	})
	t.Cleanup(func() { stop() })
	re := regexp.MustCompile(`(?m)^Control socket: (\S+)\n`)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			a, err := ma.NewMultiaddr(m[1])
			if err != nil {
				t.Fatal(err)
			}
			return a, out.String(), stop
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon printed no control socket; stdout %q, stderr %q", out.String(), errOut.String())
		}
	}
}

// identify asks the daemon at ctl for its peer ID and addresses.
func identify(t *testing.T, ctl ma.Multiaddr) (peer.ID, []ma.Multiaddr) {
	t.Helper()
	c, err := manet.Dial(ctl)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := lp.WriteMsg(c, []byte{0x08, 0x00}); err != nil {
		t.Fatal(err)
	}
	msg, err := lp.ReadMsg(c, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var (
		id    peer.ID
		addrs []ma.Multiaddr
		ok    bool
	)
	err = pb.ForEach(msg, func(f pb.Field) error {
		switch f.Num {
		case 1:
			ok = f.Varint == 0
		case 4:
			return pb.ForEach(f.Bytes, func(g pb.Field) error {
				var err error
				switch g.Num {
				case 1:
					id, err = peer.IDFromBytes(g.Bytes)
				case 2:
					var a ma.Multiaddr
					a, err = ma.NewMultiaddrBytes(g.Bytes)
					addrs = append(addrs, a)
				}
				return err
			})
		}
		return nil
	})
	if err != nil || !ok {
		t.Fatalf("IDENTIFY response %x: ok %v, %v", msg, ok, err)
	}
	return id, addrs
}

func TestDaemonServesAndStops(t *testing.T) {
	leakcheck.Check(t)
	k, _, err := crypto.GenerateKeyPair(crypto.Secp256k1, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := crypto.MarshalPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "id.key")
	if err := os.WriteFile(keyFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	want, _ := peer.IDFromPrivateKey(k)

	ctl, stdout, stop := startDaemon(t, "-listen=/ip4/127.0.0.1/tcp/0", "-hostAddrs=/ip4/127.0.0.1/tcp/0", "-tls=true", "-id="+keyFile)
	if port, _ := ctl.ValueForProtocol(ma.P_TCP); port == "0" || port == "" {
		t.Errorf("control socket %s does not name the chosen port", ctl)
	}
	id, addrs := identify(t, ctl)
	if id != want {
		t.Errorf("daemon identity %s, want %s from the key file", id, want)
	}
	if len(addrs) == 0 {
		t.Error("daemon reports no listen addresses")
	}
	for _, a := range addrs {
		if ip, _ := a.ValueForProtocol(ma.P_IP4); ip != "127.0.0.1" {
			t.Errorf("address %s is not on loopback", a)
		}
	}
	if !strings.Contains(stdout, "Peer ID: "+want.String()) {
		t.Errorf("stdout %q lacks the peer ID", stdout)
	}
	if code := stop(); code != 0 {
		t.Errorf("daemon exit code %d after cancel, want 0", code)
	}
	// Another process may have been given the freed port meanwhile (tests
	// run in parallel), so only an answer to IDENTIFY counts as ours.
	if c, err := manet.Dial(ctl); err == nil {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if lp.WriteMsg(c, []byte{0x08, 0x00}) == nil {
			if _, err := lp.ReadMsg(c, 1<<20); err == nil {
				t.Error("control socket still answering after stop")
			}
		}
		c.Close()
	}
}

func TestDaemonNoListenAddrs(t *testing.T) {
	leakcheck.Check(t)
	sock := filepath.Join(t.TempDir(), "p2pd.sock")
	ctl, _, stop := startDaemon(t, "-listen=/unix"+sock, "-noListenAddrs", "-plaintext=true")
	if _, err := ctl.ValueForProtocol(ma.P_UNIX); err != nil {
		t.Fatalf("control socket %s is not the unix socket", ctl)
	}
	_, addrs := identify(t, ctl)
	if len(addrs) != 0 {
		t.Errorf("-noListenAddrs daemon reports addresses %v", addrs)
	}
	if code := stop(); code != 0 {
		t.Errorf("exit code %d", code)
	}
	if _, err := net.Dial("unix", sock); err == nil {
		t.Error("unix control socket still accepting after stop")
	}
}

// TestDaemonRelay: with -relay the daemon's node is a circuit relay, which
// grants a reservation.
func TestDaemonRelay(t *testing.T) {
	leakcheck.Check(t)
	ctl, _, stop := startDaemon(t, "-hostAddrs=/ip4/127.0.0.1/tcp/0", "-relay")
	id, addrs := identify(t, ctl)
	h, err := tachyon.New()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Connect(ctx, peer.AddrInfo{ID: id, Addrs: addrs}); err != nil {
		t.Fatal(err)
	}
	s, err := h.NewStream(ctx, id, circuit.HopID)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	if err := circuit.WriteHop(s, &circuit.HopMessage{Type: circuit.HopReserve}); err != nil {
		t.Fatal(err)
	}
	m, err := circuit.ReadHop(s)
	if err != nil || m.Type != circuit.HopStatus || m.Status != circuit.StatusOK || m.Reservation == nil {
		t.Fatalf("RESERVE answered %+v, %v; want STATUS OK with a reservation", m, err)
	}
	if code := stop(); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// TestDaemonMetrics: with -metricsAddr the daemon serves its node's
// metrics, and control requests are counted by type.
func TestDaemonMetrics(t *testing.T) {
	leakcheck.Check(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctl, _, stop := startDaemon(t, "-listen=/ip4/127.0.0.1/tcp/0", "-hostAddrs=/ip4/127.0.0.1/tcp/0", "-metricsAddr="+addr)
	identify(t, ctl)
	identify(t, ctl)
	// The daemon counts a request once it has answered it, so the client
	// can read the answer before the count moves: scrape until it does.
	want := `tachyon_daemon_requests_total{result="success",type="identify"} 2`
	var body []byte
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatalf("scraping the daemon's metrics: %v", err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), want) || time.Now().After(deadline) {
			break
		}
	}
	if !strings.Contains(string(body), want) {
		t.Errorf("metrics lack %q:\n%s", want, grepLines(string(body), "tachyon_daemon"))
	}
	if code := stop(); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
