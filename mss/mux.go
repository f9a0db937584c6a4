package mss

import (
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/netbuf"
	"github.com/tachyon-p2p/tachyon/internal/varint"
)

// Mux is the listener side: a set of protocol ids, each with a value of type
// H (a stream handler, a security transport, a muxer), that Negotiate picks
// from. The zero value is an empty Mux ready to use; it is safe for
// concurrent use, and handlers may change while negotiations run.
type Mux[H any] struct {
	mu       sync.RWMutex
	ids      []protocol.ID // registration order, as "ls" lists them
	handlers map[protocol.ID]H
}

// AddHandler registers h for id, replacing any earlier handler for id.
func (m *Mux[H]) AddHandler(id protocol.ID, h H) error {
	if err := checkID(id); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.handlers == nil {
		m.handlers = make(map[protocol.ID]H)
	}
	if _, ok := m.handlers[id]; !ok {
		m.ids = append(m.ids, id)
	}
	m.handlers[id] = h
	return nil
}

// RemoveHandler unregisters id. Negotiations already past it are unaffected.
func (m *Mux[H]) RemoveHandler(id protocol.ID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.handlers[id]; !ok {
		return
	}
	delete(m.handlers, id)
	m.ids = slices.DeleteFunc(m.ids, func(p protocol.ID) bool { return p == id })
}

// Protocols returns the registered ids in registration order.
func (m *Mux[H]) Protocols() []protocol.ID {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return slices.Clone(m.ids)
}

// lookup finds the handler for a proposal without converting it to a string.
func (m *Mux[H]) lookup(tok []byte) (H, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	h, ok := m.handlers[protocol.ID(tok)]
	return h, ok
}

// Negotiate runs the listener side over rw: it reads the dialer's header,
// then answers proposals until it accepts one, and returns that id and its
// handler. It reads nothing past the accepted proposal, so data the dialer
// pipelined after it is left in rw for the handler.
//
// Its own header goes out as soon as the dialer's has been read: a dialer may
// send its header alone and wait for ours before proposing (the spec's own
// diagram does), so holding the header back for the first answer would
// deadlock it. Only when rw reports (netbuf.Buffered) that the proposal has
// already arrived does the header share a write with the answer. It answers "ls"
// with the registered ids (as many as fit in one token) and unknown ids with
// "na". It gives up with an error matching ErrNotSupported after MaxRounds
// tokens, and with io.EOF (wrapped) when the dialer stops. The caller owns
// rw and should close or reset it on error.
func (m *Mux[H]) Negotiate(rw io.ReadWriter) (protocol.ID, H, error) {
	return m.NegotiateWhere(rw, nil)
}

// NegotiateWhere is Negotiate over the handlers that allow accepts (all
// when allow is nil); the others are answered "na" like unknown ids. A host
// uses it to serve only some protocols on a limited connection.
func (m *Mux[H]) NegotiateWhere(rw io.ReadWriter, allow func(H) bool) (protocol.ID, H, error) {
	id, h, echo, err := m.NegotiateDeferred(rw, allow)
	if err == nil {
		// A failed write of the echo is not an error here: the dialer
		// may have sent its data and closed its side, and that data is
		// still for the handler to read. Its own writes will fail.
		_, _ = rw.Write(echo)
	}
	return id, h, err
}

// NegotiateDeferred is NegotiateWhere that returns the final answer (the
// echo, with the header when it had not been sent) instead of writing it,
// so that the caller can send it together with the handler's first bytes.
// The caller must send it before anything else it writes on rw, and before
// it waits for more from the dialer: a dialer that waits for the echo
// sends nothing until then.
func (m *Mux[H]) NegotiateDeferred(rw io.ReadWriter, allow func(H) bool) (protocol.ID, H, []byte, error) {
	var zero H
	if err := readHeader(rw); err != nil {
		return "", zero, nil, err
	}
	out := make([]byte, 0, 128)
	if netbuf.Buffered(rw) > 0 {
		out = append(out, headerMsg...) // joins the first answer
	} else if _, err := rw.Write(headerMsg); err != nil {
		return "", zero, nil, fmt.Errorf("mss: sending the header: %w", err)
	}
	for range MaxRounds {
		tok, err := readToken(rw)
		if err != nil {
			return "", zero, nil, fmt.Errorf("mss: reading a proposal: %w", err)
		}
		if string(tok) == ls {
			out = m.appendList(out)
		} else if h, ok := m.lookup(tok); ok && (allow == nil || allow(h)) {
			return protocol.ID(tok), h, appendToken(out, tok), nil
		} else {
			out = append(out, naMsg...)
		}
		if _, err := rw.Write(out); err != nil {
			return "", zero, nil, fmt.Errorf("mss: answering %.64q: %w", tok, err)
		}
		out = out[:0]
	}
	return "", zero, nil, fmt.Errorf("mss: dialer made %d proposals without agreement: %w", MaxRounds, ErrNotSupported)
}

// appendList appends the answer to "ls": one message holding each id as its
// own token, then a final "\n". Ids that would push the message past
// MaxTokenLen are left out, so that any peer can read the answer.
func (m *Mux[H]) appendList(b []byte) []byte {
	m.mu.RLock()
	defer m.mu.RUnlock()
	size, n := 1, 0 // the final newline
	for _, id := range m.ids {
		l := varint.Len(uint64(len(id)+1)) + len(id) + 1
		if size+l > MaxTokenLen {
			break
		}
		size += l
		n++
	}
	b = varint.Append(b, uint64(size))
	for _, id := range m.ids[:n] {
		b = appendToken(b, id)
	}
	return append(b, '\n')
}
