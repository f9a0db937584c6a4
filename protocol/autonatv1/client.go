package autonatv1

import (
	"context"
	"fmt"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
)

// StatusError is a response other than OK.
type StatusError struct {
	Status Status
	Text   string
}

func (e *StatusError) Error() string {
	if e.Text == "" {
		return fmt.Sprintf("autonatv1: server answered %s", e.Status)
	}
	return fmt.Sprintf("autonatv1: server answered %s: %q", e.Status, e.Text)
}

// Check asks the peer at the other end of s, a stream already speaking ID,
// to dial self back at addrs, and returns the address the server says
// connected (nil if it did not say). A refusal or a failed dial-back is a
// *StatusError. Check closes s when done and resets it on failure; ctx
// bounds the whole exchange.
//
// The request must fit MaxMessageSize: a few dozen addresses do.
func Check(ctx context.Context, s network.Stream, self peer.ID, addrs []ma.Multiaddr) (ma.Multiaddr, error) {
	remote := s.Conn().RemotePeer()
	// The end of ctx resets s, which ends a blocked read or write; a
	// deadline on s would race it and hide ctx's error.
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	fail := func(what string, err error) (ma.Multiaddr, error) {
		s.Reset()
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", context.Cause(ctx), err)
		}
		return nil, fmt.Errorf("autonatv1: %s with %s: %w", what, remote, err)
	}

	req := &Message{Type: TypeDial, Dial: &Dial{Peer: &PeerInfo{ID: []byte(self), Addrs: addrs}}}
	if err := Write(s, req); err != nil {
		return fail("sending DIAL", err)
	}
	resp, err := Read(s)
	if err != nil {
		return fail("reading the DIAL_RESPONSE", err)
	}
	if resp.Type != TypeDialResponse || resp.DialResponse == nil {
		return fail("reading the DIAL_RESPONSE", fmt.Errorf("%w: got a %s message, want DIAL_RESPONSE with a dialResponse", ErrMalformed, resp.Type))
	}
	s.Close()
	r := resp.DialResponse
	if r.Status != StatusOK {
		return nil, fmt.Errorf("autonatv1: check with %s: %w", remote, &StatusError{Status: r.Status, Text: r.StatusText})
	}
	return r.Addr, nil
}
