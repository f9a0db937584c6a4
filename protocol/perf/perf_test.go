package perf

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tachyon-p2p/tachyon/internal/leakcheck"
)

// pipeStream is one end of an in-memory perf stream made of two net.Pipes,
// one per direction, so that each direction can be closed on its own.
type pipeStream struct {
	r net.Conn // reads what the other end writes
	w net.Conn // writes what the other end reads

	// For the server end: whether the upload's EOF was seen, and a write
	// that came before it (which the spec forbids).
	sawEOF     atomic.Bool
	earlyWrite atomic.Bool
	read       atomic.Uint64
	written    atomic.Uint64
}

func (p *pipeStream) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.read.Add(uint64(n))
	if err == io.EOF {
		p.sawEOF.Store(true)
	}
	return n, err
}

func (p *pipeStream) Write(b []byte) (int, error) {
	if !p.sawEOF.Load() {
		p.earlyWrite.Store(true)
	}
	n, err := p.w.Write(b)
	p.written.Add(uint64(n))
	return n, err
}

func (p *pipeStream) CloseWrite() error { return p.w.Close() }
func (p *pipeStream) Close() error      { p.w.Close(); return p.r.Close() }
func (p *pipeStream) Reset() error      { return p.Close() }

// pair returns the client and server ends of an in-memory stream; both are
// closed when the test ends.
func pair(t *testing.T) (client, server *pipeStream) {
	c2sW, c2sR := net.Pipe()
	s2cW, s2cR := net.Pipe()
	client = &pipeStream{r: s2cR, w: c2sW}
	server = &pipeStream{r: c2sR, w: s2cW}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// goServe runs serve on s in a goroutine and then closes or resets s, as
// Handle does; the returned wait gives serve's error.
func goServe(s Stream) (wait func() error) {
	done := make(chan error, 1)
	go func() {
		_, _, err := serve(s)
		if err != nil {
			s.Reset()
		} else {
			s.Close()
		}
		done <- err
	}()
	return func() error { return <-done }
}

func TestRunAgainstServe(t *testing.T) {
	leakcheck.Check(t)
	cases := []struct {
		name             string
		upload, download uint64
	}{
		{"nothing", 0, 0},
		{"one byte each way", 1, 1},
		{"upload only", 3*BufferSize + 5, 0},
		{"download only", 0, 3*BufferSize + 7},
		{"both", 2*BufferSize + 1, 2*BufferSize - 1},
		{"first chunk boundary", BufferSize - 8, BufferSize - 8},
		{"just past first chunk", BufferSize - 7, BufferSize + 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client, server := pair(t)
			wait := goServe(server)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res, err := Run(ctx, client, tc.upload, tc.download, nil)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if err := wait(); err != nil {
				t.Fatalf("serve: %v", err)
			}
			if res.Upload != tc.upload || res.Download != tc.download {
				t.Errorf("Result up %d down %d, want %d and %d", res.Upload, res.Download, tc.upload, tc.download)
			}
			if got := server.read.Load(); got != tc.upload+8 {
				t.Errorf("server read %d bytes, want %d", got, tc.upload+8)
			}
			if got := server.written.Load(); got != tc.download {
				t.Errorf("server wrote %d bytes, want %d", got, tc.download)
			}
			if server.earlyWrite.Load() {
				t.Error("server wrote before the upload ended")
			}
			if res.UploadTime <= 0 || res.DownloadTime <= 0 || res.Total() != res.UploadTime+res.DownloadTime {
				t.Errorf("timings %+v", res)
			}
		})
	}
}

// TestWire checks the bytes on the wire against the spec: the client sends
// the big-endian size then its upload then EOF; the server sends exactly
// the size asked for, and only after the upload's EOF.
func TestWire(t *testing.T) {
	leakcheck.Check(t)
	t.Run("client", func(t *testing.T) {
		client, server := pair(t)
		got := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(server.r)
			got <- b
			server.w.Close() // an empty answer: a short download
		}()
		_, err := Run(context.Background(), client, 3, 0x0102030405060708, nil)
		if !errors.Is(err, ErrShortDownload) {
			t.Errorf("Run error %v, want ErrShortDownload", err)
		}
		want := []byte{1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0}
		if b := <-got; !bytes.Equal(b, want) {
			t.Errorf("client sent % x, want % x", b, want)
		}
	})
	t.Run("server", func(t *testing.T) {
		client, server := pair(t)
		wait := goServe(server)
		if _, err := client.w.Write([]byte{0, 0, 0, 0, 0, 0, 0, 5, 0xaa, 0xbb}); err != nil {
			t.Fatal(err)
		}
		// Nothing may come back before the upload ends.
		client.r.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		var one [1]byte
		if n, err := client.r.Read(one[:]); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read before half-close: %d bytes, %v; want a timeout", n, err)
		}
		client.r.SetReadDeadline(time.Time{})
		client.CloseWrite()
		b, err := io.ReadAll(client.r)
		if err != nil {
			t.Fatal(err)
		}
		if want := make([]byte, 5); !bytes.Equal(b, want) {
			t.Errorf("server sent % x, want % x", b, want)
		}
		if err := wait(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
}

func TestServeErrors(t *testing.T) {
	leakcheck.Check(t)
	cases := []struct {
		name string
		send []byte
	}{
		{"no header", nil},
		{"short header", []byte{0, 0, 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client, server := pair(t)
			wait := goServe(server)
			client.w.Write(tc.send)
			client.CloseWrite()
			err := wait()
			if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
				t.Errorf("serve: %v, want an EOF error", err)
			}
			if server.written.Load() != 0 {
				t.Errorf("server sent %d bytes", server.written.Load())
			}
		})
	}
	t.Run("client resets during download", func(t *testing.T) {
		client, server := pair(t)
		wait := goServe(server)
		var hdr [8]byte
		binary.BigEndian.PutUint64(hdr[:], 10*BufferSize)
		client.w.Write(hdr[:])
		client.CloseWrite()
		io.ReadFull(client.r, make([]byte, 1000))
		client.Reset()
		if err := wait(); err == nil {
			t.Error("serve: no error after the client reset")
		}
	})
}

// fakeServer answers a perf request with n bytes, regardless of what was
// asked.
func fakeServer(s *pipeStream, n int) {
	io.Copy(io.Discard, s.r)
	s.w.Write(make([]byte, n))
	s.w.Close()
}

func TestRunErrors(t *testing.T) {
	leakcheck.Check(t)
	cases := []struct {
		name     string
		download uint64
		answer   int
		want     error
	}{
		{"short", 100, 99, ErrShortDownload},
		{"empty", 100, 0, ErrShortDownload},
		{"long", 100, 101, ErrLongDownload},
		{"unlimited ended", Unlimited, 10, ErrShortDownload},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client, server := pair(t)
			go fakeServer(server, tc.answer)
			res, err := Run(context.Background(), client, 5, tc.download, nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Run error %v, want %v", err, tc.want)
			}
			if res.Upload != 5 {
				t.Errorf("Result.Upload %d, want 5", res.Upload)
			}
			if res.Download > uint64(tc.answer) {
				t.Errorf("Result.Download %d, more than the %d sent", res.Download, tc.answer)
			}
		})
	}
}

// TestRunCancel stops unlimited transfers with the context: Run returns
// promptly with the partial result and the context's error, and the server
// ends too.
func TestRunCancel(t *testing.T) {
	leakcheck.Check(t)
	cases := []struct {
		name             string
		upload, download uint64
		// serveFails: the server sees the reset as an error. In a pipe a
		// reset during the upload looks like a clean EOF.
		serveFails bool
	}{
		{"unlimited upload", Unlimited, 0, false},
		{"unlimited download", 0, Unlimited, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client, server := pair(t)
			wait := goServe(server)
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			start := time.Now()
			res, err := Run(ctx, client, tc.upload, tc.download, nil)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Run error %v, want DeadlineExceeded", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Run took %s after a 100ms deadline", d)
			}
			if res.Upload+res.Download == 0 {
				t.Error("no bytes moved in 100ms")
			}
			if err := wait(); (err != nil) != tc.serveFails {
				t.Errorf("serve after the client reset: %v; want an error: %v", err, tc.serveFails)
			}
		})
	}
	t.Run("already done", func(t *testing.T) {
		client, _ := pair(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := Run(ctx, client, 1, 1, nil); !errors.Is(err, context.Canceled) {
			t.Errorf("Run error %v, want Canceled", err)
		}
	})
}

func TestProgress(t *testing.T) {
	leakcheck.Check(t)
	client, server := pair(t)
	wait := goServe(server)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu       sync.Mutex
		reports  []Progress
		returned atomic.Bool
	)
	res, err := run(ctx, client, 0, Unlimited, func(p Progress) {
		if returned.Load() {
			t.Error("progress called after Run returned")
		}
		mu.Lock()
		reports = append(reports, p)
		if len(reports) == 5 {
			cancel()
		}
		mu.Unlock()
	}, 10*time.Millisecond)
	returned.Store(true)
	wait()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run error %v, want Canceled", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reports) < 5 {
		t.Fatalf("%d reports, want at least 5", len(reports))
	}
	var sum uint64
	var elapsed time.Duration
	for i, p := range reports {
		sum += p.Download
		elapsed += p.Interval
		if p.TotalDownload != sum || p.TotalUpload != 0 || p.Upload != 0 {
			t.Errorf("report %d: %+v; sum of downloads so far %d", i, p, sum)
		}
		if p.Interval <= 0 || p.Elapsed != elapsed {
			t.Errorf("report %d: interval %s, elapsed %s; sum of intervals %s", i, p.Interval, p.Elapsed, elapsed)
		}
	}
	if last := reports[len(reports)-1]; res.Download < last.TotalDownload {
		t.Errorf("Result.Download %d below the last report's %d", res.Download, last.TotalDownload)
	}
}
