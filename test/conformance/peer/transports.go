package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	ma "github.com/multiformats/go-multiaddr"
)

// tlsALPNLibp2p is the ALPN protocol that says "negotiate the muxer over
// multistream" (connections/inlined-muxer-negotiation.md); it always
// comes last.
const tlsALPNLibp2p = "libp2p"

// secureOther runs a security handshake other than Noise: TLS, whose ALPN
// may carry yamux when EarlyMuxer is set.
func (p *Peer) secureOther(ctx context.Context, conn net.Conn, dialer bool, remoteID string) (secured, bool, error) {
	if p.cfg.Security != SecTLS {
		return secured{}, false, fmt.Errorf("security %s not supported", p.cfg.Security)
	}
	alpn := []string{tlsALPNLibp2p}
	if p.cfg.EarlyMuxer {
		alpn = []string{YamuxID, tlsALPNLibp2p}
	}
	c, rid, chosen, err := TLSHandshake(ctx, conn, p.Identity, !dialer, alpn, remoteID)
	if err != nil {
		return secured{}, false, err
	}
	return secured{conn: c, remoteID: rid}, chosen == YamuxID, nil
}

// ListenWS listens for WebSocket connections on hostport and returns the
// multiaddr to dial (/ip4/.../tcp/P/ws).
func (p *Peer) ListenWS(hostport string) (ma.Multiaddr, error) {
	l, err := ListenWS(hostport)
	if err != nil {
		return nil, fmt.Errorf("peer: %w", err)
	}
	addr, err := toMultiaddr(l.Addr(), "tcp", "/ws")
	if err != nil {
		l.Close()
		return nil, err
	}
	if err := p.addListener(l, addr); err != nil {
		return nil, err
	}
	p.goAccept(l.Accept, "ws", "/ws")
	return addr, nil
}

// DialWS connects over WebSocket to hostport and upgrades the connection
// inside it, as over TCP.
func (p *Peer) DialWS(ctx context.Context, hostport, remoteID string) (*Conn, error) {
	raw, err := DialWS(ctx, hostport)
	if err != nil {
		return nil, fmt.Errorf("peer: %w", err)
	}
	c, err := p.upgrade(ctx, raw, true, remoteID, "ws", "/ws")
	return c, p.check(err)
}

// ListenQUIC listens on hostport (UDP) and returns the multiaddr to dial
// (/ip4/.../udp/P/quic-v1). QUIC secures and multiplexes itself: no
// multistream for either.
func (p *Peer) ListenQUIC(hostport string) (ma.Multiaddr, error) {
	l, err := ListenQUIC(hostport, p.Identity)
	if err != nil {
		return nil, fmt.Errorf("peer: %w", err)
	}
	addr, err := toMultiaddr(l.Addr(), "udp", "/quic-v1")
	if err != nil {
		l.Close()
		return nil, err
	}
	if err := p.addListener(l, addr); err != nil {
		return nil, err
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			// Accept gives up after DefaultTimeout without a deadline of
			// its own: wait longer, and go on after a quiet spell.
			ctx, cancel := context.WithTimeout(p.ctx, time.Hour)
			s, err := l.Accept(ctx)
			cancel()
			if err != nil {
				if p.ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
					continue
				}
				return
			}
			c := &Conn{p: p, Transport: "quic", Session: s, Local: addr}
			if err := p.addConn(c); err != nil {
				return
			}
			select {
			case p.inbound <- c:
			default:
				c.Close()
			}
		}
	}()
	return addr, nil
}

// DialQUIC connects over QUIC to hostport.
func (p *Peer) DialQUIC(ctx context.Context, hostport, remoteID string) (*Conn, error) {
	s, err := DialQUIC(ctx, hostport, p.Identity, remoteID)
	if err != nil {
		return nil, fmt.Errorf("peer: %w", err)
	}
	c := &Conn{p: p, Transport: "quic", Session: s}
	if a, err := net.ResolveUDPAddr("udp", hostport); err == nil {
		c.Remote, _ = toMultiaddr(a, "udp", "/quic-v1")
	}
	if err := p.addConn(c); err != nil {
		return nil, err
	}
	return c, nil
}
