// Package protodiff differential-fuzzs tachyon's hand-written protobuf codecs
// against google.golang.org/protobuf decoding the same schemas.
package protodiff
