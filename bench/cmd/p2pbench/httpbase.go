package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/quic-go/quic-go/http3"
)

// The HTTP baselines, measured in the same run as the libp2p stacks.
const (
	httpH1 = "HTTPS/1.1"
	httpH2 = "HTTP/2"
	httpH3 = "HTTP/3"
)

var httpKinds = []string{httpH1, httpH2, httpH3}

// httpFamily is the transport family an HTTP baseline stands for.
func httpFamily(kind string) string {
	if kind == httpH3 {
		return "QUIC"
	}
	return "TCP"
}

// httpServer serves /echo (the request body back) and /sink (reads the
// whole body, then answers with its length) over one HTTP version, on
// loopback, with a self-signed certificate and TLS 1.3.
type httpServer struct {
	kind  string
	url   string
	close func() error
}

func httpMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	})
	mux.HandleFunc("/sink", func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, bufSize)
		var total uint64
		for {
			n, err := r.Body.Read(buf)
			total += uint64(n)
			if err != nil {
				break
			}
		}
		var ack [8]byte
		binary.BigEndian.PutUint64(ack[:], total)
		w.Header().Set("Content-Length", "8")
		w.Write(ack[:])
	})
	return mux
}

func newHTTPServer(kind string) (*httpServer, error) {
	cert, err := selfSigned()
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	if kind == httpH3 {
		pc, err := net.ListenPacket("udp", net.JoinHostPort(listenIP, "0"))
		if err != nil {
			return nil, fmt.Errorf("http3: %w", err)
		}
		srv := &http3.Server{Handler: httpMux(), TLSConfig: http3.ConfigureTLSConfig(tc)}
		go srv.Serve(pc)
		return &httpServer{kind, "https://" + pc.LocalAddr().String(), func() error {
			srv.Close()
			return pc.Close()
		}}, nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(listenIP, "0"))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	srv := &http.Server{Handler: httpMux(), TLSConfig: tc, Protocols: httpProtocols(kind)}
	go srv.ServeTLS(ln, "", "")
	return &httpServer{kind, "https://" + ln.Addr().String(), srv.Close}, nil
}

func httpProtocols(kind string) *http.Protocols {
	var p http.Protocols
	if kind == httpH2 {
		p.SetHTTP2(true)
	} else {
		p.SetHTTP1(true)
	}
	return &p
}

// newClient builds a fresh client for the server's HTTP version; close
// drops its connections.
func (s *httpServer) newClient() (*http.Client, func()) {
	// As with the bare TLS baseline, certificate verification is not
	// what is measured.
	tc := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}
	if s.kind == httpH3 {
		tr := &http3.Transport{TLSClientConfig: tc}
		return &http.Client{Transport: tr}, func() { tr.Close() }
	}
	tr := &http.Transport{TLSClientConfig: tc, Protocols: httpProtocols(s.kind), DisableCompression: true}
	return &http.Client{Transport: tr}, tr.CloseIdleConnections
}

// firstReply is the HTTP twin of the libp2p firstReply: a fresh client
// (built before the clock starts) sends a 1-byte POST on a new connection
// and reads the byte back.
func (s *httpServer) firstReply(ctx context.Context) (time.Duration, error) {
	c, done := s.newClient()
	defer done()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/echo", bytes.NewReader([]byte{42}))
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s: echo: %w", s.kind, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if err != nil || len(b) != 1 || b[0] != 42 {
		return 0, fmt.Errorf("%s: echo reply %v: %v", s.kind, b, err)
	}
	return d, nil
}

// zeros is an io.Reader of n zero bytes, handed out in bufSize pieces.
type zeros struct{ left int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.left <= 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), z.left, bufSize))
	clear(p[:n])
	z.left -= int64(n)
	return n, nil
}

// httpUploader keeps one client whose connection is set up (by a first
// request) before any upload is timed.
type httpUploader struct {
	s    *httpServer
	c    *http.Client
	done func()
}

func (s *httpServer) uploader(ctx context.Context) (*httpUploader, error) {
	c, done := s.newClient()
	u := &httpUploader{s, c, done}
	if _, err := u.post(ctx, 1); err != nil {
		done()
		return nil, err
	}
	return u, nil
}

// post sends size bytes to /sink and waits for the server's count.
func (u *httpUploader) post(ctx context.Context, size int64) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.s.url+"/sink", &zeros{size})
	if err != nil {
		return 0, err
	}
	req.ContentLength = size
	start := time.Now()
	resp, err := u.c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s: upload: %w", u.s.kind, err)
	}
	var ack [8]byte
	_, err = io.ReadFull(resp.Body, ack[:])
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("%s: upload ack: %w", u.s.kind, err)
	}
	if got := binary.BigEndian.Uint64(ack[:]); got != uint64(size) {
		return 0, fmt.Errorf("%s: server read %d bytes, want %d", u.s.kind, got, size)
	}
	return rate(size, d), nil
}
