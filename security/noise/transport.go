// Package noise secures connections with the libp2p Noise handshake
// (libp2p/specs noise/README.md): Noise_XX_25519_ChaChaPoly_SHA256 with the
// host key proven by a signature inside the handshake payload, and early
// stream-muxer negotiation through the payload's extensions
// (connections/inlined-muxer-negotiation.md).
//
// The Noise state machine (symmetric.go, pattern.go) is our own, built on
// golang.org/x/crypto's curve25519 and chacha20poly1305.
package noise

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/network"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/core/protocol"
	"github.com/tachyon-p2p/tachyon/internal/verified"
)

// ID is the multistream-select protocol id of Noise.
const ID protocol.ID = "/noise"

// signaturePrefix is prepended to the X25519 static key before the host key
// signs it (noise/README.md, "Static Key Authentication").
const signaturePrefix = "noise-libp2p-static-key:"

// Config tunes a Transport. The zero value is the plain libp2p Noise
// handshake over TCP.
type Config struct {
	// Muxers lists the stream muxers offered for early negotiation, most
	// preferred first. When empty no stream_muxers extension is sent and
	// ConnState.Muxer stays empty.
	Muxers []protocol.ID
	// Prologue is mixed into the handshake hash. Both sides must use the
	// same bytes: empty for TCP, WebSocket, relay and WebTransport;
	// WebRTC-direct passes its fingerprint prologue.
	Prologue []byte
	// CertHashes are sent in the webtransport_certhashes extension of
	// message 2, that is when this side responds.
	CertHashes [][]byte
	// Rand is the source of ephemeral and static X25519 keys; nil means
	// crypto/rand. Tests use it for determinism.
	Rand io.Reader
}

// Transport runs the Noise handshake for one host key. It is safe for
// concurrent use.
type Transport struct {
	localID  peer.ID
	prologue []byte
	muxers   []protocol.ID
	rand     io.Reader

	// static is the X25519 key pair used by every handshake of this
	// Transport (rust-libp2p does the same); its signature is computed once.
	static keypair
	// respPayload and initPayload are the encoded payloads of messages 2
	// and 3; they only depend on the transport's configuration.
	respPayload []byte
	initPayload []byte
	// staticKeys: see authenticate.
	staticKeys *verified.Table[identity]
}

var _ network.SecureTransport = (*Transport)(nil)

// New returns a Noise transport authenticating as key.
func New(key crypto.PrivKey, cfg *Config) (*Transport, error) {
	if key == nil {
		return nil, errors.New("noise: nil host key")
	}
	if cfg == nil {
		cfg = &Config{}
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("noise: deriving local peer ID: %w", err)
	}
	static, err := newKeypair(cfg.Rand)
	if err != nil {
		return nil, fmt.Errorf("noise: static key: %w", err)
	}
	pub, err := crypto.MarshalPublicKey(key.GetPublic())
	if err != nil {
		return nil, fmt.Errorf("noise: encoding host key: %w", err)
	}
	sig, err := key.Sign(append([]byte(signaturePrefix), static.pub[:]...))
	if err != nil {
		return nil, fmt.Errorf("noise: signing static key: %w", err)
	}
	muxers := make([]string, len(cfg.Muxers))
	for i, m := range cfg.Muxers {
		muxers[i] = string(m)
	}
	t := &Transport{
		localID:  id,
		prologue: slices.Clone(cfg.Prologue),
		muxers:   slices.Clone(cfg.Muxers),
		rand:     cfg.Rand,
		static:   static,

		staticKeys: verified.New[identity](512),
	}
	t.respPayload = appendPayload(nil, &payload{identityKey: pub, identitySig: sig, certHashes: cfg.CertHashes, muxers: muxers})
	t.initPayload = appendPayload(nil, &payload{identityKey: pub, identitySig: sig, muxers: muxers})
	if len(t.respPayload) > maxFrame-2*dhLen-2*tagLen {
		return nil, errors.New("noise: handshake payload too large")
	}
	return t, nil
}

// ID returns "/noise".
func (t *Transport) ID() protocol.ID { return ID }

// LocalPeer returns the peer ID this transport authenticates as.
func (t *Transport) LocalPeer() peer.ID { return t.localID }

// SecureInbound runs the handshake as the Noise responder. When remote is
// not empty the initiator must prove it is that peer.
func (t *Transport) SecureInbound(ctx context.Context, insecure net.Conn, remote peer.ID) (network.SecureConn, error) {
	return t.run(ctx, insecure, remote, false)
}

// SecureOutbound runs the handshake as the Noise initiator and fails unless
// the responder proves it is remote. It returns as soon as message 3 is
// written, so the caller's first data joins the same flight (0.5-RTT).
//
// An empty remote accepts any responder. Only WebRTC-direct needs that: its
// listener is the initiator and learns who dialed from message 2. A dialer
// must always name the peer it dials.
func (t *Transport) SecureOutbound(ctx context.Context, insecure net.Conn, remote peer.ID) (network.SecureConn, error) {
	return t.run(ctx, insecure, remote, true)
}

// run wraps a handshake with the context rules: the context's deadline
// becomes the connection's for the duration, and cancelling the context
// closes the connection. Any failure closes the connection.
func (t *Transport) run(ctx context.Context, raw net.Conn, remote peer.ID, initiator bool) (_ *Conn, err error) {
	if err := ctx.Err(); err != nil {
		raw.Close()
		return nil, fmt.Errorf("noise: handshake not started: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		if err := raw.SetDeadline(dl); err != nil {
			raw.Close()
			return nil, fmt.Errorf("noise: setting handshake deadline: %w", err)
		}
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	h := &handshake{t: t, c: &Conn{raw: raw, localPeer: t.localID}, remote: remote}
	defer clear(h.hs.e.scalar[:]) // every DH with it is done when run returns
	if initiator {
		err = h.runInitiator()
	} else {
		err = h.runResponder()
	}
	if !stop() && err == nil {
		err = ctx.Err() // the connection was closed under us
	}
	if err != nil {
		raw.Close()
		cerr := ctx.Err()
		if _, ok := ctx.Deadline(); ok && cerr == nil && isTimeout(err) {
			cerr = context.DeadlineExceeded // the socket deadline fired first
		}
		if cerr != nil && !errors.Is(err, cerr) {
			err = fmt.Errorf("%w (%w)", cerr, err)
		}
		return nil, fmt.Errorf("noise: handshake: %w", err)
	}
	if _, ok := ctx.Deadline(); ok {
		if err := raw.SetDeadline(time.Time{}); err != nil {
			raw.Close()
			return nil, fmt.Errorf("noise: clearing handshake deadline: %w", err)
		}
	}
	return h.c, nil
}

// handshake is the state of one libp2p Noise handshake. Its steps below
// follow the wire order of the XX pattern.
type handshake struct {
	t      *Transport
	c      *Conn
	hs     handshakeState
	remote peer.ID // expected remote; empty if any
	out    []byte  // frame being built
}

func (h *handshake) start(initiator bool) error {
	e, err := newEphemeral(h.t.rand)
	if err != nil {
		return err
	}
	h.hs.init(initiator, h.t.prologue, h.t.static, e)
	h.out = make([]byte, frameHdr, 256+len(h.t.respPayload))
	return nil
}

func (h *handshake) runInitiator() error {
	if err := h.start(true); err != nil {
		return err
	}
	if err := h.sendMsg1(); err != nil {
		return err
	}
	if err := h.readMsg2(); err != nil {
		return err
	}
	if err := h.sendMsg3(); err != nil {
		return err
	}
	h.finish()
	return nil
}

func (h *handshake) runResponder() error {
	if err := h.start(false); err != nil {
		return err
	}
	if err := h.readMsg1(); err != nil {
		return err
	}
	if err := h.sendMsg2(); err != nil {
		return err
	}
	if err := h.readMsg3(); err != nil {
		return err
	}
	h.finish()
	return nil
}

// sendMsg1: -> e, with an empty payload.
func (h *handshake) sendMsg1() error {
	msg, err := h.hs.writeMsg1(h.out[:frameHdr], nil)
	if err != nil {
		return fmt.Errorf("writing message 1: %w", err)
	}
	return h.send(msg, 1)
}

// readMsg1: -> e. A payload, which libp2p never sends here, is ignored.
func (h *handshake) readMsg1() error {
	msg, err := h.c.readFrame()
	if err != nil {
		return fmt.Errorf("reading message 1: %w", err)
	}
	if _, err := h.hs.readMsg1(msg); err != nil {
		return fmt.Errorf("reading message 1: %w", err)
	}
	return nil
}

// sendMsg2: <- e, ee, s, es, with our identity, muxers and certhashes.
func (h *handshake) sendMsg2() error {
	msg, err := h.hs.writeMsg2(h.out[:frameHdr], h.t.respPayload)
	if err != nil {
		return fmt.Errorf("writing message 2: %w", err)
	}
	return h.send(msg, 2)
}

// readMsg2: <- e, ee, s, es. Authenticates the responder and checks it is
// the peer we dialled.
func (h *handshake) readMsg2() error {
	msg, err := h.c.readFrame()
	if err != nil {
		return fmt.Errorf("reading message 2: %w", err)
	}
	pl, err := h.hs.readMsg2(msg)
	if err != nil {
		return fmt.Errorf("reading message 2: %w", err)
	}
	p, err := h.authenticate(pl)
	if err != nil {
		return fmt.Errorf("message 2: %w", err)
	}
	h.c.remoteCertHashes = cloneAll(p.certHashes)
	h.c.state.Muxer = pickMuxer(h.t.muxers, p.muxers)
	return nil
}

// sendMsg3: -> s, se, with our identity and muxers.
func (h *handshake) sendMsg3() error {
	msg, err := h.hs.writeMsg3(h.out[:frameHdr], h.t.initPayload)
	if err != nil {
		return fmt.Errorf("writing message 3: %w", err)
	}
	return h.send(msg, 3)
}

// readMsg3: -> s, se. Authenticates the initiator.
func (h *handshake) readMsg3() error {
	msg, err := h.c.readFrame()
	if err != nil {
		return fmt.Errorf("reading message 3: %w", err)
	}
	pl, err := h.hs.readMsg3(msg)
	if err != nil {
		return fmt.Errorf("reading message 3: %w", err)
	}
	p, err := h.authenticate(pl)
	if err != nil {
		return fmt.Errorf("message 3: %w", err)
	}
	h.c.state.Muxer = pickMuxerFromInitiator(p.muxers, h.t.muxers)
	return nil
}

func (h *handshake) send(frame []byte, n int) error {
	l := len(frame) - frameHdr
	frame[0], frame[1] = byte(l>>8), byte(l)
	if err := h.c.writeRaw(frame); err != nil {
		return fmt.Errorf("writing message %d: %w", n, err)
	}
	return nil
}

// authenticate parses a payload, verifies the host key's signature over the
// remote static key and derives the remote peer ID.
func (h *handshake) authenticate(pl []byte) (payload, error) {
	p, err := parsePayload(pl)
	if err != nil {
		return payload{}, err
	}
	if len(p.identityKey) == 0 {
		return payload{}, errors.New("payload has no identity key")
	}
	d := verified.Sum(signaturePrefix, p.identityKey, h.hs.rs[:], p.identitySig)
	k, ok := h.t.staticKeys.Get(d)
	if !ok {
		var err error
		if k, err = checkStatic(p, h.hs.rs[:]); err != nil {
			return payload{}, err
		}
		h.t.staticKeys.Add(d, k)
	}
	if h.remote != "" && k.id != h.remote {
		return payload{}, &network.PeerIDMismatchError{Expected: h.remote, Actual: k.id}
	}
	h.c.remotePeer, h.c.remoteKey = k.id, k.pub
	return p, nil
}

// identity is what a payload's signature over a static key proves: the
// peer's identity key and ID.
type identity struct {
	pub crypto.PubKey
	id  peer.ID
}

// A transport keeps the payloads whose signature verified (staticKeys),
// by everything the check read (identity key, static key, signature): a
// peer that reconnects with the same static key (tachyon keeps one per
// transport) costs a hash instead of a signature check and key decoding. A
// payload is only read once the peer has proved it holds the static key
// (its decryption needs es or se), so nobody can probe the table without
// that key; and the table is the transport's own, so the time a handshake
// takes tells a peer nothing of another host's handshakes.

// checkStatic is checkStaticKey; tests count its calls.
var checkStatic = checkStaticKey

// checkStaticKey checks that the payload's identity key signed static.
func checkStaticKey(p payload, static []byte) (identity, error) {
	pub, err := crypto.UnmarshalPublicKey(p.identityKey)
	if err != nil {
		return identity{}, fmt.Errorf("decoding identity key: %w", err)
	}
	var signed [len(signaturePrefix) + dhLen]byte
	copy(signed[:], signaturePrefix)
	copy(signed[len(signaturePrefix):], static)
	ok, err := pub.Verify(signed[:], p.identitySig)
	if err != nil || !ok {
		return identity{}, fmt.Errorf("invalid static key signature (%v)", err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		return identity{}, fmt.Errorf("deriving peer ID: %w", err)
	}
	return identity{pub: pub, id: id}, nil
}

func (h *handshake) finish() {
	h.c.send, h.c.recv = h.hs.split()
	h.c.state.Security = ID
	h.c.releaseReadBuf() // kept only if early data followed message 3
}

// pickMuxer is the initiator's choice: its first muxer the responder lists.
func pickMuxer(ours []protocol.ID, theirs []string) protocol.ID {
	for _, m := range ours {
		if slices.Contains(theirs, string(m)) {
			return m
		}
	}
	return ""
}

// pickMuxerFromInitiator is the same choice made by the responder: the
// initiator's first muxer that we support.
func pickMuxerFromInitiator(theirs []string, ours []protocol.ID) protocol.ID {
	for _, m := range theirs {
		if slices.Contains(ours, protocol.ID(m)) {
			return protocol.ID(m)
		}
	}
	return ""
}

func cloneAll(in [][]byte) [][]byte {
	if len(in) == 0 {
		return nil
	}
	out := make([][]byte, len(in))
	for i, b := range in {
		out[i] = slices.Clone(b)
	}
	return out
}
