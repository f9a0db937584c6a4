// Package perf implements the libp2p perf protocol, /perf/1.0.0 (specs
// perf/perf.md), a client-driven throughput and latency benchmark.
//
// On one stream:
//
//	client                                     server
//	u64 big-endian N (bytes wanted back) ─────▶ read N
//	upload bytes, any number ─────────────────▶ read and discard until EOF
//	half-close (FIN) ─────────────────────────▶ (only now, never earlier:)
//	read until EOF ◀──────────────────────────── send N bytes, close
//
// N = math.MaxUint64 means "send until I close". The protocol lets any
// client make the server do a lot of work: never serve it by default, nor on
// a publicly reachable node.
//
// Handle is the server's stream handler; Run is the client side. Both move
// data in BufferSize chunks from a pooled buffer, so that a transfer
// allocates nothing per read or write.
package perf

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/protocol"
)

// ID is the protocol id of perf.
const ID protocol.ID = "/perf/1.0.0"

// Unlimited as the download size asks the server to send until the client
// closes; as the upload size, Run uploads until its context ends.
const Unlimited = math.MaxUint64

// BufferSize is the size of the chunks Handle and Run read and write. It
// spans several muxer frames, so one call moves a lot of data.
const BufferSize = 256 << 10

// ProgressInterval is how often Run reports progress.
const ProgressInterval = time.Second

var (
	// ErrShortDownload means the server closed the stream before sending
	// every byte asked for.
	ErrShortDownload = errors.New("perf: server sent fewer bytes than asked")
	// ErrLongDownload means the server sent more bytes than asked for.
	ErrLongDownload = errors.New("perf: server sent more bytes than asked")
)

// Stream is what perf needs of a negotiated stream; network.Stream
// satisfies it.
type Stream interface {
	io.ReadWriter
	// CloseWrite half-closes: the peer reads EOF after the data written.
	CloseWrite() error
	// Close closes both directions.
	Close() error
	// Reset aborts the stream in both directions.
	Reset() error
}

var _ Stream = network.Stream(nil)

var buffers = sync.Pool{New: func() any { b := make([]byte, BufferSize); return &b }}

// Handle serves one perf stream: it reads the size the client wants, drains
// the client's upload to EOF, then sends that many bytes and closes. It
// resets the stream on any failure, and when the client stops an Unlimited
// download.
func Handle(s network.Stream) { handle(s, nil) }

// Tracer is told about every perf run that ended, on either side: the
// bytes sent and received (the size header excluded) and its error, nil
// for a run that went through. It must not block.
type Tracer interface {
	Run(sent, received uint64, err error)
}

// Server serves perf streams like Handle, telling Tracer (when not nil)
// about each.
type Server struct {
	Tracer Tracer
}

// Handle serves one perf stream; see the package's Handle.
func (srv *Server) Handle(s network.Stream) { handle(s, srv.Tracer) }

func handle(s Stream, t Tracer) {
	in, out, err := serve(s)
	if t != nil {
		t.Run(out, in, err)
	}
	if err != nil {
		s.Reset()
		return
	}
	s.Close()
}

// serve is Handle without the final close or reset. It returns the bytes
// received and sent.
func serve(s Stream) (in, out uint64, err error) {
	bp := buffers.Get().(*[]byte)
	defer buffers.Put(bp)
	buf := *bp

	if _, err := io.ReadFull(s, buf[:8]); err != nil {
		return 0, 0, fmt.Errorf("perf: reading the requested size: %w", err)
	}
	want := binary.BigEndian.Uint64(buf[:8])
	// The spec forbids sending while the upload is still coming: drain
	// first, then send.
	in, err = drain(s, buf, nil)
	if err != nil {
		return in, 0, fmt.Errorf("perf: reading the upload: %w", err)
	}
	clear(buf)
	out, err = send(s, buf, want, nil)
	if err != nil {
		return in, out, fmt.Errorf("perf: sending %d bytes: %w", want, err)
	}
	return in, out, nil
}

// drain reads s to EOF through buf, counting into n (when not nil), and
// returns the byte count.
func drain(r io.Reader, buf []byte, n *atomic.Uint64) (uint64, error) {
	var total uint64
	for {
		k, err := r.Read(buf)
		total += uint64(k)
		if n != nil && k > 0 {
			n.Add(uint64(k))
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// send writes size bytes of buf, repeated, to w, counting into n (when not
// nil). Unlimited keeps writing until w fails.
func send(w io.Writer, buf []byte, size uint64, n *atomic.Uint64) (uint64, error) {
	var total uint64
	for size == Unlimited || total < size {
		chunk := buf
		if left := size - total; left < uint64(len(chunk)) {
			chunk = chunk[:left]
		}
		k, err := w.Write(chunk)
		total += uint64(k)
		if n != nil && k > 0 {
			n.Add(uint64(k))
		}
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// Progress is a report Run makes every ProgressInterval.
type Progress struct {
	// Interval is the time since the previous report (or since Run began).
	Interval time.Duration
	// Upload and Download are the bytes moved during Interval.
	Upload, Download uint64
	// Elapsed is the time since Run began.
	Elapsed time.Duration
	// TotalUpload and TotalDownload are the bytes moved since Run began.
	TotalUpload, TotalDownload uint64
}

// Result is what a perf run measured.
type Result struct {
	// Upload and Download are the payload bytes sent and received (the
	// 8-byte size header is not counted).
	Upload, Download uint64
	// UploadTime runs from the start of Run to the half-close;
	// DownloadTime from the half-close to the server's EOF. Between the
	// two the server drains the upload and starts sending: the first
	// download byte arrives about one round trip after the half-close.
	UploadTime, DownloadTime time.Duration
}

// Total is the duration of the whole exchange.
func (r Result) Total() time.Duration { return r.UploadTime + r.DownloadTime }

// Run is the client side on a fresh perf stream: it asks for download
// bytes, uploads upload bytes, half-closes, and reads the server's answer
// to EOF, checking it has exactly download bytes. Unlimited as upload
// uploads until ctx ends; Unlimited as download reads until ctx ends. In
// both cases Run returns the partial Result and an error wrapping
// ctx.Err().
//
// If progress is not nil, Run calls it every ProgressInterval from a
// goroutine of its own, never concurrently and never after Run returns.
// When ctx ends Run resets s; otherwise it closes s.
func Run(ctx context.Context, s Stream, upload, download uint64, progress func(Progress)) (Result, error) {
	return run(ctx, s, upload, download, progress, ProgressInterval)
}

// RunTraced is Run, telling t (when not nil) about the run when it ends.
func RunTraced(ctx context.Context, s Stream, upload, download uint64, progress func(Progress), t Tracer) (Result, error) {
	res, err := run(ctx, s, upload, download, progress, ProgressInterval)
	if t != nil {
		t.Run(res.Upload, res.Download, err)
	}
	return res, err
}

func run(ctx context.Context, s Stream, upload, download uint64, progress func(Progress), interval time.Duration) (Result, error) {
	if err := ctx.Err(); err != nil {
		s.Reset()
		return Result{}, fmt.Errorf("perf: %w", err)
	}
	bp := buffers.Get().(*[]byte)
	defer buffers.Put(bp)
	buf := *bp

	var up, down atomic.Uint64
	start := time.Now()
	if progress != nil {
		stop := startReporter(start, &up, &down, progress, interval)
		defer stop()
	}
	stopReset := context.AfterFunc(ctx, func() { s.Reset() })
	res, err := exchange(s, buf, upload, download, start, &up, &down)
	if !stopReset() {
		return res, fmt.Errorf("perf: %w", ctx.Err())
	}
	if err != nil {
		s.Reset()
		return res, err
	}
	s.Close()
	return res, nil
}

// exchange runs the client's steps on s.
func exchange(s Stream, buf []byte, upload, download uint64, start time.Time, up, down *atomic.Uint64) (Result, error) {
	var res Result
	// The size header and the first chunk of upload share one write, so a
	// small exchange costs a single packet (with the lazy protocol
	// negotiation riding along).
	binary.BigEndian.PutUint64(buf[:8], download)
	clear(buf[8:])
	first := uint64(len(buf) - 8)
	if upload < first {
		first = upload
	}
	k, err := s.Write(buf[:8+first])
	if k > 8 {
		res.Upload = uint64(k - 8)
		up.Add(res.Upload)
	}
	if err != nil {
		res.UploadTime = time.Since(start)
		return res, fmt.Errorf("perf: sending the request: %w", err)
	}
	clear(buf[:8])
	rest := upload - first
	if upload == Unlimited {
		rest = Unlimited
	}
	n, err := send(s, buf, rest, up)
	res.Upload += n
	if err != nil {
		res.UploadTime = time.Since(start)
		return res, fmt.Errorf("perf: uploading: %w", err)
	}
	if err := s.CloseWrite(); err != nil {
		res.UploadTime = time.Since(start)
		return res, fmt.Errorf("perf: closing the upload: %w", err)
	}
	mid := time.Now()
	res.UploadTime = mid.Sub(start)

	n, err = drain(s, buf, down)
	res.Download = n
	res.DownloadTime = time.Since(mid)
	switch {
	case err != nil:
		return res, fmt.Errorf("perf: downloading: %w", err)
	case download == Unlimited:
		return res, fmt.Errorf("perf: server ended an unlimited download after %d bytes: %w", n, ErrShortDownload)
	case n < download:
		return res, fmt.Errorf("perf: got %d of %d bytes: %w", n, download, ErrShortDownload)
	case n > download:
		return res, fmt.Errorf("perf: got %d bytes, asked for %d: %w", n, download, ErrLongDownload)
	}
	return res, nil
}

// startReporter calls progress every interval with the counters' news until
// the returned stop is called; stop waits for it to finish.
func startReporter(start time.Time, up, down *atomic.Uint64, progress func(Progress), interval time.Duration) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(interval)
		defer t.Stop()
		last := start
		var lastUp, lastDown uint64
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				u, d := up.Load(), down.Load()
				progress(Progress{
					Interval:      now.Sub(last),
					Upload:        u - lastUp,
					Download:      d - lastDown,
					Elapsed:       now.Sub(start),
					TotalUpload:   u,
					TotalDownload: d,
				})
				last, lastUp, lastDown = now, u, d
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
