package upgrader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
	"github.com/tachyon-p2p/tachyon/mss"
	"github.com/tachyon-p2p/tachyon/muxer/yamux"
	"github.com/tachyon-p2p/tachyon/security/noise"
	"github.com/tachyon-p2p/tachyon/security/plaintext"
	tlssec "github.com/tachyon-p2p/tachyon/security/tls"
)

func newUpgrader(t *testing.T, secs ...protocol.ID) (*Upgrader, peer.ID) {
	t.Helper()
	k, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(k)
	muxers := []protocol.ID{yamux.ID}
	u := &Upgrader{Muxers: []network.Multiplexer{&yamux.Transport{}}, Transport: "tcp", HandshakeTimeout: 5 * time.Second}
	for _, s := range secs {
		switch s {
		case NoiseID:
			n, err := noise.New(k, &noise.Config{Muxers: muxers})
			if err != nil {
				t.Fatal(err)
			}
			u.Security = append(u.Security, n)
		case TLSID:
			tr, err := tlssec.New(k, &tlssec.Config{Muxers: muxers})
			if err != nil {
				t.Fatal(err)
			}
			u.Security = append(u.Security, tr)
		case plaintext.ID:
			tr, err := plaintext.New(k)
			if err != nil {
				t.Fatal(err)
			}
			u.Security = append(u.Security, tr)
		}
	}
	return u, id
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		done <- c
	}()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-done
	if server == nil {
		t.Fatal("accept failed")
	}
	return client, server
}

// mssHello is a multistream header followed by a proposal (or echo) of id.
func mssHello(id protocol.ID) []byte {
	return append([]byte("\x13/multistream/1.0.0\n"), append([]byte{byte(len(id) + 1)}, id+"\n"...)...)
}

// upgradeInbound runs u's inbound upgrade of c in the background, closes
// the connection it yields and reports the upgrade's error.
func upgradeInbound(ctx context.Context, u *Upgrader, c net.Conn, addr ma.Multiaddr) <-chan error {
	srv := make(chan error, 1)
	go func() {
		tc, err := u.Upgrade(ctx, c, network.DirInbound, "", addr, addr)
		if err == nil {
			tc.Close()
		}
		srv <- err
	}()
	return srv
}

func TestUpgradePaths(t *testing.T) {
	for _, tc := range []struct {
		name      string
		client    []protocol.ID
		server    []protocol.ID
		addr      string // what the client dials
		wantSec   protocol.ID
		wantError bool
	}{
		{"mss picks tls", []protocol.ID{TLSID, NoiseID}, []protocol.ID{NoiseID, TLSID}, "/ip4/127.0.0.1/tcp/1", TLSID, false},
		{"mss falls back to noise", []protocol.ID{TLSID, NoiseID}, []protocol.ID{NoiseID}, "/ip4/127.0.0.1/tcp/1", NoiseID, false},
		{"only noise, optimistic", []protocol.ID{NoiseID}, []protocol.ID{TLSID, NoiseID}, "/ip4/127.0.0.1/tcp/1", NoiseID, false},
		{"only tls, optimistic", []protocol.ID{TLSID}, []protocol.ID{NoiseID, TLSID}, "/ip4/127.0.0.1/tcp/1", TLSID, false},
		// Reads its first message's length with ReadByte, while another
		// goroutine writes.
		{"only plaintext, optimistic", []protocol.ID{plaintext.ID}, []protocol.ID{NoiseID, plaintext.ID}, "/ip4/127.0.0.1/tcp/1", plaintext.ID, false},
		{"only tls, refused", []protocol.ID{TLSID}, []protocol.ID{NoiseID}, "/ip4/127.0.0.1/tcp/1", "", true},
		{"address names tls", []protocol.ID{NoiseID, TLSID}, []protocol.ID{NoiseID, TLSID}, "/ip4/127.0.0.1/tcp/1/tls", TLSID, false},
		{"address names noise", []protocol.ID{TLSID, NoiseID}, []protocol.ID{TLSID, NoiseID}, "/ip4/127.0.0.1/tcp/1/noise", NoiseID, false},
		{"named but server lacks it", []protocol.ID{TLSID, NoiseID}, []protocol.ID{NoiseID}, "/ip4/127.0.0.1/tcp/1/tls", "", true},
		{"named but client lacks it", []protocol.ID{NoiseID}, []protocol.ID{NoiseID, TLSID}, "/ip4/127.0.0.1/tcp/1/tls", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cu, cid := newUpgrader(t, tc.client...)
			su, sid := newUpgrader(t, tc.server...)
			cc, sc := tcpPair(t)
			raddr := ma.StringCast(tc.addr)
			laddr := ma.StringCast("/ip4/127.0.0.1/tcp/2")
			type res struct {
				tc  network.TransportConn
				err error
			}
			srv := make(chan res, 1)
			go func() {
				c, err := su.Upgrade(ctx, sc, network.DirInbound, "", laddr, raddr)
				srv <- res{c, err}
			}()
			c, err := cu.Upgrade(ctx, cc, network.DirOutbound, sid, laddr, raddr)
			if tc.wantError {
				if err == nil {
					c.Close()
					t.Fatal("upgrade succeeded")
				}
				cc.Close()
				if r := <-srv; r.err == nil {
					r.tc.Close()
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			r := <-srv
			if r.err != nil {
				t.Fatal(r.err)
			}
			defer r.tc.Close()
			for _, conn := range []network.TransportConn{c, r.tc} {
				if st := conn.ConnState(); st.Security != tc.wantSec || st.Muxer != yamux.ID {
					t.Fatalf("state %+v", st)
				}
			}
			if r.tc.RemotePeer() != cid || c.RemotePeer() != sid {
				t.Fatal("peer IDs")
			}
			// A stream works.
			s, err := c.OpenStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			s.Write([]byte("hi"))
			ss, err := r.tc.AcceptStream()
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 2)
			if _, err := ss.Read(buf); err != nil || string(buf) != "hi" {
				t.Fatalf("read %q %v", buf, err)
			}
		})
	}
}

func TestNamedSecurity(t *testing.T) {
	for s, want := range map[string]protocol.ID{
		"/ip4/1.2.3.4/tcp/1":        "",
		"/ip4/1.2.3.4/tcp/1/tls":    TLSID,
		"/ip6/::1/tcp/1/noise":      NoiseID,
		"/ip4/1.2.3.4/tcp/1/tls/ws": "",
		"/ip4/1.2.3.4/udp/1":        "",
	} {
		if got := NamedSecurity(ma.StringCast(s)); got != want {
			t.Errorf("%s: %q, want %q", s, got, want)
		}
	}
}

func FuzzInboundFirstBytes(f *testing.F) {
	f.Add([]byte("\x13/multistream/1.0.0\n"))
	f.Add([]byte{0x16, 0x03, 0x01, 0x00, 0x05})
	f.Add([]byte{0x00, 0x20, 1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		u, _ := newUpgrader(t, NoiseID, TLSID)
		u.HandshakeTimeout = 200 * time.Millisecond
		cc, sc := net.Pipe()
		go func() {
			cc.Write(b)
			cc.Close()
		}()
		c, err := u.Upgrade(context.Background(), sc, network.DirInbound, "", ma.StringCast("/ip4/127.0.0.1/tcp/1"), ma.StringCast("/ip4/127.0.0.1/tcp/2"))
		if err == nil {
			c.Close()
			t.Fatal("garbage upgraded")
		}
	})
}

// writeLog records the writes made on a connection.
type writeLog struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (c *writeLog) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, bytes.Clone(p))
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *writeLog) log() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.writes)
}

// TestOptimisticSecurity: a client with one security protocol, dialing an
// address that does not name it, sends the multistream header, its proposal
// and the handshake's first message in one write, and the server its header
// and echo with its first handshake message: the negotiation costs no round
// trip and no write of its own. A refused proposal fails the client's
// upgrade with mss.ErrNotSupported, without waiting for a timeout.
func TestOptimisticSecurity(t *testing.T) {
	for _, tc := range []struct {
		name           string
		client, server []protocol.ID
		refused        bool
	}{
		{"noise", []protocol.ID{NoiseID}, []protocol.ID{TLSID, NoiseID}, false},
		{"tls", []protocol.ID{TLSID}, []protocol.ID{NoiseID, TLSID}, false},
		{"tls refused", []protocol.ID{TLSID}, []protocol.ID{NoiseID}, true},
		{"noise refused", []protocol.ID{NoiseID}, []protocol.ID{TLSID}, true},
		// Writes its first message from another goroutine while the
		// answer is read.
		{"plaintext refused", []protocol.ID{plaintext.ID}, []protocol.ID{TLSID}, true},
		{"first and last refused", []protocol.ID{TLSID, NoiseID}, []protocol.ID{plaintext.ID}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cu, _ := newUpgrader(t, tc.client...)
			su, sid := newUpgrader(t, tc.server...)
			craw, sraw := tcpPair(t)
			cc, sc := &writeLog{Conn: craw}, &writeLog{Conn: sraw}
			addr := ma.StringCast("/ip4/127.0.0.1/tcp/1")
			srv := upgradeInbound(ctx, su, sc, addr)
			start := time.Now()
			c, err := cu.Upgrade(ctx, cc, network.DirOutbound, sid, addr, addr)
			if tc.refused {
				if !errors.Is(err, mss.ErrNotSupported) {
					t.Fatalf("upgrade = %v, want ErrNotSupported", err)
				}
				if d := time.Since(start); d > 2*time.Second {
					t.Errorf("the refusal took %v", d)
				}
				if err := <-srv; err == nil {
					t.Error("server upgrade succeeded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := <-srv; err != nil {
				t.Fatal(err)
			}
			want := mssHello(tc.client[0])
			for side, w := range map[string][][]byte{"client": cc.log(), "server": sc.log()} {
				if len(w) == 0 {
					t.Errorf("%s wrote nothing", side)
					continue
				}
				if !bytes.HasPrefix(w[0], want) || len(w[0]) == len(want) {
					t.Errorf("%s's first write %q, want %q and its first handshake message", side, w[0], want)
				}
				for i, b := range w[1:] {
					if bytes.Contains(b, []byte("/multistream/")) {
						t.Errorf("%s's write %d carries multistream tokens: %q", side, i+1, b)
					}
				}
			}
		})
	}
}

// TestOptimisticAnswerSplit: a listener that sends its header and answer
// one byte per write, slowly, behind the dialer's first handshake message
// (as a strict peer may): the dialer's handshake reads the answer in
// pieces and goes on.
func TestOptimisticAnswerSplit(t *testing.T) {
	for _, sec := range []protocol.ID{NoiseID, TLSID, plaintext.ID} {
		t.Run(string(sec), func(t *testing.T) {
			leakcheck.Check(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cu, _ := newUpgrader(t, sec)
			su, sid := newUpgrader(t, sec)
			craw, sraw := tcpPair(t)
			defer sraw.Close()
			answer := mssHello(sec)
			srv := make(chan error, 1)
			go func() {
				got := make([]byte, len(answer))
				if _, err := io.ReadFull(sraw, got); err != nil || !bytes.Equal(got, answer) {
					srv <- fmt.Errorf("the dialer's header and proposal: %q, %v", got, err)
					return
				}
				for _, b := range answer {
					if _, err := sraw.Write([]byte{b}); err != nil {
						srv <- err
						return
					}
					time.Sleep(time.Millisecond)
				}
				c, err := su.security(sec).SecureInbound(ctx, sraw, "")
				if err == nil {
					c.Close()
				}
				srv <- err
			}()
			sc, conn, err := cu.negotiateSecurity(craw, true, ma.StringCast("/ip4/127.0.0.1/tcp/1"))
			if err != nil {
				t.Fatal(err)
			}
			c, err := sc.SecureOutbound(ctx, conn, sid)
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			if err := <-srv; err != nil {
				t.Fatal(err)
			}
		})
	}
}
