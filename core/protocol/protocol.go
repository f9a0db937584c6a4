// Package protocol holds the protocol identifier type shared by every layer.
package protocol

// ID names a protocol negotiated with multistream-select, such as "/ipfs/ping/1.0.0".
type ID string
