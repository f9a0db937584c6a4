package yamux

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"net"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/limits"
)

// tlsPair wraps a loopback TCP pair in TLS 1.3, to measure yamux over the
// kind of secure channel it runs on in libp2p.
func tlsPair(b testing.TB) (net.Conn, net.Conn) {
	b.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	a, c := tcpPair(b)
	srv := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
	cli := tls.Client(a, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	if err := cli.Handshake(); err != nil {
		b.Fatal(err)
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	return cli, srv
}

// defaultScopes returns the scopes of both ends of a loopback connection
// under the default limits, which never refuse a single transfer: the
// cost of accounting, without its refusals.
func defaultScopes(b testing.TB) (network.ConnScope, network.ConnScope) {
	m, err := limits.New(limits.Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	out, err := m.OpenConn(network.DirOutbound, "server", ma.StringCast("/ip4/127.0.0.1/tcp/1"))
	if err != nil {
		b.Fatal(err)
	}
	in, err := m.OpenConn(network.DirInbound, "client", ma.StringCast("/ip4/127.0.0.1/tcp/2"))
	if err != nil {
		b.Fatal(err)
	}
	return out, in
}

// BenchmarkThroughput measures one stream's throughput; the -limits
// variants run under the default limits.
func BenchmarkThroughput(b *testing.B) {
	for _, tt := range []struct {
		name   string
		pair   func(testing.TB) (net.Conn, net.Conn)
		limits bool
	}{{"tcp", tcpPair, false}, {"tls", tlsPair, false}, {"tcp-limits", tcpPair, true}, {"tls-limits", tlsPair, true}} {
		b.Run(tt.name, func(b *testing.B) {
			a, c := tt.pair(b)
			var cs, ss network.ConnScope
			if tt.limits {
				cs, ss = defaultScopes(b)
			}
			client := NewSessionScope(a, true, nil, cs)
			server := NewSessionScope(c, false, nil, ss)
			defer client.Close()
			defer server.Close()
			done := make(chan error, 1)
			go func() {
				st, err := server.Accept()
				if err != nil {
					done <- err
					return
				}
				buf := make([]byte, 64<<10)
				_, err = io.CopyBuffer(io.Discard, struct{ io.Reader }{st}, buf)
				done <- err
			}()
			st, err := client.Open(ctxT(b))
			if err != nil {
				b.Fatal(err)
			}
			chunk := make([]byte, 64<<10)
			b.SetBytes(int64(len(chunk)))
			b.ResetTimer()
			for range b.N {
				if _, err := st.Write(chunk); err != nil {
					b.Fatalf("%v (client: %v, server: %v)", err, client.Err(), server.Err())
				}
			}
			st.CloseWrite()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkRawTLS is the ceiling: the same transfer on the TLS connection
// without yamux.
func BenchmarkRawTLS(b *testing.B) {
	a, c := tlsPair(b)
	defer a.Close()
	defer c.Close()
	done := make(chan struct{})
	go func() {
		io.CopyBuffer(io.Discard, struct{ io.Reader }{c}, make([]byte, 64<<10))
		close(done)
	}()
	chunk := make([]byte, 64<<10)
	b.SetBytes(int64(len(chunk)))
	b.ResetTimer()
	for range b.N {
		if _, err := a.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	a.Close()
	<-done
}

func BenchmarkOpenStream(b *testing.B) { benchmarkOpenStream(b, false) }

func BenchmarkOpenStreamLimits(b *testing.B) { benchmarkOpenStream(b, true) }

func benchmarkOpenStream(b *testing.B, withLimits bool) {
	a, c := tcpPair(b)
	var cs, ss network.ConnScope
	if withLimits {
		cs, ss = defaultScopes(b)
	}
	client := NewSessionScope(a, true, nil, cs)
	server := NewSessionScope(c, false, nil, ss)
	defer client.Close()
	defer server.Close()
	go func() {
		for {
			st, err := server.Accept()
			if err != nil {
				return
			}
			st.Close()
		}
	}()
	ctx := ctxT(b)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		st, err := client.Open(ctx)
		if err != nil {
			b.Fatal(err)
		}
		st.Close()
	}
}
