package udpmux_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/stun/v3"
	"github.com/quic-go/quic-go"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/transport/udpmux"
	tt "github.com/tachyon-p2p/tachyon/transport/udpmux/transporttest"
)

var loopback = netip.MustParseAddrPort("127.0.0.1:0")

func serverTLS(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

func clientTLS(alpn string) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, NextProtos: []string{alpn}}
}

func waitSockets(t *testing.T, m *udpmux.Mux, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for m.NumSockets() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d sockets open, want %d", m.NumSockets(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// echoOnce accepts one connection on l and echoes its first stream.
func echoOnce(ctx context.Context, l *udpmux.Listener) error {
	c, err := l.Accept(ctx)
	if err != nil {
		return err
	}
	defer c.CloseWithError(0, "")
	s, err := c.AcceptStream(ctx)
	if err != nil {
		return err
	}
	if _, err := io.Copy(s, s); err != nil {
		return err
	}
	s.Close()
	<-c.Context().Done() // the client closes
	return nil
}

// TestNonQUICSharesPort runs QUIC connections and STUN/DTLS-like datagrams
// on one port at the same time; each side sees only its own packets.
func TestNonQUICSharesPort(t *testing.T) {
	leakcheck.Check(t)
	tt.CheckQUICGoroutines(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m := udpmux.New(nil)
	l, err := m.Listen(loopback, udpmux.ALPNLibp2p, serverTLS(t))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := m.ListenNonQUIC(loopback) // port 0 joins the QUIC socket
	if err != nil {
		t.Fatal(err)
	}
	la, ok := pc.LocalAddr().(*net.UDPAddr)
	if !ok || la.AddrPort() != l.Addr() {
		t.Fatalf("non-QUIC view on %v, QUIC listener on %s", pc.LocalAddr(), l.Addr())
	}
	if m.NumSockets() != 1 {
		t.Fatalf("%d sockets, want 1 shared", m.NumSockets())
	}

	// The non-QUIC side echoes every datagram back to its sender.
	var wg sync.WaitGroup
	defer func() { pc.Close(); l.Close(); wg.Wait() }()
	wg.Go(func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("ReadFrom: %v", err)
				}
				return
			}
			if _, ok := from.(*net.UDPAddr); !ok {
				t.Errorf("ReadFrom returned a %T", from)
			}
			if buf[0]&0x40 != 0 {
				t.Errorf("got a packet with the QUIC fixed bit: %x", buf[:min(n, 8)])
			}
			if _, err := pc.WriteTo(buf[:n], from); err != nil {
				t.Errorf("WriteTo: %v", err)
				return
			}
		}
	})

	const rounds = 200
	errc := make(chan error, 3)
	go func() { errc <- echoOnce(ctx, l) }()
	// QUIC: a dial from another mux and a 1 MiB echo.
	go func() {
		errc <- func() error {
			d := udpmux.New(nil)
			c, err := d.Dial(ctx, l.Addr(), clientTLS(udpmux.ALPNLibp2p))
			if err != nil {
				return err
			}
			defer c.CloseWithError(0, "")
			s, err := c.OpenStreamSync(ctx)
			if err != nil {
				return err
			}
			msg := make([]byte, 1<<20)
			rand.Read(msg)
			go func() { s.Write(msg); s.Close() }()
			got, err := io.ReadAll(s)
			if err != nil {
				return err
			}
			if !bytes.Equal(got, msg) {
				return errors.New("QUIC echo differs")
			}
			return nil
		}()
	}()
	// Non-QUIC: STUN-like (0x00-0x03) and DTLS-like (20-63) datagrams, from
	// a new source port every 10, since without the split program the
	// kernel would send each 4-tuple to one socket by hash.
	go func() {
		errc <- func() error {
			var u *net.UDPConn
			defer func() {
				if u != nil {
					u.Close()
				}
			}()
			buf := make([]byte, 2048)
			for i := range rounds {
				if i%10 == 0 {
					if u != nil {
						u.Close()
					}
					var err error
					if u, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(l.Addr())); err != nil {
						return err
					}
				}
				msg := []byte(fmt.Sprintf("?datagram %d", i))
				msg[0] = byte(i % 4)
				if i%2 == 1 {
					msg[0] = byte(20 + i%44)
				}
				u.SetReadDeadline(time.Now().Add(2 * time.Second))
				if _, err := u.Write(msg); err != nil {
					return err
				}
				n, err := u.Read(buf)
				if err != nil {
					return fmt.Errorf("datagram %d: %w", i, err)
				}
				if !bytes.Equal(buf[:n], msg) {
					return fmt.Errorf("datagram %d echoed as %q", i, buf[:n])
				}
			}
			return nil
		}()
	}()
	for range 3 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	if m.NumSockets() != 1 {
		t.Fatalf("%d sockets after closing the QUIC listener; the non-QUIC view still holds one", m.NumSockets())
	}
	pc.Close()
	wg.Wait()
	waitSockets(t, m, 0)
}

// TestNonQUICLifetime checks binding, joining, the one-view rule and that
// Close releases the socket (the port can be bound again).
func TestNonQUICLifetime(t *testing.T) {
	leakcheck.Check(t)
	tt.CheckQUICGoroutines(t)
	m := udpmux.New(nil)
	pc, err := m.ListenNonQUIC(loopback)
	if err != nil {
		t.Fatal(err)
	}
	ap := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	if ap.Port() == 0 || m.NumSockets() != 1 {
		t.Fatalf("bound %s, %d sockets", ap, m.NumSockets())
	}
	if _, err := m.ListenNonQUIC(ap); err == nil {
		t.Fatal("a second non-QUIC view on the same address was accepted")
	}
	// Port 0 does not join a socket whose view is taken: it binds anew.
	pc2, err := m.ListenNonQUIC(loopback)
	if err != nil {
		t.Fatal(err)
	}
	if pc2.LocalAddr().(*net.UDPAddr).AddrPort() == ap || m.NumSockets() != 2 {
		t.Fatalf("second view on %v, %d sockets", pc2.LocalAddr(), m.NumSockets())
	}
	pc2.Close()
	// A QUIC listener on the exact address joins the view's socket, and
	// dials leave from it.
	l, err := m.Listen(ap, udpmux.ALPNH3, serverTLS(t))
	if err != nil {
		t.Fatal(err)
	}
	if l.Addr() != ap || m.NumSockets() != 1 {
		t.Fatalf("listener on %s, %d sockets", l.Addr(), m.NumSockets())
	}
	pc.Close()
	if m.NumSockets() != 1 {
		t.Fatal("closing the view closed the socket its listener uses")
	}
	pc.Close() // idempotent
	// The view can be taken again once released.
	pc3, err := m.ListenNonQUIC(ap)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	pc3.Close()
	waitSockets(t, m, 0)
	// Released for real: the OS lets us bind the port again.
	u, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(ap))
	if err != nil {
		t.Fatalf("port not released: %v", err)
	}
	u.Close()
	if _, err := pc.WriteTo([]byte{0}, net.UDPAddrFromAddrPort(ap)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("WriteTo after Close: %v", err)
	}
	if _, err := pc.WriteTo([]byte{0}, &net.TCPAddr{}); err == nil {
		t.Fatal("WriteTo accepted a *net.TCPAddr")
	}
}

// TestNonQUICDeadlines checks Close and read deadlines against a pending
// ReadFrom, with the errors pion's ICE mux tests for.
func TestNonQUICDeadlines(t *testing.T) {
	leakcheck.Check(t)
	tt.CheckQUICGoroutines(t)
	m := udpmux.New(nil)
	pc, err := m.ListenNonQUIC(loopback)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	readErr := func() (error, time.Duration) {
		start := time.Now()
		_, _, err := pc.ReadFrom(buf)
		return err, time.Since(start)
	}

	// A deadline in the past fails at once.
	pc.SetReadDeadline(time.Now().Add(-time.Second))
	if err, _ := readErr(); !os.IsTimeout(err) {
		t.Fatalf("past deadline: %v", err)
	}
	// A deadline set while a read is pending ends it.
	pc.SetReadDeadline(time.Time{})
	go func() {
		time.Sleep(50 * time.Millisecond)
		pc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	}()
	err, took := readErr()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !os.IsTimeout(err) {
		t.Fatalf("deadline set during a read: %v", err)
	}
	if took < 90*time.Millisecond || took > 2*time.Second {
		t.Fatalf("read returned after %s", took)
	}
	// Extending the deadline during a read keeps it waiting; a datagram
	// then arrives.
	pc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	go func() {
		time.Sleep(20 * time.Millisecond)
		pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		time.Sleep(200 * time.Millisecond)
		u, err := net.DialUDP("udp4", nil, pc.LocalAddr().(*net.UDPAddr))
		if err != nil {
			t.Error(err)
			return
		}
		u.Write([]byte{0x01, 'x'})
		u.Close()
	}()
	if n, from, err := pc.ReadFrom(buf); err != nil || n != 2 || from == nil {
		t.Fatalf("read after an extended deadline: %d, %v, %v", n, from, err)
	}
	// Close ends a pending read with net.ErrClosed, and later reads too.
	pc.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() { err, _ := readErr(); done <- err }()
	time.Sleep(50 * time.Millisecond)
	pc.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("pending read after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock ReadFrom")
	}
	if err, _ := readErr(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after Close: %v", err)
	}
	waitSockets(t, m, 0)
}

// TestEarlyAndHandshaken holds a client's handshake open (its certificate
// check blocks): the ListenEarly consumer gets the connection before the
// handshake completes, the Listen consumer only after, and the handshake
// counts as in flight until then.
func TestEarlyAndHandshaken(t *testing.T) {
	leakcheck.Check(t)
	tt.CheckQUICGoroutines(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m := udpmux.New(nil)
	conf := serverTLS(t)
	le, err := m.ListenEarly(loopback, udpmux.ALPNH3, conf)
	if err != nil {
		t.Fatal(err)
	}
	ll, err := m.Listen(loopback, udpmux.ALPNLibp2p, conf)
	if err != nil {
		t.Fatal(err)
	}
	if ll.Addr() != le.Addr() {
		t.Fatal("the two ALPNs do not share the socket")
	}
	d := udpmux.New(nil)
	dial := func(alpn string, release chan struct{}) chan *quic.Conn {
		cc := clientTLS(alpn)
		cc.VerifyPeerCertificate = func([][]byte, [][]*x509.Certificate) error {
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		out := make(chan *quic.Conn, 1)
		go func() {
			c, err := d.Dial(ctx, le.Addr(), cc)
			if err != nil {
				t.Errorf("dial %s: %v", alpn, err)
			}
			out <- c
		}()
		return out
	}

	// Early: accepted while the client still checks the certificate.
	relH3 := make(chan struct{})
	dh3 := dial(udpmux.ALPNH3, relH3)
	ce, err := le.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-ce.HandshakeComplete():
		t.Fatal("the early connection is already handshaken")
	default:
	}
	if n := m.HandshakesInFlight(); n != 1 {
		t.Fatalf("%d handshakes in flight, want 1", n)
	}
	close(relH3)
	select {
	case <-ce.HandshakeComplete():
	case <-ctx.Done():
		t.Fatal("early connection never completed its handshake")
	}
	if c := <-dh3; c != nil {
		defer c.CloseWithError(0, "")
	}
	defer ce.CloseWithError(0, "")

	// Handshaken: not accepted while the client holds the handshake.
	relP2P := make(chan struct{})
	dp2p := dial(udpmux.ALPNLibp2p, relP2P)
	actx, acancel := context.WithTimeout(ctx, 300*time.Millisecond)
	if c, err := ll.Accept(actx); err == nil {
		t.Fatalf("accepted %v before its handshake completed", c.RemoteAddr())
	}
	acancel()
	close(relP2P)
	cl, err := ll.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-cl.HandshakeComplete():
	default:
		t.Fatal("Listen handed out a connection in handshake")
	}
	if c := <-dp2p; c != nil {
		defer c.CloseWithError(0, "")
	}
	defer cl.CloseWithError(0, "")
	deadline := time.Now().Add(5 * time.Second)
	for m.HandshakesInFlight() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d handshakes still in flight", m.HandshakesInFlight())
		}
		time.Sleep(10 * time.Millisecond)
	}
	le.Close()
	ll.Close()
}

// TestCloseDuringHandshake closes a Listen consumer while a connection for
// it is in handshake: the connection is closed and the socket released.
func TestCloseDuringHandshake(t *testing.T) {
	leakcheck.Check(t)
	tt.CheckQUICGoroutines(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m := udpmux.New(nil)
	ll, err := m.Listen(loopback, udpmux.ALPNLibp2p, serverTLS(t))
	if err != nil {
		t.Fatal(err)
	}
	d := udpmux.New(nil)
	release := make(chan struct{})
	cc := clientTLS(udpmux.ALPNLibp2p)
	cc.VerifyPeerCertificate = func([][]byte, [][]*x509.Certificate) error {
		<-release
		return nil
	}
	dialed := make(chan error, 1)
	go func() {
		c, err := d.Dial(ctx, ll.Addr(), cc)
		if err == nil {
			c.CloseWithError(0, "") // the server is gone; no need to wait
		}
		dialed <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for m.HandshakesInFlight() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the handshake never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	ll.Close()
	if m.NumSockets() != 0 {
		t.Fatalf("%d sockets after closing the only listener", m.NumSockets())
	}
	close(release)
	<-dialed
	waitSockets(t, d, 0)
}

// TestPionICEMux runs pion's ICE UDP mux over the non-QUIC view of a socket
// that also serves QUIC: a STUN Binding request naming a ufrag reaches the
// muxed connection of that ufrag, its answer goes back from the shared
// port, and closing the ICE mux releases the socket.
func TestPionICEMux(t *testing.T) {
	leakcheck.Check(t)
	tt.CheckQUICGoroutines(t)
	m := udpmux.New(nil)
	l, err := m.Listen(loopback, udpmux.ALPNLibp2p, serverTLS(t))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := m.ListenNonQUIC(l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	im := ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: pc})
	conn, err := im.GetConn("ufragA", pc.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	u, err := net.DialUDP("udp4", nil, pc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.NewUsername("ufragA:remote"), stun.Fingerprint)
	if _, err := u.Write(req.Raw); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	n, from, err := conn.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf[:n], req.Raw) || from.String() != u.LocalAddr().String() {
		t.Fatalf("ICE conn read %d bytes from %s", n, from)
	}
	resp := stun.MustBuild(stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess, stun.Fingerprint)
	if _, err := conn.WriteTo(resp.Raw, from); err != nil {
		t.Fatal(err)
	}
	u.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err = u.Read(buf)
	if err != nil || !bytes.Equal(buf[:n], resp.Raw) {
		t.Fatalf("client read %d bytes: %v", n, err)
	}
	im.Close() // closes pc
	l.Close()
	waitSockets(t, m, 0)
}

// TestNonQUICConcurrentReads reads from several goroutines at once, as on a
// *net.UDPConn: every datagram is read exactly once.
func TestNonQUICConcurrentReads(t *testing.T) {
	leakcheck.Check(t)
	tt.CheckQUICGoroutines(t)
	m := udpmux.New(nil)
	pc, err := m.ListenNonQUIC(loopback)
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	got := make(chan byte, n)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			buf := make([]byte, 10)
			for {
				k, _, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				if k == 2 {
					got <- buf[1]
				}
			}
		})
	}
	u, err := net.DialUDP("udp4", nil, pc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	seen := map[byte]bool{}
	for i := range n {
		u.Write([]byte{0x00, byte(i)})
		select {
		case b := <-got:
			if seen[b] {
				t.Fatalf("datagram %d read twice", b)
			}
			seen[b] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("datagram %d not read", i)
		}
	}
	pc.Close()
	wg.Wait()
	waitSockets(t, m, 0)
}

// TestListenPortTaken: a listening socket shares its port with its own
// non-QUIC view only: a second Mux (another node) asking for the same port
// is refused, as with a plain bind, instead of joining the reuseport group.
func TestListenPortTaken(t *testing.T) {
	leakcheck.Check(t)
	tt.CheckQUICGoroutines(t)
	m1, m2 := udpmux.New(nil), udpmux.New(nil)
	pc, err := m1.ListenNonQUIC(loopback)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ap := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	if _, err := m2.ListenNonQUIC(ap); err == nil {
		t.Fatal("a second Mux bound a port the first one listens on")
	}
	if _, err := m2.Listen(ap, udpmux.ALPNH3, serverTLS(t)); err == nil {
		t.Fatal("a second Mux listened on a port the first one listens on")
	}
	if u, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(ap)); err == nil {
		u.Close()
		t.Fatal("a plain socket bound the shared port")
	}
}

// TestAbortedHandshakesForgotten: connections that die before their
// handshake completes (here the client rejects the server's certificate)
// leave nothing held for the Listen consumer.
func TestAbortedHandshakesForgotten(t *testing.T) {
	leakcheck.Check(t)
	tt.CheckQUICGoroutines(t)
	m, d := udpmux.New(nil), udpmux.New(nil)
	l, err := m.Listen(loopback, udpmux.ALPNLibp2p, serverTLS(t))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for range 10 {
		cc := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, NextProtos: []string{udpmux.ALPNLibp2p},
			VerifyPeerCertificate: func([][]byte, [][]*x509.Certificate) error { return errors.New("rejected by the test") }}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := d.Dial(ctx, l.Addr(), cc)
		cancel()
		if err == nil {
			t.Fatal("a dial with a rejected certificate succeeded")
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for m.PendingConns() != 0 || m.HandshakesInFlight() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still pending, %d handshakes in flight after aborted handshakes", m.PendingConns(), m.HandshakesInFlight())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
