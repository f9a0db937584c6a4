package noise

import (
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
)

// This file runs the XX pattern of the Noise framework (spec rev 34, §7.5)
// with no libp2p content: the three messages carry opaque payloads.
//
//	XX:
//	  -> e
//	  <- e, ee, s, es
//	  -> s, se

// protocolName is the full Noise protocol name hashed into the state.
const protocolName = "Noise_XX_25519_ChaChaPoly_SHA256"

const dhLen = 32

var errShortMessage = errors.New("handshake message too short")

// keypair is an X25519 key pair: a static key holds a crypto/ecdh key
// (called directly rather than through golang.org/x/crypto/curve25519, which
// wraps it but rederives the public key on every X25519 call), an ephemeral
// one its raw scalar (x25519.go says why).
type keypair struct {
	key       *ecdh.PrivateKey // a static key
	scalar    [dhLen]byte      // an ephemeral key's private scalar
	ephemeral bool
	pub       [dhLen]byte
}

// drawKey reads a private key from r (crypto/rand when nil).
func drawKey(r io.Reader) ([dhLen]byte, error) {
	var priv [dhLen]byte
	if r == nil {
		r = rand.Reader
	}
	if _, err := io.ReadFull(r, priv[:]); err != nil {
		return priv, fmt.Errorf("generating X25519 key: %w", err)
	}
	return priv, nil
}

// newKeypair draws a static key from r (crypto/rand when nil).
func newKeypair(r io.Reader) (keypair, error) {
	priv, err := drawKey(r)
	if err != nil {
		return keypair{}, err
	}
	return keypairFromPrivate(priv)
}

// newEphemeral draws an ephemeral key from r (crypto/rand when nil).
func newEphemeral(r io.Reader) (keypair, error) {
	priv, err := drawKey(r)
	if err != nil {
		return keypair{}, err
	}
	return ephemeralFromPrivate(priv), nil
}

func ephemeralFromPrivate(priv [dhLen]byte) keypair {
	return keypair{scalar: priv, ephemeral: true, pub: x25519Base(&priv)}
}

func keypairFromPrivate(priv [dhLen]byte) (keypair, error) {
	k, err := ecdh.X25519().NewPrivateKey(priv[:])
	if err != nil {
		return keypair{}, fmt.Errorf("X25519 key: %w", err)
	}
	kp := keypair{key: k}
	copy(kp.pub[:], k.PublicKey().Bytes())
	return kp, nil
}

// dh is DH(priv, pub) of §4.1. It rejects low-order points, whose shared
// secret is all zeros.
func dh(kp *keypair, pub *[dhLen]byte) ([]byte, error) {
	if kp.ephemeral {
		out, err := x25519(&kp.scalar, pub)
		return out[:], err
	}
	if kp.key == nil {
		return nil, errors.New("X25519 with an unset key")
	}
	remote, err := ecdh.X25519().NewPublicKey(pub[:])
	if err != nil {
		return nil, fmt.Errorf("remote X25519 key: %w", err)
	}
	out, err := kp.key.ECDH(remote)
	if err != nil {
		return nil, fmt.Errorf("X25519 with remote key: %w", err)
	}
	return out, nil
}

// handshakeState is the HandshakeState of §5.3 specialised to XX.
type handshakeState struct {
	ss        symmetricState
	initiator bool
	s, e      keypair     // local static and ephemeral keys
	rs, re    [dhLen]byte // remote static and ephemeral keys
	payload   []byte      // decrypted payload of the last message read
}

// init is Initialize() of §5.3 with an empty pre-message pattern.
func (hs *handshakeState) init(initiator bool, prologue []byte, s, e keypair) {
	hs.initiator = initiator
	hs.s, hs.e = s, e
	hs.ss.initialize(protocolName)
	hs.ss.mixHash(prologue)
}

// writeMsg1 appends "-> e" and the payload to out (initiator).
func (hs *handshakeState) writeMsg1(out, payload []byte) ([]byte, error) {
	out = append(out, hs.e.pub[:]...)
	hs.ss.mixHash(hs.e.pub[:])
	return hs.ss.encryptAndHash(out, payload)
}

// readMsg1 consumes "-> e" and returns the payload (responder).
func (hs *handshakeState) readMsg1(msg []byte) ([]byte, error) {
	if len(msg) < dhLen {
		return nil, errShortMessage
	}
	copy(hs.re[:], msg[:dhLen])
	hs.ss.mixHash(hs.re[:])
	return hs.readPayload(msg[dhLen:])
}

// writeMsg2 appends "<- e, ee, s, es" and the payload to out (responder).
func (hs *handshakeState) writeMsg2(out, payload []byte) ([]byte, error) {
	out = append(out, hs.e.pub[:]...)
	hs.ss.mixHash(hs.e.pub[:])
	if err := hs.mixDH(&hs.e, &hs.re); err != nil { // ee
		return nil, err
	}
	out, err := hs.ss.encryptAndHash(out, hs.s.pub[:])
	if err != nil {
		return nil, err
	}
	if err := hs.mixDH(&hs.s, &hs.re); err != nil { // es, responder side
		return nil, err
	}
	return hs.ss.encryptAndHash(out, payload)
}

// readMsg2 consumes "<- e, ee, s, es" and returns the payload (initiator).
func (hs *handshakeState) readMsg2(msg []byte) ([]byte, error) {
	if len(msg) < dhLen+dhLen+tagLen+tagLen {
		return nil, errShortMessage
	}
	copy(hs.re[:], msg[:dhLen])
	hs.ss.mixHash(hs.re[:])
	if err := hs.mixDH(&hs.e, &hs.re); err != nil { // ee
		return nil, err
	}
	if err := hs.readStatic(msg[dhLen : 2*dhLen+tagLen]); err != nil {
		return nil, err
	}
	if err := hs.mixDH(&hs.e, &hs.rs); err != nil { // es, initiator side
		return nil, err
	}
	return hs.readPayload(msg[2*dhLen+tagLen:])
}

// writeMsg3 appends "-> s, se" and the payload to out (initiator).
func (hs *handshakeState) writeMsg3(out, payload []byte) ([]byte, error) {
	out, err := hs.ss.encryptAndHash(out, hs.s.pub[:])
	if err != nil {
		return nil, err
	}
	if err := hs.mixDH(&hs.s, &hs.re); err != nil { // se, initiator side
		return nil, err
	}
	return hs.ss.encryptAndHash(out, payload)
}

// readMsg3 consumes "-> s, se" and returns the payload (responder).
func (hs *handshakeState) readMsg3(msg []byte) ([]byte, error) {
	if len(msg) < dhLen+tagLen+tagLen {
		return nil, errShortMessage
	}
	if err := hs.readStatic(msg[:dhLen+tagLen]); err != nil {
		return nil, err
	}
	if err := hs.mixDH(&hs.e, &hs.rs); err != nil { // se, responder side
		return nil, err
	}
	return hs.readPayload(msg[dhLen+tagLen:])
}

func (hs *handshakeState) mixDH(local *keypair, remote *[dhLen]byte) error {
	secret, err := dh(local, remote)
	if err != nil {
		return err
	}
	hs.ss.mixKey(secret)
	return nil
}

func (hs *handshakeState) readStatic(ct []byte) error {
	var buf [dhLen]byte
	s, err := hs.ss.decryptAndHash(buf[:0], ct)
	if err != nil {
		return fmt.Errorf("decrypting remote static key: %w", err)
	}
	copy(hs.rs[:], s)
	return nil
}

func (hs *handshakeState) readPayload(ct []byte) ([]byte, error) {
	p, err := hs.ss.decryptAndHash(hs.payload[:0], ct)
	if err != nil {
		return nil, fmt.Errorf("decrypting handshake payload: %w", err)
	}
	hs.payload = p
	return p, nil
}

// split returns (send, recv) cipher states for this side (§5.2 Split: the
// first key is for initiator-to-responder traffic).
func (hs *handshakeState) split() (send, recv cipherState) {
	c1, c2 := hs.ss.split()
	if hs.initiator {
		return c1, c2
	}
	return c2, c1
}
