package noise

import (
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math"

	"golang.org/x/crypto/chacha20poly1305"
)

// This file holds the Noise framework's CipherState and SymmetricState
// (Noise spec rev 34, §5.1 and §5.2) for the one suite libp2p uses:
// ChaChaPoly with SHA-256. Hashing works on fixed arrays so that a handshake
// does not allocate for them.

const (
	hashLen = sha256.Size // HASHLEN
	keyLen  = 32
	tagLen  = chacha20poly1305.Overhead
)

var (
	errNonceExhausted = errors.New("nonce exhausted")
	errDecrypt        = errors.New("message authentication failed")
)

// cipherState is a Noise CipherState: a key and a 64-bit message counter.
type cipherState struct {
	aead  cipher.AEAD // nil until a key is set (HasKey() == false)
	n     uint64
	nonce [chacha20poly1305.NonceSize]byte
}

func (c *cipherState) initializeKey(k [keyLen]byte) {
	aead, err := chacha20poly1305.New(k[:])
	if err != nil {
		panic(err) // unreachable: the key has the right length
	}
	c.aead = aead
	c.n = 0
}

func (c *cipherState) hasKey() bool { return c.aead != nil }

// nextNonce returns the nonce for the current counter and advances it.
// Noise §5.1: ChaChaPoly nonces are 32 zero bits followed by the
// little-endian 64-bit counter. 2^64-1 is reserved.
func (c *cipherState) nextNonce() ([]byte, error) {
	if c.n == math.MaxUint64 {
		return nil, errNonceExhausted
	}
	binary.LittleEndian.PutUint64(c.nonce[4:], c.n)
	c.n++
	return c.nonce[:], nil
}

// encrypt appends the sealed plaintext to dst. dst may alias plaintext
// exactly (dst = plaintext[:0]) to seal in place.
func (c *cipherState) encrypt(dst, ad, plaintext []byte) ([]byte, error) {
	if c.aead == nil {
		return append(dst, plaintext...), nil
	}
	nonce, err := c.nextNonce()
	if err != nil {
		return nil, err
	}
	return c.aead.Seal(dst, nonce, plaintext, ad), nil
}

// decrypt appends the opened ciphertext to dst. dst may alias ciphertext
// exactly (dst = ciphertext[:0]) to open in place.
func (c *cipherState) decrypt(dst, ad, ciphertext []byte) ([]byte, error) {
	if c.aead == nil {
		return append(dst, ciphertext...), nil
	}
	nonce, err := c.nextNonce()
	if err != nil {
		return nil, err
	}
	out, err := c.aead.Open(dst, nonce, ciphertext, ad)
	if err != nil {
		return nil, errDecrypt
	}
	return out, nil
}

// symmetricState is a Noise SymmetricState (§5.2).
type symmetricState struct {
	cs      cipherState
	ck      [hashLen]byte
	h       [hashLen]byte
	scratch []byte // reused buffer for MixHash input
}

// initialize sets h to the protocol name, padded, or hashed when longer than
// HASHLEN, and ck = h.
func (s *symmetricState) initialize(protocolName string) {
	if len(protocolName) <= hashLen {
		s.h = [hashLen]byte{}
		copy(s.h[:], protocolName)
	} else {
		s.h = sha256.Sum256([]byte(protocolName))
	}
	s.ck = s.h
	s.cs = cipherState{}
}

// mixHash sets h = HASH(h || data).
func (s *symmetricState) mixHash(data []byte) {
	s.scratch = append(append(s.scratch[:0], s.h[:]...), data...)
	s.h = sha256.Sum256(s.scratch)
}

// mixKey sets ck, tempK = HKDF(ck, ikm, 2) and initializes the cipher with
// tempK.
func (s *symmetricState) mixKey(ikm []byte) {
	var k [keyLen]byte
	s.ck, k = hkdf2(&s.ck, ikm)
	s.cs.initializeKey(k)
}

// encryptAndHash appends ENCRYPT(plaintext) to dst and mixes the ciphertext
// into h.
func (s *symmetricState) encryptAndHash(dst, plaintext []byte) ([]byte, error) {
	start := len(dst)
	out, err := s.cs.encrypt(dst, s.h[:], plaintext)
	if err != nil {
		return nil, err
	}
	s.mixHash(out[start:])
	return out, nil
}

// decryptAndHash opens ciphertext (appending to dst) and mixes the
// ciphertext into h. dst must not alias ciphertext: h is computed over the
// ciphertext after the plaintext is written.
func (s *symmetricState) decryptAndHash(dst, ciphertext []byte) ([]byte, error) {
	// Hash first: the ciphertext is still intact.
	prevH := s.h
	s.mixHash(ciphertext)
	out, err := s.cs.decrypt(dst, prevH[:], ciphertext)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// split returns the two transport CipherStates: c1 for initiator-to-responder
// traffic, c2 for responder-to-initiator.
func (s *symmetricState) split() (c1, c2 cipherState) {
	k1, k2 := hkdf2(&s.ck, nil)
	c1.initializeKey(k1)
	c2.initializeKey(k2)
	return c1, c2
}

// hkdf2 is HKDF(chaining_key, ikm, 2) of Noise §4.3, built from HMAC-SHA256
// on stack buffers.
func hkdf2(ck *[hashLen]byte, ikm []byte) (out1, out2 [hashLen]byte) {
	temp := hmacSHA256(ck[:], ikm, nil)
	out1 = hmacSHA256(temp[:], []byte{1}, nil)
	out2 = hmacSHA256(temp[:], out1[:], []byte{2})
	return out1, out2
}

// hmacSHA256 returns HMAC-SHA256(key, a || b) for a 32-byte key and inputs
// of at most 64 bytes in total (all HKDF needs here).
func hmacSHA256(key, a, b []byte) [hashLen]byte {
	const block = sha256.BlockSize
	var inner [block + 64]byte
	var outer [block + hashLen]byte
	copy(inner[:], key)
	copy(outer[:], key)
	for i := 0; i < block; i++ {
		inner[i] ^= 0x36
		outer[i] ^= 0x5c
	}
	n := block + copy(inner[block:], a)
	n += copy(inner[n:], b)
	if len(a)+len(b) > 64 {
		panic("noise: hmac input too long") // unreachable: callers pass at most 33 bytes
	}
	ih := sha256.Sum256(inner[:n])
	copy(outer[block:], ih[:])
	return sha256.Sum256(outer[:])
}
