package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/quic-go/quic-go"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/peer"
	tachyontls "github.com/tachyon-p2p/tachyon/security/tls"
	tachyonquic "github.com/tachyon-p2p/tachyon/transport/quic"
)

// implQUICFloor is the floor of -inbound's QUIC rows: quic-go alone, with
// the QUIC settings both libp2p listeners use (go-libp2p's quicreuse
// values) and the libp2p TLS 1.3 handshake (certificates with the libp2p
// extension, both sides authenticated, ALPN "libp2p"), and nothing above
// it: no host, no stream, no identify. Whatever a listener built on
// quic-go does on top, it holds at least this per idle connection and
// spends at least this on its keepalives. Its clients are the same bare
// quic-go dialers (floorClients), with go-libp2p's keepalive period.
const (
	implQUICFloor = "quic-go"
	floorClients  = "QUIC-bare"
)

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

// quicFloor is a listener or a client of the floor. It implements
// endpoint only as far as -inbound uses it: connecting, counting
// connections and closing; "identified" means the handshake finished.
type quicFloor struct {
	id  peer.ID
	sec *tachyontls.Transport
	udp *net.UDPConn
	tr  *quic.Transport
	ln  *quic.Listener // nil for a client

	mu    sync.Mutex
	conns []*quic.Conn
	wg    sync.WaitGroup // the accept loop
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
	f := &quicFloor{id: id, sec: sec, udp: udp, tr: &quic.Transport{Conn: udp}}
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
				return // closed
			}
			f.add(c)
		}
	})
	return f, nil
}

func (f *quicFloor) add(c *quic.Conn) {
	f.mu.Lock()
	f.conns = append(f.conns, c)
	f.mu.Unlock()
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
	n := 0
	for _, c := range f.conns {
		if c.Context().Err() == nil {
			n++
		}
	}
	return n
}

// identifiedConns: the floor has no identify; a connection counts once its
// handshake is done, which is when Accept returns it.
func (f *quicFloor) identifiedConns() int { return f.numConns() }

func (f *quicFloor) identified(peerRef) bool  { return f.numConns() > 0 }
func (f *quicFloor) connectedTo(peerRef) bool { return f.numConns() > 0 }

func (f *quicFloor) waitIdentified(context.Context, peerRef) error {
	if f.numConns() == 0 {
		return errors.New("quic floor: not connected")
	}
	return nil
}

func (f *quicFloor) newStream(context.Context, peerRef, string) (stream, error) {
	return nil, errors.New("quic floor: no streams (bare QUIC connections)")
}

func (f *quicFloor) handle(string, func(stream)) error {
	return errors.New("quic floor: no streams (bare QUIC connections)")
}

func (f *quicFloor) disconnect(peerRef) error {
	f.mu.Lock()
	conns := f.conns
	f.conns = nil
	f.mu.Unlock()
	for _, c := range conns {
		c.CloseWithError(0, "")
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
