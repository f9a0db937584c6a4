package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/quic-go/quic-go"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/security/noise"
	tachyontls "github.com/tachyon-p2p/tachyon/security/tls"
	tachyonquic "github.com/tachyon-p2p/tachyon/transport/quic"
)

// implFloor is the floor of -inbound: the stack's secure channel alone,
// with nothing above it (no host, no multistream-select, no muxer, no
// identify), and clients of the same kind that keep each connection busy
// the way go-libp2p's clients do. Whatever a libp2p listener does on top,
// it holds at least this per idle connection and spends at least this on
// the clients' keepalives:
//   - QUIC: quic-go with go-libp2p's QUIC settings (quicreuse) and the
//     libp2p TLS 1.3 handshake (certificates with the libp2p extension,
//     both sides authenticated, ALPN "libp2p"); quic-go's keepalive
//     PINGs, 15 s after the last packet received, on both sides as in both
//     libp2p stacks;
//   - TLS, Noise: TCP and tachyon's handshake (crypto/tls records for TLS,
//     tachyon's Noise records), then one goroutine per connection that
//     answers each 12-byte message with one. The client sends one at once
//     and then every 30 s, as a go-yamux v5 session does (its RTT
//     measurement: a ping at the start and every 30 s, whatever the
//     traffic; its keepalive joins that ping), and reads the answer.
const (
	implFloor = "floor"
	// floorPrefix marks a floor client's stack in -inbound-dial.
	floorPrefix = "floor/"
	// floorPing is the size of go-yamux's ping frame.
	floorPing = 12
)

// floorInterval is go-yamux's ping interval (a variable for the test).
var floorInterval = 30 * time.Second

// floorStubs is the part of endpoint a floor answers the same way for every
// stack: no identify (a connection counts once its handshake is done) and
// no streams. open counts the open connections.
type floorStubs struct{ open func() int }

func (f floorStubs) identifiedConns() int     { return f.open() }
func (f floorStubs) identified(peerRef) bool  { return f.open() > 0 }
func (f floorStubs) connectedTo(peerRef) bool { return f.open() > 0 }

func (f floorStubs) waitIdentified(context.Context, peerRef) error {
	if f.open() == 0 {
		return errors.New("floor: not connected")
	}
	return nil
}

func (floorStubs) newStream(context.Context, peerRef, string) (stream, error) {
	return nil, errors.New("floor: no streams (a bare secure channel)")
}

func (floorStubs) handle(string, func(stream)) error {
	return errors.New("floor: no streams (a bare secure channel)")
}

// newFloor builds a floor listener (listen) or client for stack sec.
func newFloor(sec string, listen bool) (endpoint, error) {
	switch sec {
	case secQUIC:
		return newQUICFloor(listen)
	case secTLS, secNoise:
		return newTCPFloor(sec, listen)
	}
	return nil, fmt.Errorf("inbound floor: unknown stack %q", sec)
}

// floorQUICConfig is go-libp2p v0.51's QUIC configuration (quicreuse),
// which tachyon's udpmux also follows but for its larger initial stream
// window.
func floorQUICConfig() *quic.Config {
	return &quic.Config{
		Versions:                         []quic.Version{quic.Version1},
		MaxIncomingStreams:               256,
		MaxIncomingUniStreams:            5,
		MaxStreamReceiveWindow:           10 << 20,
		MaxConnectionReceiveWindow:       15 << 20,
		KeepAlivePeriod:                  15 * time.Second,
		EnableDatagrams:                  true,
		EnableStreamResetPartialDelivery: true,
	}
}

// quicFloor is a listener or a client of the QUIC floor. It implements
// endpoint only as far as -inbound uses it: connecting, counting
// connections and closing; "identified" means the handshake finished.
type quicFloor struct {
	floorStubs
	id  peer.ID
	sec *tachyontls.Transport
	udp *net.UDPConn
	tr  *quic.Transport
	ln  *quic.Listener // nil for a client

	mu    sync.Mutex
	conns map[*quic.Conn]struct{} // open ones; a closed one leaves
	wg    sync.WaitGroup          // the accept loop
}

func newQUICFloor(listen bool) (*quicFloor, error) {
	key, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, err
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, err
	}
	sec, err := tachyontls.New(key, &tachyontls.Config{})
	if err != nil {
		return nil, fmt.Errorf("quic floor: %w", err)
	}
	udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(listenIP)})
	if err != nil {
		return nil, fmt.Errorf("quic floor: %w", err)
	}
	f := &quicFloor{id: id, sec: sec, udp: udp, tr: &quic.Transport{Conn: udp}, conns: map[*quic.Conn]struct{}{}}
	f.floorStubs = floorStubs{open: f.numConns}
	if !listen {
		return f, nil
	}
	conf, err := sec.ServerConfig()
	if err != nil {
		f.close()
		return nil, fmt.Errorf("quic floor: %w", err)
	}
	conf.NextProtos = []string{"libp2p"}
	if f.ln, err = f.tr.Listen(conf, floorQUICConfig()); err != nil {
		f.close()
		return nil, fmt.Errorf("quic floor: listen: %w", err)
	}
	f.wg.Go(func() {
		for {
			c, err := f.ln.Accept(context.Background())
			if err != nil {
				return // only when the listener closed
			}
			// ServerConfig counts the client's chain only; the checks
			// are the listener's, as in tachyon's QUIC transport.
			if _, _, err := f.sec.CheckPeer(c.ConnectionState().TLS.PeerCertificates); err != nil {
				c.CloseWithError(0, "")
				continue
			}
			f.add(c)
		}
	})
	return f, nil
}

// add keeps c while it is open.
func (f *quicFloor) add(c *quic.Conn) {
	f.mu.Lock()
	f.conns[c] = struct{}{}
	f.mu.Unlock()
	context.AfterFunc(c.Context(), func() {
		f.mu.Lock()
		delete(f.conns, c)
		f.mu.Unlock()
	})
}

func (f *quicFloor) ref() peerRef {
	a := f.udp.LocalAddr().(*net.UDPAddr)
	m, err := ma.NewMultiaddr(fmt.Sprintf("/ip4/%s/udp/%d/quic-v1", a.IP, a.Port))
	if err != nil {
		panic(err) // built from a bound UDP address
	}
	return peerRef{id: f.id.String(), addrs: []ma.Multiaddr{m}}
}

func (f *quicFloor) connect(ctx context.Context, p peerRef) error {
	id, err := peer.Decode(p.id)
	if err != nil {
		return fmt.Errorf("quic floor: peer ID %q: %w", p.id, err)
	}
	if len(p.addrs) == 0 {
		return errors.New("quic floor: no address to dial")
	}
	ap, _, err := tachyonquic.ParseAddr(p.addrs[0])
	if err != nil {
		return err
	}
	conf, err := f.sec.ClientConfig(id)
	if err != nil {
		return err
	}
	conf.NextProtos = []string{"libp2p"}
	c, err := f.tr.Dial(ctx, net.UDPAddrFromAddrPort(ap), conf, floorQUICConfig())
	if err != nil {
		return fmt.Errorf("quic floor: dial %s: %w", ap, err)
	}
	f.add(c)
	return nil
}

// numConns counts the connections still open.
func (f *quicFloor) numConns() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.conns)
}

func (f *quicFloor) disconnect(peerRef) error {
	f.mu.Lock()
	conns := make([]*quic.Conn, 0, len(f.conns))
	for c := range f.conns {
		conns = append(conns, c)
	}
	f.mu.Unlock()
	for _, c := range conns {
		c.CloseWithError(0, "") // its AfterFunc removes it
	}
	return nil
}

func (f *quicFloor) close() error {
	if f.ln != nil {
		f.ln.Close()
	}
	f.wg.Wait() // no connection is added after this
	f.disconnect(peerRef{})
	err := f.tr.Close()
	// The Transport leaves a socket it was given open.
	return errors.Join(err, f.udp.Close())
}

// tcpFloor is a listener or a client of the TLS or Noise floor. Like
// quicFloor it implements endpoint only as far as -inbound uses it.
type tcpFloor struct {
	floorStubs
	id  peer.ID
	sec network.SecureTransport
	ln  net.Listener // nil for a client

	ctx    context.Context // ends with close: handshakes and pingers stop
	cancel context.CancelFunc
	mu     sync.Mutex
	conns  map[network.SecureConn]struct{} // open ones; a closed one leaves
	wg     sync.WaitGroup                  // the accept loop, every connection's goroutines
	pongs  atomic.Int64                    // answers a client got
}

func newTCPFloor(sec string, listen bool) (*tcpFloor, error) {
	key, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, err
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, err
	}
	f := &tcpFloor{id: id, conns: map[network.SecureConn]struct{}{}}
	f.floorStubs = floorStubs{open: f.numConns}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	if sec == secTLS {
		f.sec, err = tachyontls.New(key, &tachyontls.Config{})
	} else {
		f.sec, err = noise.New(key, &noise.Config{})
	}
	if err != nil {
		return nil, fmt.Errorf("%s floor: %w", sec, err)
	}
	if !listen {
		return f, nil
	}
	// No TCP keepalive: the clients' pings keep the connection in use, so
	// a listener needs none (both libp2p stacks probe after 30 s idle,
	// which these connections never are for long).
	lc := net.ListenConfig{KeepAlive: -1}
	if f.ln, err = lc.Listen(f.ctx, "tcp4", net.JoinHostPort(listenIP, "0")); err != nil {
		return nil, fmt.Errorf("%s floor: listen: %w", sec, err)
	}
	f.wg.Go(func() {
		for {
			c, err := f.ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				// Out of descriptors, say: the step's wait then reports
				// the shortfall; do not spin.
				fmt.Fprintf(os.Stderr, "%s floor: accept: %v\n", sec, err)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			f.wg.Go(func() { f.serve(c) })
		}
	})
	return f, nil
}

// serve secures an inbound connection and leaves it to a goroutine of its
// own that answers the pings: the handshake's deep stack is not the one
// kept for every idle connection.
func (f *tcpFloor) serve(c net.Conn) {
	ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
	sc, err := f.sec.SecureInbound(ctx, c, "")
	cancel()
	if err != nil {
		c.Close()
		if f.ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "floor: inbound handshake: %v\n", err)
		}
		return
	}
	f.run(sc, answerPings)
}

// answerPings answers each floorPing-byte message on c with one, until c
// ends.
func answerPings(c network.SecureConn) {
	var b [floorPing]byte
	for {
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return
		}
		if _, err := c.Write(b[:]); err != nil {
			return
		}
	}
}

// run keeps c while fn runs on it in a goroutine of its own, then closes
// and drops it; c is closed at once if the floor is closing.
func (f *tcpFloor) run(c network.SecureConn, fn func(network.SecureConn)) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ctx.Err() != nil {
		c.Close()
		return false
	}
	f.conns[c] = struct{}{}
	f.wg.Go(func() {
		fn(c)
		c.Close()
		f.mu.Lock()
		delete(f.conns, c)
		f.mu.Unlock()
	})
	return true
}

func (f *tcpFloor) ref() peerRef {
	var addrs []ma.Multiaddr
	if f.ln != nil {
		a := f.ln.Addr().(*net.TCPAddr)
		m, err := ma.NewMultiaddr(fmt.Sprintf("/ip4/%s/tcp/%d", a.IP, a.Port))
		if err != nil {
			panic(err) // built from a bound TCP address
		}
		addrs = append(addrs, m)
	}
	return peerRef{id: f.id.String(), addrs: addrs}
}

// connect dials and secures a connection to p, then pings it as a go-yamux
// session does (at once, then every floorInterval) until it ends.
func (f *tcpFloor) connect(ctx context.Context, p peerRef) error {
	id, err := peer.Decode(p.id)
	if err != nil {
		return fmt.Errorf("floor: peer ID %q: %w", p.id, err)
	}
	if len(p.addrs) < 1 || len(p.addrs[0]) < 2 {
		return errors.New("floor: no /ip4/…/tcp/… address to dial")
	}
	host, err := p.addrs[0][0].ValueForProtocol(p.addrs[0][0].Code())
	if err != nil {
		return err
	}
	port := p.addrs[0][1].Value()
	// go-libp2p's TCP keepalive (30 s idle).
	d := net.Dialer{KeepAlive: 30 * time.Second}
	c, err := d.DialContext(ctx, "tcp4", net.JoinHostPort(host, port))
	if err != nil {
		return fmt.Errorf("floor: dial: %w", err)
	}
	sc, err := f.sec.SecureOutbound(ctx, c, id)
	if err != nil {
		c.Close()
		return fmt.Errorf("floor: handshake: %w", err)
	}
	if !f.run(sc, f.ping) {
		return errors.New("floor: closed")
	}
	return nil
}

// ping sends a floorPing-byte message at once and then every
// floorInterval, each time waiting for the answer, until c or the floor
// ends.
func (f *tcpFloor) ping(c network.SecureConn) {
	stop := context.AfterFunc(f.ctx, func() { c.Close() }) // unblocks a read
	defer stop()
	t := time.NewTicker(floorInterval)
	defer t.Stop()
	var b [floorPing]byte
	for {
		if _, err := c.Write(b[:]); err != nil {
			return
		}
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return
		}
		f.pongs.Add(1)
		select {
		case <-t.C:
		case <-f.ctx.Done():
			return
		}
	}
}

// numConns counts the connections still open.
func (f *tcpFloor) numConns() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.conns)
}

func (f *tcpFloor) disconnect(peerRef) error {
	f.mu.Lock()
	conns := make([]network.SecureConn, 0, len(f.conns))
	for c := range f.conns {
		conns = append(conns, c)
	}
	f.mu.Unlock()
	for _, c := range conns {
		c.Close() // its goroutine ends and drops it
	}
	return nil
}

func (f *tcpFloor) close() error {
	f.mu.Lock()
	f.cancel() // under mu: run adds nothing after this
	f.mu.Unlock()
	var err error
	if f.ln != nil {
		err = f.ln.Close()
	}
	f.disconnect(peerRef{})
	f.wg.Wait()
	return err
}
