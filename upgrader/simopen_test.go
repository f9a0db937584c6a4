package upgrader

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// role is how a test side runs its upgrade.
type role int

const (
	dialer   role = iota // outbound, no simultaneous-open context: the client
	listener             // inbound: the server
	simClient
	simServer
)

func (r role) dir() network.Direction {
	if r == listener {
		return network.DirInbound
	}
	return network.DirOutbound
}

func (r role) ctx(ctx context.Context) context.Context {
	switch r {
	case simClient:
		return network.WithSimultaneousConnect(ctx, true)
	case simServer:
		return network.WithSimultaneousConnect(ctx, false)
	}
	return ctx
}

// TestSimultaneousOpenRoles runs the upgrade of both ends of a bufPipe in
// the roles of the table and checks who ends up client (yamux odd stream
// IDs) and server (even), that the peers are verified, and that two sides
// in the same role fail rather than connect.
func TestSimultaneousOpenRoles(t *testing.T) {
	for _, sec := range []protocol.ID{NoiseID, TLSID} {
		for _, tc := range []struct {
			name    string
			a, b    role
			bExpect string // whom b expects: "a", "other" or "" (anyone)
			wantErr bool
			// named: the client dials an address that names the security
			// protocol (/tcp/P/tls or /tcp/P/noise): no negotiation, and the
			// server, in either role, takes the handshake's first byte.
			named bool
		}{
			{"dial and accept", dialer, listener, "", false, false},
			{"a client, b server", simClient, simServer, "a", false, false},
			{"a server, b client", simServer, simClient, "a", false, false},
			{"server verifies the peer", simClient, simServer, "other", true, false},
			{"server needs the peer ID", simClient, simServer, "", true, false},
			{"both clients", simClient, simClient, "a", true, false},
			{"both servers", simServer, simServer, "a", true, false},
			{"plain dials on both ends", dialer, dialer, "a", true, false},
			{"a client names the security, b server", simClient, simServer, "a", false, true},
			{"a server, b client names the security", simServer, simClient, "a", false, true},
			{"dial names the security, accept", dialer, listener, "", false, true},
		} {
			t.Run(strings.Trim(string(sec), "/")+"/"+tc.name, func(t *testing.T) {
				leakcheck.Check(t)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				ua, aid := newUpgrader(t, sec)
				ub, bid := newUpgrader(t, sec)
				// Two sides in one role wait for each other until this.
				ua.HandshakeTimeout, ub.HandshakeTimeout = time.Second, time.Second
				var bExpect peer.ID
				switch tc.bExpect {
				case "a":
					bExpect = aid
				case "other":
					k, _ := crypto.GenerateEd25519Key(nil)
					bExpect, _ = peer.IDFromPrivateKey(k)
				}
				aExpect := bid
				if tc.a == listener {
					aExpect = ""
				}
				ac, bc := bufPipe()
				addr := ma.StringCast("/ip4/127.0.0.1/tcp/1")
				aRaddr, bRaddr := addr, addr
				if tc.named {
					named := addr.Encapsulate(ma.StringCast("/" + map[protocol.ID]string{NoiseID: "noise", TLSID: "tls"}[sec]))
					if NamedSecurity(named) != sec {
						t.Fatalf("%s names %q", named, NamedSecurity(named))
					}
					if tc.a == dialer || tc.a == simClient {
						aRaddr = named
					} else {
						bRaddr = named
					}
				}
				type res struct {
					c   network.TransportConn
					err error
				}
				bres := make(chan res, 1)
				go func() {
					c, err := ub.Upgrade(tc.b.ctx(ctx), bc, tc.b.dir(), bExpect, addr, bRaddr)
					bres <- res{c, err}
				}()
				a, aerr := ua.Upgrade(tc.a.ctx(ctx), ac, tc.a.dir(), aExpect, addr, aRaddr)
				br := <-bres
				if a != nil {
					defer a.Close()
				}
				if br.c != nil {
					defer br.c.Close()
				}
				if tc.wantErr {
					if aerr == nil && br.err == nil {
						t.Fatal("both upgrades succeeded")
					}
					if tc.bExpect == "other" {
						if _, ok := errors.AsType[*network.PeerIDMismatchError](br.err); !ok {
							t.Fatalf("b's error %v is not a peer ID mismatch", br.err)
						}
					}
					return
				}
				if aerr != nil || br.err != nil {
					t.Fatalf("upgrades: a: %v; b: %v", aerr, br.err)
				}
				b := br.c
				if a.RemotePeer() != bid || b.RemotePeer() != aid {
					t.Fatalf("peers: a sees %s, b sees %s", a.RemotePeer(), b.RemotePeer())
				}
				if a.Direction() != tc.a.dir() || b.Direction() != tc.b.dir() {
					t.Fatalf("directions: a %v, b %v", a.Direction(), b.Direction())
				}
				aClient := tc.a == dialer || tc.a == simClient
				checkStreamRoles(ctx, t, a, b, aClient)
			})
		}
	}
}

// checkStreamRoles opens a stream from each side, checks that the client's
// stream IDs are odd and the server's even (yamux), and that data flows.
func checkStreamRoles(ctx context.Context, t *testing.T, a, b network.TransportConn, aClient bool) {
	t.Helper()
	for i, c := range []struct {
		from, to network.TransportConn
		odd      bool
	}{{a, b, aClient}, {b, a, !aClient}} {
		s, err := c.from.OpenStream(ctx)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		defer s.Close()
		id := s.(interface{ StreamID() uint32 }).StreamID()
		if odd := id%2 == 1; odd != c.odd {
			t.Fatalf("stream %d has ID %d: want odd=%v", i, id, c.odd)
		}
		if _, err := s.Write([]byte("hi")); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		rs, err := c.to.AcceptStream()
		if err != nil {
			t.Fatalf("stream %d: accept: %v", i, err)
		}
		defer rs.Close()
		buf := make([]byte, 2)
		rs.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := rs.Read(buf); err != nil || string(buf) != "hi" {
			t.Fatalf("stream %d: read %q %v", i, buf, err)
		}
	}
}

// bufPipe returns the two ends of an in-memory connection like net.Pipe
// but buffered: both ends of an upgrade write before they read (the
// multistream header goes out at once on both sides), which deadlocks
// net.Pipe, whose writes wait for the reader.
func bufPipe() (net.Conn, net.Conn) {
	ab, ba := newHalfPipe(), newHalfPipe()
	return &pipeEnd{r: ba, w: ab}, &pipeEnd{r: ab, w: ba}
}

// halfPipe is one direction: an unbounded buffer, a close flag and the
// reader's deadline.
type halfPipe struct {
	mu       sync.Mutex
	cond     *sync.Cond
	buf      bytes.Buffer
	closed   bool
	deadline time.Time
	timer    *time.Timer
}

func newHalfPipe() *halfPipe {
	h := &halfPipe{}
	h.cond = sync.NewCond(&h.mu)
	return h
}

func (h *halfPipe) read(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for {
		switch {
		case h.buf.Len() > 0:
			return h.buf.Read(p)
		case h.closed:
			return 0, io.EOF
		case !h.deadline.IsZero() && !time.Now().Before(h.deadline):
			return 0, os.ErrDeadlineExceeded
		}
		h.cond.Wait()
	}
}

func (h *halfPipe) write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return 0, io.ErrClosedPipe
	}
	h.buf.Write(p)
	h.cond.Broadcast()
	return len(p), nil
}

func (h *halfPipe) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	if h.timer != nil {
		h.timer.Stop()
	}
	h.cond.Broadcast()
}

func (h *halfPipe) setDeadline(t time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.deadline = t
	if h.timer != nil {
		h.timer.Stop()
		h.timer = nil
	}
	if !t.IsZero() {
		h.timer = time.AfterFunc(time.Until(t), func() {
			h.mu.Lock()
			h.cond.Broadcast()
			h.mu.Unlock()
		})
	}
	h.cond.Broadcast()
}

type pipeEnd struct{ r, w *halfPipe }

func (c *pipeEnd) Read(p []byte) (int, error)  { return c.r.read(p) }
func (c *pipeEnd) Write(p []byte) (int, error) { return c.w.write(p) }
func (c *pipeEnd) Close() error {
	c.r.close()
	c.w.close()
	return nil
}
func (c *pipeEnd) LocalAddr() net.Addr                { return pipeAddr{} }
func (c *pipeEnd) RemoteAddr() net.Addr               { return pipeAddr{} }
func (c *pipeEnd) SetDeadline(t time.Time) error      { c.r.setDeadline(t); return nil }
func (c *pipeEnd) SetReadDeadline(t time.Time) error  { c.r.setDeadline(t); return nil }
func (c *pipeEnd) SetWriteDeadline(t time.Time) error { return nil } // writes never wait

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }
