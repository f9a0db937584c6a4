// Package mss implements multistream-select 1.0, the protocol that two peers
// use to agree on what to speak over a connection or a stream.
//
// Every message is a token: a varint length, then UTF-8 text ending in "\n"
// (the length counts the newline). Both sides first send the header
// "/multistream/1.0.0". The dialer then proposes protocol ids one at a time;
// the listener echoes an id it accepts or answers "na". Once an id is echoed,
// the bytes that follow belong to that protocol.
//
//	dialer                              listener
//	header + proposal     ----------->
//	                      <-----------  header + echo (or "na")
//	application data      <---------->  application data
//
// Round trips matter because every connection and stream starts with this
// exchange, so both sides batch: the dialer writes its header and first
// proposal in one write (SelectOneOf), and the listener writes its header
// together with its first answer (Mux.Negotiate). LazyConn goes further and
// sends the application's first bytes with the proposal, without waiting.
//
// Readers here never read past the end of a token: the bytes after the
// echo may already carry the next layer (a Noise handshake, yamux frames), and
// they must stay in the connection for it.
//
// None of the functions take a context: they work on a plain io.ReadWriter,
// which cannot be interrupted except by its owner. Bound negotiation with a
// deadline on the connection or stream, or by closing it.
//
// The dialer side writes before it reads, from the calling goroutine. A
// listener that also writes first (go-multistream sends its header before
// reading anything) therefore needs a transport that buffers a few hundred
// bytes; TCP, yamux and QUIC streams do, an unbuffered net.Pipe does not.
package mss

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/lp"
	"github.com/tachyon-p2p/tachyon/internal/varint"
)

// ProtocolID is the multistream-select header.
const ProtocolID = "/multistream/1.0.0"

// MaxTokenLen is the largest token, newline included, that this package
// sends or accepts. go-multistream and js-libp2p enforce the same limit.
const MaxTokenLen = 1024

// MaxRounds bounds how many tokens (proposals or "ls" requests) a listener
// answers before it gives up on a dialer.
const MaxRounds = 64

var (
	// ErrNotSupported means no protocol was agreed: the listener answered
	// "na" to every proposal, or the dialer kept proposing protocols the
	// listener does not speak. Test for it with errors.Is.
	ErrNotSupported = errors.New("mss: protocol not supported")
	// ErrMalformed means the peer broke the protocol: a token that is empty,
	// too long or does not end in "\n", a first token that is not the header,
	// or an answer that is neither the echo nor "na".
	ErrMalformed = errors.New("mss: malformed message")
)

// NotSupportedError is returned to a dialer when the listener refused every
// proposal. errors.Is(err, ErrNotSupported) reports true for it.
type NotSupportedError struct {
	// Protocols lists what was proposed, in order.
	Protocols []protocol.ID
}

func (e *NotSupportedError) Error() string {
	ids := make([]string, len(e.Protocols))
	for i, p := range e.Protocols {
		ids[i] = string(p)
	}
	return "mss: peer supports none of " + strings.Join(ids, ", ")
}

// Is makes errors.Is(err, ErrNotSupported) true.
func (e *NotSupportedError) Is(target error) bool { return target == ErrNotSupported }

const (
	na = "na"
	ls = "ls"
)

var (
	headerMsg = appendToken(nil, ProtocolID) // 13 "/multistream/1.0.0" 0a
	naMsg     = appendToken(nil, na)         // 03 6e 61 0a
)

// appendToken appends tok as a message: varint(len(tok)+1) tok "\n".
func appendToken[T ~string | ~[]byte](b []byte, tok T) []byte {
	b = varint.Append(b, uint64(len(tok)+1))
	b = append(b, tok...)
	return append(b, '\n')
}

// readToken reads one token and returns it without its newline. It reads
// exactly the token's bytes and nothing after them. A clean end of stream
// before the token is io.EOF.
func readToken(r io.Reader) ([]byte, error) {
	msg, err := lp.ReadMsg(r, MaxTokenLen)
	if err != nil {
		if errors.Is(err, lp.ErrTooLarge) || errors.Is(err, varint.ErrNotMinimal) || errors.Is(err, varint.ErrOverflow) {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		return nil, err
	}
	switch {
	case len(msg) == 0:
		return nil, fmt.Errorf("%w: empty message", ErrMalformed)
	case msg[len(msg)-1] != '\n':
		return nil, fmt.Errorf("%w: token %.64q does not end in a newline", ErrMalformed, msg)
	case len(msg) == 1:
		return nil, fmt.Errorf("%w: empty token", ErrMalformed)
	}
	return msg[:len(msg)-1], nil
}

// readHeader reads the peer's first token and checks that it is the header.
func readHeader(r io.Reader) error {
	tok, err := readToken(r)
	if err != nil {
		return fmt.Errorf("mss: reading the peer's header: %w", err)
	}
	if string(tok) != ProtocolID {
		return fmt.Errorf("%w: peer sent %.64q instead of the header %q", ErrMalformed, tok, ProtocolID)
	}
	return nil
}

// readAnswer reads the listener's answer to proposal p: true for the echo,
// false for "na".
func readAnswer(r io.Reader, p protocol.ID) (bool, error) {
	tok, err := readToken(r)
	if err != nil {
		return false, fmt.Errorf("mss: reading the answer to %q: %w", p, err)
	}
	switch string(tok) {
	case string(p):
		return true, nil
	case na:
		return false, nil
	}
	return false, fmt.Errorf("%w: peer answered %.64q to proposal %q", ErrMalformed, tok, p)
}

// checkID rejects ids that cannot be sent as a proposal.
func checkID(p protocol.ID) error {
	switch {
	case p == "":
		return errors.New("mss: empty protocol id")
	case len(p)+1 > MaxTokenLen:
		return fmt.Errorf("mss: protocol id of %d bytes exceeds the %d-byte token limit", len(p), MaxTokenLen-1)
	case strings.IndexByte(string(p), '\n') >= 0:
		return fmt.Errorf("mss: protocol id %q contains a newline", p)
	case p == na || p == ls:
		return fmt.Errorf("mss: %q is a reserved token, not a protocol id", p)
	}
	return nil
}
