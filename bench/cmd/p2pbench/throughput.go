package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

const mib = 1 << 20

func rate(size int64, d time.Duration) float64 { return float64(size) / mib / d.Seconds() }

// uploadOnce sends size bytes on a new stream from client to server and
// returns MiB/s, timed from the first write to the sink's acknowledgement.
// The connection already exists, so no handshake is counted.
func uploadOnce(ctx context.Context, client endpoint, server peerRef, size int64) (float64, error) {
	s, err := client.newStream(ctx, server, sinkProto)
	if err != nil {
		return 0, fmt.Errorf("new stream: %w", err)
	}
	defer s.Close()
	start := time.Now()
	if err := upload(s, s.CloseWrite, size); err != nil {
		s.Reset()
		return 0, err
	}
	return rate(size, time.Since(start)), nil
}

// profiled runs f under the CPU profiler when dir is set, writing
// dir/name.pprof.
func profiled(dir, name string, f func() error) error {
	if dir == "" {
		return f()
	}
	out, err := os.Create(filepath.Join(dir, name+".pprof"))
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	defer out.Close()
	if err := pprof.StartCPUProfile(out); err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	defer pprof.StopCPUProfile()
	return f()
}

// bareTLS is the baseline for the TLS rows: crypto/tls 1.3 straight over
// loopback TCP, with the same write size and sink as the libp2p stacks.
type bareTLS struct {
	ln  net.Listener
	cfg *tls.Config
}

func newBareTLS() (*bareTLS, error) {
	cert, err := selfSigned()
	if err != nil {
		return nil, err
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS13,
	})
	if err != nil {
		return nil, fmt.Errorf("bare tls: %w", err)
	}
	b := &bareTLS{
		ln: ln,
		// Verification is not what is measured; the libp2p stacks check
		// their peer's key during the untimed handshake as well.
		cfg: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13},
	}
	go b.accept()
	return b, nil
}

func (b *bareTLS) accept() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			sink(c)
		}()
	}
}

func (b *bareTLS) uploadOnce(size int64) (float64, error) {
	return b.uploadTo(b.ln.Addr().String(), size)
}

// uploadTo is uploadOnce to a bare TLS server at addr (another process's).
func (b *bareTLS) uploadTo(addr string, size int64) (float64, error) {
	c, err := tls.Dial("tcp", addr, b.cfg)
	if err != nil {
		return 0, fmt.Errorf("bare tls: dial: %w", err)
	}
	defer c.Close()
	if err := c.Handshake(); err != nil {
		return 0, fmt.Errorf("bare tls: handshake: %w", err)
	}
	start := time.Now()
	if err := upload(c, c.CloseWrite, size); err != nil {
		return 0, fmt.Errorf("bare tls: %w", err)
	}
	return rate(size, time.Since(start)), nil
}

func (b *bareTLS) close() error { return b.ln.Close() }

func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("bare tls: key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("bare tls: certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// sealRate is one core's ChaCha20-Poly1305 encryption rate in MiB/s for
// 64 KiB messages, the ceiling for a Noise stream (Noise seals every
// message with this AEAD and is single-threaded per direction).
func sealRate(d time.Duration) (float64, error) {
	aead, err := chacha20poly1305.New(make([]byte, chacha20poly1305.KeySize))
	if err != nil {
		return 0, fmt.Errorf("chacha20poly1305: %w", err)
	}
	msg := make([]byte, bufSize)
	dst := make([]byte, 0, len(msg)+aead.Overhead())
	nonce := make([]byte, aead.NonceSize())
	var ctr uint64
	start := time.Now()
	for time.Since(start) < d {
		for range 16 {
			binary.LittleEndian.PutUint64(nonce[4:], ctr)
			ctr++
			dst = aead.Seal(dst[:0], nonce, msg, nil)
		}
	}
	return rate(int64(ctr)*int64(len(msg)), time.Since(start)), nil
}
