package adversary

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/stun/v3"
	"github.com/quic-go/quic-go"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/internal/lp"
	"github.com/tachyon-p2p/tachyon/internal/pb"
	"github.com/tachyon-p2p/tachyon/security/noise"
	tlssec "github.com/tachyon-p2p/tachyon/security/tls"
)

// env is what an attack works with: the victim and the attacker's
// addresses.
type env struct {
	v      *victim
	one    src   // the attacker's own address
	subnet []src // many addresses of one /24, on the attacker host
	many   []src // addresses spread over several attacker hosts (/24s)
}

func (e *env) tcp() netip.AddrPort  { return netip.AddrPortFrom(e.v.ip(), tcpPort) }
func (e *env) quic() netip.AddrPort { return netip.AddrPortFrom(e.v.ip(), quicPort) }
func (e *env) rtc() netip.AddrPort  { return netip.AddrPortFrom(e.v.ip(), webrtcPort) }

// counters are what an attack reports in its note.
type counters struct {
	opened, failed, closedByVictim, sent atomic.Int64
}

func (c *counters) note() string {
	return fmt.Sprintf("opened %d, failed %d, closed by victim %d", c.opened.Load(), c.failed.Load(), c.closedByVictim.Load())
}

// hold keeps up to n connections made by open, with workers opening them in
// parallel, until ctx ends; then it closes them all. Each held connection
// is read by its own goroutine (owned by hold: it ends when the connection
// is closed) so a close by the victim is counted.
func hold(ctx context.Context, n, workers int, open func(ctx context.Context, i int) (net.Conn, error)) string {
	var c counters
	var mu sync.Mutex
	var conns []net.Conn
	var readers sync.WaitGroup
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				conn, err := open(ctx, i)
				if err != nil {
					if ctx.Err() == nil {
						c.failed.Add(1)
					}
					pause(ctx, 10*time.Millisecond)
					continue
				}
				c.opened.Add(1)
				mu.Lock()
				conns = append(conns, conn)
				mu.Unlock()
				readers.Go(func() {
					io.Copy(io.Discard, conn)
					if ctx.Err() == nil {
						c.closedByVictim.Add(1)
					}
				})
			}
		})
	}
	wg.Wait()
	<-ctx.Done()
	mu.Lock()
	for _, conn := range conns {
		conn.Close()
	}
	mu.Unlock()
	readers.Wait()
	return c.note()
}

func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// loop runs fn with workers in parallel until ctx ends or n runs are done
// (n 0: no bound).
func loop(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) (done, failed int64) {
	var next, ok, bad atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if n > 0 && i >= n {
					return
				}
				if err := fn(ctx, i); err != nil {
					if ctx.Err() == nil {
						bad.Add(1)
					}
					pause(ctx, 5*time.Millisecond)
					continue
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	return ok.Load(), bad.Load()
}

// readFull reads exactly n bytes within d.
func readFull(c net.Conn, n int, d time.Duration) ([]byte, error) {
	c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	b := make([]byte, n)
	_, err := io.ReadFull(c, b)
	return b, err
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// --- slowloris: stop at every handshake step and hold the connection ---

func slowlorisTCP(ctx context.Context, e *env) string {
	return hold(ctx, 2000, 16, func(ctx context.Context, _ int) (net.Conn, error) { return e.one.dialTCP(ctx, e.tcp()) })
}

func slowlorisMSS(ctx context.Context, e *env) string {
	return hold(ctx, 1000, 16, func(ctx context.Context, _ int) (net.Conn, error) {
		c, err := e.one.dialTCP(ctx, e.tcp())
		if err != nil {
			return nil, err
		}
		// Half of the header, then nothing.
		_, err = c.Write(mssPropose(string(noise.ID))[:10])
		return c, err
	})
}

// selectRaw proposes p and reads the listener's echo of header and p.
func selectRaw(c net.Conn, p string) error {
	msg := mssPropose(p)
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got, err := readFull(c, len(msg), 5*time.Second)
	if err != nil {
		return fmt.Errorf("reading the answer to %s: %w", p, err)
	}
	if string(got) != string(msg) {
		return fmt.Errorf("%s refused: %q", p, got)
	}
	return nil
}

func slowlorisNoise(ctx context.Context, e *env) string {
	return hold(ctx, 1000, 16, func(ctx context.Context, _ int) (net.Conn, error) {
		c, err := e.one.dialTCP(ctx, e.tcp())
		if err != nil {
			return nil, err
		}
		if err := selectRaw(c, string(noise.ID)); err != nil {
			c.Close()
			return nil, err
		}
		// Message 1 (an ephemeral key: any 32 bytes), read message 2,
		// never send message 3.
		if _, err := c.Write(append([]byte{0, 32}, random(32)...)); err != nil {
			c.Close()
			return nil, err
		}
		l, err := readFull(c, 2, 5*time.Second)
		if err == nil {
			_, err = readFull(c, int(binary.BigEndian.Uint16(l)), 5*time.Second)
		}
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("reading noise message 2: %w", err)
		}
		return c, nil
	})
}

func slowlorisTLS(ctx context.Context, e *env) string {
	return hold(ctx, 1000, 16, func(ctx context.Context, _ int) (net.Conn, error) {
		c, err := e.one.dialTCP(ctx, e.tcp())
		if err != nil {
			return nil, err
		}
		if err := selectRaw(c, "/tls/1.0.0"); err != nil {
			c.Close()
			return nil, err
		}
		// A handshake record announcing 512 bytes, of which 4 come.
		_, err = c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc})
		return c, err
	})
}

// --- malformed and oversized input at every layer ---

// malformedCase sends one bad input on a fresh connection. closes says the
// victim must close the connection for it (else it resets a stream).
type malformedCase struct {
	name   string
	closes bool
	send   func(ctx context.Context, e *env, c net.Conn) (net.Conn, error) // returns the conn to watch
}

// securedCase sets up Noise and yamux first, then sends frames.
func securedCase(name string, closes bool, frames func() []byte) malformedCase {
	return malformedCase{name, closes, func(ctx context.Context, e *env, c net.Conn) (net.Conn, error) {
		sc, err := secure(ctx, c, noiseFor(newKey()), e.v.id)
		if err != nil {
			return nil, err
		}
		_, err = sc.Write(frames())
		return sc, err
	}}
}

func rawCase(name string, b func() []byte) malformedCase {
	return malformedCase{name, true, func(_ context.Context, _ *env, c net.Conn) (net.Conn, error) {
		_, err := c.Write(b())
		return c, err
	}}
}

func afterSelect(name, proto string, b func() []byte) malformedCase {
	return malformedCase{name, true, func(_ context.Context, _ *env, c net.Conn) (net.Conn, error) {
		if err := selectRaw(c, proto); err != nil {
			return nil, err
		}
		_, err := c.Write(b())
		return c, err
	}}
}

var malformedCases = []malformedCase{
	rawCase("garbage instead of multistream", func() []byte { return random(256) }),
	rawCase("multistream length 1 GiB", func() []byte { return append(uvarint(1<<30), random(64)...) }),
	rawCase("multistream token without newline", func() []byte { return append(uvarint(8), "/noise/x"...) }),
	rawCase("multistream varint of 11 bytes", func() []byte { return []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01} }),
	rawCase("multistream 200 unknown proposals", func() []byte {
		b := mssToken("/multistream/1.0.0")
		for i := range 200 {
			b = append(b, mssToken(fmt.Sprintf("/unknown/%d", i))...)
		}
		return b
	}),
	afterSelect("noise message 1 of length 0", "/noise", func() []byte { return []byte{0, 0} }),
	afterSelect("noise message 1 of 65535 bytes", "/noise", func() []byte { return append([]byte{0xff, 0xff}, random(65535)...) }),
	{"noise message 3 garbage", true, func(_ context.Context, e *env, c net.Conn) (net.Conn, error) {
		if err := selectRaw(c, "/noise"); err != nil {
			return nil, err
		}
		c.Write(append([]byte{0, 32}, random(32)...))
		l, err := readFull(c, 2, 5*time.Second)
		if err == nil {
			_, err = readFull(c, int(binary.BigEndian.Uint16(l)), 5*time.Second)
		}
		if err != nil {
			return nil, err
		}
		_, err = c.Write(append([]byte{0, 200}, random(200)...))
		return c, err
	}},
	afterSelect("tls record of 16 KiB garbage", "/tls/1.0.0", func() []byte { return append([]byte{0x16, 0x03, 0x01, 0x40, 0x00}, random(16384)...) }),
	afterSelect("tls record length 64 KiB", "/tls/1.0.0", func() []byte { return append([]byte{0x16, 0x03, 0x03, 0xff, 0xff}, random(1000)...) }),
	securedCase("yamux version 1", true, func() []byte { f := ydata(fSYN, 1, []byte("x")); f[0] = 1; return f }),
	securedCase("yamux frame type 9", true, func() []byte { return yframe(9, 0, 1, 0, nil) }),
	securedCase("yamux data frame announcing 16 MiB", true, func() []byte { return append(yframe(yData, fSYN, 1, 16<<20, nil), random(4096)...) }),
	securedCase("yamux data beyond the window", true, func() []byte { return ydata(fSYN, 1, make([]byte, yamuxWindow+1024)) }),
	securedCase("yamux window update overflow", true, func() []byte {
		return append(yframe(yWindow, fSYN, 1, 0xffffffff, nil), yframe(yWindow, 0, 1, 0xffffffff, nil)...)
	}),
	securedCase("yamux even stream id from the dialer", true, func() []byte { return ydata(fSYN, 2, mssPropose("/ipfs/ping/1.0.0")) }),
	securedCase("yamux data on stream 0", true, func() []byte { return ydata(0, 0, []byte("hello")) }),
	securedCase("yamux SYN twice", true, func() []byte { return append(ydata(fSYN, 1, nil), ydata(fSYN, 1, nil)...) }),
	securedCase("stream: multistream token of 1 MiB", false, func() []byte { return ydata(fSYN, 1, append(uvarint(1<<20), random(1000)...)) }),
	securedCase("stream: identify push garbage", false, func() []byte {
		return ydata(fSYN|fFIN, 1, append(mssPropose("/ipfs/id/push/1.0.0"), lp.Append(nil, random(500))...))
	}),
	securedCase("stream: identify push of 4 MiB", false, func() []byte {
		return ydata(fSYN, 1, append(mssPropose("/ipfs/id/push/1.0.0"), uvarint(4<<20)...))
	}),
	securedCase("stream: ping of 5 bytes then FIN", false, func() []byte { return ydata(fSYN|fFIN, 1, append(mssPropose("/ipfs/ping/1.0.0"), random(5)...)) }),
}

func malformed(ctx context.Context, e *env) string {
	var closed, open, setup atomic.Int64
	n, _ := loop(ctx, 0, 4, func(ctx context.Context, i int) error {
		mc := malformedCases[i%len(malformedCases)]
		c, err := e.one.dialTCP(ctx, e.tcp())
		if err != nil {
			return err
		}
		defer c.Close()
		w, err := mc.send(ctx, e, c)
		if err != nil {
			// A victim may close before everything is written.
			setup.Add(1)
			return nil
		}
		if !mc.closes {
			pause(ctx, 200*time.Millisecond)
			return nil
		}
		w.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.Copy(io.Discard, w); isTimeout(err) {
			open.Add(1)
		} else {
			closed.Add(1)
		}
		return nil
	})
	return fmt.Sprintf("%d inputs (%d kinds); closed by victim %d, left open 3 s %d, closed during set-up %d", n, len(malformedCases), closed.Load(), open.Load(), setup.Load())
}

// isTimeout reports whether err is a read past a deadline.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// --- yamux abuse on authenticated connections ---

// session opens a full connection (Noise, yamux) from s as key k, with a
// reader that discards what the victim sends.
func session(ctx context.Context, e *env, s src, k crypto.PrivKey) (net.Conn, error) {
	c, err := s.dialTCP(ctx, e.tcp())
	if err != nil {
		return nil, err
	}
	sc, err := secure(ctx, c, noiseFor(k), e.v.id)
	if err != nil {
		c.Close()
		return nil, err
	}
	return sc, nil
}

func windowViolation(ctx context.Context, e *env) string {
	var closed atomic.Int64
	n, failed := loop(ctx, 0, 4, func(ctx context.Context, _ int) error {
		c, err := session(ctx, e, e.one, newKey())
		if err != nil {
			return err
		}
		defer c.Close()
		go drain(c)
		// 512 KiB on a new stream whose window is 256 KiB, in 64 KiB frames.
		b := ydata(fSYN, 1, mssPropose("/ipfs/ping/1.0.0"))
		for range 8 {
			b = append(b, ydata(0, 1, make([]byte, 64<<10))...)
		}
		c.SetWriteDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Write(b); err != nil {
			closed.Add(1)
			return nil
		}
		// The victim must close; wait for it (drain closes c on EOF).
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		one := make([]byte, 1)
		if _, err := c.Read(one); err != nil && !isTimeout(err) {
			closed.Add(1)
		}
		return nil
	})
	return fmt.Sprintf("%d connections (%d failed to set up), closed by victim %d", n, failed, closed.Load())
}

// flood writes frames made by next on a few connections as fast as the
// victim takes them, reconnecting when the victim closes one. read says
// whether what the victim sends is read (a ping flood does not read).
func flood(ctx context.Context, e *env, conns int, read bool, next func(id *uint32) []byte) string {
	var c counters
	var frames atomic.Int64
	loop(ctx, 0, conns, func(ctx context.Context, _ int) error {
		sc, err := session(ctx, e, e.one, newKey())
		if err != nil {
			return err
		}
		c.opened.Add(1)
		stop := context.AfterFunc(ctx, func() { sc.Close() })
		defer stop()
		defer sc.Close()
		if read {
			go drain(sc)
		}
		id := uint32(1)
		var batch []byte
		for ctx.Err() == nil {
			batch = batch[:0]
			for range 256 {
				batch = append(batch, next(&id)...)
			}
			if _, err := sc.Write(batch); err != nil {
				if ctx.Err() == nil {
					c.closedByVictim.Add(1)
				}
				return nil
			}
			frames.Add(256)
		}
		return nil
	})
	return fmt.Sprintf("%d frames; %s", frames.Load(), c.note())
}

func synFlood(ctx context.Context, e *env) string {
	return flood(ctx, e, 4, true, func(id *uint32) []byte {
		f := yframe(yWindow, fSYN, *id, 0, nil)
		*id += 2
		return f
	})
}

func rstFlood(ctx context.Context, e *env) string {
	return flood(ctx, e, 4, true, func(id *uint32) []byte {
		f := append(ydata(fSYN, *id, mssPropose("/ipfs/ping/1.0.0")), yframe(yWindow, fRST, *id, 0, nil)...)
		*id += 2
		return f
	})
}

func pingFlood(ctx context.Context, e *env) string {
	var n atomic.Uint32 // the 4 connections' writers share it
	return flood(ctx, e, 4, false, func(*uint32) []byte {
		return yframe(yPing, fSYN, 0, n.Add(1), nil)
	})
}

// streamFill opens 1000 streams on one connection, each negotiating ping
// and sending a full window (256 KiB), and never reads the answers: the
// victim's ping handlers block writing, and the unread data stays with the
// victim.
func streamFill(ctx context.Context, e *env) string {
	sc, err := session(ctx, e, e.one, newKey())
	if err != nil {
		return "set-up failed: " + err.Error()
	}
	defer sc.Close()
	stop := context.AfterFunc(ctx, func() { sc.Close() })
	defer stop()
	// Read at the TCP level but grant no stream window: the victim's
	// writes stop at 256 KiB per stream.
	go drain(sc)
	chunk := make([]byte, 64<<10)
	streams, sent := 0, 0
	for id := uint32(1); id < 2000 && ctx.Err() == nil; id += 2 {
		hello := mssPropose("/ipfs/ping/1.0.0")
		b := ydata(fSYN, id, hello)
		for range 3 {
			b = append(b, ydata(0, id, chunk)...)
		}
		b = append(b, ydata(0, id, chunk[:len(chunk)-len(hello)])...)
		if _, err := sc.Write(b); err != nil {
			return fmt.Sprintf("victim closed the connection after %d streams, %d MiB: %v", streams, sent>>20, err)
		}
		streams++
		sent += yamuxWindow
	}
	<-ctx.Done()
	return fmt.Sprintf("%d streams, %d MiB sent and held unread", streams, sent>>20)
}

// identifyMsg is a large, well-formed identify message: 1500 listen
// addresses, 1500 protocols and an 8 KiB agent string (about 60 KiB).
func identifyMsg(k crypto.PrivKey) []byte {
	pub, _ := crypto.MarshalPublicKey(k.GetPublic())
	b := pb.AppendBytes(nil, 1, pub)
	for i := range 1500 {
		// /ip4/10.200.x.y/tcp/port
		a := []byte{0x04, 10, 200, byte(i >> 8), byte(i), 0x06, byte(i >> 8), byte(i)}
		b = pb.AppendBytes(b, 2, a)
	}
	for i := range 1500 {
		b = pb.AppendString(b, 3, fmt.Sprintf("/bloat/%d/1.0.0", i))
	}
	b = pb.AppendString(b, 5, "ipfs/0.1.0")
	agent := make([]byte, 8<<10)
	for i := range agent {
		agent[i] = 'a' + byte(i%26)
	}
	return pb.AppendString(b, 6, string(agent))
}

// identifyBloat answers the victim's identify with a bloated message and
// pushes another, on connection after connection, each with a new peer ID
// (the peerstore must stay bounded).
func identifyBloat(ctx context.Context, e *env) string {
	var answered, pushed atomic.Int64
	n, failed := loop(ctx, 0, 2, func(ctx context.Context, _ int) error {
		k := newKey()
		msg := lp.Append(nil, identifyMsg(k))
		sc, err := session(ctx, e, e.one, k)
		if err != nil {
			return err
		}
		defer sc.Close()
		var wmu sync.Mutex
		write := func(b []byte) {
			wmu.Lock()
			sc.Write(b)
			wmu.Unlock()
		}
		go yamuxReader(sc, func(typ byte, flags uint16, id, _ uint32, body []byte) error {
			if typ == yPing && flags&fSYN != 0 {
				return nil
			}
			if typ == yData && id%2 == 0 && containsToken(body, "/ipfs/id/1.0.0") {
				b := yframe(yWindow, fACK, id, 0, nil)
				b = append(b, ydata(fFIN, id, append(append(mssToken("/multistream/1.0.0"), mssToken("/ipfs/id/1.0.0")...), msg...))...)
				write(b)
				answered.Add(1)
			}
			return nil
		})
		write(ydata(fSYN|fFIN, 1, append(mssPropose("/ipfs/id/push/1.0.0"), msg...)))
		pushed.Add(1)
		pause(ctx, 500*time.Millisecond)
		return nil
	})
	return fmt.Sprintf("%d connections with new peer IDs (%d failed), %d identify answers and %d pushes of %d KiB", n, failed, answered.Load(), pushed.Load(), len(identifyMsg(newKey()))>>10)
}

func containsToken(b []byte, p string) bool {
	t := string(mssToken(p))
	for i := 0; i+len(t) <= len(b); i++ {
		if string(b[i:i+len(t)]) == t {
			return true
		}
	}
	return false
}

// --- connection floods ---

// connFlood holds up to n authenticated connections from srcs (round
// robin); sameKey uses one peer ID for all, else one per source address.
func connFlood(srcs []src, n int, sameKey bool) func(ctx context.Context, e *env) string {
	return func(ctx context.Context, e *env) string {
		keys := make([]crypto.PrivKey, len(srcs))
		for i := range keys {
			keys[i] = newKey()
			if sameKey && i > 0 {
				keys[i] = keys[0]
			}
		}
		return fmt.Sprintf("from %d addresses: ", len(srcs)) + hold(ctx, n, 16, func(ctx context.Context, i int) (net.Conn, error) {
			return session(ctx, e, srcs[i%len(srcs)], keys[i%len(srcs)])
		})
	}
}

// churn opens and closes n authenticated connections (n 0: until the
// time is up), each with a new peer ID.
func churn(n int) func(ctx context.Context, e *env) string {
	return func(ctx context.Context, e *env) string {
		start := time.Now()
		done, failed := loop(ctx, n, 8, func(ctx context.Context, _ int) error {
			sc, err := session(ctx, e, e.one, newKey())
			if err != nil {
				return err
			}
			return sc.Close()
		})
		return fmt.Sprintf("%d connections opened and closed in %s (%d failed)", done, time.Since(start).Round(time.Second), failed)
	}
}

// --- QUIC ---

func quicTLS(k crypto.PrivKey, e *env) (*tls.Config, error) {
	t, err := tlssec.New(k, nil)
	if err != nil {
		return nil, err
	}
	return t.ClientConfig(e.v.id)
}

// quicInitialFlood starts handshakes and abandons each after its first
// flight: the victim has done its share of the handshake for nothing.
func quicInitialFlood(ctx context.Context, e *env) string {
	conf, err := quicTLS(newKey(), e)
	if err != nil {
		return "set-up failed: " + err.Error()
	}
	var sent atomic.Int64
	loop(ctx, 0, 8, func(ctx context.Context, _ int) error {
		pc, err := e.one.listenUDP()
		if err != nil {
			return err
		}
		tr := &quic.Transport{Conn: pc}
		defer pc.Close()
		defer tr.Close()
		for range 50 {
			if ctx.Err() != nil {
				break
			}
			dctx, cancel := context.WithTimeout(ctx, 2*time.Millisecond)
			qc, err := tr.Dial(dctx, net.UDPAddrFromAddrPort(e.quic()), conf.Clone(), &quic.Config{HandshakeIdleTimeout: time.Second})
			cancel()
			if err == nil {
				qc.CloseWithError(0, "")
			}
			sent.Add(1)
		}
		return nil
	})
	return fmt.Sprintf("%d handshakes started and abandoned", sent.Load())
}

// quicHeld holds up to 500 QUIC connections from one address and peer ID.
func quicHeld(ctx context.Context, e *env) string {
	k := newKey()
	conf, err := quicTLS(k, e)
	if err != nil {
		return "set-up failed: " + err.Error()
	}
	pc, err := e.one.listenUDP()
	if err != nil {
		return "set-up failed: " + err.Error()
	}
	tr := &quic.Transport{Conn: pc}
	defer pc.Close()
	defer tr.Close()
	var c counters
	var mu sync.Mutex
	var conns []*quic.Conn
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for ctx.Err() == nil && next.Add(1) <= 500 {
				dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				qc, err := tr.Dial(dctx, net.UDPAddrFromAddrPort(e.quic()), conf.Clone(), &quic.Config{KeepAlivePeriod: 10 * time.Second})
				cancel()
				if err != nil {
					if ctx.Err() == nil {
						c.failed.Add(1)
					}
					continue
				}
				c.opened.Add(1)
				mu.Lock()
				conns = append(conns, qc)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	<-ctx.Done()
	mu.Lock()
	defer mu.Unlock()
	for _, qc := range conns {
		select {
		case <-qc.Context().Done():
			c.closedByVictim.Add(1)
		default:
		}
		qc.CloseWithError(0, "")
	}
	return c.note()
}

// --- WebRTC-direct ---

// webrtcFlood sends STUN binding requests, each with a new ufrag (a new
// connection attempt to the listener), from 64 source ports, at up to
// 5000 a second (the attacker shares the victim's CPUs: an unbounded
// flood would mostly measure the machine).
func webrtcFlood(ctx context.Context, e *env) string {
	var socks []*net.UDPConn
	for range 64 {
		pc, err := e.one.listenUDP()
		if err != nil {
			return "set-up failed: " + err.Error()
		}
		defer pc.Close()
		socks = append(socks, pc)
	}
	dst := net.UDPAddrFromAddrPort(e.rtc())
	var sent int64
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil {
		for range 50 {
			ufrag := "libp2p+webrtc+v1/" + fmt.Sprintf("%x", random(16))
			m, err := stun.Build(stun.TransactionID, stun.BindingRequest,
				stun.NewUsername(ufrag+":"+ufrag), ice.AttrControlling(binary.BigEndian.Uint64(random(8))),
				ice.PriorityAttr(2130706431), stun.NewShortTermIntegrity(ufrag), stun.Fingerprint)
			if err != nil {
				return "building STUN: " + err.Error()
			}
			socks[sent%int64(len(socks))].WriteToUDP(m.Raw, dst)
			sent++
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	return fmt.Sprintf("%d binding requests with new ufrags", sent)
}
