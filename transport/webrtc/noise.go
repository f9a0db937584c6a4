package webrtc

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/tachyon-p2p/tachyon/core/crypto"
	"github.com/tachyon-p2p/tachyon/core/peer"
	"github.com/tachyon-p2p/tachyon/internal/pb"
)

// noisePrologue is "libp2p-webrtc-noise:" ‖ mh(dialer fingerprint) ‖
// mh(listener fingerprint) (webrtc-direct.md, "Connection Security").
func noisePrologue(dialerFP, listenerFP []byte) []byte {
	p := []byte("libp2p-webrtc-noise:")
	p = append(p, fingerprintMultihash(dialerFP)...)
	return append(p, fingerprintMultihash(listenerFP)...)
}

// On WebRTC-direct the listener is the Noise initiator and, unlike every
// other transport, it does not know whom it is talking to until message 2.
// security/noise only runs an initiator that expects a given peer, so the
// listener side runs this initiator: Noise_XX_25519_ChaChaPoly_SHA256 with
// the libp2p payload, handshake only (DTLS encrypts the data, Noise never
// does here). The dialer side uses security/noise's responder unchanged,
// which the tests pair with this code.
//
// TODO: drop this file once security/noise accepts an empty remote peer in
// SecureOutbound (a one-line change there).

const (
	noiseProtocolName = "Noise_XX_25519_ChaChaPoly_SHA256" // exactly 32 bytes
	noiseSigPrefix    = "noise-libp2p-static-key:"
	noiseMaxFrame     = 65535
)

type noiseSymmetric struct {
	ck, h [32]byte
	key   []byte // nil until the first MixKey
	n     uint64
}

func (s *noiseSymmetric) mixHash(data []byte) {
	d := sha256.New()
	d.Write(s.h[:])
	d.Write(data)
	d.Sum(s.h[:0])
}

func (s *noiseSymmetric) mixKey(ikm []byte) error {
	out, err := hkdf.Key(sha256.New, ikm, s.ck[:], "", 64)
	if err != nil {
		return err
	}
	copy(s.ck[:], out[:32])
	s.key, s.n = out[32:], 0
	return nil
}

func (s *noiseSymmetric) nonce() []byte {
	var n [12]byte
	binary.LittleEndian.PutUint64(n[4:], s.n)
	s.n++
	return n[:]
}

func (s *noiseSymmetric) encryptAndHash(dst, pt []byte) ([]byte, error) {
	aead, err := chacha20poly1305.New(s.key)
	if err != nil {
		return nil, err
	}
	start := len(dst)
	dst = aead.Seal(dst, s.nonce(), pt, s.h[:])
	s.mixHash(dst[start:])
	return dst, nil
}

func (s *noiseSymmetric) decryptAndHash(ct []byte) ([]byte, error) {
	aead, err := chacha20poly1305.New(s.key)
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(nil, s.nonce(), ct, s.h[:])
	if err != nil {
		return nil, errors.New("decryption failed")
	}
	s.mixHash(ct)
	return pt, nil
}

// noiseInitiate runs the initiator side of XX over rw and returns the
// authenticated remote key. rw's deadlines bound it.
func noiseInitiate(rw io.ReadWriter, key crypto.PrivKey, prologue []byte) (crypto.PubKey, error) {
	x := ecdh.X25519()
	static, err := x.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	eph, err := x.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	var s noiseSymmetric
	copy(s.h[:], noiseProtocolName)
	s.ck = s.h
	s.mixHash(prologue)

	// -> e
	s.mixHash(eph.PublicKey().Bytes())
	s.mixHash(nil) // empty payload, no key yet
	if err := writeNoiseFrame(rw, eph.PublicKey().Bytes()); err != nil {
		return nil, fmt.Errorf("writing message 1: %w", err)
	}

	// <- e, ee, s, es
	msg, err := readNoiseFrame(rw)
	if err != nil {
		return nil, fmt.Errorf("reading message 2: %w", err)
	}
	if len(msg) < 32+48+16 {
		return nil, fmt.Errorf("message 2 too short (%d bytes)", len(msg))
	}
	re, err := x.NewPublicKey(msg[:32])
	if err != nil {
		return nil, fmt.Errorf("message 2: %w", err)
	}
	s.mixHash(msg[:32])
	if err := mixDH(&s, eph, re); err != nil {
		return nil, err
	}
	rsBytes, err := s.decryptAndHash(msg[32 : 32+48])
	if err != nil {
		return nil, fmt.Errorf("message 2 static key: %w", err)
	}
	rs, err := x.NewPublicKey(rsBytes)
	if err != nil {
		return nil, fmt.Errorf("message 2: %w", err)
	}
	if err := mixDH(&s, eph, rs); err != nil {
		return nil, err
	}
	pl, err := s.decryptAndHash(msg[32+48:])
	if err != nil {
		return nil, fmt.Errorf("message 2 payload: %w", err)
	}
	remote, err := verifyNoisePayload(pl, rsBytes)
	if err != nil {
		return nil, fmt.Errorf("message 2: %w", err)
	}

	// -> s, se
	pub, err := crypto.MarshalPublicKey(key.GetPublic())
	if err != nil {
		return nil, err
	}
	sig, err := key.Sign(append([]byte(noiseSigPrefix), static.PublicKey().Bytes()...))
	if err != nil {
		return nil, fmt.Errorf("signing static key: %w", err)
	}
	out, err := s.encryptAndHash(nil, static.PublicKey().Bytes())
	if err != nil {
		return nil, err
	}
	if err := mixDH(&s, static, re); err != nil {
		return nil, err
	}
	out, err = s.encryptAndHash(out, pb.AppendBytes(pb.AppendBytes(nil, 1, pub), 2, sig))
	if err != nil {
		return nil, err
	}
	if err := writeNoiseFrame(rw, out); err != nil {
		return nil, fmt.Errorf("writing message 3: %w", err)
	}
	return remote, nil
}

func mixDH(s *noiseSymmetric, priv *ecdh.PrivateKey, pub *ecdh.PublicKey) error {
	shared, err := priv.ECDH(pub)
	if err != nil {
		return fmt.Errorf("noise DH: %w", err)
	}
	return s.mixKey(shared)
}

// verifyNoisePayload checks the identity signature over the remote static
// key and returns the identity key. Extensions are ignored.
func verifyNoisePayload(pl, remoteStatic []byte) (crypto.PubKey, error) {
	var keyBytes, sig []byte
	err := pb.ForEach(pl, func(f pb.Field) error {
		switch {
		case f.Num == 1 && f.Wire == pb.WireBytes:
			keyBytes = f.Bytes
		case f.Num == 2 && f.Wire == pb.WireBytes:
			sig = f.Bytes
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(keyBytes) == 0 {
		return nil, errors.New("payload has no identity key")
	}
	pub, err := crypto.UnmarshalPublicKey(keyBytes)
	if err != nil {
		return nil, fmt.Errorf("decoding identity key: %w", err)
	}
	ok, err := pub.Verify(append([]byte(noiseSigPrefix), remoteStatic...), sig)
	if err != nil || !ok {
		return nil, fmt.Errorf("invalid static key signature (%v)", err)
	}
	if _, err := peer.IDFromPublicKey(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

func writeNoiseFrame(w io.Writer, msg []byte) error {
	b := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(msg)), uint16(len(msg)))
	_, err := w.Write(append(b, msg...))
	return err
}

func readNoiseFrame(r io.Reader) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	msg := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, err
	}
	return msg, nil
}

func peerIDFromKey(k crypto.PubKey) (peer.ID, error) { return peer.IDFromPublicKey(k) }
