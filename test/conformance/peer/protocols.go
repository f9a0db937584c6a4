package peer

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Protocol ids of the services the peer speaks besides identify.
const (
	PingID = "/ipfs/ping/1.0.0"
	PerfID = "/perf/1.0.0"
	// EchoID is a test protocol: the responder echoes until EOF, then
	// closes.
	EchoID = "/conformance/echo/1.0.0"
	// EchoUnlistedID is echo too, but left out of identify: a remote that
	// wants it cannot know in advance that it is supported, so it has to
	// negotiate (and a first proposal the peer refuses gets "na").
	EchoUnlistedID = "/conformance/echo-unlisted/1.0.0"

	pingSize = 32
	pingSpec = "ping/ping.md"
	perfSpec = "perf/perf.md"
)

// ping (specs ping/ping.md): the dialer sends 32 random bytes, the
// listener echoes them; repeated on one stream until the dialer
// half-closes, when the listener finishes and closes.

// PingStream sends count pings on s, each alone, waiting for its echo,
// then half-closes and waits for the listener's close.
func PingStream(s Stream, count int, mode Mode) error {
	w := Paced(s, mode)
	out, in := make([]byte, pingSize), make([]byte, pingSize)
	for i := range count {
		rand.Read(out)
		if _, err := w.Write(out); err != nil {
			return fmt.Errorf("ping %d: sending: %w", i+1, err)
		}
		if _, err := io.ReadFull(s, in); err != nil {
			return fmt.Errorf("ping %d: reading the echo: %w", i+1, err)
		}
		if !bytes.Equal(in, out) {
			return violation(pingSpec, "ping %d: echo %x of payload %x", i+1, in, out)
		}
	}
	if err := s.CloseWrite(); err != nil {
		return fmt.Errorf("ping: half-closing: %w", err)
	}
	if n, err := s.Read(in[:1]); n > 0 {
		return violation(pingSpec, "listener sent bytes after the last echo")
	} else if err != io.EOF {
		return fmt.Errorf("ping: waiting for the listener to close: %w", err)
	}
	return closeDone(s)
}

// servePing echoes 32-byte payloads until EOF, then closes.
func servePing(s Stream, mode Mode) error {
	w := Paced(s, mode)
	buf := make([]byte, pingSize)
	for {
		if _, err := io.ReadFull(s, buf); err == io.EOF {
			return closeDone(s)
		} else if err != nil {
			return fmt.Errorf("ping: reading a payload: %w", err)
		}
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("ping: echoing: %w", err)
		}
	}
}

// perf (specs perf/perf.md): the client sends the number of bytes it
// wants back as a big-endian u64, uploads, half-closes, and reads to EOF;
// the server reads the number, drains to EOF, and only then sends.

// bulk is what perf and echo send: fixed bytes, as the perf spec suggests.
var bulk = bytes.Repeat([]byte("conformance-bulk"), 4096) // 64 KiB

// writeBulk writes n bytes of bulk to w.
func writeBulk(w io.Writer, n uint64) error {
	for n > 0 {
		chunk := bulk[:min(n, uint64(len(bulk)))]
		k, err := w.Write(chunk)
		n -= uint64(k)
		if err != nil {
			return err
		}
	}
	return nil
}

// PerfClient runs one perf exchange: up bytes up, down bytes down. The
// size goes alone (Strict, Split byte by byte) or with the first upload
// chunk (Pipelined). Strict also checks that the server sends nothing
// before the upload is closed, which the spec forbids.
func PerfClient(s Stream, up, down uint64, mode Mode) error {
	var size [8]byte
	binary.BigEndian.PutUint64(size[:], down)
	if mode == Pipelined {
		first := min(up, uint64(len(bulk)))
		if _, err := s.Write(append(size[:], bulk[:first]...)); err != nil {
			return fmt.Errorf("perf: sending the size and upload: %w", err)
		}
		up -= first
	} else if _, err := Paced(s, mode).Write(size[:]); err != nil {
		return fmt.Errorf("perf: sending the size: %w", err)
	}
	if err := writeBulk(s, up); err != nil {
		return fmt.Errorf("perf: uploading: %w", err)
	}
	if mode == Strict {
		// A server that answers before EOF would have its bytes here by
		// now: the upload is written, and loopback is fast.
		s.SetDeadline(time.Now().Add(50 * time.Millisecond))
		var b [1]byte
		n, err := s.Read(b[:])
		s.SetDeadline(time.Time{})
		if n > 0 {
			return violation(perfSpec, "server sent data before the client closed its upload")
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("perf: checking the server waits for EOF: %w", err)
		}
	}
	if err := s.CloseWrite(); err != nil {
		return fmt.Errorf("perf: closing the upload: %w", err)
	}
	n, err := io.Copy(io.Discard, s)
	if err != nil {
		return fmt.Errorf("perf: downloading (%d bytes so far): %w", n, err)
	}
	if uint64(n) != down {
		return violation(perfSpec, "got %d bytes, asked for %d", n, down)
	}
	return closeDone(s)
}

// servePerf is the server side.
func servePerf(s Stream) error {
	var size [8]byte
	if _, err := io.ReadFull(s, size[:]); err != nil {
		return fmt.Errorf("perf: reading the size: %w", err)
	}
	if _, err := io.Copy(io.Discard, s); err != nil {
		return fmt.Errorf("perf: draining the upload: %w", err)
	}
	if err := writeBulk(s, binary.BigEndian.Uint64(size[:])); err != nil {
		return fmt.Errorf("perf: sending: %w", err)
	}
	return closeDone(s)
}

// EchoStream sends data on s while reading the echo back (the echo cannot
// wait for the end: windows are smaller than data), half-closes, and
// checks the echo and the responder's close.
func EchoStream(s Stream, data []byte) error {
	var wg sync.WaitGroup
	var werr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := writeChunks(s, data); err != nil {
			werr = fmt.Errorf("echo: sending: %w", err)
			return
		}
		if err := s.CloseWrite(); err != nil {
			werr = fmt.Errorf("echo: half-closing: %w", err)
		}
	}()
	got, rerr := io.ReadAll(s)
	if rerr != nil {
		// Unblock the writer if the stream is stuck.
		s.Reset()
	}
	wg.Wait()
	switch {
	case werr != nil:
		return werr
	case rerr != nil:
		return fmt.Errorf("echo: reading the echo (%d bytes so far): %w", len(got), rerr)
	case !bytes.Equal(got, data):
		return fmt.Errorf("echo: got %d bytes back that differ from the %d sent", len(got), len(data))
	}
	return closeDone(s)
}

// writeChunks writes data in 64 KiB writes.
func writeChunks(w io.Writer, data []byte) error {
	for len(data) > 0 {
		n := min(len(data), 64<<10)
		if _, err := w.Write(data[:n]); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// serveEcho echoes until EOF, then closes.
func serveEcho(s Stream) error {
	if _, err := io.Copy(s, s); err != nil {
		return fmt.Errorf("echo: %w", err)
	}
	return closeDone(s)
}

// closeDone closes s once its protocol has run to the end. An error is no
// failure then: the remote may have stopped reading (QUIC's STOP_SENDING,
// which makes closing our side fail) once it had all it wanted.
func closeDone(s Stream) error {
	s.Close()
	return nil
}
