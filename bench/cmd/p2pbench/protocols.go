package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Protocols every benchmark server serves.
const (
	echoProto = "/p2pbench/echo/1.0.0"
	sinkProto = "/p2pbench/sink/1.0.0"
)

// bufSize is the size of every application read and write in the
// throughput benchmarks, the same for all stacks so they are compared on
// equal terms.
const bufSize = 64 << 10

// echo writes back what it reads until EOF.
func echo(s stream) {
	buf := make([]byte, 1024)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			if _, werr := s.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// sink reads until EOF, then acknowledges with the byte count, so the
// sender's clock stops only once everything has been read.
func sink(s io.ReadWriter) error {
	buf := make([]byte, bufSize)
	var total uint64
	for {
		n, err := s.Read(buf)
		total += uint64(n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("sink: read after %d bytes: %w", total, err)
		}
	}
	var ack [8]byte
	binary.BigEndian.PutUint64(ack[:], total)
	if _, err := s.Write(ack[:]); err != nil {
		return fmt.Errorf("sink: ack: %w", err)
	}
	return nil
}

// upload writes size bytes, half-closes with closeWrite, and waits for the
// sink's acknowledgement.
func upload(s io.ReadWriter, closeWrite func() error, size int64) error {
	buf := make([]byte, bufSize)
	for left := size; left > 0; {
		n := min(left, int64(len(buf)))
		if _, err := s.Write(buf[:n]); err != nil {
			return fmt.Errorf("upload: write at %d: %w", size-left, err)
		}
		left -= n
	}
	if err := closeWrite(); err != nil {
		return fmt.Errorf("upload: close write: %w", err)
	}
	var ack [8]byte
	if _, err := io.ReadFull(s, ack[:]); err != nil {
		return fmt.Errorf("upload: reading ack: %w", err)
	}
	if got := binary.BigEndian.Uint64(ack[:]); got != uint64(size) {
		return fmt.Errorf("upload: sink read %d bytes, want %d", got, size)
	}
	return nil
}

// serve registers the benchmark protocols on h.
func serve(h endpoint) error {
	if err := h.handle(echoProto, echo); err != nil {
		return err
	}
	// A failed sink needs no report here: the uploader sees a missing ack.
	return h.handle(sinkProto, func(s stream) { sink(s) })
}
