package peer

import (
	"context"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// Noise_XX_25519_ChaChaPoly_SHA256 as noise/README.md profiles it, written
// from the Noise Protocol Framework spec (revision 34): sections 5.1-5.3 for
// the CipherState, SymmetricState and HandshakeState, 12.3 for ChaChaPoly.

const (
	noiseProtocolName = "Noise_XX_25519_ChaChaPoly_SHA256"
	noiseDHLen        = 32
	noiseTagLen       = 16
	// noiseMaxMsg is the largest noise_message the u16 length prefix allows.
	noiseMaxMsg = math.MaxUint16
	// noiseMaxPlain is the largest plaintext that fits one transport message.
	noiseMaxPlain = noiseMaxMsg - noiseTagLen
	// noiseSigPrefix is what the identity key signs, followed by the static key.
	noiseSigPrefix = "noise-libp2p-static-key:"
)

// noiseCipherState is the spec's CipherState: a key (absent until MixKey)
// and a nonce counter.
type noiseCipherState struct {
	aead cipher.AEAD
	n    uint64
}

func (c *noiseCipherState) initializeKey(k []byte) error {
	aead, err := chacha20poly1305.New(k)
	if err != nil {
		return err
	}
	c.aead, c.n = aead, 0
	return nil
}

// nonce is 32 bits of zeros followed by the little-endian 64-bit counter
// (spec 12.3).
func (c *noiseCipherState) nonce() ([]byte, error) {
	// 2^64-1 is reserved (spec 5.1), and the libp2p spec says to terminate
	// the connection rather than wrap.
	if c.n == math.MaxUint64 {
		return nil, errors.New("noise nonce exhausted")
	}
	var nonce [chacha20poly1305.NonceSize]byte
	binary.LittleEndian.PutUint64(nonce[4:], c.n)
	return nonce[:], nil
}

// encrypt appends the encryption of pt to dst; without a key it appends pt.
func (c *noiseCipherState) encrypt(dst, ad, pt []byte) ([]byte, error) {
	if c.aead == nil {
		return append(dst, pt...), nil
	}
	nonce, err := c.nonce()
	if err != nil {
		return nil, err
	}
	c.n++
	return c.aead.Seal(dst, nonce, pt, ad), nil
}

// decrypt appends the decryption of ct to dst. The counter advances only on
// success, as the spec requires.
func (c *noiseCipherState) decrypt(dst, ad, ct []byte) ([]byte, error) {
	if c.aead == nil {
		return append(dst, ct...), nil
	}
	nonce, err := c.nonce()
	if err != nil {
		return nil, err
	}
	if len(ct) < noiseTagLen {
		return nil, fmt.Errorf("noise ciphertext of %d bytes is shorter than its %d-byte tag", len(ct), noiseTagLen)
	}
	pt, err := c.aead.Open(dst, nonce, ct, ad)
	if err != nil {
		return nil, fmt.Errorf("noise decryption (nonce %d): %w", c.n, err)
	}
	c.n++
	return pt, nil
}

// noiseHKDF is the spec's HKDF(chaining_key, input_key_material, 2).
func noiseHKDF(ck, ikm []byte) (out1, out2 []byte) {
	mac := hmac.New(sha256.New, ck)
	mac.Write(ikm)
	temp := mac.Sum(nil)
	mac = hmac.New(sha256.New, temp)
	mac.Write([]byte{1})
	out1 = mac.Sum(nil)
	mac = hmac.New(sha256.New, temp)
	mac.Write(out1)
	mac.Write([]byte{2})
	out2 = mac.Sum(nil)
	return out1, out2
}

// noiseHandshake is the spec's SymmetricState plus HandshakeState for the
// XX pattern:
//
//	-> e
//	<- e, ee, s, es
//	-> s, se
type noiseHandshake struct {
	initiator bool
	step      int // index of the next handshake message, 0..3
	ck, h     []byte
	cs        noiseCipherState
	s, e      *ecdh.PrivateKey
	rs, re    []byte
}

// newNoiseHandshake is Initialize(): the protocol name is exactly 32 bytes
// (HASHLEN), so h is the name itself, not its hash.
func newNoiseHandshake(initiator bool, prologue []byte, s, e *ecdh.PrivateKey) *noiseHandshake {
	h := make([]byte, sha256.Size)
	if len(noiseProtocolName) <= sha256.Size {
		copy(h, noiseProtocolName)
	} else {
		sum := sha256.Sum256([]byte(noiseProtocolName))
		h = sum[:]
	}
	hs := &noiseHandshake{initiator: initiator, h: h, ck: append([]byte(nil), h...), s: s, e: e}
	hs.mixHash(prologue) // an empty prologue is still mixed in
	return hs
}

func (hs *noiseHandshake) mixHash(data []byte) {
	d := sha256.New()
	d.Write(hs.h)
	d.Write(data)
	hs.h = d.Sum(nil)
}

func (hs *noiseHandshake) mixKey(ikm []byte) error {
	ck, k := noiseHKDF(hs.ck, ikm)
	hs.ck = ck
	return hs.cs.initializeKey(k)
}

func (hs *noiseHandshake) encryptAndHash(dst, pt []byte) ([]byte, error) {
	out, err := hs.cs.encrypt(dst, hs.h, pt)
	if err != nil {
		return nil, err
	}
	hs.mixHash(out[len(dst):])
	return out, nil
}

func (hs *noiseHandshake) decryptAndHash(ct []byte) ([]byte, error) {
	pt, err := hs.cs.decrypt(nil, hs.h, ct)
	if err != nil {
		return nil, err
	}
	hs.mixHash(ct)
	return pt, nil
}

func noiseDH(priv *ecdh.PrivateKey, pub []byte) ([]byte, error) {
	pk, err := ecdh.X25519().NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("remote X25519 key: %w", err)
	}
	out, err := priv.ECDH(pk)
	if err != nil {
		return nil, fmt.Errorf("X25519: %w", err) // a low-order point gives all zeros
	}
	return out, nil
}

func (hs *noiseHandshake) mixDH(priv *ecdh.PrivateKey, pub []byte) error {
	shared, err := noiseDH(priv, pub)
	if err != nil {
		return err
	}
	return hs.mixKey(shared)
}

// writeMessage builds the next handshake message carrying payload.
func (hs *noiseHandshake) writeMessage(payload []byte) ([]byte, error) {
	if hs.initiator != (hs.step%2 == 0) || hs.step > 2 {
		return nil, fmt.Errorf("noise: message %d is not ours to write", hs.step+1)
	}
	var msg []byte
	var err error
	switch hs.step {
	case 0: // -> e
		epub := hs.e.PublicKey().Bytes()
		msg = append(msg, epub...)
		hs.mixHash(epub)
	case 1: // <- e, ee, s, es
		epub := hs.e.PublicKey().Bytes()
		msg = append(msg, epub...)
		hs.mixHash(epub)
		if err = hs.mixDH(hs.e, hs.re); err != nil {
			return nil, err
		}
		if msg, err = hs.encryptAndHash(msg, hs.s.PublicKey().Bytes()); err != nil {
			return nil, err
		}
		if err = hs.mixDH(hs.s, hs.re); err != nil {
			return nil, err
		}
	case 2: // -> s, se
		if msg, err = hs.encryptAndHash(msg, hs.s.PublicKey().Bytes()); err != nil {
			return nil, err
		}
		if err = hs.mixDH(hs.s, hs.re); err != nil {
			return nil, err
		}
	}
	if msg, err = hs.encryptAndHash(msg, payload); err != nil {
		return nil, err
	}
	if len(msg) > noiseMaxMsg {
		return nil, fmt.Errorf("noise: handshake message of %d bytes exceeds %d", len(msg), noiseMaxMsg)
	}
	hs.step++
	return msg, nil
}

// readMessage consumes the next handshake message and returns its payload.
func (hs *noiseHandshake) readMessage(msg []byte) ([]byte, error) {
	if hs.initiator == (hs.step%2 == 0) || hs.step > 2 {
		return nil, fmt.Errorf("noise: message %d is not ours to read", hs.step+1)
	}
	// Key lengths are fixed: a short message cannot hold them.
	need := [...]int{
		noiseDHLen,                              // e
		noiseDHLen + noiseDHLen + 2*noiseTagLen, // e, encrypted s, payload tag
		noiseDHLen + 2*noiseTagLen,              // encrypted s, payload tag
	}[hs.step]
	if len(msg) < need {
		return nil, fmt.Errorf("noise: handshake message %d is %d bytes, less than the %d its keys need", hs.step+1, len(msg), need)
	}
	var err error
	switch hs.step {
	case 0: // -> e
		hs.re = append([]byte(nil), msg[:noiseDHLen]...)
		hs.mixHash(hs.re)
		msg = msg[noiseDHLen:]
	case 1: // <- e, ee, s, es
		hs.re = append([]byte(nil), msg[:noiseDHLen]...)
		hs.mixHash(hs.re)
		msg = msg[noiseDHLen:]
		if err = hs.mixDH(hs.e, hs.re); err != nil {
			return nil, err
		}
		if hs.rs, err = hs.decryptAndHash(msg[:noiseDHLen+noiseTagLen]); err != nil {
			return nil, fmt.Errorf("decrypting the remote static key: %w", err)
		}
		msg = msg[noiseDHLen+noiseTagLen:]
		if err = hs.mixDH(hs.e, hs.rs); err != nil {
			return nil, err
		}
	case 2: // -> s, se
		if hs.rs, err = hs.decryptAndHash(msg[:noiseDHLen+noiseTagLen]); err != nil {
			return nil, fmt.Errorf("decrypting the remote static key: %w", err)
		}
		msg = msg[noiseDHLen+noiseTagLen:]
		if err = hs.mixDH(hs.e, hs.rs); err != nil {
			return nil, err
		}
	}
	payload, err := hs.decryptAndHash(msg)
	if err != nil {
		return nil, fmt.Errorf("decrypting the payload: %w", err)
	}
	hs.step++
	return payload, nil
}

// split returns the transport ciphers: the first is the initiator's sending
// one, so the responder swaps them.
func (hs *noiseHandshake) split() (send, recv *noiseCipherState, err error) {
	k1, k2 := noiseHKDF(hs.ck, nil)
	c1, c2 := new(noiseCipherState), new(noiseCipherState)
	if err := c1.initializeKey(k1); err != nil {
		return nil, nil, err
	}
	if err := c2.initializeKey(k2); err != nil {
		return nil, nil, err
	}
	if hs.initiator {
		return c1, c2, nil
	}
	return c2, c1, nil
}

// NoiseResult is a completed Noise handshake.
type NoiseResult struct {
	// Conn is the secured channel. Write splits into frames of at most
	// 65535 bytes on the wire (65519 of plaintext); Read returns decrypted
	// data; CloseWrite passes through to the underlying conn's CloseWrite.
	Conn     net.Conn
	RemoteID string
	// RemoteMuxers is NoiseExtensions.stream_muxers as the remote sent it.
	RemoteMuxers []string
}

// Noise runs the libp2p Noise XX handshake over conn (initiator = dialer)
// with an empty prologue. A non-empty expectRemote must equal the remote's
// peer ID. muxers go in NoiseExtensions.stream_muxers of message 2
// (responder) or 3 (initiator).
//
// mode paces the handshake: Strict writes each message in its own Write;
// Split writes every byte on its own, handshake and transport alike;
// Pipelined makes the initiator hold message 3 back and send it in the same
// write as its first data (or on CloseWrite/Close), so a Pipelined
// initiator must write before it waits to read: the responder cannot send
// anything before message 3.
func Noise(ctx context.Context, conn net.Conn, id *Identity, initiator bool, expectRemote string, muxers []string, mode Mode) (*NoiseResult, error) {
	done := secArmDeadline(ctx, conn)
	res, err := noiseHandshakeIO(conn, id, initiator, expectRemote, muxers, mode)
	if err = done(err); err != nil {
		return nil, err
	}
	return res, nil
}

func noiseHandshakeIO(conn net.Conn, id *Identity, initiator bool, expectRemote string, muxers []string, mode Mode) (*NoiseResult, error) {
	w := io.Writer(conn)
	if mode == Split {
		w = PacedConn(conn, Split)
	}
	static, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("noise: generating static key: %w", err)
	}
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("noise: generating ephemeral key: %w", err)
	}
	hs := newNoiseHandshake(initiator, nil, static, eph)
	payload := encodeNoisePayload(id.PubKeyPB, id.Sign(append([]byte(noiseSigPrefix), static.PublicKey().Bytes()...)), muxers)

	var remote noisePayload
	var pending []byte
	if initiator {
		m1, err := hs.writeMessage(nil)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(noiseFrame(nil, m1)); err != nil {
			return nil, fmt.Errorf("noise: writing message 1: %w", err)
		}
		m2, err := readNoiseFrame(conn, nil)
		if err != nil {
			return nil, fmt.Errorf("noise: reading message 2: %w", err)
		}
		pl, err := hs.readMessage(m2)
		if err != nil {
			return nil, fmt.Errorf("noise: message 2: %w", err)
		}
		if remote, err = checkNoisePayload(pl, hs.rs, expectRemote); err != nil {
			return nil, fmt.Errorf("noise: message 2 payload: %w", err)
		}
		m3, err := hs.writeMessage(payload)
		if err != nil {
			return nil, err
		}
		if mode == Pipelined {
			pending = noiseFrame(nil, m3)
		} else if _, err := w.Write(noiseFrame(nil, m3)); err != nil {
			return nil, fmt.Errorf("noise: writing message 3: %w", err)
		}
	} else {
		m1, err := readNoiseFrame(conn, nil)
		if err != nil {
			return nil, fmt.Errorf("noise: reading message 1: %w", err)
		}
		pl, err := hs.readMessage(m1)
		if err != nil {
			return nil, fmt.Errorf("noise: message 1: %w", err)
		}
		// Extensions may only follow once secrecy is guaranteed, so the
		// first message carries nothing but the ephemeral key.
		if len(pl) != 0 {
			return nil, fmt.Errorf("noise: message 1 carries a %d-byte payload, want none", len(pl))
		}
		m2, err := hs.writeMessage(payload)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(noiseFrame(nil, m2)); err != nil {
			return nil, fmt.Errorf("noise: writing message 2: %w", err)
		}
		m3, err := readNoiseFrame(conn, nil)
		if err != nil {
			return nil, fmt.Errorf("noise: reading message 3: %w", err)
		}
		pl, err = hs.readMessage(m3)
		if err != nil {
			return nil, fmt.Errorf("noise: message 3: %w", err)
		}
		if remote, err = checkNoisePayload(pl, hs.rs, expectRemote); err != nil {
			return nil, fmt.Errorf("noise: message 3 payload: %w", err)
		}
	}
	send, recv, err := hs.split()
	if err != nil {
		return nil, fmt.Errorf("noise: split: %w", err)
	}
	nc := &noiseConn{raw: conn, w: w, send: send, recv: recv, pending: pending}
	return &NoiseResult{Conn: nc, RemoteID: remote.id, RemoteMuxers: remote.muxers}, nil
}

// noiseFrame appends the u16 big-endian length prefix and msg to dst.
func noiseFrame(dst, msg []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(msg)))
	return append(dst, msg...)
}

// readNoiseFrame reads exactly one frame, never past it: the bytes after it
// belong to whatever the remote sends next.
func readNoiseFrame(r io.Reader, buf []byte) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("frame body of %d bytes: %w", n, err)
	}
	return buf, nil
}

// noisePayload is a checked NoiseHandshakePayload.
type noisePayload struct {
	id     string
	muxers []string
}

// encodeNoisePayload encodes NoiseHandshakePayload with identity_key and
// identity_sig always present (rust encodes proto3, without presence, so
// only the reader may be lenient) and NoiseExtensions only when muxers
// are given.
func encodeNoisePayload(keyPB, sig []byte, muxers []string) []byte {
	b := secAppendBytesField(nil, 1, keyPB)
	b = secAppendBytesField(b, 2, sig)
	if len(muxers) > 0 {
		var ext []byte
		for _, m := range muxers {
			ext = secAppendBytesField(ext, 2, []byte(m))
		}
		b = secAppendBytesField(b, 4, ext)
	}
	return b
}

// checkNoisePayload decodes the remote's payload (skipping unknown fields),
// verifies identity_sig over its static key and derives its peer ID.
func checkNoisePayload(pl, remoteStatic []byte, expectRemote string) (noisePayload, error) {
	var key, sig []byte
	var muxers []string
	err := secParseFields(pl, func(num, wt int, _ uint64, b []byte) error {
		if num >= 1 && num <= 4 && num != 3 && wt != secWireBytes {
			return fmt.Errorf("field %d has wire type %d, want length-delimited", num, wt)
		}
		switch num {
		case 1:
			key = b
		case 2:
			sig = b
		case 4: // repeated occurrences of an embedded message merge
			return secParseFields(b, func(num, wt int, _ uint64, b []byte) error {
				if num == 2 {
					if wt != secWireBytes {
						return fmt.Errorf("stream_muxers has wire type %d", wt)
					}
					muxers = append(muxers, string(b))
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return noisePayload{}, fmt.Errorf("decoding NoiseHandshakePayload: %w", err)
	}
	if len(key) == 0 {
		return noisePayload{}, errors.New("no identity_key")
	}
	if len(sig) == 0 {
		return noisePayload{}, errors.New("no identity_sig")
	}
	if err := VerifySignature(key, append([]byte(noiseSigPrefix), remoteStatic...), sig); err != nil {
		return noisePayload{}, fmt.Errorf("identity_sig over the static key: %w", err)
	}
	id, err := PeerIDFromPublicKey(key)
	if err != nil {
		return noisePayload{}, fmt.Errorf("identity_key: %w", err)
	}
	if expectRemote != "" && id != expectRemote {
		return noisePayload{}, fmt.Errorf("remote is peer %s, want %s", id, expectRemote)
	}
	return noisePayload{id: id, muxers: muxers}, nil
}

// noiseConn is the secured channel after the handshake.
type noiseConn struct {
	raw net.Conn
	w   io.Writer // raw, paced by the mode

	rmu   sync.Mutex
	recv  *noiseCipherState
	frame []byte // ciphertext buffer, decrypted in place
	rbuf  []byte // decrypted bytes not yet returned
	rerr  error  // sticky: after a bad or partial frame the stream is lost

	wmu     sync.Mutex
	send    *noiseCipherState
	pending []byte // a Pipelined initiator's message 3, not yet sent
	werr    error
}

func (c *noiseConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for len(c.rbuf) == 0 {
		if c.rerr != nil {
			return 0, c.rerr
		}
		if c.frame == nil {
			c.frame = make([]byte, noiseMaxMsg)
		}
		var hdr [2]byte
		n, err := io.ReadFull(c.raw, hdr[:])
		if err != nil {
			if n == 0 && (err == io.EOF || errors.Is(err, os.ErrDeadlineExceeded)) {
				return 0, err // at a frame boundary: clean EOF, or a retryable timeout
			}
			c.rerr = fmt.Errorf("noise: reading frame length: %w", err)
			continue
		}
		l := int(binary.BigEndian.Uint16(hdr[:]))
		if l < noiseTagLen {
			c.rerr = fmt.Errorf("noise: transport frame of %d bytes is shorter than its %d-byte tag", l, noiseTagLen)
			continue
		}
		if _, err := io.ReadFull(c.raw, c.frame[:l]); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			c.rerr = fmt.Errorf("noise: reading frame body of %d bytes: %w", l, err)
			continue
		}
		pt, err := c.recv.decrypt(c.frame[:0], nil, c.frame[:l])
		if err != nil {
			c.rerr = fmt.Errorf("noise: %w", err)
			continue
		}
		c.rbuf = pt // may be empty: an empty frame is legal, read on
	}
	n := copy(p, c.rbuf)
	c.rbuf = c.rbuf[n:]
	return n, nil
}

// Write encrypts p into as many frames as it needs and sends them, after
// any pending handshake message, in one underlying Write.
func (c *noiseConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return 0, c.werr
	}
	frames := (len(p) + noiseMaxPlain - 1) / noiseMaxPlain
	buf := make([]byte, 0, len(c.pending)+len(p)+frames*(2+noiseTagLen))
	buf = append(buf, c.pending...)
	for rest := p; len(rest) > 0; {
		chunk := rest[:min(len(rest), noiseMaxPlain)]
		rest = rest[len(chunk):]
		buf = binary.BigEndian.AppendUint16(buf, uint16(len(chunk)+noiseTagLen))
		var err error
		if buf, err = c.send.encrypt(buf, nil, chunk); err != nil {
			c.werr = fmt.Errorf("noise: %w", err)
			return 0, c.werr
		}
	}
	if len(buf) == 0 {
		return 0, nil
	}
	c.pending = nil
	if _, err := c.w.Write(buf); err != nil {
		// Part of a frame may be out: nothing later can be framed correctly.
		c.werr = fmt.Errorf("noise: write: %w", err)
		return 0, c.werr
	}
	return len(p), nil
}

// flushLocked sends a pending handshake message; c.wmu must be held.
func (c *noiseConn) flushLocked() error {
	if c.pending == nil || c.werr != nil {
		return c.werr
	}
	buf := c.pending
	c.pending = nil
	if _, err := c.w.Write(buf); err != nil {
		c.werr = fmt.Errorf("noise: writing message 3: %w", err)
	}
	return c.werr
}

func (c *noiseConn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.flushLocked(); err != nil {
		return err
	}
	cw, ok := c.raw.(interface{ CloseWrite() error })
	if !ok {
		return fmt.Errorf("noise: %T has no half-close: %w", c.raw, errors.ErrUnsupported)
	}
	return cw.CloseWrite()
}

func (c *noiseConn) Close() error {
	c.wmu.Lock()
	_ = c.flushLocked() // best effort: the remote may still want message 3
	c.wmu.Unlock()
	return c.raw.Close()
}

func (c *noiseConn) LocalAddr() net.Addr                { return c.raw.LocalAddr() }
func (c *noiseConn) RemoteAddr() net.Addr               { return c.raw.RemoteAddr() }
func (c *noiseConn) SetDeadline(t time.Time) error      { return c.raw.SetDeadline(t) }
func (c *noiseConn) SetReadDeadline(t time.Time) error  { return c.raw.SetReadDeadline(t) }
func (c *noiseConn) SetWriteDeadline(t time.Time) error { return c.raw.SetWriteDeadline(t) }

// secArmDeadline bounds a handshake on c by ctx: it sets c's deadline to
// ctx's (DefaultTimeout from now when ctx has none) and forces it into the
// past when ctx is cancelled. The returned func clears the deadline and
// folds ctx's error into the handshake's.
func secArmDeadline(ctx context.Context, c interface{ SetDeadline(time.Time) error }) func(error) error {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(DefaultTimeout)
	}
	_ = c.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	return func(err error) error {
		if !stop() {
			// ctx ended first and its deadline may already be in force.
			if err == nil {
				return fmt.Errorf("handshake outlived its context: %w", ctx.Err())
			}
			return fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		_ = c.SetDeadline(time.Time{})
		return err
	}
}
