// Keeps the npm projects (and Go files some npm packages ship) out of the tachyon module.
module github.com/tachyon-p2p/tachyon/interop/matrix/js

go 1.26
