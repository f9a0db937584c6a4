package tachyon

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/mss"
)

// dialBacker makes the dial-backs of the AutoNAT servers. It has an
// identity of its own and transports of its own (TCP from ephemeral
// ports, UDP sockets of its own), and no swarm: every dial-back is a new
// connection that nothing else uses and that is closed when the check
// ends. A peer that answers it is reachable at that address by anyone,
// not only through a connection or a NAT mapping the host already has,
// and the peer cannot mistake the dial-back for the host's own connection.
type dialBacker struct {
	id         peer.ID
	transports []network.Transport
	conns      atomic.Uint64
}

// newDialBacker builds the dial-back transports from the host's
// configuration, with a fresh key.
func newDialBacker(cfg config) (*dialBacker, error) {
	key, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, fmt.Errorf("tachyon: dial-back identity: %w", err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("tachyon: dial-back identity: %w", err)
	}
	cfg.key = key
	cfg.webrtcCert = nil
	cfg.noPortReuse = true
	up, err := newUpgrader(cfg, cfg.securityFor(TCP))
	if err != nil {
		return nil, err
	}
	ts, err := newTransports(cfg, up)
	if err != nil {
		return nil, err
	}
	return &dialBacker{id: id, transports: ts}, nil
}

func (d *dialBacker) transportFor(a ma.Multiaddr) network.Transport {
	if len(a) == 0 {
		return nil
	}
	// IP addresses only: a name would let the asker pick whom we dial
	// after our checks, and the IP rules (same IP as the asker, or paid
	// dial data) would mean nothing.
	if c := a[0].Code(); c != ma.P_IP4 && c != ma.P_IP6 {
		return nil
	}
	for _, t := range d.transports {
		if t.CanDial(a) {
			return t
		}
	}
	return nil
}

// CanDial reports whether a dial-back to a is possible.
func (d *dialBacker) CanDial(a ma.Multiaddr) bool { return d.transportFor(a) != nil }

// dial connects to p at a on a new connection.
func (d *dialBacker) dial(ctx context.Context, p peer.ID, a ma.Multiaddr) (network.TransportConn, error) {
	t := d.transportFor(a)
	if t == nil {
		return nil, fmt.Errorf("dial-back to %s at %s: no transport", p, a)
	}
	tc, err := t.Dial(ctx, a, p)
	if err != nil {
		return nil, fmt.Errorf("dial-back to %s at %s: %w", p, a, err)
	}
	return tc, nil
}

// DialBack connects to p at a and opens a stream for proto on the new
// connection; the negotiation rides with the first write. Closing the
// stream's Conn ends the connection.
func (d *dialBacker) DialBack(ctx context.Context, p peer.ID, a ma.Multiaddr, proto protocol.ID) (network.Stream, error) {
	tc, err := d.dial(ctx, p, a)
	if err != nil {
		return nil, err
	}
	ms, err := tc.OpenStream(ctx)
	if err != nil {
		tc.Close()
		return nil, fmt.Errorf("dial-back to %s at %s: opening a stream: %w", p, a, err)
	}
	c := &dialBackConn{TransportConn: tc, id: d.conns.Add(1), opened: time.Now()}
	return &dialBackStream{LazyConn: mss.NewLazy(ms, proto), ms: ms, c: c}, nil
}

// DialBackAny connects to p at the first of addrs that answers, one after
// the other, closes the connection and says which address it was.
func (d *dialBacker) DialBackAny(ctx context.Context, p peer.ID, addrs []ma.Multiaddr) (ma.Multiaddr, error) {
	var errs []error
	for _, a := range addrs {
		if ctx.Err() != nil {
			break
		}
		tc, err := d.dial(ctx, p, a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		tc.Close()
		return a, nil
	}
	if len(errs) == 0 {
		errs = append(errs, fmt.Errorf("dial-back to %s: %w", p, context.Cause(ctx)))
	}
	return nil, errors.Join(errs...)
}

// dialBackConn shows a dial-back connection as a network.Conn.
type dialBackConn struct {
	network.TransportConn
	id     uint64
	opened time.Time
}

func (c *dialBackConn) ID() uint64        { return c.id }
func (c *dialBackConn) Opened() time.Time { return c.opened }
func (c *dialBackConn) NumStreams() int   { return 1 }

// dialBackStream is the one stream of a dial-back connection.
type dialBackStream struct {
	*mss.LazyConn
	ms network.MuxedStream
	c  *dialBackConn
}

var _ network.Stream = (*dialBackStream)(nil)

func (s *dialBackStream) LocalPeer() peer.ID            { return s.c.LocalPeer() }
func (s *dialBackStream) RemotePeer() peer.ID           { return s.c.RemotePeer() }
func (s *dialBackStream) LocalMultiaddr() ma.Multiaddr  { return s.c.LocalMultiaddr() }
func (s *dialBackStream) RemoteMultiaddr() ma.Multiaddr { return s.c.RemoteMultiaddr() }
func (s *dialBackStream) Direction() network.Direction  { return network.DirOutbound }
func (s *dialBackStream) Conn() network.Conn            { return s.c }
