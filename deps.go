package tachyon
import (
_ "github.com/multiformats/go-multiaddr"
_ "golang.org/x/crypto/chacha20poly1305"
_ "golang.org/x/crypto/curve25519"
_ "golang.org/x/sys/unix"
_ "github.com/decred/dcrd/dcrec/secp256k1/v4"
_ "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
_ "github.com/mr-tron/base58"
_ "github.com/multiformats/go-multihash"
_ "github.com/multiformats/go-multibase"
)
