// This go.mod only keeps the npm project (and the Go files some npm
// packages ship in node_modules) out of the tachyon module.
module github.com/tachyon-p2p/tachyon/interop/p2pd

go 1.26
