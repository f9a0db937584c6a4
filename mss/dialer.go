package mss

import (
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/varint"
)

// SelectOneOf negotiates one of protos, in order of preference, as the
// dialer. It writes the header and the first proposal in a single write,
// reads the listener's header and answer, and moves on to the next proposal
// after each "na". It returns the accepted protocol; the bytes that follow
// on rw belong to it.
//
// When every proposal is refused the error is a *NotSupportedError (matching
// ErrNotSupported); the caller should then close or reset rw.
func SelectOneOf(rw io.ReadWriter, protos ...protocol.ID) (protocol.ID, error) {
	if len(protos) == 0 {
		return "", errors.New("mss: no protocol to propose")
	}
	for _, p := range protos {
		if err := checkID(p); err != nil {
			return "", err
		}
	}
	buf := make([]byte, 0, len(headerMsg)+varint.MaxLen+len(protos[0])+1)
	buf = append(buf, headerMsg...)
	buf = appendToken(buf, protos[0])
	if _, err := rw.Write(buf); err != nil {
		return "", fmt.Errorf("mss: sending the header and proposal %q: %w", protos[0], err)
	}
	if err := readHeader(rw); err != nil {
		return "", err
	}
	for i, p := range protos {
		if i > 0 {
			if _, err := rw.Write(appendToken(buf[:0], p)); err != nil {
				return "", fmt.Errorf("mss: sending proposal %q: %w", p, err)
			}
		}
		ok, err := readAnswer(rw, p)
		if err != nil {
			return "", err
		}
		if ok {
			return p, nil
		}
	}
	return "", &NotSupportedError{Protocols: slices.Clone(protos)}
}

// SelectProto negotiates proto as the dialer. It is SelectOneOf with a
// single proposal.
func SelectProto(rw io.ReadWriter, proto protocol.ID) error {
	_, err := SelectOneOf(rw, proto)
	return err
}
