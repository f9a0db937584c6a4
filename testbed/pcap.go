package testbed

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"time"
)

// pcapWriter writes the classic pcap format with nanosecond timestamps.
type pcapWriter struct {
	mu     sync.Mutex
	f      *os.File
	w      *bufio.Writer
	closed bool
}

func newPcapWriter(f *os.File) (*pcapWriter, error) {
	w := bufio.NewWriterSize(f, 1<<16)
	var h [24]byte
	binary.LittleEndian.PutUint32(h[0:], 0xa1b23c4d) // nanosecond magic
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], 65535) // snaplen
	binary.LittleEndian.PutUint32(h[20:], 1)     // Ethernet
	if _, err := w.Write(h[:]); err != nil {
		return nil, fmt.Errorf("testbed: writing pcap header: %w", err)
	}
	return &pcapWriter{f: f, w: w}, nil
}

func (p *pcapWriter) write(frame []byte) {
	now := time.Now()
	var h [16]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(now.Unix()))
	binary.LittleEndian.PutUint32(h[4:], uint32(now.Nanosecond()))
	binary.LittleEndian.PutUint32(h[8:], uint32(len(frame)))
	binary.LittleEndian.PutUint32(h[12:], uint32(len(frame)))
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.w.Write(h[:])
	p.w.Write(frame)
}

func (p *pcapWriter) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	err := p.w.Flush()
	if cerr := p.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("testbed: closing capture: %w", err)
	}
	return nil
}
