package noise

import (
	"crypto/subtle"
	"errors"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
)

// Ephemeral keys. crypto/ecdh derives an X25519 public key with the same
// variable-base ladder as a Diffie-Hellman (about 34 µs here), and computes
// it whenever a private key is made. A fresh key's public half is a
// multiple of the base point, which the Edwards form of the curve computes
// with a precomputed table in about 14 µs; the Montgomery u-coordinate
// follows from the Edwards point (RFC 7748, section 4.1). Every handshake
// draws one ephemeral key, so its DHs (ee, and es or se) run on the ladder
// below with the raw scalar. The static key, made once per transport,
// stays with crypto/ecdh.

// x25519Base returns X25519(scalar, 9), the public key of scalar.
func x25519Base(scalar *[dhLen]byte) [dhLen]byte {
	s, err := edwards25519.NewScalar().SetBytesWithClamping(scalar[:])
	if err != nil { // only for a length other than 32
		panic("noise: " + err.Error())
	}
	var pub [dhLen]byte
	copy(pub[:], new(edwards25519.Point).ScalarBaseMult(s).BytesMontgomery())
	return pub
}

var errLowOrder = errors.New("X25519 with remote key: low-order point")

// x25519 returns X25519(scalar, u) as RFC 7748, section 5 defines it: the
// scalar is clamped, the top bit of u is ignored and a non-canonical u is
// taken modulo p. It runs in time independent of scalar and u. Like
// crypto/ecdh, it refuses the all-zero result that low-order points give.
func x25519(scalar, u *[dhLen]byte) ([dhLen]byte, error) {
	k := *scalar
	k[0] &= 248
	k[31] &= 127
	k[31] |= 64

	var x1, x2, z2, x3, z3 field.Element
	if _, err := x1.SetBytes(u[:]); err != nil { // only for a length other than 32
		panic("noise: " + err.Error())
	}
	x2.One()
	z2.Zero()
	x3.Set(&x1)
	z3.One()

	// The ladder of RFC 7748, section 5, with a24 = 121665.
	var a, aa, b, bb, e, c, d, da, cb field.Element
	swap := 0
	for t := 254; t >= 0; t-- {
		bit := int(k[t/8]>>(t%8)) & 1
		swap ^= bit
		x2.Swap(&x3, swap)
		z2.Swap(&z3, swap)
		swap = bit

		a.Add(&x2, &z2)
		aa.Square(&a)
		b.Subtract(&x2, &z2)
		bb.Square(&b)
		e.Subtract(&aa, &bb)
		c.Add(&x3, &z3)
		d.Subtract(&x3, &z3)
		da.Multiply(&d, &a)
		cb.Multiply(&c, &b)
		x3.Add(&da, &cb)
		x3.Square(&x3)
		z3.Subtract(&da, &cb)
		z3.Square(&z3)
		z3.Multiply(&z3, &x1)
		x2.Multiply(&aa, &bb)
		z2.Mult32(&e, 121665)
		z2.Add(&z2, &aa)
		z2.Multiply(&z2, &e)
	}
	x2.Swap(&x3, swap)
	z2.Swap(&z3, swap)
	z2.Invert(&z2)
	x2.Multiply(&x2, &z2)

	var out [dhLen]byte
	copy(out[:], x2.Bytes())
	var zero [dhLen]byte
	if subtle.ConstantTimeCompare(out[:], zero[:]) == 1 {
		return out, errLowOrder
	}
	return out, nil
}
