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
	id, _, err := selectOneOf(rw, protos, false)
	return id, err
}

// SelectOptimistic is SelectOneOf that does not wait for the answer to the
// last proposal: once every other proposal was refused (at once, when there
// is only one), it writes nothing more and returns the last id with a
// *Pending. The caller sends Pending.Bytes ahead of its first bytes, in the
// same write, and reads the answer with Pending.ReadAnswer before the first
// bytes it reads, so that proposal costs no round trip. An accepted earlier
// proposal returns a nil *Pending, as SelectOneOf would.
//
// Use it only where a refusal of the last proposal ends the exchange anyway
// (the caller then closes rw): the listener reads whatever followed the
// refused proposal as multistream tokens.
func SelectOptimistic(rw io.ReadWriter, protos ...protocol.ID) (protocol.ID, *Pending, error) {
	return selectOneOf(rw, protos, true)
}

func selectOneOf(rw io.ReadWriter, protos []protocol.ID, lazyLast bool) (protocol.ID, *Pending, error) {
	if len(protos) == 0 {
		return "", nil, errors.New("mss: no protocol to propose")
	}
	for _, p := range protos {
		if err := checkID(p); err != nil {
			return "", nil, err
		}
	}
	last := len(protos) - 1
	buf := make([]byte, 0, len(headerMsg)+varint.MaxLen+len(protos[0])+1)
	buf = append(buf, headerMsg...)
	if lazyLast && last == 0 {
		return protos[0], &Pending{out: appendToken(buf, protos[0]), header: true, tried: protos}, nil
	}
	buf = appendToken(buf, protos[0])
	if _, err := rw.Write(buf); err != nil {
		return "", nil, fmt.Errorf("mss: sending the header and proposal %q: %w", protos[0], err)
	}
	if err := readHeader(rw); err != nil {
		return "", nil, err
	}
	for i, p := range protos {
		if i > 0 {
			if lazyLast && i == last {
				return p, &Pending{out: appendToken(buf[:0], p), tried: protos}, nil
			}
			if _, err := rw.Write(appendToken(buf[:0], p)); err != nil {
				return "", nil, fmt.Errorf("mss: sending proposal %q: %w", p, err)
			}
		}
		ok, err := readAnswer(rw, p)
		if err != nil {
			return "", nil, err
		}
		if ok {
			return p, nil, nil
		}
	}
	return "", nil, &NotSupportedError{Protocols: slices.Clone(protos)}
}

// Pending is a proposal of SelectOptimistic not sent yet.
type Pending struct {
	out    []byte        // the proposal, after the header if that is not out either
	header bool          // the listener's header is still to be read
	tried  []protocol.ID // every proposal, for the refusal's error
}

// Protocol returns the proposed protocol.
func (p *Pending) Protocol() protocol.ID { return p.tried[len(p.tried)-1] }

// Bytes returns what the dialer still has to send, ahead of its first
// bytes: the proposal, and the header first when it was not sent.
func (p *Pending) Bytes() []byte { return p.out }

// ReadAnswer reads the listener's header (when it is still to come) and its
// answer, and nothing after them. A refusal is a *NotSupportedError listing
// every proposal made.
func (p *Pending) ReadAnswer(r io.Reader) error {
	return readFinalAnswer(r, p.header, p.tried)
}

// readFinalAnswer reads the header first if header is set, then the answer
// to the last of tried; a refusal is a *NotSupportedError listing tried.
func readFinalAnswer(r io.Reader, header bool, tried []protocol.ID) error {
	if header {
		if err := readHeader(r); err != nil {
			return err
		}
	}
	ok, err := readAnswer(r, tried[len(tried)-1])
	if err == nil && !ok {
		err = &NotSupportedError{Protocols: slices.Clone(tried)}
	}
	return err
}

// SelectProto negotiates proto as the dialer. It is SelectOneOf with a
// single proposal.
func SelectProto(rw io.ReadWriter, proto protocol.ID) error {
	_, err := SelectOneOf(rw, proto)
	return err
}
