package tls

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
)

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

func BenchmarkTLSThroughput(b *testing.B) {
	cli, srv := newTransport(b, nil, nil), newTransport(b, nil, nil)
	a, c := tcpPair(b)
	cr, sr := handshakePair(b, cli, srv, a, c, srv.LocalPeer())
	if cr.err != nil || sr.err != nil {
		b.Fatal(cr.err, sr.err)
	}
	benchThroughput(b, cr.conn, sr.conn)
}

// BenchmarkBareTLSThroughput is plain crypto/tls 1.3 with the same kind of
// certificate and no libp2p checks: the ceiling for BenchmarkTLSThroughput.
func BenchmarkBareTLSThroughput(b *testing.B) {
	cert, err := newCertificate(newKey(b, 1))
	if err != nil {
		b.Fatal(err)
	}
	a, c := tcpPair(b)
	srv := tls.Server(c, &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}})
	cli := tls.Client(a, &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true})
	go srv.Handshake()
	if err := cli.Handshake(); err != nil {
		b.Fatal(err)
	}
	benchThroughput(b, cli, srv)
}

// BenchmarkTLSHandshake runs complete handshakes over net.Pipe; ns/op is the
// CPU of both sides.
func BenchmarkTLSHandshake(b *testing.B) {
	cli, srv := newTransport(b, nil, nil), newTransport(b, nil, nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		a, c := net.Pipe()
		ch := make(chan error, 1)
		go func() {
			_, err := srv.SecureInbound(ctx, c, "")
			ch <- err
		}()
		if _, err := cli.SecureOutbound(ctx, a, srv.LocalPeer()); err != nil {
			b.Fatal(err)
		}
		if err := <-ch; err != nil {
			b.Fatal(err)
		}
		a.Close()
		c.Close()
	}
}
