// Package lp reads and writes varint length-prefixed messages, the framing
// of identify, multistream-select and most request/response protocols.
//
// ReadMsg never reads past the end of the message: the bytes that follow may
// belong to the next layer (a pipelined handshake, a relayed connection).
package lp

import (
	"errors"
	"fmt"
	"io"

	"github.com/tachyon-p2p/tachyon/internal/varint"
)

// ErrTooLarge is returned for a message whose announced length exceeds the
// caller's limit.
var ErrTooLarge = errors.New("lp: message too large")

// Append appends msg with its length prefix to b.
func Append(b, msg []byte) []byte {
	return append(varint.Append(b, uint64(len(msg))), msg...)
}

// WriteMsg writes msg with its length prefix in a single Write.
func WriteMsg(w io.Writer, msg []byte) error {
	_, err := w.Write(Append(make([]byte, 0, len(msg)+varint.MaxLen), msg))
	return err
}

// ReadMsg reads one message of at most max bytes. A clean EOF before the
// first byte is io.EOF.
func ReadMsg(r io.Reader, max int) ([]byte, error) {
	n, err := varint.Read(byteReader(r))
	if err != nil {
		return nil, err
	}
	if n > uint64(max) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n, max)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// byteReader reads single bytes without buffering, unless r can already do so.
func byteReader(r io.Reader) io.ByteReader {
	if br, ok := r.(io.ByteReader); ok {
		return br
	}
	return &oneByte{r: r}
}

type oneByte struct {
	r   io.Reader
	buf [1]byte
}

func (o *oneByte) ReadByte() (byte, error) {
	for {
		n, err := o.r.Read(o.buf[:])
		if n == 1 {
			return o.buf[0], nil
		}
		if err != nil {
			return 0, err
		}
	}
}
