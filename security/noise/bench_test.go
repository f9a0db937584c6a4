package noise

import (
	"context"
	"io"
	"net"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// BenchmarkChaChaSeal is the baseline: one core sealing max-size Noise
// frames in place.
func BenchmarkChaChaSeal(b *testing.B) {
	aead, _ := chacha20poly1305.New(make([]byte, 32))
	buf := make([]byte, maxFrame)
	nonce := make([]byte, 12)
	b.SetBytes(maxPlain)
	for b.Loop() {
		aead.Seal(buf[:0], nonce, buf[:maxPlain], nil)
	}
}

// benchThroughput measures one direction of a secured loopback TCP
// connection with 64 KiB writes.
func benchThroughput(b *testing.B, w, r net.Conn) {
	const size = 64 << 10
	data := make([]byte, size)
	done := make(chan error, 1)
	go func() {
		_, err := io.CopyBuffer(io.Discard, r, make([]byte, 256<<10))
		done <- err
	}()
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := w.Write(data); err != nil {
			b.Fatal(err)
		}
	}
	w.Close()
	<-done
	b.StopTimer()
	r.Close()
}

func BenchmarkNoiseThroughput(b *testing.B) {
	ic, rc := securedPair(b, tcpPair)
	benchThroughput(b, ic, rc)
}

// BenchmarkTCPThroughput is the raw loopback baseline.
func BenchmarkTCPThroughput(b *testing.B) {
	a, c := tcpPair(b)
	benchThroughput(b, a, c)
}

// BenchmarkNoiseHandshake runs complete handshakes over net.Pipe; ns/op is
// the CPU of both sides plus the pipe hand-offs.
func BenchmarkNoiseHandshake(b *testing.B) {
	ini, res := newTransport(b, nil, nil), newTransport(b, nil, nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		a, c := net.Pipe()
		ch := make(chan error, 1)
		go func() {
			_, err := res.SecureInbound(ctx, c, "")
			ch <- err
		}()
		if _, err := ini.SecureOutbound(ctx, a, res.LocalPeer()); err != nil {
			b.Fatal(err)
		}
		if err := <-ch; err != nil {
			b.Fatal(err)
		}
		a.Close()
		c.Close()
	}
}

// BenchmarkChaChaOpen is the receive-side baseline: opening max-size frames
// in place.
func BenchmarkChaChaOpen(b *testing.B) {
	aead, _ := chacha20poly1305.New(make([]byte, 32))
	nonce := make([]byte, 12)
	ct := aead.Seal(nil, nonce, make([]byte, maxPlain), nil)
	buf := make([]byte, len(ct))
	b.SetBytes(maxPlain)
	for b.Loop() {
		copy(buf, ct)
		if _, err := aead.Open(buf[:0], nonce, buf, nil); err != nil {
			b.Fatal(err)
		}
	}
}
